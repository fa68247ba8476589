"""Where does the sound come from? AVOL-Net heatmaps for images and videos.

AVOL-Net (Objects that Sound) scores audio-visual correspondence at every
location of the vision trunk's conv4_2 map; the sigmoid of the calibrated
scores is the localisation heatmap (values in [0, 1], high = "this region
makes the sound"). L3-Net and AVE-Net pool the vision map away and have no
such map, so only AVOL checkpoints are accepted here.

Python API
----------
* :func:`localize`: one image + its audio -> heatmap ``(H, W)`` at the image's
  resolution.
* :func:`localize_batch`: many images + audios at once.
* :func:`localize_video`: a heatmap per frame (or every ``hop`` seconds) of a
  video, each from the frame shown at ``t`` and the 1 s of audio centred on
  ``t``.

All take a loaded model (:func:`looklisten.load_model`) or a run / checkpoint
directory. Preprocessing comes from the checkpoint's saved config.

What the model sees: ``mode``
-----------------------------
``"full"`` (the default)
    The vision trunk and the AVOL head are fully convolutional (the max over
    locations is only needed for the AVC score), so the whole frame goes in:
    it is scaled, like training frames, so that its shorter side is
    ``cfg.vision.resize`` pixels, and then each side is rounded to the nearest
    multiple of the trunk's stride ``s = 8 * conv1_stride`` (16 for the
    ``ots`` / ``small`` / ``tiny`` presets; at most ``s / 2`` pixels of change,
    i.e. a slight change of aspect ratio when the side is not a multiple
    already). The map then has ``H' / s x W' / s`` cells that tile the frame
    exactly (cell ``k`` covers pixels ``[k s, (k + 1) s)`` of the scaled
    frame), so it covers the whole frame and is upsampled to the frame
    uniformly (bilinear, ``align_corners=False``,
    :func:`looklisten.evaluation.map_metrics.upsample_heatmap`). E.g. (sizes as
    height x width) a 192x256 frame with ``tiny`` (resize 72): 80x96 pixels
    in, a 5x6 map out; 720x1280 with ``ots`` (resize 256): 256x448 in, a
    16x28 map out. The trunk's receptive field is about 130 input pixels:
    with ``tiny``'s small inputs every cell sees nearly the whole frame, so its
    maps are coarse and blurry; larger inputs localise better.
``"crop"``
    Exactly the evaluation input of training: the frame scaled to shorter side
    ``cfg.vision.resize``, the centre ``S x S`` crop (``S =
    cfg.vision.image_size``). The heatmap is mapped back onto the crop's
    region of the original frame; **outside the crop there is no prediction
    and the heatmap is 0 there**.

Audio
-----
Waveforms are mono float arrays at ``sr`` (default: the model's rate,
``cfg.audio.sample_rate``; other rates are resampled with libswresample). A
multi-channel ``(C, N)`` array (``C <= 8``) is averaged to mono. The model
listens to ``cfg.audio.clip_seconds`` (1 s) at a time:

* exactly 1 s: one window;
* shorter: zero-padded on both sides to 1 s (centred);
* longer: 1 s windows every 0.5 s (the last one ending at the end of the
  audio), and the heatmap is the **mean** of their heatmaps.

Shapes
------
images: ``(H, W, 3)`` uint8 RGB (or a path to an image file); heatmaps:
``(H, W)`` float32 in [0, 1] at the image's resolution, unless stated
otherwise.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# torch, PyAV and the model code are imported inside the functions, so that
# registering the command line (add_cli) stays cheap.
if TYPE_CHECKING:
    import torch

    from looklisten.core.config import Config

MODES = ("full", "crop")

#: Extensions read as still images (with Pillow) by the CLI and :func:`load_image`.
IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .bmp .gif .webp .tif .tiff .ppm".split())


# ---------------------------------------------------------------------------
# Model and inputs
# ---------------------------------------------------------------------------


def load_avol(model, device: str | torch.device | None = None):
    """Return an AVOL-Net from a model or a run / checkpoint directory.

    Parameters
    ----------
    model : looklisten.models.network.AVNet or path-like
        A loaded model, or a run directory / checkpoint directory.
    device : str or torch.device, optional
        Where to load a checkpoint (default: cpu). A model object is left where
        it is.

    Returns
    -------
    looklisten.models.network.AVNet
        With ``arch == "avol"``.

    Raises
    ------
    ValueError
        The model is an L3-Net or AVE-Net (no localisation map).
    FileNotFoundError
        No checkpoint at the path.
    """
    if isinstance(model, (str, os.PathLike)):
        from looklisten.models.checkpoint import load_config, load_model

        arch = load_config(model).model.arch
        _check_arch(arch, str(model))
        return load_model(model, device or "cpu")
    arch = getattr(getattr(getattr(model, "cfg", None), "model", None), "arch", None)
    if arch is None:
        raise TypeError(f"expected an AVNet or a checkpoint path, got {type(model).__name__}")
    _check_arch(arch, "the model")
    return model


def _check_arch(arch: str, what: str) -> None:
    if arch != "avol":
        name = {"l3": "L3-Net", "ave": "AVE-Net"}.get(arch, arch)
        raise ValueError(
            f"{what} is an {name} ({arch!r}) checkpoint: only AVOL-Net produces a "
            "localisation map (L3-Net and AVE-Net pool the image away and have none); "
            "train one with 'looklisten train DIR --model avol'"
        )


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB uint8 ``(H, W, 3)``.

    Raises
    ------
    MediaError
        Missing, unreadable or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    from looklisten.media.video import MediaError

    p = Path(path)
    if not p.is_file():
        raise MediaError(p, "no such file")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError(p, f"not an image: {exc}") from None


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The whole audio track of a file (audio or video), mono, at ``sample_rate``.

    Returns
    -------
    np.ndarray, shape (N,), float32

    Raises
    ------
    MediaError
        Missing, not media, no audio stream, undecodable.
    """
    from looklisten.media.video import read_audio

    return read_audio(path, 0.0, None, sample_rate)


def _as_image(image) -> np.ndarray:
    import torch

    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {img.shape} {img.dtype}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image is empty: {img.shape}")
    return img


def _as_wave(audio, sr: int | None, cfg: Config) -> np.ndarray:
    """Any accepted audio -> mono float32 (N,) at cfg.audio.sample_rate."""
    import torch

    target = cfg.audio.sample_rate
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio, target)
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2 and x.shape[0] <= 8:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"audio must be (N,) mono or (C, N) with C <= 8, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("audio is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite values")
    sr = target if sr is None else int(sr)
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    if sr != target:
        from looklisten.media.video import _resample

        x = _resample(np.ascontiguousarray(x), sr, target)
    return x


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


def map_stride(cfg: Config) -> int:
    """Pixels of model input per cell of the vision map: 8 * conv1_stride."""
    return 8 * int(cfg.model.conv1_stride)


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


def preprocess_image(image: np.ndarray, cfg: Config, mode: str = "full") -> torch.Tensor:
    """One RGB frame -> the normalised model input of ``mode``.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, 3), uint8
    cfg : Config
        The checkpoint's config.
    mode : {"full", "crop"}

    Returns
    -------
    torch.Tensor, shape (3, H', W') float32
        ``"full"``: ``(H', W') = full_input_size(H, W, cfg)``; ``"crop"``:
        ``S x S``.
    """
    _check_mode(mode)
    img = _as_image(image)
    H, W = img.shape[:2]
    if mode == "full":
        return _normalise(_resize(img, full_input_size(H, W, cfg)), cfg)
    from looklisten.inputs.prepare import VisionTransform, resize_short_side

    small = resize_short_side(img, cfg.vision.resize)
    return VisionTransform(cfg.vision)(small[None], train=False)[0]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def heatmap_to_frame(
    hmap: np.ndarray, size: Sequence[int], cfg: Config, mode: str = "full"
) -> np.ndarray:
    """Place a model map onto a frame of ``size = (H, W)``.

    Parameters
    ----------
    hmap : np.ndarray, shape (h, w) or (T, h, w)
        Model map(s) from the same ``mode``.
    size : (H, W)
        Frame size.
    cfg : Config
    mode : {"full", "crop"}
        ``"full"``: the map tiles the frame, upsampled bilinearly. ``"crop"``:
        the map is resampled bilinearly onto :func:`crop_region` and the rest
        of the frame is 0.

    Returns
    -------
    np.ndarray, shape (H, W) or (T, H, W), float32
    """
    import torch
    import torch.nn.functional as F

    from looklisten.evaluation.map_metrics import upsample_heatmap

    _check_mode(mode)
    H, W = int(size[0]), int(size[1])
    arr = np.asarray(hmap, dtype=np.float32)
    if mode == "full":
        return upsample_heatmap(arr, (H, W)).astype(np.float32, copy=False)
    single = arr.ndim == 2
    t = torch.from_numpy(np.ascontiguousarray(arr[None] if single else arr))[:, None]
    x0, y0, x1, y1 = crop_region(H, W, cfg)
    # Pixel centres in crop-normalised coordinates (-1..1 spans the crop's edges).
    gx = (torch.arange(W, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    gy = (torch.arange(H, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (H, W, 2): (x, y)
    grid = grid[None].expand(t.shape[0], -1, -1, -1)
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid[..., 0].abs() <= 1) & (grid[..., 1].abs() <= 1)
    out = (out[:, 0] * inside).numpy()
    return out[0] if single else out


# ---------------------------------------------------------------------------
# Running the model
# ---------------------------------------------------------------------------


class _EvalMode:
    """Put a module in eval mode for a block, then restore its mode."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _device(model) -> torch.device:
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def model_maps(model, images: torch.Tensor, waves: torch.Tensor, index=None) -> torch.Tensor:
    """Run AVOL-Net on normalised images and 1 s waveforms; return the sigmoid maps.

    Parameters
    ----------
    model : AVNet (arch "avol")
    images : torch.Tensor, shape (B, 3, H', W')
        Normalised inputs (:func:`preprocess_image`); any ``H', W'`` the trunk
        accepts (fully convolutional).
    waves : torch.Tensor, shape (K, N)
        Mono waveforms, ``N = cfg.audio.clip_samples``.
    index : torch.Tensor of int, shape (K,), optional
        Image of each waveform (default: ``arange(K)``, needs ``K == B``). One
        image can be paired with several windows without rerunning its trunk.

    Returns
    -------
    torch.Tensor, shape (K, h, w), float32 on the CPU
        ``h = H' / stride``, ``w = W' / stride``.
    """
    import torch

    dev = _device(model)
    with _EvalMode(model), torch.no_grad():
        x = images.to(dev)
        if model.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        v = model.vision(x)
        a = model.audio_features(waves.to(dev, torch.float32))
        if index is not None:
            v = v[torch.as_tensor(index, device=dev)]
        elif v.shape[0] != a.shape[0]:
            raise ValueError(f"{v.shape[0]} images and {a.shape[0]} waveforms")
        return model.head(v, a)["heatmap"].float().cpu()


def _maps_for(
    model, imgs: list[np.ndarray], waves: list[np.ndarray], mode: str, batch_size: int
) -> list[np.ndarray]:
    """Model maps (h, w) for each (image, waveform) pair, averaging long audio's windows."""
    import torch

    cfg = model.cfg
    n = cfg.audio.clip_samples
    out: list[np.ndarray | None] = [None] * len(imgs)
    # Group images that give the same input size, so they batch together.
    groups: dict[tuple[int, int], list[int]] = {}
    inputs = [preprocess_image(im, cfg, mode) for im in imgs]
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x.shape[-2:]), []).append(i)
    for members in groups.values():
        for s in range(0, len(members), batch_size):
            chunk = members[s : s + batch_size]
            wins = [audio_windows(waves[i], n) for i in chunk]
            index = torch.cat([torch.full((len(w),), k) for k, w in enumerate(wins)])
            maps = model_maps(
                model,
                torch.stack([inputs[i] for i in chunk]),
                torch.from_numpy(np.concatenate(wins)),
                index,
            )
            k0 = 0
            for i, w in zip(chunk, wins, strict=True):
                out[i] = maps[k0 : k0 + len(w)].mean(0).numpy()
                k0 += len(w)
    return out  # type: ignore[return-value]


def localize(
    model,
    image,
    audio,
    sr: int | None = None,
    *,
    mode: str = "full",
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Heatmap of where the sound comes from in one image.

    Parameters
    ----------
    model : AVNet (arch "avol") or path-like
        A loaded AVOL-Net or a run / checkpoint directory.
    image : np.ndarray (H, W, 3) uint8 RGB, or path-like to an image file
    audio : np.ndarray (N,) or (C, N) float, or path-like to an audio/video file
        About 1 s of sound (see the module docstring for other lengths).
    sr : int, optional
        Sample rate of ``audio`` (default: the model's). Ignored for files.
    mode : {"full", "crop"}
        Whole frame (default) or the centre crop only (see the module docstring).
    device : optional
        Device to load a checkpoint path onto.

    Returns
    -------
    np.ndarray, shape (H, W), float32 in [0, 1]
        At the image's resolution.
    """
    return localize_batch(model, [image], [audio], sr, mode=mode, device=device)[0]


def localize_batch(
    model,
    images,
    audios,
    sr: int | None = None,
    *,
    mode: str = "full",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    resolution: str = "image",
):
    """Heatmaps for many (image, audio) pairs.

    Parameters
    ----------
    model : AVNet (arch "avol") or path-like
    images : np.ndarray (B, H, W, 3) uint8, or a sequence of (H, W, 3) arrays / paths
        Images may differ in size.
    audios : np.ndarray (B, N), or a sequence of (N,) arrays / paths
        One audio per image.
    sr : int, optional
        Sample rate of the audio arrays (default: the model's).
    mode : {"full", "crop"}
    batch_size : int
        Images per forward pass.
    device : optional
        Device to load a checkpoint path onto.
    resolution : {"image", "map"}
        ``"image"``: each heatmap at its image's resolution. ``"map"``: the
        model's map (h, w) as is (``"full"`` mode only: there it tiles the
        whole image).

    Returns
    -------
    np.ndarray, shape (B, H, W) (or (B, h, w)) float32, when all images have one size;
    otherwise a list of B arrays.
    """
    _check_mode(mode)
    if resolution not in ("image", "map"):
        raise ValueError(f"resolution must be 'image' or 'map', got {resolution!r}")
    if resolution == "map" and mode == "crop":
        raise ValueError("resolution='map' needs mode='full' (a crop map does not cover the image)")
    model = load_avol(model, device)
    cfg = model.cfg
    imgs = [_as_image(im) for im in images]
    waves = [_as_wave(a, sr, cfg) for a in audios]
    if len(imgs) != len(waves):
        raise ValueError(f"{len(imgs)} images but {len(waves)} audios")
    if not imgs:
        return np.zeros((0, 0, 0), np.float32)
    maps = _maps_for(model, imgs, waves, mode, max(1, int(batch_size)))
    if resolution == "map":
        out = maps
    else:
        out = [
            heatmap_to_frame(m, im.shape[:2], cfg, mode) for m, im in zip(maps, imgs, strict=True)
        ]
    if len({o.shape for o in out}) == 1:
        return np.stack(out)
    return out


def frame_times(info, hop: float | None = None) -> np.ndarray:
    """Times at which :func:`localize_video` computes heatmaps.

    Parameters
    ----------
    info : looklisten.media.video.MediaInfo
    hop : float, optional
        Seconds between heatmaps; None: one per video frame
        (``video_start + i / fps``).

    Returns
    -------
    np.ndarray, shape (T,), float64
        Within ``[video_start, video_start + video_duration)``.
    """
    from looklisten.media.video import MediaError

    start = info.video_start
    dur = info.video_duration or info.duration
    if hop is None:
        if info.fps <= 0:
            raise MediaError(info.path, "unknown frame rate")
        n = max(1, int(info.num_frames) or int(round(dur * info.fps)))
        return start + np.arange(n, dtype=np.float64) / info.fps
    hop = float(hop)
    if not hop > 0:
        raise ValueError(f"hop must be positive, got {hop}")
    n = max(1, int(math.ceil(dur / hop - 1e-9)))
    return start + np.arange(n, dtype=np.float64) * hop


def localize_video(
    model,
    path: str | os.PathLike,
    hop: float | None = None,
    *,
    mode: str = "full",
    resolution: str | None = None,
    batch_size: int = 16,
    chunk_seconds: float = 20.0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A heatmap per video frame (or every ``hop`` seconds).

    For each time ``t`` the frame displayed at ``t`` (the last frame whose
    presentation time is ``<= t``) is paired with the 1 s of the video's own
    audio centred on ``t``. Within 0.5 s of either end of the audio stream the
    window is shifted to lie inside the audio instead (the model was never
    trained on padded windows); audio shorter than 1 s is zero-padded. Audio is
    decoded in chunks of about ``chunk_seconds``, so memory does not grow with
    the video's length (only the output does).

    Parameters
    ----------
    model : AVNet (arch "avol") or path-like
    path : path-like
        A video with sound.
    hop : float, optional
        Seconds between heatmaps; None (default): every frame.
    mode : {"full", "crop"}
        See the module docstring.
    resolution : {"map", "frame"}, optional
        ``"map"``: the model's maps (T, h, w), which tile the whole frame
        (``"full"`` mode; pass them to
        :func:`looklisten.media.overlay.write_overlay_video` as they are).
        ``"frame"``: (T, H, W) at the video's frame size. Default: ``"map"`` in
        ``"full"`` mode, ``"frame"`` in ``"crop"`` mode (its maps cover only
        the crop).
    batch_size : int
        Frames per forward pass.
    chunk_seconds : float
        Length of the audio chunks decoded at once.
    device : optional
        Device to load a checkpoint path onto.
    progress : bool
        Show a progress bar.

    Returns
    -------
    heatmaps : np.ndarray, shape (T, h, w) or (T, H, W), float32 in [0, 1]
    times : np.ndarray, shape (T,), float64
        Seconds on the video's presentation timeline (as
        :func:`looklisten.media.video.read_frame` uses).

    Raises
    ------
    MediaError
        Not a video, no video stream, no audio stream, undecodable.
    ValueError
        Not an AVOL-Net; bad options.
    """
    from tqdm.auto import tqdm

    from looklisten.media.video import MediaError, MediaReader

    _check_mode(mode)
    resolution = resolution or ("map" if mode == "full" else "frame")
    if resolution not in ("map", "frame"):
        raise ValueError(f"resolution must be 'map' or 'frame', got {resolution!r}")
    if resolution == "map" and mode == "crop":
        raise ValueError("resolution='map' needs mode='full' (a crop map does not cover the frame)")
    model = load_avol(model, device)
    cfg = model.cfg
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    half = cfg.audio.clip_seconds / 2
    with MediaReader(path) as reader:
        info = reader.info
        if not info.has_video:
            raise MediaError(path, "no video stream (localisation needs a picture)")
        if not info.has_audio:
            raise MediaError(
                path, "no audio stream: AVOL-Net localises a sound, give a video with sound"
            )
        times = frame_times(info, hop)
        a0 = info.audio_start
        a1 = info.audio_start + info.audio_duration
        if a1 - a0 >= 2 * half:
            centres = np.clip(times, a0 + half, a1 - half)
        else:
            centres = np.full_like(times, (a0 + a1) / 2)
        eps = 0.25 / info.fps if info.fps > 0 else 1e-3
        out: list[np.ndarray] = []
        bar = tqdm(total=len(times), desc="localize", unit="frame", disable=not progress)
        chunk_start = 0
        while chunk_start < len(times):
            # Times whose windows fit in one decoded chunk of audio.
            c0 = centres[chunk_start]
            chunk_end = int(np.searchsorted(centres, c0 + chunk_seconds, side="right"))
            chunk_end = max(chunk_end, chunk_start + 1)
            lo, hi = centres[chunk_start] - half, centres[chunk_end - 1] + half
            track = reader.read_audio(lo, hi, sr)
            for s in range(chunk_start, chunk_end, batch_size):
                idx = range(s, min(s + batch_size, chunk_end))
                frames = [reader.read_frame(times[i] + eps) for i in idx]
                waves = []
                for i in idx:
                    off = int(round((centres[i] - half - lo) * sr))
                    w = track[off : off + n]
                    waves.append(np.pad(w, (0, n - len(w))) if len(w) < n else w)
                maps = _maps_for(model, frames, waves, mode, len(frames))
                if resolution == "frame":
                    maps = [
                        heatmap_to_frame(m, f.shape[:2], cfg, mode)
                        for m, f in zip(maps, frames, strict=True)
                    ]
                out.extend(maps)
                bar.update(len(idx))
            chunk_start = chunk_end
        bar.close()
    return np.stack(out).astype(np.float32, copy=False), times


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def default_device(device: str | None = None) -> torch.device:
    """``device``, or cuda when available, else cpu."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def cmd_localize(args) -> int:
    """``looklisten localize``: see :func:`add_cli`."""
    from looklisten.media.overlay import write_overlay_png, write_overlay_video
    from looklisten.media.video import MediaError, MediaReader, probe

    src = Path(args.input)
    out = Path(args.out)
    if args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    if not src.exists():
        raise MediaError(src, "no such file")
    model = load_avol(args.checkpoint, default_device(args.device))
    cfg = model.cfg
    if _is_image_file(src):
        if not args.audio:
            raise ValueError(f"{src} is an image: give the sound with --audio AUDIO_FILE")
        if args.png_dir:
            raise ValueError("--png-dir is for video inputs; for an image --out is the PNG")
        image = load_image(src)
        wave = load_audio(args.audio, cfg.audio.sample_rate)
        if args.audio_at is not None:
            half = cfg.audio.clip_samples // 2
            c = int(round(args.audio_at * cfg.audio.sample_rate))
            if not 0 <= c <= len(wave):
                raise ValueError(
                    f"--audio-at {args.audio_at} s is outside {args.audio} "
                    f"({len(wave) / cfg.audio.sample_rate:.2f} s)"
                )
            lo = min(max(c - half, 0), max(len(wave) - cfg.audio.clip_samples, 0))
            wave = wave[lo : lo + cfg.audio.clip_samples]
        heat = localize(model, image, wave, mode=args.mode)
        write_overlay_png(out, image, heat, alpha=args.alpha, normalize=args.normalize)
        print(f"wrote {out} (heatmap max {heat.max():.3f}, mean {heat.mean():.3f})")
        return 0

    if args.audio:
        raise ValueError(
            "--audio is for a still image; a video is localised with its own soundtrack"
        )
    info = probe(src)
    if not info.has_video:
        raise MediaError(src, "no video stream: give a video with sound, or an image and --audio")
    hop = args.every / info.fps if (args.every > 1 and info.fps > 0) else None
    heat, times = localize_video(
        model, src, hop, mode=args.mode, progress=not args.quiet, batch_size=args.batch_size
    )
    write_overlay_video(
        src,
        out,
        heat,
        times,
        alpha=args.alpha,
        normalize=args.normalize,
        interpolation="linear" if hop else "nearest",
    )
    msg = f"wrote {out} ({len(times)} heatmaps of {heat.shape[1]}x{heat.shape[2]}"
    if args.png_dir:
        png_dir = Path(args.png_dir)
        eps = 0.25 / info.fps if info.fps > 0 else 1e-3
        with MediaReader(src) as reader:
            for i, t in enumerate(times):
                frame = reader.read_frame(t + eps)
                write_overlay_png(
                    png_dir / f"frame_{i:06d}_t{t:09.3f}.png",
                    frame,
                    heat[i],
                    alpha=args.alpha,
                    normalize=args.normalize,
                )
        msg += f"; {len(times)} PNGs in {png_dir}"
    print(msg + ")")
    return 0


def add_cli(subparsers) -> None:
    """Register ``looklisten localize`` on an argparse subparsers object."""
    sp = subparsers.add_parser(
        "localize",
        help="AVOL-Net heatmaps: where the sound comes from (video -> MP4, image + audio -> PNG)",
        description=(
            "Blend AVOL-Net's localisation heatmap over a video (every frame, or every N "
            "frames; each heatmap from the frame at t and the 1 s of audio centred on t; "
            "output: an MP4 with the original sound) or over an image given a sound "
            "(--audio; output: a PNG). By default the whole frame is analysed (the network "
            "is fully convolutional); --mode crop analyses only the centre crop the model "
            "was evaluated on in training and leaves the rest of the frame uncoloured. "
            "Only AVOL-Net checkpoints have a localisation map."
        ),
    )
    sp.add_argument("input", metavar="INPUT", help="a video with sound, or an image with --audio")
    sp.add_argument("--checkpoint", required=True, metavar="RUN", help="AVOL-Net run or checkpoint")
    sp.add_argument(
        "--out", required=True, metavar="OUT", help="output MP4 (video input) or PNG (image input)"
    )
    sp.add_argument(
        "--audio",
        metavar="AUDIO_FILE",
        help="the sound for an image input (any audio or video file)",
    )
    sp.add_argument(
        "--audio-at",
        type=float,
        metavar="SECONDS",
        help="with --audio: use the 1 s centred here (default: average the heatmaps of "
        "1 s windows every 0.5 s over the whole file)",
    )
    sp.add_argument(
        "--png-dir", metavar="DIR", help="video: also write one PNG overlay per heatmap time"
    )
    sp.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="video: a heatmap every N frames, interpolated in between (default 1: every frame)",
    )
    sp.add_argument(
        "--mode", choices=MODES, default="full", help="whole frame (default) or centre crop only"
    )
    sp.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity (default 0.5)")
    sp.add_argument(
        "--normalize",
        action="store_true",
        help="stretch each heatmap to [0, 1] for display (default: the raw sigmoid values)",
    )
    sp.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")
    sp.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_localize)
