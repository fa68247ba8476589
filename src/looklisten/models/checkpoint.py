"""Checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a directory::

    RUN/checkpoint/            (a link swapped atomically, see fileio.atomic_dir)
        config.json            the full Config, preprocessing included
        model.safetensors      model weights (and BN buffers)
        optimizer.safetensors  optimizer state tensors (training checkpoints only)
        state.json             step, epoch, optimizer hyper-parameters, metrics

Nothing is ever unpickled: a checkpoint from a stranger is data, not code.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from looklisten.core.config import Config, UnknownFieldError
from looklisten.core.fileio import DamagedFileError, atomic_dir, read_json

CHECKPOINT_DIR = "checkpoint"
#: Evaluations of a run are saved in RUN/eval/, where ``looklisten report`` reads them.
EVAL_DIR = "eval"


def resolve(path: str | os.PathLike) -> Path:
    """Accept a run directory or a checkpoint directory; return the checkpoint directory."""
    p = Path(path)
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        return p
    if (p / CHECKPOINT_DIR / "config.json").is_file():
        return p / CHECKPOINT_DIR
    link = p / CHECKPOINT_DIR
    if link.is_symlink() and not link.exists():
        raise DamagedFileError(
            link, "checkpoint", f"it links to {os.readlink(link)}, which is gone"
        )
    raise FileNotFoundError(f"{p}: no checkpoint here (expected config.json and model.safetensors)")


def has_checkpoint(run: str | os.PathLike) -> bool:
    """Whether the run directory ``run`` holds a checkpoint, or what is left of one.

    A dangling ``RUN/checkpoint`` link counts: resuming then reports the damage
    instead of starting over on top of it.
    """
    p = Path(run) / CHECKPOINT_DIR
    return os.path.lexists(p) or (Path(run) / "config.json").is_file()


def run_dir(path: str | os.PathLike) -> Path:
    """The run directory behind a run or checkpoint path.

    ``RUN`` -> ``RUN``; ``RUN/checkpoint`` (or a checkpoint directory next to a
    ``split.json``) -> ``RUN``; a stand-alone checkpoint directory -> itself.
    """
    p = Path(path)
    ckpt = resolve(p)
    if ckpt != p:  # p holds RUN/checkpoint
        return p
    if p.name == CHECKPOINT_DIR or (p.parent / "split.json").is_file():
        return Path(os.path.abspath(p)).parent  # the link itself, not its versioned target
    return p


def save_eval(path: str | os.PathLike, name: str, result: dict) -> Path:
    """Write an evaluation's JSON to ``RUN/eval/<name>`` atomically; return the path."""
    from looklisten.core.fileio import atomic_write_text

    out = run_dir(path) / EVAL_DIR / name
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return out


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(
    run_dir: str | os.PathLike,
    model: torch.nn.Module,
    cfg: Config,
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write RUN/checkpoint atomically; return its path.

    ``state.json`` records the size of each tensor file (``files``), so that a
    damaged copy is reported as such when it is loaded.
    """
    path = Path(run_dir) / CHECKPOINT_DIR
    model = getattr(model, "module", model)  # unwrap DDP
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = dict(state or {})
    with atomic_dir(path) as tmp:
        (tmp / "config.json").write_text(cfg.to_json() + "\n")
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if optimizer is not None:
            tensors, meta = _optimizer_tensors(optimizer)
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            state["optimizer"] = meta
        state["files"] = {p.name: p.stat().st_size for p in sorted(tmp.glob("*.safetensors"))}
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return path


class NewerCheckpointError(ValueError):
    """A checkpoint's config has a field this version of looklisten does not know.

    A newer looklisten wrote it; the message names the file and the field.
    """

    def __init__(self, path: str | os.PathLike, field: str) -> None:
        self.path, self.field = str(path), field
        super().__init__(
            f"{path}: config field {field!r} is unknown to looklisten {_version()}; the "
            "checkpoint was probably written by a newer looklisten: upgrade looklisten to load it"
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("looklisten")
    except PackageNotFoundError:
        return "(not installed)"


def load_config(path: str | os.PathLike) -> Config:
    """The config saved with a checkpoint (validated, see :class:`Config`)."""
    p = resolve(path) / "config.json"
    d = read_json(p, "checkpoint config")
    try:
        return Config.from_dict(d)
    except UnknownFieldError as e:  # not damage: a newer looklisten wrote it
        raise NewerCheckpointError(p, e.field) from None
    except (TypeError, ValueError) as e:
        raise DamagedFileError(p, "checkpoint config", str(e)) from None


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    p = resolve(path) / "state.json"
    return read_json(p, "checkpoint state") if p.is_file() else {}


def _tensors(ckpt: Path, name: str) -> dict[str, torch.Tensor]:
    """Load ``ckpt/name``; a truncated or damaged file is one clear error."""
    p = ckpt / name
    if not p.is_file():
        raise DamagedFileError(p, "checkpoint", "the file is missing")
    verify_checkpoint(ckpt)
    try:
        return load_file(str(p))
    except (SafetensorError, OSError) as e:
        raise DamagedFileError(p, "checkpoint", str(e)) from None


def verify_checkpoint(path: str | os.PathLike) -> Path:
    """Check a checkpoint's files (JSON, sizes, tensor headers) without loading tensors.

    Raises :class:`DamagedFileError` naming the damaged file; returns the
    checkpoint directory. ``train --resume`` calls it before writing anything.
    """
    ckpt = resolve(path)
    load_config(ckpt)
    sizes = load_state(ckpt).get("files", {})
    for p in sorted(ckpt.glob("*.safetensors")):
        if p.name in sizes and p.stat().st_size != sizes[p.name]:
            raise DamagedFileError(
                p, "checkpoint", f"{p.stat().st_size} bytes, state.json says {sizes[p.name]}"
            )
        try:
            with safe_open(str(p), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError) as e:
            raise DamagedFileError(p, "checkpoint", str(e)) from None
    return ckpt


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    ckpt = resolve(path)
    weights = _tensors(ckpt, "model.safetensors")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{ckpt}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )


def init_weights(model: torch.nn.Module, path: str | os.PathLike, cfg: Config) -> dict[str, Any]:
    """Warm-start ``model`` from another run: copy every tensor whose name and shape match.

    For fine-tuning one head from another's trunks (an AVOL-Net from an
    AVE-Net: both trunks and the audio branch carry over; the vision head is
    new). The audio frontends must agree (the audio trunk's weights mean
    nothing on another spectrogram); image sizes may differ (the trunks are
    fully convolutional).

    Returns
    -------
    dict
        ``from`` (the checkpoint), ``copied`` and ``kept`` (parameter names
        copied / left at their initial values).
    """
    ckpt = resolve(path)
    src_cfg = load_config(ckpt)
    if src_cfg.audio != cfg.audio:
        raise ValueError(
            f"{ckpt}: its audio frontend ({src_cfg.audio}) differs from this run's "
            f"({cfg.audio}); warm-start from a run of the same preset"
        )
    weights = _tensors(ckpt, "model.safetensors")
    own = model.state_dict()
    take = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith(("vision.", "audio.")) for k in take):
        raise ValueError(f"{ckpt}: no trunk weights match this model's")
    model.load_state_dict(take, strict=False)
    return {"from": str(ckpt), "copied": sorted(take), "kept": sorted(set(own) - set(take))}


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> None:
    ckpt = resolve(path)
    meta = load_state(ckpt).get("optimizer")
    if meta is None:
        raise DamagedFileError(ckpt / "state.json", "checkpoint state", "no optimizer state")
    tensors = _tensors(ckpt, "optimizer.safetensors")
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = t
    for pid, sc in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(sc)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model from a checkpoint's config and load its weights (eval mode).

    Parameters
    ----------
    path : run directory or checkpoint directory
    device : where to put the model

    Returns
    -------
    looklisten.models.network.AVNet
        ``model.cfg`` is the checkpoint's Config: build preprocessing from it.
        ``model.detector`` (:class:`looklisten.models.detector.SourceDetector`)
        says whether a visible object makes a sound (AVOL-Net).
    """
    from looklisten.models.detector import SourceDetector
    from looklisten.models.network import create_model

    cfg = load_config(path)
    model = create_model(cfg)
    load_weights(model, path)
    model.detector = SourceDetector.from_dict(load_state(path).get("source_detector"))
    return model.to(device).eval()


_MODEL_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_MODEL_CACHE_SIZE = 4
ARCH_NAMES = {"l3": "L3-Net", "ave": "AVE-Net", "avol": "AVOL-Net"}


def get_model(model, device: str | torch.device | None = None, arch: str | None = None):
    """A ready model: an :class:`AVNet` as is, or one loaded from a run / checkpoint path.

    Every entry point (embedding, search, localisation, evaluations, report)
    takes its model through here. Loaded models are cached (keyed by
    checkpoint directory, weight file modification time and device), so
    passing the same path to many calls loads it once.

    Parameters
    ----------
    model : AVNet or path-like
    device : str or torch.device, optional
        For a path: where to load it (default: CUDA if available, else CPU).
        A model object stays where it is.
    arch : {"l3", "ave", "avol"}, optional
        Required architecture (a clear error otherwise).

    Returns
    -------
    looklisten.models.network.AVNet
        ``model.cfg`` is its Config: every input is prepared from it.
    """
    from looklisten.models.runtime import default_device

    if model is None:
        raise ValueError("give a model: an AVNet or the path of a run / checkpoint directory")
    if isinstance(model, torch.nn.Module):
        if not hasattr(model, "cfg") or not hasattr(model, "embed_audio"):
            raise TypeError(f"expected a looklisten AVNet, got {type(model).__name__}")
        _check_arch(model.cfg.model.arch, arch, "the model")
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"expected a model (an AVNet or a run / checkpoint folder) first, got "
            f"{type(model).__name__}"
        )
    if Path(model).is_file():
        raise ValueError(
            f"{model}: a file, not a model: give a run or checkpoint folder (the model "
            "comes first, e.g. embed_audio(model, audio))"
        )
    # Not .resolve(): RUN/checkpoint is a link swapped on every save, keep the link.
    ckpt = Path(os.path.abspath(resolve(model)))
    _check_arch(load_config(ckpt).model.arch, arch, str(model))
    dev = default_device(device)
    key = (str(ckpt), (ckpt / "model.safetensors").stat().st_mtime_ns, str(dev))
    if key in _MODEL_CACHE:
        _MODEL_CACHE.move_to_end(key)
        return _MODEL_CACHE[key]
    net = load_model(ckpt, dev)
    net.checkpoint_path = str(ckpt)
    _MODEL_CACHE[key] = net
    while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
        _MODEL_CACHE.popitem(last=False)
    return net


def is_model(x) -> bool:
    """Whether ``x`` is a model: an AVNet, or a run / checkpoint folder (not data)."""
    if isinstance(x, torch.nn.Module):
        return True
    if isinstance(x, (str, os.PathLike)) and Path(x).is_dir():
        p = Path(x)
        return has_checkpoint(p) or (p / "model.safetensors").is_file()
    return False


def model_first(fn):
    """Decorate an entry point called ``fn(model, data, ...)``: the older data-first calls
    (``fn(data, ..., model=m)``, ``fn(data, m)``; for :func:`build_index`, whose model
    may be None, ``fn(data, None)``) still work, with a warning naming the new form."""
    import functools

    from looklisten.core.deprecation import deprecated

    new_form = f"{fn.__name__}(model, ...)"

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if "model" in kwargs and args:  # fn(data, ..., model=m)
            deprecated(f"{fn.__name__}(data, ..., model=m) is deprecated: call {new_form}")
            return fn(kwargs.pop("model"), *args, **kwargs)
        if len(args) >= 2 and not is_model(args[0]) and (is_model(args[1]) or args[1] is None):
            deprecated(f"{fn.__name__}(data, model) is deprecated: call {new_form}")
            return fn(args[1], args[0], *args[2:], **kwargs)
        return fn(*args, **kwargs)

    return call


def _check_arch(have: str, want: str | None, what: str) -> None:
    if want is None or have == want:
        return
    if want == "avol":
        raise ValueError(
            f"{what} is an {ARCH_NAMES.get(have, have)} ({have!r}) checkpoint: only AVOL-Net "
            "produces a localisation map (L3-Net and AVE-Net pool the image away and have "
            "none); train one with 'looklisten train DIR --model avol'"
        )
    raise ValueError(f"{what} is an {ARCH_NAMES.get(have, have)} ({have!r}), not {want!r}")
