"""Pictures people look at: heatmaps blended over frames, as PNGs and videos.

* :func:`overlay` paints a heatmap over a frame (upsampled to it); optionally
  outlines a ground-truth box.
* :func:`write_overlay_png` writes that picture as a PNG (atomically), with a
  legend strip below the frame by default (:func:`legend_strip`): below, not
  in a corner, because the sounding object can be anywhere, corners included,
  and a small frame has no corner to spare; the frame's pixels stay where
  they were (a box drawn in frame coordinates still fits).
* :func:`write_overlay_video` re-encodes a whole video with per-frame heatmaps
  blended in, keeping the original sound, frame rate, timestamps and duration.

How a map looks (the same choices in all three functions):

* Default (``cmap=None``, ``fade=True``, ``normalize=False``): the
  *highlight*, one saturated colour (magenta, :data:`HIGHLIGHT_RGB`) whose
  opacity rises with the map's calibrated value. An AVOL-Net map is a sigmoid
  in [0, 1], the probability that a location makes the sound; each pixel's
  opacity is ``alpha * ramp(value)`` with :func:`highlight_ramp`: 0 up to
  :data:`HIGHLIGHT_FLOOR`, 1 at a value of 1, rising as a power
  :data:`HIGHLIGHT_GAMMA` < 1 in between, so that mid values (a map peaking at
  0.6) are clearly coloured. ``alpha`` defaults to 0.8. Where the model says
  nothing sounds (silence, or the sounding object off screen) the map is ~0
  and the frame shows through unchanged, outside the map's support too: no
  pixel changes where the map is below the floor. Magenta is rare in natural
  footage (sky and water are blue or cyan, foliage green, skin and earth
  orange), so it survives colourful frames where a colour map's hues vanish.
* ``cmap="jet"`` (any name in ``matplotlib.colormaps``): the map is coloured
  with the colour map and its opacity is ``alpha * value`` (``alpha``
  defaults to 0.5): the look before the highlight, the same bytes. A map
  peaking at 0.6 is then hard to see: on frames of the demo clips its top
  10 % changes by 15 to 29 levels of 255 on average (RGB), against 61 to 72
  with the highlight (``tests/test_overlay_visible.py`` measures it).
* ``normalize=True``: each map is min-max stretched to [0, 1] on its own (per
  frame) before colouring and fading, so its peak is always opaque. This shows
  where the *relative* maximum is, but a silent frame (all values near 0) then
  looks as confident as any other: the absolute level is lost.
* ``fade=False``: a constant opacity ``alpha`` everywhere, with a colour map
  (``jet`` unless ``cmap`` names another; a single colour at constant opacity
  would show nothing); a map of zeros paints the whole frame in the colour
  map's low colour (dark blue for ``jet``).
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


#: The default look's name (``cmap=None`` with ``fade``): one colour, opacity from the map.
HIGHLIGHT = "highlight"
#: The highlight's colour: a saturated magenta, rare in natural footage.
HIGHLIGHT_RGB = (255, 0, 255)
#: Map values up to this are not painted at all by the highlight.
HIGHLIGHT_FLOOR = 0.1
#: The highlight's opacity rises as ``((value - floor) / (1 - floor)) ** gamma``.
HIGHLIGHT_GAMMA = 0.7
#: Default ``alpha``: the highlight's opacity where the map is 1.
HIGHLIGHT_ALPHA = 0.8
#: Default ``alpha`` with a colour map (``cmap="jet"`` etc.), as before the highlight.
CMAP_ALPHA = 0.5
#: Colour map of the constant-opacity look (``fade=False``) when ``cmap`` is not given.
NO_FADE_CMAP = "jet"


def resolve_look(
    cmap: str | None = None, alpha: float | None = None, *, fade: bool = True
) -> tuple[str, float]:
    """The colour and opacity an overlay uses: ``(cmap, alpha)`` with the defaults filled in.

    Parameters
    ----------
    cmap : str, optional
        :data:`HIGHLIGHT` or a name in ``matplotlib.colormaps``. None: the
        highlight with ``fade``, :data:`NO_FADE_CMAP` (``"jet"``) without.
    alpha : float in [0, 1], optional
        Opacity where the map is 1. None: :data:`HIGHLIGHT_ALPHA` (0.8) for the
        highlight, :data:`CMAP_ALPHA` (0.5) for a colour map.
    fade : bool
        Opacity following the map (default) or constant.

    Returns
    -------
    (str, float)

    Raises
    ------
    ValueError
        Unknown colour map; ``alpha`` outside [0, 1]; the highlight without
        ``fade`` (one colour at one opacity everywhere shows nothing of the map).
    """
    if cmap is None:
        cmap = HIGHLIGHT if fade else NO_FADE_CMAP
    if cmap == HIGHLIGHT:
        if not fade:
            raise ValueError(
                "the highlight is one colour whose opacity follows the map; without fading it "
                "would tint the whole frame evenly: give a colour map (e.g. cmap='jet')"
            )
    elif cmap not in matplotlib.colormaps:
        raise ValueError(
            f"unknown colour map {cmap!r}: {HIGHLIGHT!r} or a matplotlib colour map such as "
            "'jet', 'viridis', 'magma'"
        )
    if alpha is None:
        alpha = HIGHLIGHT_ALPHA if cmap == HIGHLIGHT else CMAP_ALPHA
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return cmap, alpha


def highlight_ramp(values: np.ndarray) -> np.ndarray:
    """The highlight's opacity per unit ``alpha``: ``clip((v - floor) / (1 - floor), 0, 1) ** gamma``.

    Parameters
    ----------
    values : np.ndarray
        Map values in [0, 1] (e.g. the probability that a location makes the
        sound); not renormalised.

    Returns
    -------
    np.ndarray, float64, same shape
        0 for values up to :data:`HIGHLIGHT_FLOOR` (0.1), exactly 1 at 1,
        increasing in between (0.67 at 0.61, 0.5 at 0.43, 0.35 at 0.3).
    """
    v = np.asarray(values, dtype=np.float64)
    r = np.clip((v - HIGHLIGHT_FLOOR) / (1.0 - HIGHLIGHT_FLOOR), 0.0, 1.0)
    return r**HIGHLIGHT_GAMMA


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

    (With ``cmap=HIGHLIGHT`` every pixel is :data:`HIGHLIGHT_RGB`: the
    highlight shows the map by opacity alone.)

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
    """The values :func:`colorize` colours and the fade turns into opacity.

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
    if cmap == HIGHLIGHT:
        out = np.empty(values.shape + (3,), np.uint8)
        out[...] = HIGHLIGHT_RGB
        return out
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
    """(colour image, opacity): a float ``alpha``, or per pixel with fade.

    With fade the opacity is ``alpha * value`` for a colour map and ``alpha *
    highlight_ramp(value)`` for the highlight. ``value`` is first rounded to a
    multiple of 1/65536 (far finer than the 8-bit output) so that the float
    noise of bilinear upsampling (a map of ones upsamples to 0.99999994 here
    and there) leaves 0 and 1 exact. ``cmap`` and ``alpha`` are resolved
    (:func:`resolve_look`).
    """
    values = heatmap_values(heatmap, size, normalize)
    color = _color(values, cmap)
    if not fade:
        return color, alpha
    v = np.rint(values.astype(np.float64) * _FADE_STEPS) / _FADE_STEPS
    return color, alpha * (highlight_ramp(v) if cmap == HIGHLIGHT else v)


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
    alpha: float | None = None,
    cmap: str | None = None,
    *,
    normalize: bool = False,
    fade: bool = True,
    box: Box | None = None,
    box_color: Sequence[int] = (0, 255, 0),
    box_width: int = 2,
) -> np.ndarray:
    """Paint a heatmap over a frame.

    By default the map is the highlight: magenta whose opacity follows the
    calibrated map, ``alpha * highlight_ramp(value)`` per pixel, so a map that
    is ~0 everywhere (the model says nothing on screen sounds) leaves the frame
    as it is, a map peaking at 0.6 is clearly coloured there, and only
    confident locations get the full ``alpha`` (see the module docstring).

    Parameters
    ----------
    frame : np.ndarray, shape (H, W, 3), uint8
        RGB image.
    heatmap : np.ndarray, shape (h, w), float in [0, 1]
        Localisation map at any resolution (e.g. 14x14); upsampled bilinearly
        to (H, W). Values outside [0, 1] are clipped (or see ``normalize``).
    alpha : float in [0, 1], optional
        Weight of the colour layer where the map is 1: ``out = (1 - a) *
        frame + a * colour`` with ``a = alpha * highlight_ramp(value)`` (the
        highlight), ``a = alpha * value`` (a colour map, with ``fade``) or
        ``a = alpha`` (without ``fade``). 0 returns the frame unchanged.
        Default: 0.8 for the highlight, 0.5 for a colour map.
    cmap : str, optional
        None (default): the highlight (:data:`HIGHLIGHT`), or ``"jet"``
        without ``fade``. A name in ``matplotlib.colormaps`` colours the map
        with it (``"jet"``: the look before the highlight).
    normalize : bool
        Min-max normalise the (upsampled) heatmap to [0, 1] before colouring
        and fading (for raw scores or maps with a small range). The map's peak
        is then always opaque, so a silent frame looks as confident as any
        other; a constant map becomes zeros (with ``fade``: no colour at all).
    fade : bool
        Per-pixel opacity from the map (``value`` after the optional
        normalisation): the calibrated intensity, the default. ``False``: a
        constant opacity ``alpha`` everywhere with a colour map (the same bytes
        as before fading existed).
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

    Raises
    ------
    ValueError
        See :func:`resolve_look`; a bad frame or heatmap.
    """
    f = _check_frame(frame)
    cmap, alpha = resolve_look(cmap, alpha, fade=fade)
    color, opacity = _layer(heatmap, f.shape[:2], alpha, cmap, normalize, fade)
    out = blend(f, color, opacity)
    if box is not None:
        draw_box(out, box, box_color, box_width)
    return out


# ---------------------------------------------------------------------------
# Legend
# ---------------------------------------------------------------------------

#: The legend's caption for calibrated maps (AVOL-Net's sigmoid values).
LEGEND_LABEL = "probability that the spot makes the sound"
#: The legend's caption with ``normalize=True``.
LEGEND_LABEL_NORMALIZED = "map stretched to [0, 1] per frame (not a probability)"
#: The legend's ticks: map values and their labels.
LEGEND_TICKS = ((0.0, "0"), (0.5, "0.5"), (1.0, "1"))
_STRIP_BG = (24, 24, 28)
_STRIP_FG = (236, 236, 236)
_CHECKER = (96, 160)  # the grey squares behind the bar: opacity shows as see-through


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError):  # no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: float) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels ("" if not even that fits)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "\u2026", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "\u2026" if text else ""


def legend_strip(
    width: int,
    *,
    alpha: float | None = None,
    cmap: str | None = None,
    fade: bool = True,
    normalize: bool = False,
    label: str | None = None,
) -> np.ndarray:
    """A legend to put below an overlay: the colour / opacity ramp from 0 to 1, ticks, a caption.

    The bar is drawn by the overlay's own code (:func:`overlay` of a map
    rising from 0 at its left end to 1 at its right end) over grey squares,
    so it shows exactly what a value does to a frame, opacity included: with
    the highlight its left end (values up to :data:`HIGHLIGHT_FLOOR`) is the
    bare squares. Below it the ticks of :data:`LEGEND_TICKS`; the caption
    goes right of the bar, or on a line of its own when the strip is narrow
    (cut with an ellipsis if it still does not fit).

    Parameters
    ----------
    width : int
        The strip's width in pixels: the frame's width.
    alpha, cmap, fade, normalize
        The overlay's look (:func:`overlay`); ``normalize`` only changes the
        default caption (the bar's values are 0 .. 1 either way).
    label : str, optional
        Caption; default :data:`LEGEND_LABEL`, or
        :data:`LEGEND_LABEL_NORMALIZED` with ``normalize``.

    Returns
    -------
    np.ndarray, shape (h, width, 3), uint8
        The text is about 3 % of ``width`` high (10 to 24 px); ``h`` is 45 px
        for frames up to 300 px wide and at most 110 px (e.g. 62 for 640,
        80 for 1280).
    """
    from PIL import Image, ImageDraw

    W = int(width)
    if W <= 0:
        raise ValueError(f"width must be positive, got {width}")
    cmap, alpha = resolve_look(cmap, alpha, fade=fade)
    if label is None:
        label = LEGEND_LABEL_NORMALIZED if normalize else LEGEND_LABEL
    fs = int(np.clip(round(W * 0.03), 10, 24))  # text size
    pad = max(3, fs // 2)
    bar_h = max(6, fs)
    tick = max(2, fs // 3)
    font = _font(fs)
    probe_draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    bar_w = max(1, min(W - 2 * pad, max(8 * fs, int(0.3 * W))))
    beside = W - 2 * pad - bar_w - pad  # room for the caption right of the bar
    caption_beside = beside >= probe_draw.textlength(label, font=font)
    H = pad + bar_h + tick + fs + pad + (0 if caption_beside else fs + pad // 2)
    img = Image.new("RGB", (W, H), _STRIP_BG)
    # The bar: the overlay of a rising map over grey squares.
    x0, y0 = pad, pad
    yy, xx = np.mgrid[0:bar_h, 0:bar_w]
    sq = max(2, bar_h // 2)
    grey = np.where((yy // sq + xx // sq) % 2 == 0, *_CHECKER).astype(np.uint8)
    checker = np.repeat(grey[..., None], 3, axis=-1)
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, bar_w), (bar_h, bar_w))
    bar = overlay(checker, np.ascontiguousarray(ramp), alpha, cmap, fade=fade)
    img.paste(Image.fromarray(bar), (x0, y0))
    draw = ImageDraw.Draw(img)
    draw.rectangle((x0 - 1, y0 - 1, x0 + bar_w, y0 + bar_h), outline=_STRIP_FG)
    # Ticks and their labels: the end labels inside the bar's span, drawn first; a
    # label that would touch one already drawn is left out (very narrow strips).
    ends = [t for t in LEGEND_TICKS if t[0] in (0.0, 1.0)]
    taken: list[tuple[float, float]] = []
    for v, text in ends + [t for t in LEGEND_TICKS if t not in ends]:
        x = x0 + round(v * (bar_w - 1))
        draw.line((x, y0 + bar_h, x, y0 + bar_h + tick - 1), fill=_STRIP_FG)
        tw = draw.textlength(text, font=font)
        tx = min(max(x - tw / 2, x0), x0 + bar_w - tw)
        if any(tx < b + fs / 3 and a < tx + tw + fs / 3 for a, b in taken):
            continue
        taken.append((tx, tx + tw))
        draw.text((tx, y0 + bar_h + tick), text, font=font, fill=_STRIP_FG)
    if caption_beside:
        draw.text((x0 + bar_w + 2 * pad, y0 + (bar_h - fs) / 2), label, font=font, fill=_STRIP_FG)
    else:
        text = _fit(draw, label, font, W - 2 * pad)
        draw.text((pad, y0 + bar_h + tick + fs + pad // 2), text, font=font, fill=_STRIP_FG)
    return np.asarray(img, dtype=np.uint8).copy()


def with_legend(image: np.ndarray, **look) -> np.ndarray:
    """``image`` with :func:`legend_strip` of its width below it (``look``: its keywords)."""
    img = _check_frame(image)
    return np.concatenate([img, legend_strip(img.shape[1], **look)], axis=0)


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
    alpha: float | None = None,
    cmap: str | None = None,
    normalize: bool = False,
    fade: bool = True,
    legend: bool = True,
    legend_label: str | None = None,
    **overlay_kwargs,
) -> Path:
    """Write :func:`overlay` of ``frame`` and ``heatmap`` as a PNG, atomically, with a legend.

    Parameters
    ----------
    path : path-like
        Output file (parent directories are created).
    frame : np.ndarray, shape (H, W, 3), uint8
    heatmap : np.ndarray, shape (h, w)
    box : (x0, y0, x1, y1), optional
        Ground-truth box to outline.
    alpha, cmap : optional
        The look (default: the highlight at 0.8; see :func:`overlay`).
    normalize : bool
        Per-map stretch to [0, 1]: a silent frame then looks as confident as
        any other.
    fade : bool
        Opacity from the map, the calibrated intensity (default: a map of
        zeros leaves the frame unchanged); ``False``: constant ``alpha`` with a
        colour map. See :func:`overlay`.
    legend : bool
        Add :func:`legend_strip` below the frame (default): the frame's pixels
        stay where they are and nothing of them is covered, the picture gets
        taller. ``False``: the (H, W) overlay alone.
    legend_label : str, optional
        The legend's caption (default: :data:`LEGEND_LABEL`, or
        :data:`LEGEND_LABEL_NORMALIZED` with ``normalize``).
    **overlay_kwargs
        ``box_color``, ``box_width``.

    Returns
    -------
    Path
        The written file; an RGB PNG of width W whose first H rows are the
        overlay (all of it without ``legend``).
    """
    look = {"alpha": alpha, "cmap": cmap, "fade": fade, "normalize": normalize}
    img = overlay(frame, heatmap, box=box, **look, **overlay_kwargs)
    if legend:
        img = with_legend(img, label=legend_label, **look)
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
    alpha: float | None = None,
    *,
    cmap: str | None = None,
    normalize: bool = False,
    fade: bool = True,
    legend: bool = False,
    legend_label: str | None = None,
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
    alpha : float in [0, 1], optional
        Weight of the colour layer where the map is 1 (default: 0.8 for the
        highlight, 0.5 for a colour map; see :func:`overlay`).
    cmap : str, optional
        None: the highlight (``"jet"`` without ``fade``); or a matplotlib
        colour map name (see :func:`overlay`).
    normalize : bool
        Min-max normalise each frame's heatmap to [0, 1] on its own before
        colouring and fading: the peak is always opaque, so a silent frame
        looks as confident as any other (default: the calibrated values).
    fade : bool
        Per-pixel opacity from the map (``value`` after the optional
        normalisation), the default: frames where the model says nothing on
        screen sounds stay as they are. ``False``: constant opacity ``alpha``
        with a colour map (every frame fully tinted, a map of zeros in the
        colour map's low colour).
    legend : bool
        Add :func:`legend_strip` below every frame: the video is then taller
        than the source (padded to an even height). Default False: the
        output keeps the source's frame size, so it lines up with the source
        and with other analyses of it.
    legend_label : str, optional
        The legend's caption (see :func:`write_overlay_png`).
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
    cmap, alpha = resolve_look(cmap, alpha, fade=fade)
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
        look = {"alpha": alpha, "cmap": cmap, "fade": fade, "normalize": normalize}
        strip = {**look, "label": legend_label} if legend else None
        with av.open(str(src_video)) as inp:
            _transcode(inp, tmp, track, alpha, cmap, normalize, audio, crf, preset, fade, strip)
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
    inp, tmp: Path, track, alpha, cmap, normalize, audio_mode, crf, preset, fade, legend
) -> None:
    """Blend and encode every frame; ``legend``: :func:`legend_strip`'s keywords, or None."""
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
    strip = legend_strip(W, **legend) if legend is not None else None
    Hs = H + (0 if strip is None else strip.shape[0])
    We, He = W + (W % 2), Hs + (Hs % 2)

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
                    if strip is not None:
                        mixed = np.concatenate([mixed, strip], axis=0)
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
