"""A small synthetic audio-visual data set with exact ground truth.

:func:`make_demo_data` renders short MP4 clips from the curated Tux Paint stamps
that ship with the package (``looklisten/assets/stamps``: a photo cut-out and a
recording of the same thing per stamp, GPL-2, see ``LICENSE.md`` there). Each
clip shows one or two stamps on a random background while the sound of one of
them plays, and ``annotations.jsonl`` says which object is where in every frame
and which one is sounding when, so that correspondence, retrieval and
localisation can be checked against the truth.

Clip content
------------
* Background: a smooth colour gradient or blurred colour noise, new per clip.
* Objects: one (70 % of the clips) or two stamps of distinct classes (30 %),
  alpha-composited. Each object lives in its own area of the frame, so two never
  overlap. Where, and how large, depends on ``layout``:

  - ``"train"`` (the default, for training sets): object size (square root of the
    box area) is 45-70 % of the frame height, capped to fit; one object roams the
    whole frame, two live in the left and right halves. Large objects are mostly
    near the centre, so a centred prior localises them well.
  - ``"anywhere"`` (evaluation sets): object size is log-uniform in 15-70 % of
    the frame height (capped so that the object fits its area) and the position is
    uniform over wherever the object fits, so objects appear at the corners and
    edges as often as anywhere else. One object's area is the whole frame; two
    objects get the two sides of a random vertical or horizontal line at 35-65 %
    of the frame's width or height.
  - ``"mixed"`` (the demo's training sets): each clip is laid out ``"anywhere"``
    with probability :data:`MIXED_ANYWHERE_FRACTION`, ``"train"`` otherwise, so
    that a test set laid out ``"anywhere"`` is in the training distribution while
    large objects still teach what each thing looks like.

  In half of the clips the objects stay still, in the other half they drift
  linearly and bounce off the edges of their area.
* Sound: one object at a time. A single object sounds for the whole clip; with two
  objects the sounding one switches once or twice at random times (segments of at
  least 1.5 s). The object's recording starts at a random offset and repeats with
  0.05-0.35 s gaps, so nearly every 1 s window holds some of it; white or pink
  noise is added at 10-25 dB SNR and the mix is peak-normalised to 0.9.
* Encoding: H.264 (libx264, ``veryfast``, CRF 23, GOP 15 frames) + AAC, mono,
  48 kHz (the L3-Net rate), through :func:`looklisten.media.video.write_video`.

Digits
------
``kind="digits"`` shows handwritten MNIST digits (ink of a contrasting colour)
while a voice says one of them: the training split's writers and voices, or the
test split's (other writers, voices never used for training, two human speakers).
Training sets (``split="train"``) are by default :data:`DIGITS_TRAIN_VIDEOS` clips
of :data:`DIGITS_TRAIN_DURATION` s with every exemplar made anew (``vary``,
:mod:`looklisten.data.augment`): each digit's strokes warped and thickened or
thinned, each recording sped up or slowed down, coloured by a random spectral
envelope and sometimes reverberated. With a few hundred long clips of the shipped
exemplars as they are, a network pairs each clip's own look with its own sound
instead of learning the digits (docs/results/digits.md). Test sets keep the
held-out writers and voices as they are.

Annotations
-----------
One JSON object per clip and line of ``annotations.jsonl``::

    {"file": "clip_00000.mp4", "duration": 6.0, "fps": 15.0, "width": 256,
     "height": 192, "sample_rate": 48000,
     "objects": [{"label": "dog", "category": "animals/mammals/dogs",
                  "boxes": [[x0, y0, x1, y1], ...]}],
     "sounding": [{"start": 0.0, "end": 6.0, "object": 0}],
     "labels": ["dog"], "split_hint": null,
     "moving": false, "background": "gradient",
     "noise": {"type": "pink", "snr_db": 17.3}}

Clips of ``layout="anywhere"`` also have ``"layout": "anywhere"``. Digits clips
also have ``"kind"``, ``"split"``, ``"voice"`` and each object's MNIST ``"exemplar"``;
with ``vary``, each object's ``"strokes"`` and the clip's ``"voice_variants"`` (one
per recording heard, in order) give the variation drawn.

* ``boxes`` has one box per video frame; frame ``i`` is displayed at time
  ``i / fps``. Boxes are integer pixels with exclusive ends (the visible,
  alpha > 0, pixels of the object are ``frame[y0:y1, x0:x1]``), the convention of
  :mod:`looklisten.evaluation.map_metrics`.
* ``sounding`` intervals are in seconds (rounded to 1 ms, exactly what was
  rendered: sample ``n`` belongs to the interval containing ``n / sample_rate``),
  cover ``[0, duration]`` without gaps, and ``object`` indexes ``objects``.

Sounds from nothing on screen
-----------------------------
With ``negatives=p`` (``make-demo-data --negatives P``) a share ``p`` of the
clips has one segment (1.5 to 3 s, anywhere) whose sound no visible object
makes. Its ``object`` is ``null`` and ``source`` says what sounds::

    {"start": 2.1, "end": 4.3, "object": null, "source": "offscreen", "label": "cat"}

* ``"silence"``: nothing but the clip's background noise;
* ``"noise"``: noise only (pink or white), as loud as the recordings;
* ``"offscreen"``: the recording of a class not shown (``label``; digits: a
  digit not written in the frame, the same voice).

Training treats a window lying mostly in such a segment as a negative
(looklisten.data.sampler), and ``eval localization`` scores its frames as
negatives (``negative_audio.in_video``).

Generation is deterministic given ``seed`` (same annotations; the encoded files
may differ in bits) and independent of ``workers``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from looklisten.data.augment import vary_strokes, vary_voice

#: Audio sample rate of the generated clips, Hz.
SAMPLE_RATE = 48000

#: Default classes: 25 stamps that look and sound clearly different (distinct
#: silhouettes / colours, distinct timbre; recordings of at least ~0.9 s).
DEFAULT_CLASSES: list[str] = [
    # 16 classes that differ in shape, colour and timbre: enough to make the tasks
    # non-trivial, few enough that a tiny network learns them on a CPU in minutes
    # (pass classes=available_classes() for all of them).
    # mammals
    "dog",
    "cow",
    "lion",
    "elephant",
    "sheep",
    "chimp",
    # birds, frog, insect
    "rooster",
    "duck",
    "owl",
    "frog",
    "bee",
    # instruments
    "violin",
    "drumkit",
    # household, tools, vehicles
    "kettle",
    "saw",
    "firetruck",
]

#: What the clips can show (``kind=``): Tux Paint stamps, or handwritten and spoken digits.
KINDS = ("stamps", "digits")
#: Exemplar splits of the digits (``split=``): disjoint writers and voices.
SPLITS = ("train", "test")
DIGIT_CLASSES: list[str] = [str(d) for d in range(10)]
#: Clips and their length (s) by default.
DEFAULT_VIDEOS, DEFAULT_DURATION = 240, 6.0
#: The digits' training sets by default: many short clips, each with its own
#: handwriting and voice (``vary``), so that pairing a clip's look with its sound
#: costs more than recognising the digit (benchmarks/digits_categories.py).
DIGITS_TRAIN_VIDEOS, DIGITS_TRAIN_DURATION = 2000, 2.0

TWO_OBJECT_FRACTION = 0.3
MOVING_FRACTION = 0.5
SIZE_RANGE = (0.45, 0.7)  # sqrt(box area) / frame height
#: Object placements (``layout=``): large central objects, objects anywhere in the
#: frame from small to large, or a clip-by-clip mix of the two (see the module docstring).
LAYOUTS = ("train", "anywhere", "mixed")
#: Share of a ``"mixed"`` layout's clips laid out ``"anywhere"`` (the others: ``"train"``).
MIXED_ANYWHERE_FRACTION = 0.5
ANYWHERE_SIZE_RANGE = (0.15, 0.7)  # sqrt(box area) / frame height, log-uniform
ANYWHERE_SPLIT_RANGE = (0.35, 0.65)  # where the line between two objects' areas lies
SPEED_RANGE = (15.0, 45.0)  # px / s
MIN_SEGMENT = 1.5  # s, shortest sounding segment in two-object clips
GAP_RANGE = (0.05, 0.35)  # s, silence between repetitions of a recording
SNR_RANGE = (10.0, 25.0)  # dB
ALPHA_FLOOR = 8  # alpha below this is made fully transparent
X264_OPTIONS = {"preset": "veryfast", "crf": "23", "g": "15"}


# --------------------------------------------------------------------------- assets


def _assets():
    return resources.files("looklisten").joinpath("assets").joinpath("stamps")


@functools.lru_cache(maxsize=1)
def stamp_index() -> dict[str, dict[str, Any]]:
    """The curated stamps, ``{name: entry}`` (see ``assets/stamps/index.json``)."""
    index = json.loads(_assets().joinpath("index.json").read_text(encoding="utf-8"))
    return {s["name"]: s for s in index["stamps"]}


def available_classes() -> list[str]:
    """Names of all curated stamps (valid values for ``classes=``)."""
    return sorted(stamp_index())


@functools.cache
def _stamp_image(name: str) -> np.ndarray:
    """The stamp picture, straight-alpha RGBA uint8, shape (h, w, 4)."""
    entry = stamp_index()[name]
    with _assets().joinpath(entry["image"]).open("rb") as f:
        im = Image.open(f)
        im.load()
    return np.asarray(im.convert("RGBA"))


@functools.cache
def stamp_sound(name: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The stamp's recording, mono float32 at ``sample_rate``."""
    from looklisten.media.video import read_audio

    entry = stamp_index()[name]
    with resources.as_file(_assets().joinpath(entry["sound"])) as path:
        x = np.asarray(read_audio(path, 0.0, None, sample_rate), dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    return np.ascontiguousarray(x.reshape(-1))


def _digit_assets():
    return resources.files("looklisten").joinpath("assets").joinpath("digits")


@functools.lru_cache(maxsize=1)
def digit_index() -> dict[str, Any]:
    """The curated digits (see ``assets/digits/index.json`` and ``LICENSE.md``)."""
    return json.loads(_digit_assets().joinpath("index.json").read_text(encoding="utf-8"))


def digit_voices(split: str) -> list[str]:
    """Names of the voices of ``split`` ("train" or "test"), sorted."""
    return sorted(v["name"] for v in digit_index()["voices"] if v["split"] == split)


@functools.cache
def _digit_images(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNIST images of ``split``: (N, 28, 28) uint8, their labels and source rows."""
    with _digit_assets().joinpath("images.npz").open("rb") as f:
        z = np.load(f, allow_pickle=False)  # plain arrays only, never a pickle
        return z[f"{split}_images"], z[f"{split}_labels"], z[f"{split}_source_index"]


@functools.cache
def digit_sound(voice: str, digit: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``voice`` saying ``digit``, mono float32 at ``sample_rate``."""
    from looklisten.media.video import read_audio

    entry = next(v for v in digit_index()["voices"] if v["name"] == voice)
    with resources.as_file(_digit_assets().joinpath(entry["files"][int(digit)])) as path:
        x = np.asarray(read_audio(path, 0.0, None, sample_rate), dtype=np.float32)
    return np.ascontiguousarray(x.mean(axis=0) if x.ndim == 2 else x.reshape(-1))


def _digit_sprite(
    split: str,
    digit: int,
    rng: np.random.Generator,
    ink: np.ndarray,
    vary: np.random.Generator | None = None,
):
    """A random handwritten ``digit`` of ``split`` in colour ``ink``: RGBA, exemplar id
    and, with ``vary`` (a generator), the stroke variation drawn from it (else None)."""
    images, labels, source = _digit_images(split)
    i = int(rng.choice(np.flatnonzero(labels == digit)))
    image, params = images[i], None
    if vary is not None:
        image, params = vary_strokes(image, vary)
    # MNIST's strokes have a faint fringe that, upscaled, tints the whole box: keep
    # the strokes (grey level 0.25 -> transparent, 0.75 -> opaque).
    alpha = np.clip((image / 255.0 - 0.25) * 2.0, 0.0, 1.0)
    alpha = np.rint(alpha * 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha >= ALPHA_FLOOR)
    alpha = alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    rgba = np.empty((*alpha.shape, 4), np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = alpha
    return rgba, f"mnist-{split}-{int(source[i])}", params


def _ink(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A stroke colour that contrasts with ``background`` (uint8 (h, w, 3))."""
    luma = float(background.reshape(-1, 3).mean(axis=0) @ np.array([0.299, 0.587, 0.114]))
    return rng.integers(0, 60, 3) if luma > 110 else rng.integers(200, 256, 3)


# --------------------------------------------------------------------------- planning


def _plan(
    videos: int, seed: int, classes: list[str], voices: list[str] | None = None
) -> list[dict[str, Any]]:
    """Labels, motion (and voice, for digits) per clip, balanced over classes and voices."""
    rng = np.random.default_rng(seed)
    n_two = int(round(TWO_OBJECT_FRACTION * videos)) if len(classes) >= 2 else 0
    two = np.zeros(videos, bool)
    two[rng.permutation(videos)[:n_two]] = True
    moving = np.zeros(videos, bool)
    moving[rng.permutation(videos)[: int(round(MOVING_FRACTION * videos))]] = True
    deck: list[str] = []

    def draw(exclude: str | None = None) -> str:
        if not any(c != exclude for c in deck):
            deck.extend(classes[i] for i in rng.permutation(len(classes)))
        j = next(j for j, c in enumerate(deck) if c != exclude)
        return deck.pop(j)

    plans = []
    for k in range(videos):
        labels = [draw()]
        if two[k]:
            labels.append(draw(exclude=labels[0]))
        plans.append({"index": k, "labels": labels, "moving": bool(moving[k])})
    if voices:  # every voice about equally often, in random order
        order = np.concatenate(
            [rng.permutation(len(voices)) for _ in range(-(-videos // len(voices)))]
        )
        for p, v in zip(plans, order):
            p["voice"] = voices[int(v)]
    return plans


# --------------------------------------------------------------------------- rendering


def clip_background(seed: int, index: int, size: tuple[int, int]) -> np.ndarray:
    """The background of clip ``index`` (uint8, (H, W, 3)), as rendered."""
    return _background(np.random.default_rng((seed, index, 0)), size)[0]


def _background(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    W, H = size
    if rng.random() < 0.5:
        kind = "gradient"
        cols = rng.uniform(0, 255, (3, 3))
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        u = (xx - W / 2) * np.cos(ang) + (yy - H / 2) * np.sin(ang)
        v = -(xx - W / 2) * np.sin(ang) + (yy - H / 2) * np.cos(ang)
        u = (u - u.min()) / max(np.ptp(u), 1e-6)
        v = (v - v.min()) / max(np.ptp(v), 1e-6)
        w3 = rng.uniform(0.0, 0.6)
        img = cols[0] * (1 - u[..., None]) + cols[1] * u[..., None]
        img = img * (1 - w3 * v[..., None]) + cols[2] * (w3 * v[..., None])
    else:
        kind = "noise"
        cells = int(rng.integers(3, 10))
        gh, gw = cells, max(2, int(round(cells * W / H)))
        base = rng.uniform(40, 215, 3)
        grid = np.clip(base + rng.normal(0, rng.uniform(20, 60), (gh, gw, 3)), 0, 255)
        im = Image.fromarray(grid.astype(np.uint8), "RGB").resize((W, H), Image.Resampling.BICUBIC)
        im = im.filter(ImageFilter.GaussianBlur(radius=H / cells / 2.5))
        img = np.asarray(im, dtype=np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), kind


def _scaled_sprite(src: np.ndarray, side: float, max_w: float, max_h: float) -> np.ndarray:
    """RGBA ``src`` resized so that sqrt(w*h) ~ side, fitting (max_w, max_h); uint8 RGBA."""
    h0, w0 = src.shape[:2]
    s = min(side / math.sqrt(w0 * h0), max_w / w0, max_h / h0)
    w, h = max(2, int(round(w0 * s))), max(2, int(round(h0 * s)))
    im = Image.fromarray(src, "RGBA").convert("RGBa")
    im = im.resize((w, h), Image.Resampling.LANCZOS).convert("RGBA")
    out = np.asarray(im).copy()
    out[out[..., 3] < ALPHA_FLOOR] = 0
    return out


def _bounce(p: float, lo: float, hi: float) -> float:
    """Reflect ``p`` into [lo, hi] (triangle wave)."""
    span = hi - lo
    if span <= 0:
        return lo
    q = (p - lo) % (2 * span)
    return lo + (q if q <= span else 2 * span - q)


def _anywhere_areas(rng: np.random.Generator, W: int, H: int) -> list[tuple[int, int, int, int]]:
    """Two objects' areas, layout "anywhere": the sides of a random vertical or horizontal line."""
    frac = rng.uniform(*ANYWHERE_SPLIT_RANGE)
    if rng.random() < 0.5:  # a vertical line: left and right
        c = int(round(frac * W))
        areas = [(0, 0, c, H), (c, 0, W, H)]
    else:  # a horizontal line: top and bottom
        c = int(round(frac * H))
        areas = [(0, 0, W, c), (0, c, W, H)]
    if rng.random() < 0.5:
        areas.reverse()
    return areas


def _anywhere_side(rng: np.random.Generator, area: tuple[int, ...], H: int, margin: int) -> float:
    """An object's sqrt(area) in pixels, layout "anywhere": log-uniform, capped to fit ``area``."""
    ax0, ay0, ax1, ay1 = area
    hi = min(ANYWHERE_SIZE_RANGE[1] * H, 0.95 * (min(ax1 - ax0, ay1 - ay0) - 2 * margin))
    lo = min(ANYWHERE_SIZE_RANGE[0] * H, hi)
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def coloured_noise(rng: np.random.Generator, n: int, colour: str = "pink") -> np.ndarray:
    """``n`` samples of white, pink (1/f power) or brown (1/f^2) noise, unit std, float64."""
    if colour not in ("white", "pink", "brown"):
        raise ValueError(f"colour must be white, pink or brown, got {colour!r}")
    x = rng.standard_normal(n)
    if colour != "white":
        spec = np.fft.rfft(x)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        x = np.fft.irfft(spec / (np.sqrt(f) if colour == "pink" else f), n)
    return x / (x.std() + 1e-12)


def _schedule(rng: np.random.Generator, n_obj: int, duration: float) -> list[dict[str, Any]]:
    if n_obj == 1:
        return [{"start": 0.0, "end": duration, "object": 0}]
    n_switch = int(rng.integers(1, 3))
    while n_switch > 0 and duration < (n_switch + 1) * MIN_SEGMENT:
        n_switch -= 1
    first = int(rng.integers(0, 2))
    if n_switch == 0:
        return [{"start": 0.0, "end": duration, "object": first}]
    free = duration - (n_switch + 1) * MIN_SEGMENT
    lengths = MIN_SEGMENT + free * rng.dirichlet(np.ones(n_switch + 1))
    cuts = [round(float(c), 3) for c in np.cumsum(lengths)[:-1]]
    edges = [0.0, *cuts, duration]
    return [
        {"start": edges[i], "end": edges[i + 1], "object": (first + i) % 2}
        for i in range(n_switch + 1)
    ]


#: What sounds in a segment that no visible object makes (``make_demo_data(negatives=...)``).
NULL_SOURCES = ("silence", "noise", "offscreen")


def _with_null_segment(
    rng: np.random.Generator,
    schedule: list[dict[str, Any]],
    duration: float,
    absent: list[str],
) -> list[dict[str, Any]]:
    """The schedule with one segment whose sound comes from nothing on screen.

    It lasts 1.5 s to half the clip (at most 3 s), anywhere; what sounds is
    silence (the background noise only), noise only, or an absent class
    (``absent``: classes not shown; none: noise). The segments it covers are cut.
    """
    source = NULL_SOURCES[int(rng.integers(len(NULL_SOURCES)))]
    if source == "offscreen" and not absent:
        source = "noise"
    length = float(rng.uniform(min(MIN_SEGMENT, duration / 2), min(3.0, duration / 2)))
    start = round(float(rng.uniform(0.0, duration - length)), 3)
    end = round(start + length, 3)
    # no sliver (< 0.5 s) of a segment before or after it: it takes the sliver over
    edges = sorted({0.0, float(duration), *(g["start"] for g in schedule)})
    start = max((b for b in edges if start - 0.5 < b <= start), default=start)
    end = min((b for b in edges if end <= b < end + 0.5), default=end)
    null: dict[str, Any] = {"start": start, "end": end, "object": None, "source": source}
    if source == "offscreen":
        null["label"] = absent[int(rng.integers(len(absent)))]
    out = []
    for seg in schedule:
        if seg["start"] < start:
            out.append({**seg, "end": min(seg["end"], start)})
        if seg["end"] > end:
            out.append({**seg, "start": max(seg["start"], end)})
    out.append(null)
    return sorted(out, key=lambda g: g["start"])


def _render_audio(
    rng: np.random.Generator,
    recordings: list[np.ndarray],
    schedule: list[dict[str, Any]],
    duration: float,
    sr: int,
    offscreen: np.ndarray | None = None,
    null_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    n = int(round(duration * sr))
    sig = np.zeros(n, np.float64)
    fade = int(0.01 * sr)
    level = float(np.mean([np.sqrt(np.mean(r**2)) for r in recordings]))
    for seg in schedule:
        s0, s1 = int(round(seg["start"] * sr)), min(n, int(round(seg["end"] * sr)))
        if seg["object"] is None and seg["source"] != "offscreen":
            if seg["source"] == "noise":  # noise only, as loud as the recordings
                burst = (
                    coloured_noise(null_rng, s1 - s0)
                    if null_rng.random() < 0.5
                    else (null_rng.standard_normal(s1 - s0))
                )
                burst *= level * null_rng.uniform(0.5, 1.5) / (burst.std() + 1e-12)
                f = min(fade, len(burst) // 2)
                if f:
                    burst[:f] *= np.linspace(0, 1, f)
                    burst[-f:] *= np.linspace(1, 0, f)
                sig[s0:s1] = burst
            continue  # silence: the background noise only
        rec = recordings[seg["object"]] if seg["object"] is not None else offscreen
        part = np.zeros(s1 - s0, np.float64)
        cursor = -int(rng.integers(0, len(rec)))
        while cursor < len(part):
            a, b = max(cursor, 0), min(cursor + len(rec), len(part))
            part[a:b] += rec[a - cursor : b - cursor]
            cursor += len(rec) + int(rng.uniform(*GAP_RANGE) * sr)
        f = min(fade, len(part) // 2)
        if s0 > 0 and f:
            part[:f] *= np.linspace(0, 1, f)
        if s1 < n and f:
            part[-f:] *= np.linspace(1, 0, f)
        sig[s0:s1] = part
    noise_type = "pink" if rng.random() < 0.5 else "white"
    noise = coloured_noise(rng, n) if noise_type == "pink" else rng.standard_normal(n)
    snr = float(rng.uniform(*SNR_RANGE))
    p_sig = float(np.mean(sig**2)) + 1e-12
    noise *= math.sqrt(p_sig / 10 ** (snr / 10)) / (noise.std() + 1e-12)
    mix = sig + noise
    mix *= 0.9 / max(float(np.max(np.abs(mix))), 1e-9)
    return mix.astype(np.float32), {"type": noise_type, "snr_db": round(snr, 2)}


def _render_clip(job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Render, encode and annotate one clip (runs in a worker process)."""
    from looklisten.media.video import write_video

    seed, k, labels = job["seed"], job["index"], job["labels"]
    digits = job["kind"] == "digits"
    W, H = job["size"]
    fps, duration, sr = job["fps"], job["duration"], job["sample_rate"]
    n_frames = max(1, int(round(duration * fps)))
    bg, bg_kind = _background(np.random.default_rng((seed, k, 0)), (W, H))
    rng = np.random.default_rng((seed, k, 1))
    anywhere = job["layout"] == "anywhere" or (
        job["layout"] == "mixed"  # a draw of its own: the clip's other draws stay as they were
        and np.random.default_rng((seed, k, 3)).random() < MIXED_ANYWHERE_FRACTION
    )

    # Areas: the whole frame, or the left and right halves (random order); layout
    # "anywhere": the two sides of a random vertical or horizontal line.
    if len(labels) == 1:
        areas = [(0, 0, W, H)]
    elif anywhere:
        areas = _anywhere_areas(rng, W, H)
    else:
        areas = [(0, 0, W // 2, H), (W // 2, 0, W, H)]
        if rng.random() < 0.5:
            areas.reverse()
    margin = 2
    # a stream of its own: the clip's other draws stay what they are without variation
    vary = np.random.default_rng((seed, k, 4)) if job["vary"] else None
    objects, tracks = [], []
    for label, (ax0, ay0, ax1, ay1) in zip(labels, areas):
        if anywhere:
            side = _anywhere_side(rng, (ax0, ay0, ax1, ay1), H, margin)
        else:
            side = rng.uniform(*SIZE_RANGE) * H
        if digits:
            ink = _ink(rng, bg[ay0:ay1, ax0:ax1])
            src, exemplar, strokes = _digit_sprite(job["split"], int(label), rng, ink, vary)
        else:
            src, exemplar, strokes = _stamp_image(label), label, None
        sprite = _scaled_sprite(
            src, side, 0.95 * (ax1 - ax0 - 2 * margin), 0.95 * (ay1 - ay0 - 2 * margin)
        )
        sh, sw = sprite.shape[:2]
        ys, xs = np.nonzero(sprite[..., 3])
        tight = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        lo = (ax0 + margin, ay0 + margin)
        hi = (ax1 - margin - sw, ay1 - margin - sh)
        p0 = (rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]))
        if job["moving"]:
            speed, ang = rng.uniform(*SPEED_RANGE), rng.uniform(0, 2 * np.pi)
            vel = (speed * math.cos(ang), speed * math.sin(ang))
        else:
            vel = (0.0, 0.0)
        pos = []
        for i in range(n_frames):
            t = i / fps
            pos.append(
                (
                    int(round(_bounce(p0[0] + vel[0] * t, lo[0], hi[0]))),
                    int(round(_bounce(p0[1] + vel[1] * t, lo[1], hi[1]))),
                )
            )
        tracks.append((sprite, pos))
        objects.append(
            {
                "label": label,
                "category": "digits" if digits else stamp_index()[label]["category"],
                "boxes": [[x + tight[0], y + tight[1], x + tight[2], y + tight[3]] for x, y in pos],
                **({"exemplar": exemplar} if digits else {}),
                **({"strokes": strokes} if strokes else {}),
            }
        )

    frames = np.empty((n_frames, H, W, 3), np.uint8)
    bgf = bg.astype(np.float32)
    for i in range(n_frames):
        fr = bgf.copy()
        for sprite, pos in tracks:
            x, y = pos[i]
            sh, sw = sprite.shape[:2]
            a = sprite[..., 3:4].astype(np.float32) / 255.0
            rgb = sprite[..., :3].astype(np.float32)
            reg = fr[y : y + sh, x : x + sw]
            reg *= 1.0 - a
            reg += rgb * a
        frames[i] = np.clip(np.rint(fr), 0, 255).astype(np.uint8)

    schedule = _schedule(rng, len(labels), duration)
    null_rng = np.random.default_rng((seed, k, 2))  # apart: other clips stay as they were

    variants = []

    def sound(label):
        x = digit_sound(job["voice"], int(label), sr) if digits else stamp_sound(label, sr)
        if vary is not None:  # every recording a voice of its own
            x, params = vary_voice(x, sr, vary)
            variants.append(params)
        return x

    recordings = [sound(label) for label in labels]
    offscreen = None
    if job["negatives"] > 0 and null_rng.random() < job["negatives"]:
        absent = [c for c in job["classes"] if c not in labels]
        schedule = _with_null_segment(null_rng, schedule, duration, absent)
        off = [g["label"] for g in schedule if g.get("source") == "offscreen"]
        offscreen = sound(off[0]) if off else None
    audio, noise = _render_audio(rng, recordings, schedule, duration, sr, offscreen, null_rng)

    name = f"clip_{k:05d}.mp4"
    options = dict(X264_OPTIONS)
    if job["threads"]:
        options["threads"] = str(job["threads"])
    write_video(Path(job["out_dir"]) / name, frames, fps, audio, sr, options=options)
    return k, {
        "file": name,
        "duration": duration,
        "fps": fps,
        "width": W,
        "height": H,
        "sample_rate": sr,
        "objects": objects,
        "sounding": schedule,
        "labels": list(labels),
        "split_hint": None,
        "moving": bool(job["moving"]),
        "background": bg_kind,
        "noise": noise,
        **({"kind": "digits", "split": job["split"], "voice": job["voice"]} if digits else {}),
        **({"voice_variants": variants} if variants else {}),
        **({"layout": "anywhere"} if anywhere else {}),
    }


# --------------------------------------------------------------------------- API


def make_demo_data(
    out_dir: str | os.PathLike,
    videos: int | None = None,
    seed: int = 0,
    *,
    size: tuple[int, int] = (224, 224),
    fps: float = 15.0,
    duration: float | None = None,
    classes: list[str] | None = None,
    kind: str = "stamps",
    split: str = "train",
    layout: str = "train",
    negatives: float = 0.0,
    vary: bool | None = None,
    voices: list[str] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write ``videos`` synthetic clips and ``annotations.jsonl`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Output folder (created). Files are ``clip_00000.mp4``, ... plus
        ``annotations.jsonl`` (see the module docstring for its format).
    videos : int, optional
        Number of clips. Default: :data:`DIGITS_TRAIN_VIDEOS` for digits training
        sets (``kind="digits", split="train"``), else 240.
    seed : int
        Random seed; the same seed (and arguments) gives the same annotations.
    size : (width, height)
        Frame size in pixels (both even).
    fps, duration : float
        Frame rate and clip length in seconds (default ``duration``:
        :data:`DIGITS_TRAIN_DURATION` for digits training sets, else 6).
    classes : list of str, optional
        Classes to use: stamp names (see :func:`available_classes`; default
        :data:`DEFAULT_CLASSES`), or digits ``"0"`` ... ``"9"`` (default all ten).
    kind : {"stamps", "digits"}
        What the clips show: Tux Paint stamps (one photo and one recording per
        class) or handwritten digits spoken by many voices (see :data:`KINDS`).
    split : {"train", "test"}
        Digits only: which exemplars to draw. ``"train"``: MNIST training-set
        writers and the training voices; ``"test"``: MNIST test-set writers (other
        people) and voices never used for training, including two human speakers.
        Stamps have a single exemplar per class, so only ``"train"`` is accepted.
    layout : {"train", "anywhere", "mixed"}
        Where the objects are and how large (see :data:`LAYOUTS` and the module
        docstring). ``"train"``: large objects, mostly near the centre.
        ``"anywhere"``: small to large objects anywhere in the frame, corners
        and edges included, for evaluation sets that a centred prior cannot solve.
        ``"mixed"``: half of the clips of each (training sets like the test).
    negatives : float
        Share of the clips with one segment whose sound no visible object
        makes: silence, noise only, or a class not shown (see "Sounds from
        nothing on screen" in the module docstring). 0: none.
    vary : bool, optional
        Digits only: turn every drawn handwritten digit and recording into a new
        exemplar (random warp and stroke width; speed, spectral envelope, room;
        :mod:`looklisten.data.augment`), so that no two clips share a look or a
        sound. Default: on for ``split="train"``, off for ``"test"`` (the held-out
        writers and voices as they are).
    voices : list of str, optional
        Digits only: speak with these voices of ``split`` (:func:`digit_voices`)
        only, e.g. the two human speakers of the test split. Default: all of them.
    workers : int
        Worker processes (spawned); ``<= 1`` renders in this process.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        ``out_dir``.
    """
    out = Path(out_dir)
    W, H = (int(v) for v in size)
    if W % 2 or H % 2 or W < 32 or H < 32:
        raise ValueError(f"size must be even and at least 32x32, got {size!r}")
    digits_train = kind == "digits" and split == "train"
    if videos is None:
        videos = DIGITS_TRAIN_VIDEOS if digits_train else DEFAULT_VIDEOS
    if duration is None:
        duration = DIGITS_TRAIN_DURATION if digits_train else DEFAULT_DURATION
    if videos < 1:
        raise ValueError(f"videos must be >= 1, got {videos}")
    if fps <= 0 or duration <= 0:
        raise ValueError("fps and duration must be positive")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if split not in SPLITS or (kind == "stamps" and split != "train"):
        allowed = list(SPLITS) if kind == "digits" else ["train"]
        raise ValueError(f"split for kind {kind!r} must be one of {allowed}, got {split!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    if not 0 <= negatives <= 1:
        raise ValueError(f"negatives must be in [0, 1], got {negatives}")
    if kind == "digits":
        known = DIGIT_CLASSES
        classes = [str(c) for c in (DIGIT_CLASSES if classes is None else classes)]
    else:
        known = available_classes()
        classes = list(DEFAULT_CLASSES if classes is None else classes)
    unknown = [c for c in classes if c not in known]
    if unknown or not classes:
        raise ValueError(f"unknown classes {unknown}; choose from {known}")
    classes = list(dict.fromkeys(classes))
    if voices is not None:
        known_voices = digit_voices(split) if kind == "digits" else []
        bad = [v for v in voices if v not in known_voices]
        if bad or not voices:
            raise ValueError(
                f"unknown voices {bad} for kind {kind!r}, split {split!r}; "
                f"choose from {known_voices}"
            )
        voices = list(dict.fromkeys(voices))
    elif kind == "digits":
        voices = digit_voices(split)
    if vary is None:
        vary = digits_train
    if vary and kind != "digits":
        raise ValueError("vary applies to kind='digits' only (a stamp is its class's exemplar)")
    out.mkdir(parents=True, exist_ok=True)

    workers = max(1, min(int(workers), videos))
    jobs = [
        {
            **p,
            "seed": int(seed),
            "size": (W, H),
            "fps": float(fps),
            "duration": float(duration),
            "sample_rate": SAMPLE_RATE,
            "out_dir": str(out),
            "threads": 1 if workers > 1 else 0,
            "kind": kind,
            "split": split,
            "layout": layout,
            "negatives": float(negatives),
            "vary": bool(vary),
            "classes": classes,
        }
        for p in _plan(videos, int(seed), classes, voices)
    ]
    from looklisten.core.progress import progress_bar

    bar = progress_bar(total=videos, desc="demo clips", unit="clip", disable=not progress)
    results: list[dict[str, Any] | None] = [None] * videos
    try:
        if workers == 1:
            for job in jobs:
                k, ann = _render_clip(job)
                results[k] = ann
                bar.update()
        else:
            from concurrent.futures import as_completed

            from looklisten.core.pool import process_pool

            with process_pool(workers) as ex:  # spawned (see looklisten.core.pool)
                for fut in as_completed([ex.submit(_render_clip, job) for job in jobs]):
                    k, ann = fut.result()
                    results[k] = ann
                    bar.update()
    finally:
        bar.close()
    text = "".join(json.dumps(a) + "\n" for a in results)
    tmp = out / ".annotations.jsonl.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out / "annotations.jsonl")
    return out


def load_annotations(directory: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read ``annotations.jsonl`` from ``directory``: ``{file name: annotation}``."""
    path = Path(directory) / "annotations.jsonl"
    anns = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                a = json.loads(line)
                anns[a["file"]] = a
    return anns


def off_screen(root: str | os.PathLike, videos) -> list[list[tuple[float, float]]] | None:
    """Per video (``.path`` relative to ``root``): the intervals (s) whose sound comes from
    nothing on screen, from ``root/annotations.jsonl``; None when there is none."""
    if not (Path(root) / "annotations.jsonl").is_file():
        return None
    anns = load_annotations(root)
    return [null_intervals(anns[v.path]) if v.path in anns else [] for v in videos]


def null_intervals(ann: dict[str, Any]) -> list[tuple[float, float]]:
    """The ``sounding`` segments of a clip whose sound no visible object makes."""
    return [(float(s["start"]), float(s["end"])) for s in ann["sounding"] if s["object"] is None]


def sounding_segment(ann: dict[str, Any], t: float) -> dict[str, Any]:
    """The ``sounding`` segment at time ``t`` seconds."""
    segs = ann["sounding"]
    for seg in segs:
        if seg["start"] <= t < seg["end"]:
            return seg
    return segs[0] if t < segs[0]["start"] else segs[-1]


def sounding_object(ann: dict[str, Any], t: float) -> int | None:
    """Index (into ``ann["objects"]``) of the object heard at time ``t`` seconds; None when
    the sound there comes from nothing on screen."""
    obj = sounding_segment(ann, t)["object"]
    return None if obj is None else int(obj)


def frame_index(ann: dict[str, Any], t: float) -> int:
    """Index of the frame displayed at time ``t`` (frame ``i`` shows ``[i/fps, (i+1)/fps)``)."""
    n = len(ann["objects"][0]["boxes"])
    return min(max(int(math.floor(t * ann["fps"] + 1e-6)), 0), n - 1)


def box_at(ann: dict[str, Any], obj: int, t: float) -> tuple[int, int, int, int]:
    """Box ``(x0, y0, x1, y1)`` of object ``obj`` in the frame displayed at time ``t``."""
    x0, y0, x1, y1 = ann["objects"][obj]["boxes"][frame_index(ann, t)]
    return int(x0), int(y0), int(x1), int(y1)


def label_at(ann: dict[str, Any], t: float) -> str | None:
    """Label of the object heard at time ``t``; None where the sound comes from nothing on
    screen (no label names both the picture and the sound there: retrieval skips it)."""
    obj = sounding_object(ann, t)
    return None if obj is None else ann["objects"][obj]["label"]
