"""Audio, image and video embeddings from files, arrays and tensors.

The model is an L3-Net, AVE-Net or AVOL-Net (:class:`looklisten.models.network.AVNet`)
or the path of a run / checkpoint directory; the preprocessing always comes
from the model's own saved :class:`~looklisten.core.config.Config`, exactly as in
training:

* audio: mono, resampled (libswresample) to ``cfg.audio.sample_rate``, cut into
  windows of ``cfg.audio.clip_seconds`` (1 s), fed as raw waveforms (the model
  computes its spectrogram);
* images: scaled so that the shorter side is ``cfg.vision.resize``, the centre
  square, then the centre ``cfg.vision.image_size`` crop and normalisation
  (:class:`looklisten.inputs.prepare.VisionTransform` with ``train=False``).

What an embedding is depends on the model: AVE-Net gives its unit-norm
``embed_dim`` vectors (128-d; 64-d for ``tiny``), in one space for both
modalities; L3-Net and AVOL-Net give the conv4_2 maps max-pooled over space /
time-frequency (512-d in the papers: their transfer features).

Windows and timestamps
----------------------
``hop`` is the step between window centres, in seconds. Timestamps are always
the *window centres*, in seconds from the start of the signal (for files: the
file's presentation timeline, whose origin is 0).

``center=True`` (default, as OpenL3): the signal is padded with half a window
of zeros at the start (and at the end), window ``i`` is centred at
``t_i = i * hop``, and every centre inside the signal, end included, gives a
window: ``T = floor(duration / hop) + 1`` windows, timestamps
``0, hop, 2 hop, ...``. The first and the last windows are half zeros.

``center=False``: no padding at the start; window ``i`` covers
``[i * hop, i * hop + 1 s)`` and is centred at ``t_i = i * hop + 0.5 s``;
windows are kept while they end inside the signal:
``T = floor((duration - 1 s) / hop) + 1`` (a signal shorter than one window
gives one window, zero-padded at the end).

Window ``i`` holds the samples ``round(t_i * sr) - L // 2 + [0, L)`` with
``L = cfg.audio.clip_samples`` and ``sr = cfg.audio.sample_rate`` (zeros
outside the signal). For a video, the image embedding at ``t_i`` is that of the
frame at ``t_i`` (the frame whose timestamp is nearest to ``t_i``: the rule of
:mod:`looklisten.inputs.prepare`), the frame a positive training pair would use
with this audio.
Motion models (AVE+MF / AVE+OF, looklisten.models.motion) see the K frames or the
frame + optical flow around it, as in training; a still image is to them a
static clip (K copies of it / zero flow).

Results do not depend on the batch size (the model runs in eval mode; only
float rounding differs, ~1e-6).

Example
-------
>>> from looklisten.tasks.embed import embed_audio, embed_video  # doctest: +SKIP
>>> emb, ts = embed_audio("runs/ave", "dog.wav", hop=0.5)  # doctest: +SKIP
>>> out = embed_video("runs/ave", "clip.mp4", hop=1.0)  # doctest: +SKIP
>>> out["audio_embedding"].shape, out["image_embedding"].shape, out["timestamps"]
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from looklisten.inputs.prepare import (
    as_image_batch,
    as_numpy,
    audio_window,
    centre_square,
    check_hop,
    is_path,
    load_image,
    media_kind,
    resample,
    square_item_at,
    still_item,
    to_mono_float,
    window_times,
)
from looklisten.models.checkpoint import get_model, model_first
from looklisten.models.runtime import eval_mode, model_device

if TYPE_CHECKING:
    import torch

    from looklisten.core.config import Config
    from looklisten.media.video import MediaInfo

__all__ = [
    "embed_audio",
    "embed_image",
    "embed_video",
    "embed_frame_at",
    "embed_file",
    "embed_many",
    "make_task",
]

log = logging.getLogger(__name__)


Input = Any  # str | os.PathLike | np.ndarray | torch.Tensor


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Input conversion
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Tasks: what to embed for one input
# ---------------------------------------------------------------------------


@dataclass
class Task:
    """One input's work: windows and/or images to embed, produced lazily.

    ``items[m]`` yields, for modality m ("audio" / "image"), ``counts[m]``
    arrays: float32 (L,) windows or uint8 (R, R, 3) squares (motion models:
    (K, R, R, 3) or (R, R, 3 + 2L), see looklisten.models.motion).
    """

    key: Any
    modality: str  # "audio" | "image" | "video"
    timestamps: np.ndarray
    counts: dict[str, int]
    items: dict[str, Callable[[], Iterator[np.ndarray]]]
    info: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] | None = None


def _audio_task(key, signal: np.ndarray, cfg: Config, hop: float, center: bool, info=None):
    sr = cfg.audio.sample_rate
    if len(signal) == 0:
        raise ValueError("empty audio (no samples)")
    times = window_times(len(signal) / sr, hop, center, cfg.audio.clip_seconds)

    def windows():
        for t in times:
            yield audio_window(signal, t, cfg)

    return Task(
        key, "audio", times, {"audio": len(times), "image": 0}, {"audio": windows}, info or {}
    )


def _image_task(key, images: np.ndarray, cfg: Config, info=None):
    def squares():  # a still is a static clip for the motion models (looklisten.models.motion)
        for img in images:
            yield still_item(centre_square(img, cfg), cfg.vision)

    return Task(
        key,
        "image",
        np.zeros(len(images)),
        {"audio": 0, "image": len(images)},
        {"image": squares},
        info or {},
    )


def _video_task(key, path: str, info: MediaInfo, cfg: Config, hop: float, center: bool):
    """Audio decoded once (the whole track); one frame read per timestamp."""
    from looklisten.media.video import MediaError, MediaReader

    sr = cfg.audio.sample_rate
    reader = MediaReader(path, info=info)
    try:
        signal = None
        if info.has_audio:
            signal = reader.read_audio(0.0, None, sr)
            end = min(len(signal) / sr, info.end) if info.has_video else len(signal) / sr
        else:
            end = info.end
        if end <= 0:
            raise MediaError(path, "empty: no audio or video samples")
    except BaseException:
        reader.close()
        raise
    times = window_times(end, hop, center, cfg.audio.clip_seconds)

    def windows():
        for t in times:
            yield audio_window(signal, t, cfg)

    def frames():
        for t in times:  # with motion: the K frames / frame + flow around t (one seek)
            yield square_item_at(reader, float(t), cfg.vision)

    counts = {"audio": len(times) if signal is not None else 0, "image": len(times)}
    items = {"image": frames}
    if signal is not None:
        items["audio"] = windows
    return Task(
        key,
        "video",
        times,
        counts,
        items,
        {"fps": info.fps, "duration": end, "has_audio": info.has_audio},
        cleanup=reader.close,
    )


def _file_task(key, path, cfg: Config, hop: float, center: bool, force: str | None = None):
    from looklisten.media.video import MediaError, MediaReader, probe

    path = os.fspath(path)
    if os.path.isdir(path):
        raise MediaError(path, "not a media file: is a directory")
    info = probe(path)
    kind = media_kind(info)
    if force == "audio":
        if not info.has_audio:
            raise MediaError(path, "no audio stream")
        kind = "audio"
    elif force == "image" and kind == "video":
        kind = "image_from_video"
    elif force == "image" and kind == "audio":
        raise MediaError(path, "no video stream or image")
    if kind == "video":
        return _video_task(key, path, info, cfg, hop, center)
    if kind == "image":
        img = load_image(path)
        return _image_task(key, img[None], cfg, {"width": img.shape[1], "height": img.shape[0]})
    if kind == "image_from_video":  # embed_image on a video: its first frame
        with MediaReader(path, info=info) as reader:
            frame = reader.read_frame(info.video_start, size=cfg.vision.resize)
        return _image_task(key, frame[None], cfg)
    with MediaReader(path, info=info) as reader:
        signal = reader.read_audio(0.0, None, cfg.audio.sample_rate)
    if len(signal) == 0:
        raise MediaError(path, "empty: no audio samples")
    return _audio_task(key, signal, cfg, hop, center, {"sample_rate": info.sample_rate})


def _array_task(key, x, cfg: Config, hop: float, center: bool, sr, force: str | None = None):
    """Dispatch an array/tensor: uint8 or (..., 3)-shaped pixels -> image, else audio."""
    a = as_numpy(x)
    is_image = force == "image" or (
        force is None and (a.dtype == np.uint8 and a.ndim >= 2 or (a.ndim >= 3))
    )
    if is_image:
        return _image_task(key, as_image_batch(a), cfg)
    if sr is None:
        raise ValueError("audio given as an array needs its sample rate: sr=...")
    signal = to_mono_float(a)
    if int(sr) != cfg.audio.sample_rate:
        signal = resample(signal, int(sr), cfg.audio.sample_rate)
    return _audio_task(key, signal, cfg, hop, center, {"sample_rate": int(sr)})


def make_task(key, x, cfg, hop, center, sr=None, force=None) -> Task:
    if is_path(x):
        return _file_task(key, x, cfg, hop, center, force)
    return _array_task(key, x, cfg, hop, center, sr, force)


# ---------------------------------------------------------------------------
# The batching engine
# ---------------------------------------------------------------------------


class _State:
    def __init__(self, task: Task, dim: int):
        self.task = task
        self.out = {m: np.zeros((c, dim), np.float32) for m, c in task.counts.items() if c}
        self.done = 0
        self.total = sum(task.counts.values())
        self.sealed = False
        self.error: BaseException | None = None


class _Engine:
    """Embeds the items of many tasks in shared batches of ``batch_size``.

    Items of several inputs share batches (many short files embed as fast as
    one long one); a task is reported as soon as all its items are embedded.
    """

    def __init__(self, model, batch_size: int = 64):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.cfg: Config = model.cfg
        self.batch_size = int(batch_size)
        self.device = model_device(model)
        from looklisten.inputs.prepare import VisionTransform

        self.transform = VisionTransform(self.cfg.vision)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            m = self.cfg.model
            self._dim = m.embed_dim if m.arch == "ave" else m.widths[-1]
        return self._dim

    def _forward(self, modality: str, items: list[np.ndarray]) -> np.ndarray:
        import torch

        if modality == "audio":
            wave = torch.from_numpy(np.stack(items)).to(self.device)
            out = self.model.embed_audio(wave)
        else:
            frames = torch.from_numpy(np.stack(items)).to(self.device)
            image = self.transform(frames, train=False)
            if self.cfg.train.channels_last:
                fmt = torch.channels_last if image.ndim == 4 else torch.channels_last_3d
                image = image.contiguous(memory_format=fmt)
            out = self.model.embed_image(image)
        return out.float().cpu().numpy()

    def _flush(self, modality: str, queue: list) -> None:
        if not queue:
            return
        live = [(st, pos, item) for st, pos, item in queue if st.error is None]
        queue.clear()
        if not live:
            return
        # eval mode and inference mode only around the forward pass: never
        # while the run() generator is suspended in the caller's code
        with eval_mode(self.model):
            emb = self._forward(modality, [item for _, _, item in live])
        for (st, pos, _), e in zip(live, emb):
            st.out[modality][pos] = e
            st.done += 1

    def run(self, tasks: Iterable[Task | tuple[Any, BaseException]]):
        """Yield ``(key, task, outputs or None, error or None)`` as tasks finish.

        ``tasks`` yields :class:`Task` or ``(key, exception)`` for inputs that
        failed before their task could be made.
        """
        queues: dict[str, list] = {"audio": [], "image": []}
        open_states: list[_State] = []

        def finished():
            keep = []
            for st in open_states:
                if st.error is not None or (st.sealed and st.done == st.total):
                    yield st
                else:
                    keep.append(st)
            open_states[:] = keep

        def report(st: _State):
            if st.task.cleanup is not None:
                st.task.cleanup()
            if st.error is not None:
                return st.task.key, st.task, None, st.error
            return st.task.key, st.task, st.out, None

        for task in tasks:
            if isinstance(task, tuple):
                yield task[0], None, None, task[1]
                continue
            st = _State(task, self.dim)
            open_states.append(st)
            for modality in ("audio", "image"):
                if not task.counts.get(modality) or st.error is not None:
                    continue
                items = task.items[modality]()
                count = 0
                while True:
                    try:
                        item = next(items)
                    except StopIteration:
                        break
                    except Exception as exc:  # a decoding failure fails this input only
                        st.error = _input_error(exc)
                        break
                    queues[modality].append((st, count, item))
                    count += 1
                    if len(queues[modality]) >= self.batch_size:
                        self._flush(modality, queues[modality])
                        for done in finished():
                            yield report(done)
                if st.error is None and count != task.counts[modality]:
                    raise RuntimeError(
                        f"{modality}: {count} items for {task.counts[modality]} slots"
                    )
            st.sealed = True
            for done in finished():
                yield report(done)
        for modality in ("audio", "image"):
            self._flush(modality, queues[modality])
        for done in finished():
            yield report(done)
        for st in open_states:  # cannot happen; be loud if it does
            raise RuntimeError(f"task {st.task.key!r} never finished")


def _input_error(exc: Exception) -> Exception:
    """Expected input errors as they are; anything else named as unexpected."""
    from looklisten.media.video import MediaError

    if isinstance(exc, (MediaError, ValueError, OSError)):
        return exc
    return RuntimeError(f"unexpected error: {type(exc).__name__}: {exc}")


def _tasks(inputs: Sequence, cfg, hop, center, sr=None, force=None):
    """Make tasks lazily (decoding one input at a time); failures become (key, exc)."""
    for key, x in enumerate(inputs):
        try:
            task = make_task(key, x, cfg, hop, center, sr, force)
        except Exception as exc:  # one bad input never stops the others
            task = (key, _input_error(exc))
        yield task


def _is_list(x) -> bool:
    return isinstance(x, (list, tuple))


def _run_all(inputs: Sequence, model, batch_size, hop, center, sr=None, force=None):
    """Embed every input; return the outputs in input order (raise on the first error)."""
    engine = _Engine(model, batch_size)
    results: dict[int, tuple] = {}
    for key, task, out, err in engine.run(_tasks(inputs, engine.cfg, hop, center, sr, force)):
        if err is not None:
            raise err
        results[key] = (task, out)
    return [results[i] for i in range(len(inputs))]


def _error_name(x) -> str:
    return os.fspath(x) if is_path(x) else f"{type(x).__name__} input"


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@model_first
def embed_audio(
    model,
    audio,
    sr: int | None = None,
    hop: float = 0.1,
    center: bool = True,
    batch_size: int = 64,
    device: str | torch.device | None = None,
):
    """Embeddings of 1 s audio windows every ``hop`` seconds.

    Parameters
    ----------
    model : AVNet or path-like
        The model, or a run / checkpoint directory (loaded once and cached).
        It comes first in every entry point (``embed_*``, ``localize*``); the
        older ``embed_audio(audio, sr, model=m)`` still works, with a warning.
    audio : np.ndarray, torch.Tensor, path-like, or a list of them
        Samples, shape (N,) or (C, N) / (N, C) (channels are averaged; the
        channel axis is the shorter one), float in [-1, 1] or int16 / int32;
        or an audio/video file (its audio track). A list gives a list of
        results, embedded in shared batches.
    sr : int, optional
        Sample rate of array input (required for arrays; ignored for files).
        Resampled to the model's ``cfg.audio.sample_rate``.
    hop : float
        Seconds between window centres.
    center : bool
        True: the first window is centred at 0 s (half a window of zero
        padding); False: the first window starts at 0 s (centred at 0.5 s).
        See the module docstring for the exact window count.
    batch_size : int
        Windows per forward pass (results do not depend on it).
    device : str or torch.device, optional
        Where to load a model given as a path.

    Returns
    -------
    embedding : np.ndarray, shape (T, D), float32
    timestamps : np.ndarray, shape (T,), float64
        Window centres in seconds.

    For a list input, a list of ``(embedding, timestamps)`` tuples.
    """
    net = get_model(model, device)
    hop = check_hop(hop)
    many = _is_list(audio)
    inputs = list(audio) if many else [audio]
    results = _run_all(inputs, net, batch_size, hop, center, sr, force="audio")
    out = [(o["audio"], t.timestamps) for t, o in results]
    return out if many else out[0]


@model_first
def embed_image(
    model,
    images,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Embeddings of images.

    Parameters
    ----------
    model : AVNet or path-like
    images : np.ndarray, torch.Tensor, path-like, or a list of them
        One image (H, W, 3) or a batch (N, H, W, 3) (also (H, W), 4 channels
        (alpha dropped), or channels first), uint8 or float in [0, 1]; or image
        files (PNG, JPEG, ...; a video gives its first frame). Any size: each
        image is scaled to the model's ``cfg.vision.resize`` shorter side and
        centre-cropped, as in evaluation.
    batch_size : int
        Images per forward pass (results do not depend on it).
    device : str or torch.device, optional

    Returns
    -------
    np.ndarray, shape (N, D), float32
        One row per image, in input order (a list's images are concatenated).
    """
    net = get_model(model, device)
    inputs = list(images) if _is_list(images) else [images]
    if not inputs:
        return np.zeros((0, _Engine(net).dim), np.float32)
    results = _run_all(inputs, net, batch_size, 1.0, True, None, force="image")
    return np.concatenate([o["image"] for _, o in results], axis=0)


def embed_frame_at(reader, t: float, model=None, device=None) -> np.ndarray:
    """The image embedding of an open video at ``t``, as :func:`embed_video` and an index make it.

    Parameters
    ----------
    reader : looklisten.media.video.MediaReader
    t : float
        Seconds. The frame nearest ``t``; motion models (AVE+MF, AVE+OF) see
        the window of frames or the flow around it, as in training.
    model : AVNet or path-like
    device : str or torch.device, optional

    Returns
    -------
    np.ndarray, shape (D,), float32
    """
    engine = _Engine(get_model(model, device), 1)
    item = square_item_at(reader, float(t), engine.cfg.vision)
    with eval_mode(engine.model):
        return engine._forward("image", [item])[0]


@model_first
def embed_video(
    model,
    path,
    hop: float = 0.1,
    center: bool = True,
    batch_size: int = 64,
    device: str | torch.device | None = None,
):
    """Time-aligned audio and image embeddings of a video.

    The audio track is decoded once; one frame is read per timestamp (forward
    decoding, no re-seeking between close timestamps).

    Parameters
    ----------
    model : AVNet or path-like
    path : path-like, or a list of them
    hop, center, batch_size, device
        As in :func:`embed_audio`.

    Returns
    -------
    dict
        ``audio_embedding`` (T, D) float32 (None for a video without audio),
        ``image_embedding`` (T, D) float32, ``timestamps`` (T,) float64: the
        window centres; ``image_embedding[i]`` is the frame at (nearest to)
        ``timestamps[i]``, ``audio_embedding[i]`` the 1 s of audio centred
        there. A list input gives a list of dicts.
    """
    net = get_model(model, device)
    hop = check_hop(hop)
    many = _is_list(path)
    inputs = list(path) if many else [path]
    for p in inputs:
        if not is_path(p):
            raise TypeError(f"embed_video takes file paths, got {type(p).__name__}")
    from looklisten.media.video import MediaError

    results = _run_all(inputs, net, batch_size, hop, center)
    out = []
    for (task, o), p in zip(results, inputs):
        if task.modality != "video":
            raise MediaError(p, f"not a video: {task.modality} content")
        out.append(_result(task, o))
    return out if many else out[0]


def _result(task: Task, out: dict) -> dict[str, Any]:
    if task.modality == "video":
        return {
            "modality": "video",
            "audio_embedding": out.get("audio"),
            "image_embedding": out["image"],
            "timestamps": task.timestamps,
        }
    return {
        "modality": task.modality,
        "embedding": out[task.modality],
        "timestamps": task.timestamps,
    }


def embed_file(
    path,
    model=None,
    hop: float = 0.1,
    center: bool = True,
    batch_size: int = 64,
    sr: int | None = None,
    device: str | torch.device | None = None,
):
    """Embed whatever a file (or array) holds: a video, an image or audio.

    Dispatch is by content, not by name: a file with a video stream of more
    than one frame (or video and audio) is a video; a single picture without
    audio (PNG, JPEG, ...) is an image; a file with only audio is audio. An
    array is an image if it is uint8 with 2+ dimensions or has 3+ dimensions,
    else audio (``sr`` required).

    Parameters
    ----------
    path : path-like, np.ndarray, torch.Tensor, or a list of them
    model : AVNet or path-like
    hop, center, batch_size, device
        As in :func:`embed_audio`.
    sr : int, optional
        Sample rate of audio arrays.

    Returns
    -------
    dict
        ``modality`` ("audio", "image" or "video") and ``timestamps``; audio
        and images: ``embedding`` (T, D) / (N, D) (images: timestamps are 0);
        videos: ``audio_embedding`` and ``image_embedding`` (see
        :func:`embed_video`). A list input gives a list of dicts.
    """
    net = get_model(model, device)
    hop = check_hop(hop)
    many = _is_list(path)
    inputs = list(path) if many else [path]
    out = [_result(t, o) for t, o in _run_all(inputs, net, batch_size, hop, center, sr)]
    return out if many else out[0]


def embed_many(
    inputs: Sequence,
    model=None,
    hop: float = 0.1,
    center: bool = True,
    batch_size: int = 64,
    sr: int | None = None,
    device: str | torch.device | None = None,
) -> Iterator[tuple[int, dict[str, Any] | None, BaseException | None]]:
    """Embed many inputs in shared batches, tolerating bad ones.

    Yields ``(position, result, None)`` for each input as soon as it is done
    (``result`` as :func:`embed_file`), or ``(position, None, error)`` for an
    input that cannot be used (a :class:`MediaError` naming the file and the
    reason, or a ValueError for a bad array). Order of completion, not of input.
    """
    from looklisten.media.video import MediaError

    net = get_model(model, device)
    hop = check_hop(hop)
    engine = _Engine(net, batch_size)
    for key, task, out, err in engine.run(_tasks(inputs, engine.cfg, hop, center, sr)):
        if err is not None:
            if not isinstance(err, MediaError) and is_path(inputs[key]):
                err = MediaError(inputs[key], str(err))
            yield key, None, err
        else:
            yield key, _result(task, out), None


# ---------------------------------------------------------------------------
# Files and folders
# ---------------------------------------------------------------------------


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def result_arrays(result: dict[str, Any], checkpoint: str, source: str, hop, center) -> dict:
    """What an ``embed`` ``.npz`` file holds for one result (see the CLI help)."""
    arrays: dict[str, Any] = {
        "modality": np.array(result["modality"]),
        "timestamps": np.asarray(result["timestamps"], np.float64),
        "checkpoint": np.array(str(checkpoint)),
        "source": np.array(str(source)),
        "hop": np.array(float(hop)),
        "center": np.array(bool(center)),
    }
    if result["modality"] == "video":
        arrays["image_embedding"] = result["image_embedding"]
        if result["audio_embedding"] is not None:
            arrays["audio_embedding"] = result["audio_embedding"]
    else:
        arrays["embedding"] = result["embedding"]
    return arrays


# ---------------------------------------------------------------------------
# CLI
