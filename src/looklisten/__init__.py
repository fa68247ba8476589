"""looklisten: audio-visual correspondence learning (L3-Net, AVE-Net, AVOL-Net) in PyTorch.

The public API, imported lazily (``import looklisten`` is cheap; using a model
never loads the training code)::

    import looklisten

    cfg = looklisten.get_config("tiny", arch="ave")       # presets: looklisten.list_presets()
    looklisten.train("videos/", "runs/ave", cfg)           # a folder of videos -> a run
    model = looklisten.load_model("runs/ave")              # model.cfg, model.inputs
    emb, times = looklisten.embed_audio(model, "dog.wav")
    out = looklisten.embed_video(model, "clip.mp4")  # time-aligned audio + image
    looklisten.build_index("runs/ave", ["media/"], "index/")
    hits = looklisten.search("index/", image="dog.jpg")
    heat = looklisten.localize("runs/avol", "frame.png", "bark.wav")
    maps, times = looklisten.localize_video("runs/avol", "clip.mp4")
    looklisten.evaluate_retrieval("test-videos/", "runs/ave")   # and the other evaluations
    looklisten.write_report("runs/ave")

The code is layered (imports only go down): core -> media -> inputs -> models
-> data -> training -> tasks -> evaluation -> report -> cli; see docs/design.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

# name -> (module, attribute)
_API = {
    "Config": ("looklisten.core.config", "Config"),
    "get_config": ("looklisten.core.config", "get_config"),
    "list_presets": ("looklisten.core.config", "list_presets"),
    "MediaError": ("looklisten.media.video", "MediaError"),
    "create_model": ("looklisten.models.network", "create_model"),
    "load_model": ("looklisten.models.checkpoint", "load_model"),
    "make_demo_data": ("looklisten.data.demo_data", "make_demo_data"),
    "shard_folder": ("looklisten.data.shards", "shard_folder"),
    "train": ("looklisten.training.trainer", "train"),
    "embed_audio": ("looklisten.tasks.embed", "embed_audio"),
    "embed_image": ("looklisten.tasks.embed", "embed_image"),
    "embed_video": ("looklisten.tasks.embed", "embed_video"),
    "build_index": ("looklisten.tasks.search", "build_index"),
    "search": ("looklisten.tasks.search", "search"),
    "localize": ("looklisten.tasks.localize", "localize"),
    "localize_video": ("looklisten.tasks.localize", "localize_video"),
    "evaluate_retrieval": ("looklisten.evaluation.retrieval", "evaluate_retrieval"),
    "evaluate_localization": ("looklisten.evaluation.localization", "evaluate_localization"),
    "evaluate_probe": ("looklisten.evaluation.probe", "evaluate_probe"),
    "evaluate_units": ("looklisten.evaluation.units", "evaluate_units"),
    "evaluate_shortcut": ("looklisten.evaluation.shortcut", "evaluate_shortcut"),
    "evaluate_avc": ("looklisten.evaluation.avc", "evaluate_avc"),
    "write_report": ("looklisten.report.page", "write_report"),
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    # Module attributes come first in Python's lookup, so none of these names
    # may also be a submodule of looklisten (tests/test_api.py checks it).
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'looklisten' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
