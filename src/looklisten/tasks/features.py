"""Features from a named layer of a trunk, items decoded at a hop, and hand-made features.

Shared by the linear probes (:mod:`looklisten.evaluation.probe`) and the unit
analysis (:mod:`looklisten.evaluation.units`).

Layer names
-----------
Each trunk (:class:`looklisten.models.trunks.VGGTrunk`, the vision and the audio
branch alike) exposes ``conv{b}_{k}`` (the output of block ``b``'s ``k``-th
conv -> BN -> ReLU, ``b`` = 1..4, ``k`` = 1..2) and ``pool{b}`` (the 2x2
max-pool after blocks 1..3). The default, :data:`DEFAULT_LAYER` (``conv4_2``,
the last conv layer, the trunk's output), max-pooled over space (images) or
over frequency and time (audio), is L3's transfer feature, exactly what
:func:`looklisten.tasks.embed.embed_audio` / ``embed_image`` give for L3-Net and
AVOL-Net.

Items
-----
:func:`iter_items` decodes what the network sees, with the windows and frames of
:mod:`looklisten.tasks.embed` (its tasks, ``center=False``): for audio, the full 1 s
windows inside each file every ``hop`` seconds (centres 0.5, 0.5 + hop, ...);
for images, the frame shown at those times in a video (the centre ``resize``
square), or the picture of an image file (time 0).

Hand-made features
------------------
* :func:`logmel_stats`: the mean and the standard deviation over time of each
  log-mel band, from the checkpoint's own audio config (same window, hop and
  FFT size, ``kind="logmel"``, ``n_mels`` bands) through
  :class:`looklisten.models.audio.Spectrogram`: 2 x n_mels values.
* :func:`color_histogram`: the joint RGB histogram (``bins`` levels per
  channel, 8 x 8 x 8 = 512 by default) of the centre crop the network sees,
  normalised to sum to 1.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from looklisten.core.config import AudioConfig, Config

__all__ = [
    "DEFAULT_LAYER",
    "MODALITIES",
    "trunk_layers",
    "layer_names",
    "check_layer",
    "layer_maps",
    "layer_features",
    "random_model",
    "media_files",
    "iter_items",
    "batches",
    "logmel_stats",
    "color_histogram",
    "handmade_features",
    "raw_input_features",
]

MODALITIES = ("audio", "image")
DEFAULT_LAYER = "conv4_2"


# ---------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------


def trunk_layers(trunk: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Named layers of a VGG trunk: ``conv{b}_{k}`` (after its ReLU) and ``pool{b}``.

    Parameters
    ----------
    trunk : looklisten.models.trunks.VGGTrunk

    Returns
    -------
    dict
        Name -> module whose output is that layer's map, in network order.
    """
    from torch import nn

    feats = getattr(trunk, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise ValueError(f"{type(trunk).__name__}: not a VGG trunk (no named layers)")
    out: dict[str, nn.Module] = {}
    block, conv, pending = 1, 0, False
    for m in feats:
        if isinstance(m, nn.Conv2d):
            conv, pending = conv + 1, True
        elif isinstance(m, nn.ReLU) and pending:
            out[f"conv{block}_{conv}"] = m
            pending = False
        elif isinstance(m, nn.MaxPool2d):
            out[f"pool{block}"] = m
            block, conv = block + 1, 0
    return out


def _trunk(model, modality: str):
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return model.audio if modality == "audio" else model.vision


def layer_names(model, modality: str = "image") -> list[str]:
    """The layer names of one branch of a model, in network order."""
    return list(trunk_layers(_trunk(model, modality)))


def check_layer(model, modality: str, layer: str | None) -> str:
    """``layer`` (default :data:`DEFAULT_LAYER`), or a ValueError listing the valid names."""
    names = layer_names(model, modality)
    layer = layer or (DEFAULT_LAYER if DEFAULT_LAYER in names else names[-1])
    if layer not in names:
        raise ValueError(f"unknown layer {layer!r} for the {modality} branch; one of {names}")
    return layer


class _Stop(Exception):
    """Raised by the hook to stop the forward pass once the layer is computed."""

    def __init__(self, value):
        self.value = value


def _inputs(model, modality: str, items: Sequence[np.ndarray]) -> torch.Tensor:
    """Decoded items -> the trunk's input on the model's device.

    audio: float32 (L,) windows -> (B, 1, F, T) spectrograms (``model.spectrogram``);
    image: uint8 (R, R, 3) squares -> (B, 3, S, S) normalised centre crops.
    """
    import torch

    from looklisten.inputs.prepare import VisionTransform

    try:
        dev = next(model.parameters()).device
    except StopIteration:
        dev = torch.device("cpu")
    cfg = model.cfg
    if modality == "audio":
        x = model.spectrogram(torch.from_numpy(np.stack(items)).to(dev))
    else:
        if cfg.vision.num_frames != 1 or cfg.vision.flow_frames:
            raise ValueError("named-layer features need a single-frame vision trunk")
        x = VisionTransform(cfg.vision)(torch.from_numpy(np.stack(items)).to(dev), train=False)
    if cfg.train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def layer_maps(model, modality: str, items: Sequence[np.ndarray], layer: str | None = None):
    """A named layer's maps for a batch of decoded items.

    Parameters
    ----------
    model : looklisten.models.network.AVNet
    modality : "audio" or "image"
    items : sequence of np.ndarray
        audio: float32 (L,) windows, ``L = cfg.audio.clip_samples``; image:
        uint8 (R, R, 3) squares with ``R >= cfg.vision.image_size`` (the
        centre crop is taken).
    layer : str, optional
        A name of :func:`layer_names` (default ``conv4_2``).

    Returns
    -------
    torch.Tensor, shape (B, C, h, w), float32 on the CPU
        Audio maps are (B, C, frequency, time).
    """
    import torch

    from looklisten.models.runtime import eval_mode

    module = trunk_layers(_trunk(model, modality))[check_layer(model, modality, layer)]

    def hook(_m, _inp, out):
        raise _Stop(out)

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model):
            x = _inputs(model, modality, items)
            try:
                out = _trunk(model, modality)(x)
            except _Stop as stop:
                out = stop.value
    finally:
        handle.remove()
    return out.float().contiguous().cpu() if isinstance(out, torch.Tensor) else out


def layer_features(model, modality: str, items: Sequence[np.ndarray], layer: str | None = None):
    """:func:`layer_maps` max-pooled over space / frequency-time: (B, C) float32 numpy."""
    maps = layer_maps(model, modality, items, layer)
    return maps.amax(dim=(-2, -1)).numpy()


def random_model(cfg: Config, device=None):
    """The architecture of ``cfg`` with the random weights its training run started from.

    Seeds torch with ``cfg.train.seed`` and calls
    :func:`looklisten.models.network.create_model`, as :class:`looklisten.training.trainer.Trainer`
    does; the global torch RNG state is restored afterwards.
    """
    import torch

    from looklisten.models.network import create_model

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(cfg.train.seed)
        net = create_model(cfg)
    finally:
        torch.random.set_rng_state(state)
    return net.to(device or "cpu").eval()


# ---------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------


def media_files(data: str | os.PathLike, modality: str) -> list[str]:
    """Files under ``data`` (recursive, sorted) that can give items of ``modality``.

    audio: videos and audio files; image: videos and pictures.
    """
    from looklisten.inputs.prepare import (
        AUDIO_EXTENSIONS,
        IMAGE_EXTENSIONS,
        VIDEO_EXTENSIONS,
        find_media,
    )

    other = AUDIO_EXTENSIONS if modality == "audio" else IMAGE_EXTENSIONS
    return [str(p) for p, _ in find_media([Path(data)], VIDEO_EXTENSIONS | other)]


def iter_items(
    files: Sequence[str | os.PathLike],
    cfg: Config,
    modality: str,
    hop: float = 1.0,
    failed: list[str] | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Decode ``(file index, time, item)`` for each item of each file (see the module docstring).

    Files that cannot be decoded (or hold no ``modality``) are skipped and
    described in ``failed`` ("path: reason") when a list is given.
    """
    from looklisten.tasks.embed import make_task

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    for i, f in enumerate(files):
        task = None
        try:
            task = make_task(
                i, os.fspath(f), cfg, hop, False, force="audio" if modality == "audio" else None
            )
            if task.modality == "audio" and modality == "image":
                raise ValueError("no video stream or image")
            times = task.timestamps
            for t, item in zip(times, task.items[modality]()):
                yield i, float(t), item
        except Exception as exc:  # one bad file never stops the others
            if failed is None:
                raise
            msg = str(exc)
            failed.append(msg if os.fspath(f) in msg else f"{f}: {msg}")
        finally:
            if task is not None and task.cleanup is not None:
                task.cleanup()


def batches(iterable: Iterable, size: int) -> Iterator[list]:
    """Lists of ``size`` consecutive elements (the last one shorter)."""
    batch: list = []
    for x in iterable:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------
# Hand-made features
# ---------------------------------------------------------------------------


@contextmanager
def _no_grad():
    import torch

    with torch.inference_mode():
        yield


def logmel_stats(waves: np.ndarray | Sequence[np.ndarray], audio: AudioConfig) -> np.ndarray:
    """Mean and standard deviation over time of each log-mel band.

    Parameters
    ----------
    waves : float32 array (B, L) or sequence of (L,) windows
        ``L = audio.clip_samples``.
    audio : AudioConfig
        The checkpoint's audio config; its window, hop, FFT size, padding and
        ``n_mels`` / ``fmin`` / ``fmax`` are used with ``kind="logmel"``.

    Returns
    -------
    np.ndarray, shape (B, 2 * n_mels), float32
        ``[mean_0 .. mean_{M-1}, std_0 .. std_{M-1}]`` (population std).
    """
    import torch

    from looklisten.models.audio import Spectrogram

    spec = Spectrogram(dataclasses.replace(audio, kind="logmel"))
    with _no_grad():
        x = spec(torch.from_numpy(np.ascontiguousarray(np.stack(list(waves)), np.float32)))
        x = x[:, 0]  # (B, M, T)
        out = torch.cat([x.mean(-1), x.std(-1, correction=0)], dim=1)
    return out.numpy().astype(np.float32)


def color_histogram(images: np.ndarray | Sequence[np.ndarray], bins: int = 8) -> np.ndarray:
    """Joint RGB histograms, normalised to sum to 1.

    Parameters
    ----------
    images : uint8 (B, H, W, 3) or a sequence of (H, W, 3)
    bins : int
        Levels per channel; a value ``v`` falls in level ``v * bins // 256``.

    Returns
    -------
    np.ndarray, shape (B, bins ** 3), float32
        Bin ``(r * bins + g) * bins + b``.
    """
    out = []
    for img in images:
        q = np.asarray(img, np.uint8).reshape(-1, 3).astype(np.int64) * bins // 256
        idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
        h = np.bincount(idx, minlength=bins**3).astype(np.float32)
        out.append(h / max(1, len(idx)))
    return np.stack(out).astype(np.float32) if out else np.zeros((0, bins**3), np.float32)


def handmade_features(modality: str, items: Sequence[np.ndarray], cfg: Config) -> np.ndarray:
    """Audio: :func:`logmel_stats`; images: :func:`color_histogram` of the centre crop."""
    if modality == "audio":
        return logmel_stats(items, cfg.audio)
    from looklisten.inputs.prepare import square_crop

    s = cfg.vision.image_size
    return color_histogram([square_crop(x, s, None) for x in items])


#: Size of the raw-input baselines (:func:`raw_input_features`): pixels per side of the
#: image, time bins of the log-mel spectrogram.
RAW_PIXELS, RAW_TIME_BINS = 32, 16


def raw_input_features(modality: str, items: Sequence[np.ndarray], cfg: Config) -> np.ndarray:
    """The input itself, small: what a probe learns without any network.

    Audio: the log-mel spectrogram of the checkpoint's audio config, averaged into
    :data:`RAW_TIME_BINS` equal time bins, (B, n_mels * RAW_TIME_BINS). Images: the
    centre crop the network sees, resized to ``RAW_PIXELS`` x ``RAW_PIXELS`` RGB,
    (B, 3 * RAW_PIXELS ** 2), values in [0, 1].
    """
    import torch

    if modality == "audio":
        from looklisten.models.audio import Spectrogram

        spec = Spectrogram(dataclasses.replace(cfg.audio, kind="logmel"))
        with _no_grad():
            x = spec(torch.from_numpy(np.ascontiguousarray(np.stack(list(items)), np.float32)))
            x = torch.nn.functional.adaptive_avg_pool1d(x[:, 0], RAW_TIME_BINS)  # (B, M, bins)
        return x.flatten(1).numpy().astype(np.float32)
    from looklisten.inputs.prepare import square_crop

    crops = np.stack([square_crop(x, cfg.vision.image_size, None) for x in items])
    t = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    t = torch.nn.functional.interpolate(t, size=(RAW_PIXELS, RAW_PIXELS), mode="area")
    return t.flatten(1).numpy().astype(np.float32)


RAW_INPUT = {
    "audio": "the log-mel spectrogram itself ({n} bands x {bins} time bins)",
    "image": "the pixels themselves ({px}x{px} RGB of the centre crop the network sees)",
}


def raw_input_description(modality: str, cfg: Config) -> str:
    return RAW_INPUT[modality].format(n=cfg.audio.n_mels, bins=RAW_TIME_BINS, px=RAW_PIXELS)


HANDMADE = {
    "audio": "log-mel band mean and std over time ({n} bands, the checkpoint's audio config)",
    "image": "joint RGB colour histogram, 8x8x8 bins, of the centre crop the network sees",
}


def handmade_description(modality: str, cfg: Config) -> str:
    return HANDMADE[modality].format(n=cfg.audio.n_mels)
