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
* With ``with_probability=True`` each also returns, for every map, the
  probability that a visible object makes the sound
  (:func:`source_probability`): low for silence, noise and sounds whose
  source is off screen. Below ``model.detector.threshold`` the answer is no,
  and an overlay paints nothing.

All take a loaded model (:func:`looklisten.load_model`) or a run / checkpoint
directory. Preprocessing comes from the checkpoint's saved config.

What the model sees: ``mode``
-----------------------------
``"full"`` (the default)
    The vision trunk and the AVOL head are fully convolutional (the max over
    locations is only needed for the AVC score), so the whole frame goes in:
    it is scaled, like training frames, so that its shorter side is
    ``cfg.vision.resize`` pixels, and then each side is rounded to the nearest
    multiple of the trunk's stride ``s = 8 * conv1_stride``, halved by
    ``model.atrous`` (:func:`looklisten.inputs.prepare.map_stride`; 16 for
    the ``ots`` / ``small`` / ``tiny`` presets, 8 with ``model.atrous``; at
    most ``s / 2`` pixels of change, i.e. a slight change of aspect ratio when
    the side is not a multiple already). The map then has ``H' / s x W' / s``
    cells that tile the frame exactly (cell ``k`` covers pixels
    ``[k s, (k + 1) s)`` of the scaled frame), so it covers the whole frame
    and is upsampled to the frame uniformly (bilinear,
    ``align_corners=False``,
    :func:`looklisten.evaluation.map_metrics.upsample_heatmap`). E.g. (sizes as
    height x width) a 192x256 frame with ``tiny`` (resize 72): 80x96 pixels
    in, a 5x6 map out; 720x1280 with ``ots`` (resize 256): 256x448 in, a
    16x28 map out (``model.atrous``: 256x456 in, 32x57 out). The trunk's
    receptive field is about 130 input pixels (``model.atrous`` keeps it,
    give or take one stride): with ``tiny``'s small inputs every cell sees
    nearly the whole frame, so its maps are coarse and blurry; larger inputs
    localise better.
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
from typing import TYPE_CHECKING

import numpy as np
import torch

from looklisten.inputs.prepare import (
    as_image,
    audio_windows,
    check_mode,
    crop_region,
    frame_time,
    image_input,
    read_map_frame,
    take,
    wave,
    window_start,
)
from looklisten.models.checkpoint import get_model
from looklisten.models.detector import peak_logit
from looklisten.models.runtime import eval_mode, model_device

if TYPE_CHECKING:
    import torch

    from looklisten.core.config import Config


# ---------------------------------------------------------------------------
# Model and inputs
# ---------------------------------------------------------------------------


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

    from looklisten.media.overlay import upsample_heatmap

    check_mode(mode)
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

    dev = model_device(model)
    with eval_mode(model):
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


def maps_for(
    model, imgs: list[np.ndarray], waves: list[np.ndarray], mode: str, batch_size: int
) -> list[np.ndarray]:
    """Model maps (h, w) for each (image, waveform) pair, averaging long audio's windows."""
    import torch

    cfg = model.cfg
    n = cfg.audio.clip_samples
    out: list[np.ndarray | None] = [None] * len(imgs)
    # Group images that give the same input size, so they batch together.
    groups: dict[tuple[int, int], list[int]] = {}
    inputs = [image_input(im, cfg, mode) for im in imgs]
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


def _check_resolution(mode: str, resolution: str, allowed: tuple[str, str]) -> None:
    check_mode(mode)
    if resolution not in allowed:
        raise ValueError(f"resolution must be {allowed[0]!r} or {allowed[1]!r}, got {resolution!r}")
    if resolution == "map" and mode == "crop":
        raise ValueError("resolution='map' needs mode='full' (a crop map does not cover the image)")


def localize(
    model,
    image,
    audio,
    sr: int | None = None,
    *,
    mode: str = "full",
    device: str | torch.device | None = None,
    with_probability: bool = False,
):
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
    with_probability : bool
        Also return the probability that a visible object makes the sound.

    Returns
    -------
    heatmap : np.ndarray, shape (H, W), float32 in [0, 1]
        At the image's resolution.
    probability : float
        With ``with_probability``: see :func:`source_probability`; the
        answer is yes when it reaches ``model.detector.threshold``.
    """
    out = localize_batch(
        model, [image], [audio], sr, mode=mode, device=device, with_probability=with_probability
    )
    if with_probability:
        return out[0][0], float(out[1][0])
    return out[0]


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
    with_probability: bool = False,
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
    with_probability : bool
        Also return, per pair, the probability that a visible object makes the
        sound (:func:`source_probability`).

    Returns
    -------
    np.ndarray, shape (B, H, W) (or (B, h, w)) float32, when all images have one size;
    otherwise a list of B arrays. With ``with_probability``: ``(maps, probabilities)``,
    the latter (B,) float32.
    """
    _check_resolution(mode, resolution, ("image", "map"))
    model = get_model(model, device, arch="avol")
    cfg = model.cfg
    imgs = [as_image(im) for im in images]
    waves = [wave(a, sr, cfg) for a in audios]
    if len(imgs) != len(waves):
        raise ValueError(f"{len(imgs)} images but {len(waves)} audios")
    if not imgs:
        empty = np.zeros((0, 0, 0), np.float32)
        return (empty, np.zeros(0, np.float32)) if with_probability else empty
    maps = maps_for(model, imgs, waves, mode, max(1, int(batch_size)))
    if resolution == "map":
        out = maps
    else:
        out = [
            heatmap_to_frame(m, im.shape[:2], cfg, mode) for m, im in zip(maps, imgs, strict=True)
        ]
    if len({o.shape for o in out}) == 1:
        out = np.stack(out)
    if with_probability:
        return out, source_probability(model, maps)
    return out


def paint_visible(model, maps, probabilities) -> np.ndarray:
    """The maps to draw: each map as is where a visible object makes the sound, zero where not.

    Parameters
    ----------
    model : AVNet (arch "avol")
    maps : np.ndarray (T, h, w)
    probabilities : np.ndarray (T,)
        From :func:`source_probability`; compared with ``model.detector.threshold``.

    Returns
    -------
    np.ndarray, shape (T, h, w), float32: an overlay of it paints nothing on the
    frames whose sound no visible object makes.
    """
    keep = np.asarray(probabilities) >= model.detector.threshold
    return (np.asarray(maps, np.float32) * keep[:, None, None]).astype(np.float32)


def source_probability(model, maps) -> np.ndarray:
    """Probability that a visible object makes the sound, from AVOL-Net's maps.

    Parameters
    ----------
    model : AVNet (arch "avol")
        Its ``detector`` (:class:`looklisten.models.detector.SourceDetector`,
        fitted on the run's validation pairs and saved with the checkpoint)
        maps each map's peak to a calibrated probability.
    maps : np.ndarray (T, h, w) or a sequence of (h, w) maps
        The model's maps (:func:`localize_video` with ``resolution="map"``;
        upsampled maps give nearly the same peaks).

    Returns
    -------
    np.ndarray, shape (T,), float32
        ``>= model.detector.threshold``: a visible object makes the sound.
    """
    peaks = np.asarray([peak_logit(m) for m in maps], np.float64)
    return model.detector.probability(peaks)


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
        return frame_time(start, info.fps, np.arange(n))
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
    with_probability: bool = False,
):
    """A heatmap per video frame (or every ``hop`` seconds).

    For each time ``t`` the frame at ``t`` is paired with the 1 s of the
    video's own audio centred on ``t``, zero-padded where it leaves the audio
    track: exactly the inputs of every other entry point
    (:mod:`looklisten.inputs.prepare`). In ``"crop"`` mode frames are decoded
    at ``cfg.vision.resize`` as in training; ``"full"`` mode decodes them at
    full size. Audio is decoded in chunks of about ``chunk_seconds``, so
    memory does not grow with the video's length (only the output does).

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
    with_probability : bool
        Also return, per heatmap, the probability that a visible object makes
        the sound (:func:`source_probability`).

    Returns
    -------
    heatmaps : np.ndarray, shape (T, h, w) or (T, H, W), float32 in [0, 1]
    times : np.ndarray, shape (T,), float64
        Seconds on the video's presentation timeline (as
        :func:`looklisten.media.video.read_frame` uses).
    probabilities : np.ndarray, shape (T,), float32
        With ``with_probability`` only.

    Raises
    ------
    MediaError
        Not a video, no video stream, no audio stream, undecodable.
    ValueError
        Not an AVOL-Net; bad options.
    """
    from looklisten.core.progress import progress_bar
    from looklisten.media.video import MediaError, MediaReader

    resolution = resolution or ("map" if mode == "full" else "frame")
    _check_resolution(mode, resolution, ("map", "frame"))
    model = get_model(model, device, arch="avol")
    cfg = model.cfg
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    with MediaReader(path) as reader:
        info = reader.info
        if not info.has_video:
            raise MediaError(path, "no video stream (localisation needs a picture)")
        if not info.has_audio:
            raise MediaError(
                path, "no audio stream: AVOL-Net localises a sound, give a video with sound"
            )
        times = frame_times(info, hop)
        starts = np.array([window_start(t, sr, n) for t in times], dtype=np.int64)
        out: list[np.ndarray] = []
        probs: list[float] = []
        bar = progress_bar(total=len(times), desc="localize", unit="frame", disable=not progress)
        chunk_start = 0
        while chunk_start < len(times):
            # Times whose windows fit in one decoded chunk of audio (sample-aligned,
            # so each window holds exactly the samples of the whole decoded track).
            s0 = starts[chunk_start]
            chunk_end = int(np.searchsorted(starts, s0 + chunk_seconds * sr, side="right"))
            chunk_end = max(chunk_end, chunk_start + 1)
            s1 = starts[chunk_end - 1] + n
            track = reader.read_audio(s0 / sr, s1 / sr, sr)
            for s in range(chunk_start, chunk_end, batch_size):
                idx = range(s, min(s + batch_size, chunk_end))
                frames = [read_map_frame(reader, times[i], cfg, mode) for i in idx]
                waves = [take(track, int(starts[i] - s0), n) for i in idx]
                maps = maps_for(model, frames, waves, mode, len(frames))
                probs.extend(source_probability(model, maps))
                if resolution == "frame":
                    maps = [
                        heatmap_to_frame(m, (info.height, info.width), cfg, mode)
                        for m, f in zip(maps, frames, strict=True)
                    ]
                out.extend(maps)
                bar.update(len(idx))
            chunk_start = chunk_end
        bar.close()
    maps = np.stack(out).astype(np.float32, copy=False)
    if with_probability:
        return maps, times, np.asarray(probs, np.float32)
    return maps, times
