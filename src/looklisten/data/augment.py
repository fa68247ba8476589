"""Render-time variation of the digits' exemplars: other strokes, other voices.

The digits ship 250 handwritten images and 27 voices per digit for training
(:mod:`looklisten.data.demo_data`). A network trained on a few hundred clips of
them pairs each clip's own look with its own sound (memorises the clip) rather
than learning what a "seven" looks and sounds like, and fails on writers and
voices it never met. These functions turn every drawn exemplar into a new one,
so that look and sound vary with everything but the digit.

* :func:`vary_strokes`: one random smooth warp of a handwritten digit's alpha
  (28 x 28): rotation, slant (shear), anisotropic scale and an elastic
  displacement, then thicker or thinner strokes.
* :func:`vary_voice`: one random variant of a recording: speed (pitch and tempo
  together, as a tape played faster or slower), a smooth random spectral
  envelope (formant-like EQ) and, sometimes, a small room's reverberation.

Both are deterministic given the generator and return their parameters for the
clip's annotation. The ranges are :data:`STROKE_RANGES` and :data:`VOICE_RANGES`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

#: Stroke variation: rotation (degrees), shear (x += shear * y), log2 of the x and y
#: scale, elastic displacement (pixels of the 28 x 28 digit, on a 4 x 4 control grid),
#: and the chance of thicker or of thinner strokes.
STROKE_RANGES: dict[str, Any] = {
    "rotate_deg": 12.0,
    "shear": 0.35,
    "log2_scale": 0.15,
    "elastic_px": 1.6,
    "thicker": 0.3,
    "thinner": 0.2,
}
#: Voice variation: speed factor (log-uniform; > 1 higher and faster), spectral
#: envelope (dB, standard deviation of each of ``eq_bands`` log-spaced bands), the
#: chance of reverberation and its decay time RT60 (s) and wet share.
VOICE_RANGES: dict[str, Any] = {
    "speed": (0.82, 1.22),
    "eq_db": 6.0,
    "eq_bands": 8,
    "reverb": 0.4,
    "rt60": (0.15, 0.6),
    "wet": (0.1, 0.4),
}


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``img`` (h, w) sampled at float coordinates (zero outside)."""
    h, w = img.shape
    pad = np.pad(img, 1)
    ys, xs = np.clip(ys + 1, 0, h + 0.999), np.clip(xs + 1, 0, w + 0.999)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h + 1), np.minimum(x0 + 1, w + 1)
    fy, fx = ys - y0, xs - x0
    top = pad[y0, x0] * (1 - fx) + pad[y0, x1] * fx
    bottom = pad[y1, x0] * (1 - fx) + pad[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def vary_strokes(alpha: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random variant of a handwritten digit.

    Parameters
    ----------
    alpha : (h, w) uint8
        The digit's strokes (opacity), e.g. an MNIST image.
    rng : numpy.random.Generator

    Returns
    -------
    (2h, 2w) uint8, dict
        The warped strokes at twice the resolution (so that thickness changes stay
        fine), and the parameters drawn.
    """
    r = STROKE_RANGES
    h, w = alpha.shape
    H, W = 2 * h, 2 * w
    rot = math.radians(rng.uniform(-r["rotate_deg"], r["rotate_deg"]))
    shear = float(rng.uniform(-r["shear"], r["shear"]))
    sx, sy = 2.0 ** rng.uniform(-r["log2_scale"], r["log2_scale"], 2)
    # inverse map: output pixel (x, y), centred, -> source pixel
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    u, v = (xx + 0.5) / 2 - w / 2, (yy + 0.5) / 2 - h / 2
    c, s = math.cos(rot), math.sin(rot)
    u, v = c * u + s * v, -s * u + c * v
    u, v = u / sx - shear * v / sy, v / sy
    # elastic: a smooth field, bilinear from a 4 x 4 grid of random displacements
    grid = rng.normal(0.0, r["elastic_px"], (2, 4, 4))
    gy, gx = yy * 3 / (H - 1), xx * 3 / (W - 1)
    dx, dy = (_bilinear(g, gy, gx) for g in grid)
    src = _bilinear(alpha.astype(np.float64), v + h / 2 - 0.5 + dy, u + w / 2 - 0.5 + dx)
    out = Image.fromarray(np.clip(np.rint(src), 0, 255).astype(np.uint8), "L")
    p = rng.random()
    stroke = "thicker" if p < r["thicker"] else "thinner" if p < r["thicker"] + r["thinner"] else ""
    if stroke == "thicker":
        out = out.filter(ImageFilter.MaxFilter(3))
    elif stroke == "thinner":
        out = out.filter(ImageFilter.MinFilter(3))
    params = {
        "rotate_deg": round(math.degrees(rot), 1),
        "shear": round(shear, 3),
        "scale": [round(float(sx), 3), round(float(sy), 3)],
        "stroke": stroke or "same",
    }
    return np.asarray(out), params


def _speed(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times faster (linear interpolation)."""
    n = max(2, int(round(len(x) / factor)))
    return np.interp(np.arange(n) * factor, np.arange(len(x)), x)


def vary_voice(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A random variant of a recording (mono float at ``sr`` Hz).

    Returns the variant (float32, peak as the input's) and the parameters drawn.
    """
    r = VOICE_RANGES
    x = np.asarray(x, np.float64)
    peak = float(np.max(np.abs(x))) or 1.0
    lo, hi = r["speed"]
    factor = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    y = _speed(x, factor)
    # spectral envelope: random gains (dB) at log-spaced band centres, 100 Hz .. sr/2
    spec = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1.0 / sr)
    centres = np.geomspace(100.0, sr / 2, r["eq_bands"])
    gains_db = rng.normal(0.0, r["eq_db"], r["eq_bands"])
    gain = 10 ** (np.interp(np.log(np.maximum(f, 1.0)), np.log(centres), gains_db) / 20)
    y = np.fft.irfft(spec * gain, len(y))
    params: dict[str, Any] = {"speed": round(factor, 3), "eq_db": np.round(gains_db, 1).tolist()}
    if rng.random() < r["reverb"]:
        rt60 = float(rng.uniform(*r["rt60"]))
        wet = float(rng.uniform(*r["wet"]))
        n = int(rt60 * sr)
        ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)  # -60 dB at rt60
        ir /= np.sqrt(np.sum(ir**2))
        m = len(y) + n - 1
        size = 1 << (m - 1).bit_length()
        tail = np.fft.irfft(np.fft.rfft(y, size) * np.fft.rfft(ir, size), size)[:m]
        y = (1 - wet) * np.pad(y, (0, n - 1)) + wet * tail
        params["reverb"] = {"rt60": round(rt60, 3), "wet": round(wet, 3)}
    y *= peak / max(float(np.max(np.abs(y))), 1e-9)
    return y.astype(np.float32), params
