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
frame displayed at ``t_i`` (the last frame whose presentation time is at or
before ``t_i``), the frame a positive training pair would use with this audio.
Motion models (AVE+MF / AVE+OF, looklisten.models.motion) see the K frames or the
frame + optical flow around it, as in training; a still image is to them a
static clip (K copies of it / zero flow).

Results do not depend on the batch size (the model runs in eval mode; only
float rounding differs, ~1e-6).

Example
-------
>>> from looklisten.tasks.embed import embed_audio, embed_video  # doctest: +SKIP
>>> emb, ts = embed_audio("dog.wav", model="runs/ave", hop=0.5)  # doctest: +SKIP
>>> out = embed_video("clip.mp4", model="runs/ave", hop=1.0)  # doctest: +SKIP
>>> out["audio_embedding"].shape, out["image_embedding"].shape, out["timestamps"]
"""

from __future__ import annotations

import io
import logging
import math
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from looklisten.data.scan import VIDEO_EXTENSIONS

if TYPE_CHECKING:  # torch and PyAV load lazily: registering the CLI stays cheap
    import torch

    from looklisten.core.config import Config
    from looklisten.media.video import MediaInfo

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "embed_audio",
    "embed_image",
    "embed_video",
    "embed_file",
    "embed_many",
    "get_model",
    "window_times",
    "find_media",
    "add_cli",
]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    ".wav .mp3 .flac .ogg .oga .opus .m4a .aac .wma .aif .aiff .au .caf .mka".split()
)
IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .bmp .gif .webp .tif .tiff .ppm .pgm".split())
#: Extensions picked up when a folder is searched (a file named explicitly is
#: always tried, whatever its name: dispatch is by content).
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS

Input = Any  # str | os.PathLike | np.ndarray | torch.Tensor


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

_MODEL_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_MODEL_CACHE_SIZE = 4


def _default_device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def get_model(model, device: str | torch.device | None = None):
    """Return a ready model: an :class:`AVNet` as is, or one loaded from a path.

    Loaded models are cached (keyed by checkpoint directory, weight file
    modification time and device), so passing the same path to many calls
    loads it once.

    Parameters
    ----------
    model : AVNet or path-like
        A model, or a run / checkpoint directory.
    device : str or torch.device, optional
        For a path: where to load it (default: CUDA if available, else CPU).
        Ignored for a model object (it stays where it is).

    Returns
    -------
    looklisten.models.network.AVNet
    """
    import torch

    if model is None:
        raise ValueError("give a model: an AVNet or the path of a run / checkpoint directory")
    if isinstance(model, torch.nn.Module):
        if not hasattr(model, "cfg") or not hasattr(model, "embed_audio"):
            raise TypeError(f"expected a looklisten AVNet, got {type(model).__name__}")
        return model
    from looklisten.models.checkpoint import load_model, resolve

    # Not .resolve(): RUN/checkpoint is a link swapped on every save, keep the link.
    ckpt = Path(os.path.abspath(resolve(model)))
    dev = torch.device(device) if device is not None else _default_device()
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


def _model_device(model: torch.nn.Module) -> torch.device:
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@contextmanager
def _eval_mode(model: torch.nn.Module):
    """Eval mode and no autograd for the duration (the previous mode is restored)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        if was_training:
            model.train()


# ---------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------


def _check_hop(hop: float) -> float:
    hop = float(hop)
    if not math.isfinite(hop) or hop <= 0:
        raise ValueError(f"hop must be a positive number of seconds, got {hop}")
    return hop


def window_times(
    duration: float, hop: float = 0.1, center: bool = True, clip_seconds: float = 1.0
) -> np.ndarray:
    """Window centres (seconds) for a signal of ``duration`` seconds.

    See the module docstring: with ``center`` the centres are
    ``0, hop, ..., <= duration`` (``floor(duration / hop) + 1`` of them);
    without, ``clip/2, clip/2 + hop, ...`` while the window ends inside the
    signal (at least one).

    Parameters
    ----------
    duration : float
        Signal length in seconds (>= 0).
    hop : float
        Seconds between window centres (> 0).
    center : bool
        Pad half a window at the start so that the first window is centred at 0.
    clip_seconds : float
        Window length (``cfg.audio.clip_seconds``).

    Returns
    -------
    np.ndarray, shape (T,), float64
    """
    hop = _check_hop(hop)
    duration = max(0.0, float(duration))
    eps = 1e-9
    if center:
        n = int(math.floor(duration / hop + eps)) + 1
        return np.arange(n, dtype=np.float64) * hop
    n = max(0, int(math.floor((duration - clip_seconds) / hop + eps))) + 1
    return np.arange(n, dtype=np.float64) * hop + clip_seconds / 2


def _window_starts(times: np.ndarray, sr: int, n: int) -> np.ndarray:
    """First sample of the ``n``-sample window centred at each time: (T,) int64."""
    return np.round(np.asarray(times, np.float64) * sr).astype(np.int64) - n // 2


def _slice(signal: np.ndarray, start: int, n: int) -> np.ndarray:
    from looklisten.media.video import _take  # the reader's zero-padded window

    return _take(signal, start, n)


# ---------------------------------------------------------------------------
# Input conversion
# ---------------------------------------------------------------------------

_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


def _as_numpy(x) -> np.ndarray:
    torch = sys.modules.get("torch")  # no torch loaded: x cannot be a tensor
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def _mono_float(x: np.ndarray, what: str = "audio") -> np.ndarray:
    """(N,), (C, N) or (N, C) audio of any numeric dtype -> float32 mono (N,).

    Integer samples are scaled to [-1, 1) (int16 / 32768, int32 / 2^31,
    uint8 (x - 128) / 128). For 2-D input the channel axis is the shorter one;
    channels are averaged.
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif x.dtype in _INT_SCALE:
        x = x.astype(np.float32) / np.float32(_INT_SCALE[x.dtype])
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32, copy=False)
    else:
        raise ValueError(f"{what}: unsupported sample type {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected (N,), (C, N) or (N, C) samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite samples")
    return np.ascontiguousarray(x)


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from looklisten.media.video import _resample as swr_resample  # libswresample, as read_audio

    return swr_resample(np.ascontiguousarray(x, np.float32), int(sr_in), int(sr_out))


def _as_image_batch(x, what: str = "image") -> np.ndarray:
    """An image or a batch of images -> uint8 (N, H, W, 3).

    Accepts (H, W), (H, W, 1|3|4), (N, H, W, 1|3|4), channels-first (3, H, W) /
    (N, 3, H, W) when unambiguous, uint8 or float in [0, 1].
    """
    a = _as_numpy(x)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"{what}: expected (H, W, 3) or (N, H, W, 3) pixels, got {a.shape}")
    if a.shape[-1] not in (1, 3, 4) and a.shape[1] in (1, 3, 4):
        a = np.moveaxis(a, 1, -1)  # channels first
    if a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{what}: expected 1, 3 or 4 channels, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{what}: expected uint8 or float pixels, got {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{what}: contains NaN or infinite pixels")
        a = np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    elif a.shape[-1] == 4:
        a = a[..., :3]
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError(f"{what}: empty image {a.shape}")
    if not a.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on those
        a = a.copy()
    return a


def _square(img: np.ndarray, cfg: Config) -> np.ndarray:
    """A frame/image -> the centre ``resize`` square (uint8, (R, R, 3)), as in evaluation.

    Scaled so that its shorter side is ``cfg.vision.resize`` (no-op for frames
    that the decoder already scaled), then the centre square.
    """
    from looklisten.data.sampler import square_crop
    from looklisten.inputs.prepare import resize_short_side

    r = cfg.vision.resize
    if min(img.shape[:2]) != r:
        img = resize_short_side(img, r)
    return np.ascontiguousarray(square_crop(img, r, None))


def _decode_image(path: str) -> np.ndarray:
    """The first picture of an image file, RGB uint8 (H, W, 3), at full size."""
    import av

    from looklisten.media.video import MediaError

    try:
        with av.open(path, mode="r", metadata_errors="ignore") as c:
            for frame in c.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise MediaError(path, f"corrupt or not an image: cannot be decoded ({msg})") from None
    raise MediaError(path, "truncated or corrupt: no picture decoded")


def _media_kind(info: MediaInfo) -> str:
    """Classify a file by what it contains (not its name): video, image or audio."""
    if info.has_video and not info.has_audio:
        # PNG & co. (FFmpeg's *_pipe and image2 demuxers) report 0 or 1 frame.
        return "image" if info.num_frames <= 1 else "video"
    if info.has_video:
        return "video"
    return "audio"


# ---------------------------------------------------------------------------
# Tasks: what to embed for one input
# ---------------------------------------------------------------------------


@dataclass
class _Task:
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
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    if len(signal) == 0:
        raise ValueError("empty audio (no samples)")
    times = window_times(len(signal) / sr, hop, center, cfg.audio.clip_seconds)
    starts = _window_starts(times, sr, n)

    def windows():
        for s in starts:
            yield _slice(signal, int(s), n)

    return _Task(
        key, "audio", times, {"audio": len(times), "image": 0}, {"audio": windows}, info or {}
    )


def _image_task(key, images: np.ndarray, cfg: Config, info=None):
    from looklisten.models.motion import still_item

    def squares():  # a still is a static clip for the motion models (looklisten.models.motion)
        for img in images:
            yield still_item(_square(img, cfg), cfg.vision)

    return _Task(
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

    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
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
    starts = _window_starts(times, sr, n)

    def windows():
        for s in starts:
            yield _slice(signal, int(s), n)

    def frames():
        from looklisten.data.sampler import square_crop
        from looklisten.models.motion import item_from_reader

        r = cfg.vision.resize
        for t in times:  # with motion: the K frames / frame + flow around t (one seek)
            item = item_from_reader(reader, float(t), cfg.vision)
            yield np.ascontiguousarray(square_crop(item, r, None))

    counts = {"audio": len(times) if signal is not None else 0, "image": len(times)}
    items = {"image": frames}
    if signal is not None:
        items["audio"] = windows
    return _Task(
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
    kind = _media_kind(info)
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
        img = _decode_image(path)
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
    a = _as_numpy(x)
    is_image = force == "image" or (
        force is None and (a.dtype == np.uint8 and a.ndim >= 2 or (a.ndim >= 3))
    )
    if is_image:
        return _image_task(key, _as_image_batch(a), cfg)
    if sr is None:
        raise ValueError("audio given as an array needs its sample rate: sr=...")
    signal = _mono_float(a)
    if int(sr) != cfg.audio.sample_rate:
        signal = _resample(signal, int(sr), cfg.audio.sample_rate)
    return _audio_task(key, signal, cfg, hop, center, {"sample_rate": int(sr)})


def _make_task(key, x, cfg, hop, center, sr=None, force=None) -> _Task:
    if _is_path(x):
        return _file_task(key, x, cfg, hop, center, force)
    return _array_task(key, x, cfg, hop, center, sr, force)


# ---------------------------------------------------------------------------
# The batching engine
# ---------------------------------------------------------------------------


class _State:
    def __init__(self, task: _Task, dim: int):
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
        self.device = _model_device(model)
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
        with _eval_mode(self.model):
            emb = self._forward(modality, [item for _, _, item in live])
        for (st, pos, _), e in zip(live, emb):
            st.out[modality][pos] = e
            st.done += 1

    def run(self, tasks: Iterable[_Task | tuple[Any, BaseException]]):
        """Yield ``(key, task, outputs or None, error or None)`` as tasks finish.

        ``tasks`` yields :class:`_Task` or ``(key, exception)`` for inputs that
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
            task = _make_task(key, x, cfg, hop, center, sr, force)
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
    return os.fspath(x) if _is_path(x) else f"{type(x).__name__} input"


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def embed_audio(
    audio,
    sr: int | None = None,
    model=None,
    hop: float = 0.1,
    center: bool = True,
    batch_size: int = 64,
    device: str | torch.device | None = None,
):
    """Embeddings of 1 s audio windows every ``hop`` seconds.

    Parameters
    ----------
    audio : np.ndarray, torch.Tensor, path-like, or a list of them
        Samples, shape (N,) or (C, N) / (N, C) (channels are averaged; the
        channel axis is the shorter one), float in [-1, 1] or int16 / int32;
        or an audio/video file (its audio track). A list gives a list of
        results, embedded in shared batches.
    sr : int, optional
        Sample rate of array input (required for arrays; ignored for files).
        Resampled to the model's ``cfg.audio.sample_rate``.
    model : AVNet or path-like
        The model, or a run / checkpoint directory (loaded once and cached).
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
    hop = _check_hop(hop)
    many = _is_list(audio)
    inputs = list(audio) if many else [audio]
    results = _run_all(inputs, net, batch_size, hop, center, sr, force="audio")
    out = [(o["audio"], t.timestamps) for t, o in results]
    return out if many else out[0]


def embed_image(
    images,
    model=None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Embeddings of images.

    Parameters
    ----------
    images : np.ndarray, torch.Tensor, path-like, or a list of them
        One image (H, W, 3) or a batch (N, H, W, 3) (also (H, W), 4 channels
        (alpha dropped), or channels first), uint8 or float in [0, 1]; or image
        files (PNG, JPEG, ...; a video gives its first frame). Any size: each
        image is scaled to the model's ``cfg.vision.resize`` shorter side and
        centre-cropped, as in evaluation.
    model : AVNet or path-like
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


def embed_video(
    path,
    model=None,
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
    path : path-like, or a list of them
    model : AVNet or path-like
    hop, center, batch_size, device
        As in :func:`embed_audio`.

    Returns
    -------
    dict
        ``audio_embedding`` (T, D) float32 (None for a video without audio),
        ``image_embedding`` (T, D) float32, ``timestamps`` (T,) float64: the
        window centres; ``image_embedding[i]`` is the frame displayed at
        ``timestamps[i]``, ``audio_embedding[i]`` the 1 s of audio centred
        there. A list input gives a list of dicts.
    """
    net = get_model(model, device)
    hop = _check_hop(hop)
    many = _is_list(path)
    inputs = list(path) if many else [path]
    for p in inputs:
        if not _is_path(p):
            raise TypeError(f"embed_video takes file paths, got {type(p).__name__}")
    from looklisten.media.video import MediaError

    results = _run_all(inputs, net, batch_size, hop, center)
    out = []
    for (task, o), p in zip(results, inputs):
        if task.modality != "video":
            raise MediaError(p, f"not a video: {task.modality} content")
        out.append(_result(task, o))
    return out if many else out[0]


def _result(task: _Task, out: dict) -> dict[str, Any]:
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
    hop = _check_hop(hop)
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
    hop = _check_hop(hop)
    engine = _Engine(net, batch_size)
    for key, task, out, err in engine.run(_tasks(inputs, engine.cfg, hop, center, sr)):
        if err is not None:
            if not isinstance(err, MediaError) and _is_path(inputs[key]):
                err = MediaError(inputs[key], str(err))
            yield key, None, err
        else:
            yield key, _result(task, out), None


# ---------------------------------------------------------------------------
# Files and folders
# ---------------------------------------------------------------------------


def find_media(
    inputs: Sequence[str | os.PathLike], extensions: Iterable[str] | None = None
) -> list[tuple[Path, Path]]:
    """Expand files and folders into ``(path, relative path)`` pairs.

    Folders are searched recursively for files with a media extension (hidden
    files and folders are skipped); their relative path is taken inside the
    folder. Files named directly are kept whatever their extension, with their
    name as relative path. Missing paths are kept too (they fail later with a
    clear error).
    """
    exts = MEDIA_EXTENSIONS if extensions is None else frozenset(e.lower() for e in extensions)
    out: list[tuple[Path, Path]] = []
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or Path(name).suffix.lower() not in exts:
                        continue
                    f = Path(dirpath) / name
                    out.append((f, f.relative_to(p)))
        else:
            out.append((p, Path(p.name)))
    return out


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
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
# ---------------------------------------------------------------------------

EMBED_HELP = """\
Embed audio, image and video files with a trained model: 1 s audio windows every
--hop seconds (timestamps are window centres; by default the first window is
centred at 0 s with half a window of zero padding, --no-center starts the first
window at 0 s, centred at 0.5 s) and, for videos, the frame shown at each
window centre.

Writes one OUT/<relative path>.npz per input (a file's relative path is its name;
inside a folder, its path within the folder) holding: 'modality' (audio, image or
video), 'timestamps' (T,) seconds, 'embedding' (T, D) for audio and (1, D) for an
image, or 'audio_embedding' and 'image_embedding' (T, D) for a video, and
'checkpoint', 'source', 'hop', 'center'. Read with numpy.load(path).

A bad input (missing, empty, corrupt, unsupported) prints one line naming the file
and the reason; the others are still processed, and the exit code is 1.
"""


def add_cli(subparsers) -> None:
    """Register ``looklisten embed`` on an argparse subparsers object."""
    import argparse

    sp = subparsers.add_parser(
        "embed",
        help="embed audio, images and videos into .npz files",
        description=EMBED_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="files, or folders (searched recursively)"
    )
    sp.add_argument("--checkpoint", required=True, metavar="RUN", help="run or checkpoint dir")
    sp.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sp.add_argument("--hop", type=float, default=0.1, help="seconds between windows (0.1)")
    sp.add_argument(
        "--no-center",
        dest="center",
        action="store_false",
        help="first window starts at 0 s (centred at 0.5 s) instead of centred at 0 s",
    )
    sp.add_argument("--batch-size", type=int, default=64, help="items per forward pass (64)")
    sp.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_embed)


def cmd_embed(args) -> int:
    """Run ``looklisten embed``; return the exit code (1 if any input failed)."""
    import sys

    from tqdm.auto import tqdm

    from looklisten.core.fileio import atomic_write_bytes
    from looklisten.media.video import MediaError

    model = get_model(args.checkpoint, args.device)
    ckpt = getattr(model, "checkpoint_path", str(args.checkpoint))
    files = find_media(args.inputs)
    out_dir = Path(args.out)
    targets: dict[Path, int] = {}
    dupes: dict[int, str] = {}
    for i, (_, rel) in enumerate(files):
        target = out_dir / (str(rel) + ".npz")
        if target in targets:
            dupes[i] = f"output {target} is already used by {files[targets[target]][0]}"
        else:
            targets[target] = i
    failed = 0
    if not files:
        print("looklisten embed: no media files found", file=sys.stderr)
        return 1
    bar = tqdm(total=len(files), desc="embed", unit="file", disable=args.quiet)
    todo = [i for i in range(len(files)) if i not in dupes]
    for i, reason in dupes.items():
        bar.write(f"error: {files[i][0]}: {reason}", file=sys.stderr)
        failed += 1
        bar.update()
    paths = [str(files[i][0]) for i in todo]
    for key, result, err in embed_many(
        paths, model, hop=args.hop, center=args.center, batch_size=args.batch_size
    ):
        path, rel = files[todo[key]]
        if err is not None:
            msg = str(err) if isinstance(err, MediaError) else f"{path}: {err}"
            bar.write(f"error: {msg}", file=sys.stderr)
            failed += 1
        else:
            target = out_dir / (str(rel) + ".npz")
            arrays = result_arrays(result, ckpt, str(path), args.hop, args.center)
            atomic_write_bytes(target, _npz_bytes(arrays))
            from looklisten.tasks.search import _public

            _public(target)
        bar.update()
    bar.close()
    ok = len(files) - failed
    print(f"embedded {ok} of {len(files)} input(s) into {out_dir}", file=sys.stderr)
    return 1 if failed else 0
