"""Every rule that turns a file, an array or a tensor into model inputs.

This module is the one place that decides what the networks see. Training
(all three pair sources), shards, embedding, search, localisation, the
evaluations and the report call it; nothing else re-derives these rules.

The frame at time ``t``
-----------------------
The frame whose presentation time is **nearest** to ``t`` (ties: the later
one): the reader is asked for the frame displayed at ``t + 0.5 / fps``
(:func:`frame_lookup_time`). Why nearest rather than "the frame on screen at
``t``": the audio window is centred on ``t``, and the nearest frame keeps the
picture within half a frame of the sound's centre (the frame on screen can be
almost a whole frame early); and container timestamps are rounded to their
time base (a frame at 66.67 ms is stored as 67 ms in a 1 ms time base) or
jitter in camera files, which the half-frame margin absorbs. On the frame grid
(``t = video_start + i / fps``, every training pair, every localisation sample,
``localize_video`` without ``hop``) both rules give frame ``i``; they differ
only for times between frames, e.g. ``embed_video`` every 0.1 s of a 15 fps
clip. Frame ``i`` of a clip is at :func:`frame_time` ``(start, fps, i)``.

The audio window at ``t``
-------------------------
``cfg.audio.clip_samples`` samples (1 s) at ``cfg.audio.sample_rate``,
centred on ``t``: samples ``round(t * sr) - n // 2 + [0, n)`` of the track
decoded at the model's rate, **zeros outside the track** (:func:`audio_window`).
Every entry point slices the track decoded from its start, except training
from files (:class:`looklisten.data.sampler.FileSource`), which decodes only
the window (:func:`read_audio_window`) to stay fast on large folders. The two
agree to float rounding for PCM and most codecs, but not for AAC with
perceptual noise substitution (FFmpeg's encoder uses it by default): the
decoder synthesises the noise bands from a random generator whose state
depends on where decoding started, so those bands hold other noise (up to
0.03 on the demo clips, whose sound is mixed with noise).

Samples
-------
Any numeric audio becomes float32 mono (:func:`to_mono_float`): int16 / 32768,
int32 / 2^31, int64 / 2^63, uint8 (x - 128) / 128, floats as they are; a 2-D
array is (C, N) or (N, C), the channel axis being the shorter one, and its
channels are averaged. Other rates are resampled with libswresample
(:func:`resample`, as the decoder does).

Pictures
--------
Pixels become uint8 RGB (:func:`as_image_batch`). A frame or picture is scaled
so that its shorter side is ``cfg.vision.resize`` (the decoder scales video
frames in swscale; pictures from elsewhere with :func:`resize_short_side`),
the centre square is cut (:func:`centre_square`), then
:class:`VisionTransform` crops ``image_size`` (random in training, centre in
evaluation) and normalises. AVOL-Net can also see the whole frame
(:func:`image_input` ``mode="full"``).

Benchmark pictures and sounds
-----------------------------
The sound-source localisation benchmarks (Flickr-SoundNet, VGG-SS) follow the
LVS / EZ-VSL test code: the whole picture resized to 224x224, bicubic
(:func:`benchmark_frame`), and the model's window from the middle of the sound
file, clipped to [-1, 1] and tiled (repeated) when the file is shorter than the
window (:func:`middle_window` of the track :func:`load_audio` decodes at the
model's rate: mono, resampled with libswresample).

Files
-----
A file's kind (video, image or audio) is decided by its content
(:func:`media_kind`); the extension lists (:data:`VIDEO_EXTENSIONS`, ...)
only choose which files a folder search picks up (:func:`find_media`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from looklisten.core.config import MAP_MODES, Config, VisionConfig
from looklisten.inputs.flow import FLOW_ZERO, clip_flow, dequantize, stack_fields
from looklisten.media.video import MediaError, int_to_float, resample, take

if TYPE_CHECKING:
    from looklisten.media.video import MediaInfo, MediaReader

# ---------------------------------------------------------------------------
# Files: extensions and kinds
# ---------------------------------------------------------------------------

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .ts .mts .flv .wmv .3gp .ogv .mxf".split()
)
AUDIO_EXTENSIONS = frozenset(
    ".wav .mp3 .flac .ogg .oga .opus .m4a .aac .wma .aif .aiff .au .caf .mka".split()
)

IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .bmp .gif .webp .tif .tiff .ppm .pgm".split())

#: Extensions picked up when a folder is searched (a file named explicitly is
#: always tried, whatever its name: dispatch is by content).
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS | IMAGE_EXTENSIONS


def searched_for(extensions: Iterable[str] = MEDIA_EXTENSIONS) -> str:
    """What a folder search looks for, for a message: ``searched it and its sub-folders for .3gp ...``."""
    return f"searched it and its sub-folders for {' '.join(sorted(extensions))}"


def media_kind(info: MediaInfo) -> str:
    """Classify a file by what it contains (not its name): video, image or audio."""
    if info.has_video and not info.has_audio:
        # PNG & co. (FFmpeg's *_pipe and image2 demuxers) report 0 or 1 frame.
        return "image" if info.num_frames <= 1 else "video"
    if info.has_video:
        return "video"
    return "audio"


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


def load_image(path: str | os.PathLike) -> np.ndarray:
    """The first picture of an image file, RGB uint8 (H, W, 3), at full size."""
    import av

    path = os.fspath(path)
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as c:
            for frame in c.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise MediaError(path, f"corrupt or not an image: cannot be decoded ({msg})") from None
    raise MediaError(path, "truncated or corrupt: no picture decoded")


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The whole audio track of a file (audio or video), float32 mono (N,) at ``sample_rate``."""
    from looklisten.media.video import read_audio

    return read_audio(path, 0.0, None, sample_rate)


# ---------------------------------------------------------------------------
# Time: the frame at t, the audio window at t
# ---------------------------------------------------------------------------


def frame_time(video_start: float, fps: float, index):
    """Presentation time (s) of frame ``index`` (an int or an int array) on the nominal grid."""
    if np.ndim(index) == 0:
        return float(video_start) + int(index) / float(fps)
    return float(video_start) + np.asarray(index, np.float64) / float(fps)


def frame_lookup_time(t: float, fps: float | None) -> float:
    """The time to ask the reader for, to get the frame at ``t`` (see the module docstring).

    The reader returns the frame displayed at a time; the frame displayed at
    ``t + 0.5 / fps`` is the one whose timestamp is nearest to ``t``.
    """
    return float(t) + (0.5 / fps if fps and fps > 0 else 0.0)


def read_frame_at(reader: MediaReader, t: float, size: int | None = None) -> np.ndarray:
    """The frame at ``t`` (uint8 (H, W, 3); shorter side ``size`` if given, scaled in swscale)."""
    return reader.read_frame(frame_lookup_time(t, reader.info.fps), size=size)


def read_map_frame(reader: MediaReader, t: float, cfg: Config, mode: str) -> np.ndarray:
    """The frame at ``t`` as AVOL-Net's ``mode`` takes it (see :func:`image_input`).

    ``"crop"``: decoded at ``cfg.vision.resize`` as in training; ``"full"``: at
    full size. Its original size is ``(reader.info.height, reader.info.width)``.
    """
    check_mode(mode)
    return read_frame_at(reader, t, cfg.vision.resize if mode == "crop" else None)


def window_start(t: float, sample_rate: int, n: int) -> int:
    """First sample of the ``n``-sample window centred at ``t`` seconds."""
    return int(round(float(t) * sample_rate)) - n // 2


def audio_window(track: np.ndarray, t: float, cfg) -> np.ndarray:
    """The model's audio window centred at ``t`` from a track at ``cfg.audio.sample_rate``.

    Parameters
    ----------
    track : np.ndarray, shape (N,), float
        Mono samples, sample 0 at time 0.
    t : float
        Window centre, seconds.

    Returns
    -------
    np.ndarray, shape (cfg.audio.clip_samples,), float32
        Zeros where the window leaves the track.
    """
    a = getattr(cfg, "audio", cfg)  # a Config or its AudioConfig
    return take(track, window_start(t, a.sample_rate, a.clip_samples), a.clip_samples)


def read_audio_window(reader: MediaReader, t: float, cfg) -> np.ndarray:
    """:func:`audio_window` at ``t`` decoded from a file (only the window is decoded)."""
    a = getattr(cfg, "audio", cfg)
    t0 = window_start(t, a.sample_rate, a.clip_samples) / a.sample_rate
    return reader.read_audio(t0, t0 + a.clip_samples / a.sample_rate, a.sample_rate)


def check_hop(hop: float) -> float:
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
    hop = check_hop(hop)
    duration = max(0.0, float(duration))
    eps = 1e-9
    if center:
        n = int(math.floor(duration / hop + eps)) + 1
        return np.arange(n, dtype=np.float64) * hop
    n = max(0, int(math.floor((duration - clip_seconds) / hop + eps))) + 1
    return np.arange(n, dtype=np.float64) * hop + clip_seconds / 2


def audio_windows(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut a waveform into the model's windows (see the module docstring).

    Parameters
    ----------
    wave : np.ndarray, shape (N,)
    n : int
        Window length in samples (``cfg.audio.clip_samples``).

    Returns
    -------
    np.ndarray, shape (K, n), float32
        ``K == 1`` when ``N <= n`` (zero-padded, centred); otherwise windows
        starting every ``n // 2`` samples, the last one ending at ``N``.
    """
    N = len(wave)
    if N <= n:
        out = np.zeros((1, n), np.float32)
        off = (n - N) // 2
        out[0, off : off + N] = wave
        return out
    hop = max(1, n // 2)
    starts = list(range(0, N - n + 1, hop))
    if starts[-1] != N - n:
        starts.append(N - n)
    return np.stack([wave[s : s + n] for s in starts]).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------


def as_numpy(x) -> np.ndarray:
    """A tensor (any device) or array-like -> np.ndarray (no copy when possible)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def to_mono_float(x: np.ndarray, what: str = "audio") -> np.ndarray:
    """(N,), (C, N) or (N, C) audio of any numeric dtype -> float32 mono (N,).

    Integer samples are scaled to [-1, 1) (int16 / 32768, int32 / 2^31,
    uint8 (x - 128) / 128). For 2-D input the channel axis is the shorter one;
    channels are averaged.
    """
    try:
        x = int_to_float(x)  # the decoder's rule (looklisten.media.video), for arrays too
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= x.shape[1] else 1, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected (N,), (C, N) or (N, C) samples, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite samples")
    return np.ascontiguousarray(x)


def wave(audio, sr: int | None, cfg: Config) -> np.ndarray:
    """Any accepted audio -> float32 mono (N,) at ``cfg.audio.sample_rate``.

    ``audio`` is a file path (its whole audio track), or samples of any dtype
    and layout :func:`to_mono_float` takes, at ``sr`` (default: the model's rate).
    """
    target = cfg.audio.sample_rate
    if is_path(audio):
        return load_audio(audio, target)
    x = to_mono_float(as_numpy(audio))
    if x.size == 0:
        raise ValueError("audio is empty")
    sr = target if sr is None else int(sr)
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    return resample(x, sr, target) if sr != target else x


# ---------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------


def as_image_batch(x, what: str = "image") -> np.ndarray:
    """An image or a batch of images -> uint8 (N, H, W, 3).

    Accepts (H, W), (H, W, 1|3|4), (N, H, W, 1|3|4), channels-first (3, H, W) /
    (N, 3, H, W) when unambiguous, uint8 or float in [0, 1].
    """
    a = as_numpy(x)
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


def as_image(x, what: str = "image") -> np.ndarray:
    """One picture (a path, or pixels as :func:`as_image_batch` takes) -> uint8 (H, W, 3)."""
    if is_path(x):
        return load_image(x)
    a = as_numpy(x)
    if a.ndim == 4:
        raise ValueError(f"{what}: expected one (H, W, 3) picture, got a batch {a.shape}")
    return as_image_batch(a, what)[0]


def square_crop(frame: np.ndarray, side: int, rng: np.random.Generator | None) -> np.ndarray:
    """([K,] H, W, C) with min(H, W) >= side -> ([K,] side, side, C); random position if rng,
    else centre; the same position for all K frames."""
    h, w = frame.shape[-3:-1]
    if rng is None:
        y, x = (h - side) // 2, (w - side) // 2
    else:
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    return frame[..., y : y + side, x : x + side, :]


def centre_square(img: np.ndarray, cfg: Config) -> np.ndarray:
    """A frame/picture -> the centre ``resize`` square (uint8 (R, R, 3)), as in evaluation.

    Scaled so that its shorter side is ``cfg.vision.resize`` (nothing to do
    for frames the decoder already scaled), then the centre square.
    """
    r = cfg.vision.resize
    if min(img.shape[:2]) != r:
        img = resize_short_side(img, r)
    return np.ascontiguousarray(square_crop(img, r, None))


#: The six orders of the RGB channels (:func:`random_channel_order`).
CHANNEL_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def random_channel_order(frames: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each example's RGB channels in one of the six orders, drawn uniformly.

    ``frames``: uint8 (B, [K,] H, W, C) with RGB first (flow channels, if any, stay);
    one float64 draw per example from ``generator`` (on its device). Returns a new tensor.
    """
    x = torch.as_tensor(frames)
    B = x.shape[0]
    device = generator.device if generator is not None else "cpu"
    u = torch.rand(B, generator=generator, device=device, dtype=torch.float64).to(x.device)
    k = (u * len(CHANNEL_ORDERS)).long().clamp_(max=len(CHANNEL_ORDERS) - 1)
    order = torch.tensor(CHANNEL_ORDERS, device=x.device)[k]  # (B, 3)
    rest = torch.arange(3, x.shape[-1], device=x.device).expand(B, -1)
    index = torch.cat([order, rest], 1).view(B, *([1] * (x.ndim - 2)), x.shape[-1])
    return torch.gather(x, -1, index.expand(x.shape))


# ITU-R BT.601 luma weights, for the grayscale image of the saturation jitter.
_LUMA = (0.299, 0.587, 0.114)


class VisionTransform:
    """Crop, flip, jitter and normalise a batch of frames.

    Training (``train=True``), per example: a random ``S x S`` crop position,
    a horizontal flip with probability 0.5 (if ``cfg.hflip``), brightness
    jitter (multiply by a factor uniform in ``[1 - b, 1 + b]``), then
    saturation jitter (blend with the grayscale image by a factor uniform in
    ``[1 - s, 1 + s]``), each clamped to [0, 1]. The K frames of one example
    share all of these. Evaluation: the centre crop (offset ``(H - S) // 2``,
    ``(W - S) // 2``), nothing random. Then ``(x - mean) / std``.

    With optical flow (``cfg.flow_frames = L > 0``, AVE+OF) frames carry
    ``3 + 2L`` channels: RGB, then uint8 flow codes (see looklisten.inputs.flow). The
    flow is cropped and flipped with the frame (a flip also negates every dx),
    not jittered, and becomes ``(q - 128) / 127`` (flow / bound, in [-1, 1]).

    Crop and flip are one gather on the uint8 frames, so moving uint8 frames to
    the GPU first and transforming there is cheap. Given the generator, the
    output is deterministic.

    Parameters
    ----------
    cfg : VisionConfig
        The preprocessing parameters; ``S = cfg.image_size``.
    """

    def __init__(self, cfg: VisionConfig):
        self.cfg = cfg
        self.mean = torch.tensor(cfg.mean, dtype=torch.float32)
        self.std = torch.tensor(cfg.std, dtype=torch.float32)

    def __call__(self, frames, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """Transform a batch.

        Parameters
        ----------
        frames : np.ndarray or Tensor, uint8, shape (B, H, W, C) or (B, K, H, W, C)
            RGB frames (C = 3; C = 3 + 2L with flow), ``H, W >= cfg.image_size``.
        train : bool
            Random crop, flip and jitter if True; centre crop otherwise.
        generator : torch.Generator, optional
            Source of randomness in training; draws happen on its device.

        Returns
        -------
        Tensor, float32, shape (B, C, S, S) or (B, C, K, S, S)
            Normalised crops (contiguous), on the device of ``frames``.
        """
        if isinstance(frames, np.ndarray) and not frames.flags.writeable:
            frames = frames.copy()  # torch warns about read-only arrays (e.g. np.frombuffer)
        x = torch.as_tensor(frames)
        channels = 3 + 2 * self.cfg.flow_frames
        if x.dtype != torch.uint8 or x.ndim not in (4, 5) or x.shape[-1] != channels:
            raise ValueError(
                f"expected uint8 (B, [K,] H, W, {channels}) frames, got {tuple(x.shape)} {x.dtype}"
            )
        single = x.ndim == 4
        if single:
            x = x[:, None]
        B, K, H, W, _ = x.shape
        S = self.cfg.image_size
        if H < S or W < S:
            raise ValueError(f"frames {H}x{W} are smaller than the crop size {S}")
        dev = x.device

        if train:
            gdev = generator.device if generator is not None else "cpu"
            r = torch.rand(B, 5, generator=generator, device=gdev, dtype=torch.float64).to(dev)
            top = (r[:, 0] * (H - S + 1)).long().clamp_(max=H - S)
            left = (r[:, 1] * (W - S + 1)).long().clamp_(max=W - S)
            flip = (r[:, 2] < 0.5) if self.cfg.hflip else torch.zeros_like(top, dtype=torch.bool)
        else:
            top = torch.full((B,), (H - S) // 2, device=dev)
            left = torch.full((B,), (W - S) // 2, device=dev)
            flip = torch.zeros(B, dtype=torch.bool, device=dev)

        # Crop and flip as one gather: (B, H, W, K, 3) -> (B, S, S, K, 3).
        ar = torch.arange(S, device=dev)
        rows = top[:, None] + ar
        cols = left[:, None] + torch.where(flip[:, None], S - 1 - ar, ar)
        b = torch.arange(B, device=dev)[:, None, None]
        x = x.permute(0, 2, 3, 1, 4)[b, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 4, 3, 1, 2)  # (B, C, K, S, S) uint8
        flow = x[:, 3:] if channels > 3 else None
        x = x[:, :3].float().div_(255)  # (B, 3, K, S, S)

        if train:
            bshape = (B, 1, 1, 1, 1)
            if self.cfg.brightness > 0:
                f = 1 + self.cfg.brightness * (2 * r[:, 3] - 1)
                x = x.mul_(f.float().view(bshape)).clamp_(0, 1)
            if self.cfg.saturation > 0:
                f = (1 + self.cfg.saturation * (2 * r[:, 4] - 1)).float().view(bshape)
                luma = torch.tensor(_LUMA, device=dev).view(1, 3, 1, 1, 1)
                gray = (x * luma).sum(1, keepdim=True)
                x = torch.lerp(gray, x, f).clamp_(0, 1)

        cshape = (1, 3, 1, 1, 1)
        x = (x - self.mean.to(dev).view(cshape)) / self.std.to(dev).view(cshape)
        if flow is not None:
            flow = dequantize(flow)  # (B, 2L, K, S, S), flow / bound
            sign = torch.where(flip, -1.0, 1.0).view(B, 1, 1, 1, 1)
            flow[:, 0::2] *= sign  # mirrored motion: dx -> -dx
            x = torch.cat([x, flow], dim=1)
        x = x[:, :, 0] if single else x
        return x.contiguous()

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"VisionTransform(size={c.image_size}, hflip={c.hflip}, "
            f"brightness={c.brightness}, saturation={c.saturation})"
        )


def resize_short_side(frame: np.ndarray, size: int) -> np.ndarray:
    """Scale an image so that its shorter side is ``size`` pixels.

    Bilinear, antialiased when downscaling (``F.interpolate(..., antialias=True)``),
    aspect ratio kept (longer side rounded to the nearest pixel). For images
    that did not come through the video decoder, e.g. a loaded PNG or JPEG.

    Parameters
    ----------
    frame : np.ndarray, shape (H, W, 3), uint8
    size : int
        Target length of the shorter side.

    Returns
    -------
    np.ndarray, shape (H', W', 3), uint8
        ``min(H', W') == size``.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a (H, W, 3) uint8 image, got {frame.shape} {frame.dtype}")
    h, w = frame.shape[:2]
    scale = size / min(h, w)
    out_hw = (size, max(1, round(w * scale))) if h <= w else (max(1, round(h * scale)), size)
    if out_hw == (h, w):
        return frame.copy()
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def denormalize(x: Tensor, cfg: VisionConfig) -> np.ndarray:
    """Undo the normalisation of :class:`VisionTransform`, for making pictures.

    Parameters
    ----------
    x : Tensor, shape (B, 3, S, S) or (B, 3, K, S, S)
        Normalised images.
    cfg : VisionConfig
        The config they were normalised with.

    Returns
    -------
    np.ndarray, uint8, shape (B, S, S, 3) or (B, K, S, S, 3)
    """
    x = x.detach().float().cpu()
    shape = (1, 3) + (1,) * (x.ndim - 2)
    mean = torch.tensor(cfg.mean).view(shape)
    std = torch.tensor(cfg.std).view(shape)
    x = (x * std + mean).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return x.movedim(1, -1).numpy()


# ---------------------------------------------------------------------------
# AVOL-Net on the whole frame
# ---------------------------------------------------------------------------


def map_stride(cfg: Config) -> int:
    """Pixels of model input per cell of the vision map.

    ``8 * conv1_stride`` (16 for ``ots`` / ``small`` / ``tiny``), halved by
    ``model.atrous`` (:class:`looklisten.models.trunks.VGGTrunk`).
    """
    return 8 * int(cfg.model.conv1_stride) // (2 if cfg.model.atrous else 1)


def full_input_size(H: int, W: int, cfg: Config) -> tuple[int, int]:
    """Size ``(H', W')`` the whole frame is scaled to in ``"full"`` mode.

    The shorter side is scaled to ``cfg.vision.resize`` (aspect kept), then
    each side is rounded (halves up) to a multiple of :func:`map_stride`,
    at least one stride.
    """
    s = map_stride(cfg)
    scale = cfg.vision.resize / min(H, W)
    return tuple(max(s, s * math.floor(side * scale / s + 0.5)) for side in (H, W))  # type: ignore[return-value]


def _resize(img: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, h, w) in [0, 1], bilinear, antialiased when shrinking."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x[0].clamp_(0, 255).round_().div_(255)


def _normalise(x: torch.Tensor, cfg: Config) -> torch.Tensor:
    import torch

    mean = torch.tensor(cfg.vision.mean).view(3, 1, 1)
    std = torch.tensor(cfg.vision.std).view(3, 1, 1)
    return (x - mean) / std


def crop_region(H: int, W: int, cfg: Config) -> tuple[float, float, float, float]:
    """The region ``(x0, y0, x1, y1)`` of an ``H x W`` frame that ``"crop"`` mode sees.

    In original-frame pixel coordinates (the convention of
    :mod:`looklisten.evaluation.map_metrics`): the centre ``S x S`` crop of the frame
    scaled to shorter side ``cfg.vision.resize``, mapped back.
    """
    # The same rounding as looklisten.inputs.prepare.resize_short_side.
    R, S = cfg.vision.resize, cfg.vision.image_size
    scale = R / min(H, W)
    h, w = (R, max(1, round(W * scale))) if H <= W else (max(1, round(H * scale)), R)
    top, left = (h - S) // 2, (w - S) // 2
    sy, sx = H / h, W / w
    return (left * sx, top * sy, (left + S) * sx, (top + S) * sy)


def check_mode(mode: str) -> None:
    if mode not in MAP_MODES:
        raise ValueError(f"mode must be one of {MAP_MODES}, got {mode!r}")


def image_input(image, cfg: Config, mode: str = "full") -> Tensor:
    """One RGB frame -> the normalised AVOL-Net input of ``mode``.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, 3), uint8 (or anything :func:`as_image` takes)
    cfg : Config
        The checkpoint's config.
    mode : {"full", "crop"}
        ``"full"``: the whole frame, scaled to :func:`full_input_size`.
        ``"crop"``: exactly the evaluation input of training (the centre
        square of :func:`centre_square`, then :class:`VisionTransform`).

    Returns
    -------
    Tensor, shape (3, H', W') float32
    """
    check_mode(mode)
    img = as_image(image)
    H, W = img.shape[:2]
    if mode == "full":
        return _normalise(_resize(img, full_input_size(H, W, cfg)), cfg)
    return VisionTransform(cfg.vision)(centre_square(img, cfg)[None], train=False)[0]


# ---------------------------------------------------------------------------
# Benchmark inputs: the LVS / EZ-VSL localisation protocol
# ---------------------------------------------------------------------------

#: Side of the square frame (and ground-truth map) of the Flickr-SoundNet and
#: VGG-SS evaluation code of LVS (Chen et al. 2021) and EZ-VSL (Mo & Morgado 2022).
BENCHMARK_SIZE = 224


def benchmark_frame(path: str | os.PathLike, size: int = BENCHMARK_SIZE) -> np.ndarray:
    """A benchmark picture as the LVS / EZ-VSL test code sees it: ``size x size`` RGB.

    The whole picture (no crop, aspect ratio not kept) is resized to
    ``size x size`` with PIL's bicubic filter, as EZ-VSL's ``get_test_dataset``
    (``transforms.Resize((224, 224), Image.BICUBIC)``) does; the ground-truth
    boxes are defined on this square frame. The file is decoded by
    :func:`load_image` (FFmpeg) rather than PIL: JPEG decoders may differ by a
    rounding step on some pixels.

    Parameters
    ----------
    path : path-like
        Image file (any format :func:`load_image` reads).
    size : int
        Output side (224 in the reference code).

    Returns
    -------
    np.ndarray, shape (size, size, 3), uint8
    """
    from PIL import Image  # a dependency of matplotlib, which is pinned

    img = Image.fromarray(np.ascontiguousarray(load_image(path)))
    return np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8)


def middle_window(track: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` samples in the middle of a track, clipped to [-1, 1], tiled when short.

    EZ-VSL's ``load_spectrogram`` rule, with the model's window (``n =
    cfg.audio.clip_samples``, 1 s) in place of its 3 s: the window starts at
    ``(N - n) // 2`` (centred on the middle of the file); samples are clipped
    to [-1, 1]; a track shorter than the window is repeated from its start
    (``np.tile``) and cut to ``n`` samples, as EZ-VSL (and LVS) do, rather than
    zero-padded like :func:`audio_windows`.

    Parameters
    ----------
    track : np.ndarray, shape (N,), float
        Mono samples (N >= 1).
    n : int
        Window length in samples.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    x = np.clip(np.asarray(track, dtype=np.float32).reshape(-1), -1.0, 1.0)
    N = len(x)
    if N == 0:
        raise ValueError("audio is empty")
    if N < n:
        return np.tile(x, n // N + 1)[:n]
    start = (N - n) // 2
    return np.ascontiguousarray(x[start : start + n])


# ---------------------------------------------------------------------------
# Items: the uint8 input of one example, motion models included
# ---------------------------------------------------------------------------
# MF (vision.num_frames = K > 1): frames i - K // 2 ... i + K - K // 2 - 1.
# OF (vision.flow_frames = L > 0): frames i - L // 2 ... i + L - L // 2
# (L + 1 frames, L fields), the RGB frame being i. Indices are clamped to the
# clip (edge frames repeat; a field between two copies of a frame is zero).
# An item is (H, W, 3), (K, H, W, 3) or (H, W, 3 + 2L).


def window_span(v: VisionConfig) -> tuple[int, int]:
    """(frames in the window, frames before the example's own frame)."""
    if v.num_frames > 1:
        return v.num_frames, v.num_frames // 2
    if v.flow_frames > 0:
        return v.flow_frames + 1, v.flow_frames // 2
    return 1, 0


def window(index: int, num_frames: int, v: VisionConfig) -> np.ndarray:
    """Frame indices of the window of frame ``index`` in a clip of ``num_frames``, clamped."""
    count, before = window_span(v)
    return np.clip(np.arange(count) + int(index) - before, 0, max(num_frames - 1, 0))


def item_from_frames(frames: np.ndarray, v: VisionConfig, threads: int | None = None):
    """The item from its window's frames (count, H, W, 3); OF computes the flow now.

    A field between two identical frames (an edge frame repeated) is zero.
    """
    count, before = window_span(v)
    if len(frames) != count:
        raise ValueError(f"expected {count} frames, got {len(frames)}")
    if v.num_frames > 1:
        return np.ascontiguousarray(frames)
    if v.flow_frames > 0:
        fields = clip_flow(frames, v, threads)
        same = np.array([np.array_equal(frames[j], frames[j + 1]) for j in range(count - 1)])
        fields[same] = FLOW_ZERO
        return np.concatenate([frames[before], stack_fields(fields)], axis=-1)
    return frames[0]


def item_from_clip(
    frames: np.ndarray, flows: np.ndarray | None, index: int, v: VisionConfig
) -> np.ndarray:
    """The item of frame ``index`` from a decoded clip (and its :func:`~looklisten.inputs.flow.clip_flow`)."""
    n = len(frames)
    if v.num_frames > 1:
        return frames[window(index, n, v)]
    if v.flow_frames > 0:
        if flows is None:
            raise ValueError("vision.flow_frames > 0 needs the clip's flow")
        return flow_item(frames.__getitem__, flows.__getitem__, n, len(flows), index, v)
    return frames[min(max(int(index), 0), n - 1)]


def flow_item(
    frame_at, field_at, num_frames: int, num_fields: int, index: int, v: VisionConfig
) -> np.ndarray:
    """The AVE+OF item of frame ``index`` from a clip's stored frames and flow fields.

    ``frame_at(i)`` gives frame ``i`` (H, W, 3) and ``field_at(j)`` the uint8
    field ``j`` (H, W, 2) of :func:`~looklisten.inputs.flow.clip_flow`; only the
    window's frame and fields are asked for (the in-memory cache indexes
    arrays, shards decode members). A field between two copies of an edge
    frame (the window clamped at the clip's ends) is zero.
    """
    idx = window(index, num_frames, v)
    fields = np.stack([field_at(int(j)) for j in np.minimum(idx[:-1], num_fields - 1)])
    fields[idx[1:] == idx[:-1]] = FLOW_ZERO
    rgb = frame_at(int(idx[v.flow_frames // 2]))
    return np.concatenate([rgb, stack_fields(fields)], axis=-1)


def item_from_reader(reader, t: float, v: VisionConfig, threads: int | None = None) -> np.ndarray:
    """The item of the frame at ``t`` (s; :func:`frame_lookup_time`), its window read with one seek.

    ``reader`` is a :class:`looklisten.media.video.MediaReader`; frames are decoded at
    ``v.resize``. The window's frames before ``t`` are counted at the nominal
    frame rate; before the first frame / after the last the edge frame repeats.
    """
    count, before = window_span(v)
    t = frame_lookup_time(t, reader.info.fps)
    if count == 1:
        return reader.read_frame(t, size=v.resize)
    info = reader.info
    fps = info.fps or 25.0
    have = min(before, max(0, int(math.floor((t - info.video_start) * fps + 1e-6))))
    frames = reader.read_frames(t - have / fps, count - (before - have), size=v.resize)
    if have < before:
        frames = np.concatenate([np.repeat(frames[:1], before - have, axis=0), frames])
    return item_from_frames(frames, v, threads)


def square_item_at(reader, t: float, v: VisionConfig) -> np.ndarray:
    """The evaluation item at ``t`` of an open video: :func:`item_from_reader`, centre square.

    uint8 ``(S, S, 3)`` with ``S = v.resize``; AVE+MF ``(K, S, S, 3)``; AVE+OF
    ``(S, S, 3 + 2 L)``. What embedding, search queries and ``model.inputs``
    give the image side of a network (before :class:`VisionTransform`).
    """
    item = item_from_reader(reader, t, v)
    return np.ascontiguousarray(square_crop(item, v.resize, None))


def still_item(image: np.ndarray, v: VisionConfig) -> np.ndarray:
    """The item of a still image: a static clip (MF: K copies; OF: zero flow)."""
    if v.num_frames > 1:
        return np.repeat(image[None], v.num_frames, axis=0)
    if v.flow_frames > 0:
        h, w = image.shape[:2]
        flow = np.full((h, w, 2 * v.flow_frames), FLOW_ZERO, np.uint8)
        return np.concatenate([image, flow], axis=-1)
    return image


# ---------------------------------------------------------------------------
# The rules bound to one model's config: ``model.inputs``
# ---------------------------------------------------------------------------


class Inputs:
    """A model's input preparation, from its config (``model.inputs``, as open_clip hands
    the transforms with the model): the tensors the network is fed, never rebuilt by hand.

    Parameters
    ----------
    cfg : Config
        The model's (checkpoint's) config.

    Examples
    --------
    >>> image, wave = model.inputs.video("clip.mp4", t=2.0)  # doctest: +SKIP
    >>> out = model(image, wave)                              # doctest: +SKIP
    >>> x = model.inputs.image("dog.jpg")      # (1, 3, S, S)  # doctest: +SKIP
    >>> w = model.inputs.audio("bark.wav", t=0.8)  # (1, N)     # doctest: +SKIP
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.transform = VisionTransform(cfg.vision)

    def __repr__(self) -> str:
        a, v = self.cfg.audio, self.cfg.vision
        return (
            f"Inputs(audio={a.clip_seconds:g} s at {a.sample_rate} Hz, "
            f"image={v.image_size}px centre crop of {v.resize}px, {self.transform!r})"
        )

    def image(self, images) -> Tensor:
        """Pictures (a path, pixels (H, W, C) or a batch (B, H, W, C)) -> (B, 3, S, S).

        Motion models get a still as a static clip (:func:`still_item`).
        """
        if is_path(images):
            batch = load_image(images)[None]
        else:
            batch = as_image_batch(images)
        items = [still_item(centre_square(img, self.cfg), self.cfg.vision) for img in batch]
        return self.transform(np.stack(items), train=False)

    def audio(self, audio, sr: int | None = None, t: float | None = None) -> Tensor:
        """Audio (a path, or samples of any dtype / layout at ``sr``) -> (1, N).

        With ``t``: the model's window centred at ``t`` (N = ``clip_samples``);
        without: the whole signal, mono at the model's rate.
        """
        x = wave(audio, sr, self.cfg)
        if t is not None:
            x = audio_window(x, t, self.cfg)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]

    def video(self, path: str | os.PathLike, t: float) -> tuple[Tensor, Tensor]:
        """The evaluation inputs of a video at ``t``: ((1, 3, S, S) image, (1, N) audio).

        The frame at ``t`` and the audio window centred at ``t``, exactly as a
        training pair (in evaluation mode) and every other entry point see them.
        The whole audio track is decoded (as :func:`looklisten.embed_video`
        does; see the module docstring on decoding from a seek point), so this is
        for a few times; embed or localise a whole video for many.
        """
        from looklisten.media.video import MediaReader

        with MediaReader(path) as reader:
            image = self.frame(reader, t)
            track = reader.read_audio(0.0, None, self.cfg.audio.sample_rate)
        return image, torch.from_numpy(audio_window(track, t, self.cfg))[None]

    def frame(self, reader, t: float) -> Tensor:
        """The evaluation image input at ``t`` of an open video: (1, 3, S, S).

        AVE+MF: (1, K, 3, S, S); AVE+OF: (1, 3 + 2 L, S, S).

        ``reader`` is a :class:`looklisten.media.video.MediaReader`. Motion models
        get the window of frames (AVE+MF) or the frame and its flow (AVE+OF)
        around the frame at ``t`` (:func:`item_from_reader`), as in training.
        """
        return self.transform(square_item_at(reader, t, self.cfg.vision)[None], train=False)
