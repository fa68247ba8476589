"""Pictures people look at: heatmaps blended over frames, as PNGs and videos.

* :func:`overlay` colours a heatmap with a matplotlib colormap, upsamples it to
  the frame and alpha-blends it; optionally outlines a ground-truth box.
* :func:`write_overlay_png` writes that picture as a PNG (atomically).
* :func:`write_overlay_video` re-encodes a whole video with per-frame heatmaps
  blended in, keeping the original sound, frame rate, timestamps and duration.

How a map looks (the same three choices in all three functions):

* Default (``fade=True``, ``normalize=False``): calibrated intensity. An
  AVOL-Net map is a sigmoid in [0, 1], the probability that a location makes
  the sound, and each pixel's opacity is ``alpha * value``: where the model
  says nothing sounds (silence, or the sounding object off screen) the map
  fades away and the frame shows through unchanged; where it is sure (1) the
  colour is blended with the full ``alpha``. "Nothing sounds here" and "the
  sound is spread out" look different.
* ``normalize=True``: each map is min-max stretched to [0, 1] on its own (per
  frame) before colouring and fading, so its peak is always opaque. This shows
  where the *relative* maximum is, but a silent frame (all values near 0) then
  looks as confident as any other: the absolute level is lost.
* ``fade=False``: the old look, a constant opacity ``alpha`` everywhere; a map
  of zeros paints the whole frame in the colormap's low colour (dark blue for
  ``jet``).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from looklisten.core.fileio import atomic_write_bytes, default_file_mode, fsync_dir, temp_prefix
from looklisten.media.video import MediaError, probe

Box = Sequence[float]


def as_size(size: Sequence[int]) -> tuple[int, int]:
    """(H, W) as two positive ints."""
    if len(size) != 2:
        raise ValueError(f"size must be (H, W), got {size!r}")
    H, W = int(size[0]), int(size[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return H, W


def upsample_heatmap(h: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinearly resize heatmaps to an image size.

    Uses ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)``, i.e. the map's cells are treated as covering the
    image evenly (cell centres at ``(k + 0.5) * H / h``), as in the localisation
    literature.

    Parameters
    ----------
    h : np.ndarray, shape (h, w) or (B, h, w)
        Heatmap(s). Integer and boolean inputs are converted to float32.
    size : (H, W)
        Output height and width.

    Returns
    -------
    np.ndarray, shape (H, W) or (B, H, W)
        Float64 if ``h`` is float64, otherwise float32. A new array (never a
        view of ``h``), also when the size does not change.
    """
    H, W = as_size(size)
    arr = np.asarray(h)
    if arr.ndim not in (2, 3):
        raise ValueError(f"heatmap must be (h, w) or (B, h, w), got shape {arr.shape}")
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.shape[-2:] == (H, W):
        return arr.copy()
    t = torch.from_numpy(arr)
    t = t[None, None] if arr.ndim == 2 else t[:, None]
    out = F.interpolate(t, size=(H, W), mode="bilinear", align_corners=False)
    out = out[0, 0] if arr.ndim == 2 else out[:, 0]
    return out.numpy().copy()


#: Sample rates the FFmpeg AAC encoder accepts.
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def _check_frame(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[-1] != 3 or f.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {f.shape} {f.dtype}")
    return f


def colorize(
    heatmap: np.ndarray,
    size: Sequence[int],
    cmap: str = "jet",
    normalize: bool = False,
) -> np.ndarray:
    """Upsample a heatmap to ``size`` and colour it with a matplotlib colormap.

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w)
        Heatmap with values in [0, 1] (values outside are clipped).
    size : (H, W)
        Output size; the heatmap is upsampled bilinearly
        (:func:`looklisten.evaluation.map_metrics.upsample_heatmap`).
    cmap : str
        Name of a colormap in ``matplotlib.colormaps``.
    normalize : bool
        Min-max normalise the (upsampled) heatmap to [0, 1] first; a constant
        map becomes all zeros.

    Returns
    -------
    np.ndarray, shape (H, W, 3), uint8
        ``matplotlib.colormaps[cmap](heatmap, bytes=True)[..., :3]``.
    """
    return _color(heatmap_values(heatmap, size, normalize), cmap)


def heatmap_values(heatmap: np.ndarray, size: Sequence[int], normalize: bool = False) -> np.ndarray:
    """The values :func:`colorize` colours and the fade uses as opacity.

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w)
        Finite values.
    size : (H, W)
        Output size (bilinear upsampling, :func:`upsample_heatmap`).
    normalize : bool
        Min-max normalise the upsampled map to [0, 1]. A constant map (equal
        values in ``heatmap`` itself, whatever float noise upsampling adds)
        becomes all zeros.

    Returns
    -------
    np.ndarray, shape (H, W)
        The upsampled (optionally normalised) map clipped to [0, 1]; float32,
        or float64 for a float64 ``heatmap``.
    """
    h = np.asarray(heatmap)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be (h, w), got shape {h.shape}")
    up = upsample_heatmap(h, size)
    if not np.all(np.isfinite(up)):
        raise ValueError("heatmap contains NaN or infinite values")
    if normalize:
        lo, hi = float(up.min()), float(up.max())
        # Constant is decided on the map itself: upsampling leaves float noise
        # (0.7 -> 0.6999999 .. 0.70000005) that min-max would stretch to [0, 1].
        constant = not h.size or float(np.max(h)) == float(np.min(h))
        up = (up - lo) / (hi - lo) if hi > lo and not constant else np.zeros_like(up)
    return np.clip(up, 0.0, 1.0)


def _color(values: np.ndarray, cmap: str) -> np.ndarray:
    return matplotlib.colormaps[cmap](values, bytes=True)[..., :3]


#: The fade's opacity values are multiples of 1 / _FADE_STEPS (see :func:`_layer`).
_FADE_STEPS = 65536.0


def _layer(
    heatmap: np.ndarray,
    size: Sequence[int],
    alpha: float,
    cmap: str,
    normalize: bool,
    fade: bool,
) -> tuple[np.ndarray, float | np.ndarray]:
    """(colour image, opacity): a float ``alpha``, or ``alpha * value`` per pixel with fade.

    The fade's ``value`` is rounded to a multiple of 1/65536 (far finer than
    the 8-bit output) so that the float noise of bilinear upsampling (a map of
    ones upsamples to 0.99999994 here and there) leaves 0 and 1 exact.
    """
    values = heatmap_values(heatmap, size, normalize)
    color = _color(values, cmap)
    if not fade:
        return color, alpha
    return color, alpha * (np.rint(values.astype(np.float64) * _FADE_STEPS) / _FADE_STEPS)


def blend(frame: np.ndarray, color: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """``round((1 - alpha) * frame + alpha * color)`` as uint8.

    Parameters
    ----------
    frame, color : np.ndarray, shape (H, W, 3), uint8
    alpha : float in [0, 1], or np.ndarray of shape (H, W) with values in [0, 1]
        Opacity of ``color``: one for the whole image, or one per pixel. 0
        returns ``frame``, 1 returns ``color`` (exactly, also per pixel). A
        per-pixel map whose values all equal a float ``a`` gives the same bytes
        as ``alpha=a``.

    Returns
    -------
    np.ndarray, shape (H, W, 3), uint8
    """
    if np.ndim(alpha) == 0:
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if alpha == 0.0:
            return frame.copy()
        if alpha == 1.0:
            return color.copy()
        out = frame.astype(np.float32) * (1.0 - alpha) + color.astype(np.float32) * alpha
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    keep, layer = _premultiply(color, alpha)
    return _apply(frame, keep, layer)


def _premultiply(color: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel opacity: ``(1 - alpha, alpha * color)`` as float32 (H, W, 1) and (H, W, 3).

    The weights are rounded to float32 from float64, as the float-``alpha``
    path of :func:`blend` rounds its Python floats, so a constant map gives the
    same bytes.
    """
    a = np.asarray(alpha, dtype=np.float64)
    if a.shape != color.shape[:2]:
        raise ValueError(f"alpha map must be (H, W) = {color.shape[:2]}, got shape {a.shape}")
    if not np.all((a >= 0.0) & (a <= 1.0)):  # also rejects NaN
        raise ValueError("alpha map values must be in [0, 1]")
    keep = (1.0 - a).astype(np.float32)[..., None]
    layer = color.astype(np.float32) * a.astype(np.float32)[..., None]
    return keep, layer


def _apply(frame: np.ndarray, keep: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``round(frame * keep + layer)`` as uint8 (see :func:`_premultiply`)."""
    if frame.shape != layer.shape:
        raise ValueError(f"frame and colour shapes differ: {frame.shape} vs {layer.shape}")
    out = frame.astype(np.float32) * keep
    out += layer
    return np.clip(np.rint(out, out=out), 0, 255, out=out).astype(np.uint8)


def draw_box(
    image: np.ndarray,
    box: Box,
    color: Sequence[int] = (0, 255, 0),
    width: int = 2,
) -> np.ndarray:
    """Draw a box outline in place.

    Parameters
    ----------
    image : np.ndarray, shape (H, W, 3), uint8
        Modified in place.
    box : (x0, y0, x1, y1)
        Box in pixel coordinates. The outline runs along the outermost pixels
        whose centres lie inside the box (the pixels of
        :func:`looklisten.evaluation.map_metrics.box_mask`) and ``width - 1`` pixels
        inwards; parts outside the image are clipped.
    color : (r, g, b)
        Outline colour.
    width : int
        Line width in pixels.

    Returns
    -------
    np.ndarray
        ``image``.
    """
    H, W = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    # Pixel index ranges whose centres (k + 0.5) lie in [lo, hi].
    c0, c1 = int(np.ceil(x0 - 0.5)), int(np.floor(x1 - 0.5))
    r0, r1 = int(np.ceil(y0 - 0.5)), int(np.floor(y1 - 0.5))
    if c1 < c0 or r1 < r0:
        return image
    col = np.asarray(color, dtype=np.uint8)
    w = max(int(width), 1)

    def fill(ra: int, rb: int, ca: int, cb: int) -> None:  # inclusive ranges, clipped
        ra, rb, ca, cb = max(ra, r0, 0), min(rb, r1, H - 1), max(ca, c0, 0), min(cb, c1, W - 1)
        if ra <= rb and ca <= cb:
            image[ra : rb + 1, ca : cb + 1] = col

    fill(r0, r0 + w - 1, c0, c1)  # top
    fill(r1 - w + 1, r1, c0, c1)  # bottom
    fill(r0, r1, c0, c0 + w - 1)  # left
    fill(r0, r1, c1 - w + 1, c1)  # right
    return image


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    cmap: str = "jet",
    *,
    normalize: bool = False,
    fade: bool = True,
    box: Box | None = None,
    box_color: Sequence[int] = (0, 255, 0),
    box_width: int = 2,
) -> np.ndarray:
    """Blend a coloured heatmap over a frame.

    By default the colour's opacity follows the calibrated map: ``alpha *
    value`` per pixel, so a map that is ~0 everywhere (the model says nothing
    on screen sounds) leaves the frame as it is, and only confident locations
    are coloured at the full ``alpha`` (see the module docstring).

    Parameters
    ----------
    frame : np.ndarray, shape (H, W, 3), uint8
        RGB image.
    heatmap : np.ndarray, shape (h, w), float in [0, 1]
        Localisation map at any resolution (e.g. 14x14); upsampled bilinearly
        to (H, W). Values outside [0, 1] are clipped (or see ``normalize``).
    alpha : float in [0, 1]
        Weight of the colour layer where the map is 1: ``out = (1 - a) *
        frame + a * cmap(value)`` with ``a = alpha * value`` per pixel (with
        ``fade``) or ``a = alpha`` (without). 0 returns the frame unchanged.
    cmap : str
        A name in ``matplotlib.colormaps``.
    normalize : bool
        Min-max normalise the (upsampled) heatmap to [0, 1] before colouring
        and fading (for raw scores or maps with a small range). The map's peak
        is then always opaque, so a silent frame looks as confident as any
        other; a constant map becomes zeros (with ``fade``: no colour at all).
    fade : bool
        Per-pixel opacity ``alpha * clip(value, 0, 1)`` (``value`` after the
        optional normalisation): the calibrated intensity, the default.
        ``False``: the old constant opacity ``alpha`` everywhere (the same
        bytes as before fading existed).
    box : (x0, y0, x1, y1), optional
        Ground-truth box (frame pixel coordinates) to outline on top.
    box_color : (r, g, b)
        Outline colour.
    box_width : int
        Outline width in pixels.

    Returns
    -------
    np.ndarray, shape (H, W, 3), uint8
        A new image.
    """
    f = _check_frame(frame)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    color, opacity = _layer(heatmap, f.shape[:2], alpha, cmap, normalize, fade)
    out = blend(f, color, opacity)
    if box is not None:
        draw_box(out, box, box_color, box_width)
    return out


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image."""
    buf = io.BytesIO()
    Image.fromarray(_check_frame(image), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def write_overlay_png(
    path: str | os.PathLike,
    frame: np.ndarray,
    heatmap: np.ndarray,
    box: Box | None = None,
    *,
    fade: bool = True,
    **overlay_kwargs,
) -> Path:
    """Write :func:`overlay` of ``frame`` and ``heatmap`` as a PNG, atomically.

    Parameters
    ----------
    path : path-like
        Output file (parent directories are created).
    frame : np.ndarray, shape (H, W, 3), uint8
    heatmap : np.ndarray, shape (h, w)
    box : (x0, y0, x1, y1), optional
        Ground-truth box to outline.
    fade : bool
        Opacity ``alpha * value`` per pixel, the calibrated intensity (default:
        a map of zeros leaves the frame unchanged); ``False``: constant
        ``alpha``. See :func:`overlay`.
    **overlay_kwargs
        ``alpha``, ``cmap``, ``normalize`` (per-map stretch to [0, 1]: a
        silent frame then looks as confident as any other), ``box_color``,
        ``box_width``.

    Returns
    -------
    Path
        The written file; an (H, W) RGB PNG.
    """
    img = overlay(frame, heatmap, box=box, fade=fade, **overlay_kwargs)
    return atomic_write_bytes(path, encode_png(img))


# ---------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------


class _HeatmapTrack:
    """Heatmap for an arbitrary time from heatmaps at sorted times."""

    def __init__(self, heatmaps: np.ndarray, times: np.ndarray, interpolation: str):
        hm = np.asarray(heatmaps)
        ts = np.asarray(times, dtype=np.float64).reshape(-1)
        if hm.ndim != 3:
            raise ValueError(f"heatmaps must be (T, h, w), got shape {hm.shape}")
        if hm.shape[0] == 0 or hm.shape[0] != ts.shape[0]:
            raise ValueError(
                f"need T >= 1 heatmaps and as many times, got {hm.shape[0]} and {ts.shape[0]}"
            )
        if not np.all(np.isfinite(ts)):
            raise ValueError("times must be finite")
        if interpolation not in ("nearest", "linear"):
            raise ValueError(f"interpolation must be 'nearest' or 'linear', got {interpolation!r}")
        order = np.argsort(ts, kind="stable")
        self.heatmaps = hm[order]
        self.times = ts[order]
        self.interpolation = interpolation

    def key(self, t: float) -> tuple[int, int, float]:
        """(i, j, w): the heatmap is ``(1 - w) * h[i] + w * h[j]``."""
        ts = self.times
        j = int(np.searchsorted(ts, t, side="right"))
        if j == 0:
            return 0, 0, 0.0
        if j == len(ts):
            return j - 1, j - 1, 0.0
        i = j - 1
        span = ts[j] - ts[i]
        w = (t - ts[i]) / span if span > 0 else 0.0
        if self.interpolation == "nearest":
            k = j if w > 0.5 else i  # ties go to the earlier heatmap
            return k, k, 0.0
        return (i, i, 0.0) if w == 0.0 else (i, j, float(w))

    def get(self, key: tuple[int, int, float]) -> np.ndarray:
        i, j, w = key
        if w == 0.0:
            return self.heatmaps[i]
        a = self.heatmaps[i].astype(np.float64)
        b = self.heatmaps[j].astype(np.float64)
        return (1.0 - w) * a + w * b


def _even_pad(img: np.ndarray, H: int, W: int) -> np.ndarray:
    """Edge-pad an image to (H, W) (used to make odd sizes even for yuv420p)."""
    h, w = img.shape[:2]
    if (h, w) == (H, W):
        return img
    return np.pad(img, ((0, H - h), (0, W - w), (0, 0)), mode="edge")


def _audio_layout(stream) -> str:
    n = stream.codec_context.channels
    if n == 1:
        return "mono"
    if n == 2:
        return "stereo"
    return stream.codec_context.layout.name


def write_overlay_video(
    src_video: str | os.PathLike,
    out_path: str | os.PathLike,
    heatmaps: np.ndarray,
    times: np.ndarray,
    alpha: float = 0.5,
    *,
    cmap: str = "jet",
    normalize: bool = False,
    fade: bool = True,
    interpolation: str = "nearest",
    audio: str = "auto",
    crf: int = 20,
    preset: str = "veryfast",
) -> Path:
    """Re-encode a video with heatmaps blended over every frame, keeping its sound.

    Every frame of ``src_video`` is decoded (a full decode: every frame is
    needed), blended with the heatmap for its presentation time, and encoded
    to H.264 (yuv420p) in an MP4. Frames are streamed: only one decoded frame
    is held at a time. The output keeps the source's frame count, frame
    timestamps (hence frame rate and duration) and its first audio stream:

    * AAC audio is stream-copied (packets unchanged, bit-exact sound);
    * any other audio codec is decoded and re-encoded to AAC (at the source
      sample rate when AAC supports it, else 48 kHz), keeping its start time.

    The file is written to a temporary sibling and renamed over ``out_path``
    once complete, so ``out_path`` is never left half-written.

    Parameters
    ----------
    src_video : path-like
        Any video PyAV can decode.
    out_path : path-like
        Output ``.mp4`` (the container is MP4 whatever the extension).
    heatmaps : np.ndarray, shape (T, h, w), float in [0, 1]
        Heatmaps, e.g. one per analysed 1 s window.
    times : np.ndarray, shape (T,)
        Time in seconds of each heatmap, on the source's presentation timeline
        (``pts * time_base``), the same ``t`` as
        :func:`looklisten.media.video.read_frame` / :func:`~looklisten.media.video.read_audio`
        use (for almost every file the first frame is at 0). A frame shown at
        ``t`` gets the heatmap for ``t``. Need not be sorted.
    alpha : float in [0, 1]
        Weight of the colour layer where the map is 1 (see :func:`overlay`).
    cmap : str
        Matplotlib colormap name.
    normalize : bool
        Min-max normalise each frame's heatmap to [0, 1] on its own before
        colouring and fading: the peak is always opaque, so a silent frame
        looks as confident as any other (default: the calibrated values).
    fade : bool
        Per-pixel opacity ``alpha * value`` (``value`` after the optional
        normalisation), the default: frames where the model says nothing on
        screen sounds stay as they are. ``False``: constant opacity ``alpha``
        (every frame fully tinted, a map of zeros in the colormap's low
        colour).
    interpolation : {"nearest", "linear"}
        Heatmap for a frame at time ``t``: the one with the nearest time (ties
        to the earlier), or the linear interpolation of the two around ``t``.
        Before the first / after the last heatmap time, the first / last
        heatmap is used.
    audio : {"auto", "copy", "reencode", "drop"}
        ``"auto"``: copy AAC, re-encode anything else. ``"copy"`` raises
        ``ValueError`` for non-AAC audio.
    crf, preset : int, str
        libx264 quality and speed.

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    looklisten.media.video.MediaError
        ``src_video`` is missing, not media, or has no video stream.
    ValueError
        Bad ``heatmaps`` / ``times`` / options; ``audio="copy"`` with non-AAC
        audio.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if audio not in ("auto", "copy", "reencode", "drop"):
        raise ValueError(f"audio must be 'auto', 'copy', 'reencode' or 'drop', got {audio!r}")
    track = _HeatmapTrack(heatmaps, times, interpolation)
    src_video = Path(src_video)
    if not probe(src_video).has_video:
        raise MediaError(src_video, "no video stream")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=temp_prefix(out_path), suffix=".tmp.mp4", dir=out_path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with av.open(str(src_video)) as inp:
            _transcode(inp, tmp, track, alpha, cmap, normalize, audio, crf, preset, fade=fade)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp made it 0600
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(out_path.parent)
    return out_path


def _transcode(
    inp, tmp: Path, track, alpha, cmap, normalize, audio_mode, crf, preset, *, fade: bool = True
) -> None:
    vin = next(
        (s for s in inp.streams.video if not s.disposition & av.stream.Disposition.attached_pic),
        None,
    )
    if vin is None:
        raise MediaError(inp.name, "no video stream")
    vin.thread_type = "AUTO"
    ain = None
    if audio_mode != "drop":
        ain = next((s for s in inp.streams.audio if s.codec_context is not None), None)
    copy_audio = False
    if ain is not None:
        is_aac = ain.codec_context.name == "aac"
        if audio_mode == "copy" and not is_aac:
            raise ValueError(f"cannot stream-copy {ain.codec_context.name!r} audio into MP4")
        copy_audio = is_aac and audio_mode in ("auto", "copy")

    rate = vin.average_rate or vin.guessed_rate or vin.base_rate or Fraction(25)
    vtb = vin.time_base or Fraction(1, 90000)
    v_start = vin.start_time if vin.start_time is not None else 0
    W, H = vin.codec_context.width, vin.codec_context.height
    We, He = W + (W % 2), H + (H % 2)

    with av.open(str(tmp), mode="w", format="mp4") as out:
        vout = out.add_stream(
            "libx264", rate=rate, time_base=vtb, options={"crf": str(crf), "preset": preset}
        )
        vout.width, vout.height, vout.pix_fmt = We, He, "yuv420p"
        aout = resampler = None
        if ain is not None:
            if copy_audio:
                aout = out.add_stream_from_template(ain)
            else:
                sr = ain.codec_context.sample_rate
                sr = sr if sr in _AAC_RATES else 48000
                aout = out.add_stream("aac", rate=sr, layout=_audio_layout(ain))
                resampler = av.AudioResampler(
                    format=aout.codec_context.format,
                    layout=aout.codec_context.layout,
                    rate=sr,
                    frame_size=aout.codec_context.frame_size or 1024,
                )
        a_state = {"next_pts": None}
        last_pts = None
        n_frames = 0
        cache_key = color = opacity = weights = None
        streams = [vin] + ([ain] if ain is not None else [])
        for packet in inp.demux(streams):
            if packet.stream is vin:
                for frame in packet.decode():
                    pts = frame.pts
                    if pts is None:  # no timestamps: assume constant frame rate
                        pts = v_start + round(n_frames / rate / vtb)
                    if last_pts is not None and pts <= last_pts:
                        pts = last_pts + 1
                    last_pts = pts
                    t = float(pts * vtb)  # presentation timeline, as looklisten.media.video
                    key = track.key(t)
                    if key != cache_key:
                        color, opacity = _layer(
                            track.get(key), (H, W), alpha, cmap, normalize, fade
                        )
                        # Per-pixel opacity: the blend weights once per heatmap, not per frame.
                        weights = None if np.ndim(opacity) == 0 else _premultiply(color, opacity)
                        cache_key = key
                    rgb = frame.to_ndarray(format="rgb24")
                    mixed = blend(rgb, color, opacity) if weights is None else _apply(rgb, *weights)
                    img = _even_pad(mixed, He, We)
                    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                    vf.pts = pts
                    vf.time_base = vtb
                    out.mux(vout.encode(vf))
                    n_frames += 1
            elif copy_audio:
                if packet.dts is None:  # demuxer flush packet
                    continue
                packet.stream = aout
                out.mux(packet)
            else:
                for af in packet.decode():
                    _reencode_audio(out, aout, resampler, af, a_state)
        out.mux(vout.encode(None))
        if resampler is not None:
            for rf in resampler.resample(None):
                _mux_audio(out, aout, rf, a_state)
            out.mux(aout.encode(None))
    if n_frames == 0:
        raise MediaError(inp.name, "no video frame decoded")


def _reencode_audio(out, aout, resampler, af, state) -> None:
    if state["next_pts"] is None:
        sr = aout.codec_context.sample_rate
        start = float(af.pts * af.time_base) if af.pts is not None else 0.0
        state["next_pts"] = round(start * sr)
    af.pts = None  # let the resampler count samples; we stamp the output ourselves
    for rf in resampler.resample(af):
        _mux_audio(out, aout, rf, state)


def _mux_audio(out, aout, rf, state) -> None:
    sr = aout.codec_context.sample_rate
    rf.pts = state["next_pts"]
    rf.time_base = Fraction(1, sr)
    state["next_pts"] += rf.samples
    out.mux(aout.encode(rf))
