"""looklisten: audio-visual correspondence learning (L3-Net, AVE-Net, AVOL-Net) in PyTorch.

The public API is small and imports lazily, so ``import looklisten`` is cheap
and using a model never loads the training code::

    import looklisten
    cfg = looklisten.get_config("tiny", arch="ave")
    model = looklisten.load_model("RUN")          # a trained run or checkpoint directory
    looklisten.train("videos/", "RUN", cfg)       # train on a folder of videos
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "Config",
    "get_config",
    "list_presets",
    "create_model",
    "load_model",
    "train",
    "make_demo_data",
    "MediaError",
    "__version__",
]

_LAZY = {
    "Config": ("core.config", "Config"),
    "get_config": ("core.config", "get_config"),
    "list_presets": ("core.config", "list_presets"),
    "create_model": ("models.network", "create_model"),
    "load_model": ("models.checkpoint", "load_model"),
    "train": ("training.trainer", "train"),
    "make_demo_data": ("data.demo_data", "make_demo_data"),
    "MediaError": ("media.video", "MediaError"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{mod}", __name__), attr)
    raise AttributeError(f"module 'looklisten' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
