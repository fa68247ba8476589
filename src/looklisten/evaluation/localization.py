"""``looklisten eval localization``: AVOL-Net against the truth and trivial baselines.

Evaluates an AVOL-Net checkpoint on annotated demo clips
(:mod:`looklisten.data.demo_data`: per-frame boxes of every object and which object
sounds when) and prints one JSON object.

Clips
-----
If DATA is the folder the checkpoint was trained on (the run's
``manifest.jsonl`` names it), only the run's held-out clips (``split.json``,
``"val"``) are used; otherwise every annotated clip. ``--split`` overrides.

Samples
-------
``--times`` (default 5) times per clip. Candidate times are the frame times
``t = i / fps`` whose 1 s audio window ``[t - 0.5, t + 0.5]`` lies inside the
clip and contains no switch of the sounding object (so the ground truth is
unambiguous); the samples are evenly spaced among the candidates. A sample is
the frame at ``t`` and the 1 s of the clip's audio centred on ``t``
(:mod:`looklisten.inputs.prepare`), and
the ground truth: the box of the object sounding at ``t`` (and, in two-object
clips, the other object's box).

Heatmaps
--------
The model: :func:`looklisten.tasks.localize.localize` machinery, ``--mode full``
(default: the whole frame, fully convolutional) or ``crop`` (the centre crop of
training; 0 outside it), placed on the frame at the original resolution. The
baselines, on the same samples, at the same resolution:

* ``centre_prior``: a centred Gaussian (sigma = 1/4 of each side),
  :func:`looklisten.evaluation.map_metrics.centre_prior`;
* ``whole_image``: a constant map (predicts every pixel; points at pixel
  (0, 0)), :func:`looklisten.evaluation.map_metrics.whole_image`;
* ``random_map``: uniform noise at the model's map resolution, upsampled
  bilinearly (seeded per sample), :func:`looklisten.evaluation.map_metrics.random_map`.

Metrics
-------
* cIoU (:func:`looklisten.evaluation.map_metrics.ciou`): every heatmap is bilinearly
  upsampled to the frame, min-max normalised to [0, 1], and **binarised**:

  - ``"median"`` (default, the LVS / EZ-VSL protocol): the pixels strictly
    above the median, i.e. the top half of the frame; a constant map predicts
    the whole frame.
  - reported alongside, ``"fixed_0.5"``: the pixels whose normalised value
    is above 0.5 (half of the map's range), whatever their number.

  Then ``cIoU = |pred & gt| / (|gt| + |pred & ~gt|)``, summarised as
  ``ciou@0.5`` (share of samples with cIoU >= 0.5), ``auc`` (area under the
  success-rate curve, thresholds 0, 0.05, ..., 1) and ``mean_ciou``.

  **Caveat**: with the median rule a map with distinct values always predicts
  half of the frame, so its cIoU is at most ``min(2g, 1 / (2g))`` where ``g``
  is the box's share of the frame: a box under a quarter of the frame can never
  reach cIoU 0.5 (the JSON reports this ceiling, ``ceiling``). cIoU@0.5 then
  rewards a map whose top half covers the *whole* box, corners included; a
  broad centred blob (the centre prior) does that for large objects near the
  centre, and a map that peaks on the object but is narrower than its box
  does not. So read it beside pointing, the two-object choice and
  ``by_objects`` (the same metrics on one-object and on two-object samples).
* ``pointing``: share of samples whose heatmap maximum lies in the sounding
  object's box (:func:`looklisten.evaluation.map_metrics.pointing_hit`).
* ``avol_minus_centre_prior``: AVOL-Net's cIoU@0.5, mean cIoU and pointing
  minus the centre prior's (the strongest trivial baseline), each with a 95 %
  paired bootstrap interval that resamples whole clips; an interval that
  spans 0 is a tie.
* ``two_object_accuracy``: on samples showing two objects, share where the
  heatmap's mean is higher inside the sounding object's box than inside the
  silent one's (:func:`looklisten.evaluation.map_metrics.two_object_choice`); chance 0.5.

Metrics with a ceiling of 1 (:func:`looklisten.evaluation.map_metrics.pixel_scores`)
--------------------------------------------------------------------------------
* ``pixel_ap``: average precision of the frame's pixels ranked by the map
  against the box mask, mean over samples (threshold-free, as DenseAV reports it).
  A constant map scores the box's share of the frame; a map high exactly on the
  box scores 1 whatever the box's size.
* ``best_threshold_iou``: the IoU of ``normalised map > thr`` against the box
  for ``thr`` in 0, 0.01, ..., 0.99: ``mean_iou`` at the single threshold that is
  best for the data set (chosen per method on the evaluated samples, so a little
  optimistic for every method alike; ``threshold`` says which), and
  ``per_image_best``, the mean of each sample's own best (an upper bound).
* ``ceiling`` stays the median rule's: the best cIoU any map can get when it
  predicts half of the frame.

Margins
-------
``avol_minus_best_baseline``: for pixel AP, best-threshold IoU (per sample, at each
method's own threshold), cIoU@0.5, mean cIoU and pointing, AVOL-Net minus the
trivial baseline that scores best *on that metric*, with a 95 % paired bootstrap
interval that resamples whole clips (an interval that spans 0 is a tie).

Breakdowns
----------
``by_objects`` (one / two objects shown), ``by_size`` (:data:`SIZE_BINS`:
sqrt(box area / frame area) of the sounding object) and ``by_distance``
(:data:`DISTANCE_BINS`: its centre's offset from the frame centre, 0 .. 1):
pixel AP, IoU at each method's data-set threshold, cIoU@0.5 and pointing of every
method on the samples of each bin. Build a test set that does not reward the
centre with ``make-demo-data --layout anywhere``.

Negative audio (``negative_audio``; ``negatives=False`` skips it)
----------------------------------------------------------------
Every frame's map is also computed for four sounds it should *not* light up for:

* ``silence``: an all-zero window;
* ``noise``: noise only (white, pink or brown at a random level:
  :func:`looklisten.data.sampler.null_sound`, drawn with ``seed``);
* ``absent_class``: another clip's window at a time when it sounds a class that
  is not shown in this frame (an off-screen source);
* ``other_clip``: another clip's window, whatever it sounds (other object
  instances; ``share_class_shown`` says how often its class is on screen, where a
  category-level localiser *should* light up).

For each, ``roc_auc`` is how well the map's peak (its maximum, the calibrated
probability that something shown sounds) tells the frame's own sound from the
negative one, with a 95 % interval resampling clips, and ``detect@0.5`` the share
of maps whose peak is at least 0.5. ``compare`` runs the same test with the
correspondence logit of other checkpoints (L3-Net, AVE-Net), on the same frames
and the same negative sounds, each with its own inputs. The partners are drawn
with ``seed``.

``detection`` scores the product's answer to "does a visible object make this
sound?" (:func:`detection_scores`): the checkpoint's calibrated probability
(:mod:`looklisten.models.detector`) for each frame with its own sound against
the same frames with all four negative sounds: precision, recall and F1 at the
threshold saved with the checkpoint, average precision over thresholds beside
its trivial baseline, the false-positive rate per kind of negative, and the
calibration (Brier score, expected calibration error).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from looklisten.core.config import MAP_MODES
from looklisten.data.demo_data import NULL_SOURCES
from looklisten.data.sampler import NULL_KINDS, null_sound
from looklisten.inputs.prepare import (
    audio_window,
    full_input_size,
    map_stride,
    read_frame_at,
    read_map_frame,
)
from looklisten.models.checkpoint import get_model
from looklisten.models.detector import logit_of
from looklisten.tasks.localize import heatmap_to_frame, maps_for

METHODS = ("avol", "centre_prior", "whole_image", "random_map")
FIXED_THRESHOLD = 0.5
#: The negative sounds a frame is also scored with (see :func:`evaluate_localization`).
NEGATIVES = ("silence", "noise", "absent_class", "other_clip")
#: Bins of the sounding object's size, sqrt(box area / frame area).
SIZE_BINS = {"small": (0.0, 0.25), "medium": (0.25, 0.45), "large": (0.45, math.inf)}
#: Bins of its centre's distance from the frame centre (0 centre, 1 border).
DISTANCE_BINS = {"centre": (0.0, 1 / 3), "middle": (1 / 3, 2 / 3), "edge": (2 / 3, math.inf)}
#: Metrics reported by size, by distance and by number of objects.
BY_METRICS = ("pixel_ap", "best_threshold_iou", "ciou@0.5", "pointing")
#: Metrics on which AVOL-Net is compared with the best trivial baseline.
VERSUS_METRICS = ("pixel_ap", "best_threshold_iou", "ciou@0.5", "mean_ciou", "pointing")


# ---------------------------------------------------------------------------
# Which clips, which times
# ---------------------------------------------------------------------------


def select_clips(
    data: str | os.PathLike, checkpoint: str | os.PathLike, anns: dict, split: str = "auto"
) -> tuple[list[str], str]:
    """Clip files to evaluate and the split used.

    Parameters
    ----------
    data : path-like
        The annotated folder.
    checkpoint : path-like
        The run (its ``split.json`` and ``manifest.jsonl`` say which clips it
        trained on).
    anns : dict
        ``load_annotations(data)``.
    split : {"auto", "val", "all"}
        ``"auto"``: the run's ``"val"`` clips when ``data`` is its training
        folder, else all. ``"val"`` demands the run's split.

    Returns
    -------
    (files, split_used)
    """
    if split not in ("auto", "val", "all"):
        raise ValueError(f"split must be 'auto', 'val' or 'all', got {split!r}")
    from looklisten.data.splits import run_split, same_dir
    from looklisten.models.checkpoint import run_dir

    root, run_split_json = run_split(checkpoint)
    if split == "auto":
        split = "val" if run_split_json is not None and same_dir(root, Path(data)) else "all"
    if split == "all":
        return sorted(anns), "all"
    if run_split_json is None:
        split_file = run_dir(checkpoint) / "split.json"
        raise FileNotFoundError(f"{split_file}: no split.json, cannot select the held-out clips")
    files = [Path(v).as_posix() for v in run_split_json["val"]]
    missing = [f for f in files if f not in anns]
    if missing:
        raise ValueError(
            f"{len(missing)} held-out clip(s) of the run have no annotation in {data} "
            f"(e.g. {missing[0]}); is DATA the training folder?"
        )
    return sorted(files), "val"


def sample_times(ann: dict[str, Any], k: int, window: float = 1.0) -> list[float]:
    """Up to ``k`` evenly spaced frame times with an unambiguous, in-clip audio window.

    Returns
    -------
    list of float
        Times ``i / fps`` (ascending) whose window ``[t - window/2, t + window/2]``
        lies in ``[0, duration]`` and contains no change of the sounding object.
    """
    fps, dur = float(ann["fps"]), float(ann["duration"])
    half = window / 2
    n = len(ann["objects"][0]["boxes"])
    switches = [float(s["start"]) for s in ann["sounding"][1:]]
    cands = []
    for i in range(n):
        t = i / fps
        if t - half < -1e-9 or t + half > dur + 1e-9:
            continue
        if any(t - half < b < t + half for b in switches):
            continue
        cands.append(t)
    if not cands:
        return []
    if len(cands) <= k:
        return cands
    idx = np.unique(np.round(np.linspace(0, len(cands) - 1, k)).astype(int))
    return [cands[i] for i in idx]


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def scaled_box(box, ann, H: int, W: int) -> tuple[float, float, float, float]:
    sx, sy = W / float(ann["width"]), H / float(ann["height"])
    x0, y0, x1, y1 = box
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def _full_frame(path: Path, t: float) -> np.ndarray:
    """The frame at ``t`` at full size, for pictures."""
    from looklisten.media.video import MediaReader

    with MediaReader(path) as reader:
        return read_frame_at(reader, t)


def _ceiling(g: float) -> float:
    """Best cIoU of a top-half prediction against a box covering a share g of the frame."""
    return min(2 * g, 1 / (2 * g)) if g > 0 else 0.0


def _ratio_bin(value: float, bins: dict[str, tuple[float, float]]) -> str:
    return next(k for k, (lo, hi) in bins.items() if lo <= value < hi)


def _object_geometry(box, H: int, W: int) -> tuple[float, float]:
    """(size, distance): sqrt of the box's share of the frame, and how far its centre is
    from the frame's centre (0 at the centre, 1 on the border; the larger of the x and
    y offsets, each over half the side)."""
    x0, y0, x1, y1 = box
    size = math.sqrt(max(0.0, (x1 - x0) * (y1 - y0)) / (H * W))
    dist = max(abs((x0 + x1) / 2 - W / 2) / (W / 2), abs((y0 + y1) / 2 - H / 2) / (H / 2))
    return size, min(dist, 1.0)


def _negative_partners(
    clips: list[int], sounding: list[str], shown: list[set[str]], seed: int
) -> dict[str, np.ndarray]:
    """For every sample, the sample whose audio is its negative sound (-1: none).

    ``absent_class``: a sample of another clip whose sounding label is not shown in
    this frame. ``other_clip``: a sample of another clip, whatever it sounds.
    """
    rng = np.random.default_rng([seed, 15])
    n = len(clips)
    c = np.asarray(clips)
    out = {"absent_class": np.full(n, -1), "other_clip": np.full(n, -1)}
    for i in range(n):
        other = np.flatnonzero(c != c[i])
        if not len(other):
            continue
        out["other_clip"][i] = int(rng.choice(other))
        absent = [j for j in other if sounding[j] not in shown[i]]
        if absent:
            out["absent_class"][i] = int(rng.choice(absent))
    return out


def _auc_with_interval(
    pos: np.ndarray, neg: np.ndarray, clips: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """ROC AUC of scores ``pos`` (true sound) vs ``neg`` (its negative), paired per
    sample, with a 95 % bootstrap interval that resamples whole clips."""
    from sklearn.metrics import roc_auc_score

    def auc(idx: np.ndarray) -> float:
        y = np.r_[np.ones(len(idx)), np.zeros(len(idx))]
        return float(roc_auc_score(y, np.r_[pos[idx], neg[idx]]))

    groups = np.unique(clips)
    members = [np.flatnonzero(clips == g) for g in groups]
    rng = np.random.default_rng([seed, 16])
    boots = [
        auc(np.concatenate([members[k] for k in rng.integers(0, len(groups), len(groups))]))
        for _ in range(n_boot)
    ]
    return {
        "roc_auc": round(auc(np.arange(len(pos))), 4),
        "ci95": [round(float(v), 4) for v in np.quantile(boots, [0.025, 0.975])],
        "samples": int(len(pos)),
    }


def _correspondence_scores(
    checkpoint, data: Path, samples: list[dict[str, Any]], partners, batch_size, device, seed
) -> dict[str, Any]:
    """An L3 / AVE (or any) checkpoint's correspondence logit for each frame with its own
    sound and with each negative sound, from that checkpoint's own inputs (the frame
    window or the flow of the motion models, AVE+MF and AVE+OF, included)."""
    import torch

    from looklisten.media.video import MediaReader

    model = get_model(checkpoint, device)
    cfg = model.cfg
    dev = next(model.parameters()).device
    images, waves = [], []
    by_clip: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_clip.setdefault(s["name"], []).append(i)
    images = [None] * len(samples)
    waves = [None] * len(samples)
    for name, idx in by_clip.items():
        with MediaReader(data / name) as reader:
            track = reader.read_audio(0.0, None, cfg.audio.sample_rate)
            for i in idx:
                t = samples[i]["t"]
                images[i] = model.inputs.frame(reader, t)[0]
                waves[i] = audio_window(track, t, cfg)
    n = len(samples)

    def logits(pairs: list[tuple[int, int]], sounds: list[np.ndarray]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for s in range(0, len(pairs), batch_size):
                chunk = pairs[s : s + batch_size]
                img = torch.stack([images[i] for i, _ in chunk]).to(dev)
                wav = np.stack([sounds[j] for _, j in chunk])
                out.append(model(img, torch.from_numpy(wav).to(dev))["logit"].float().cpu())
        return torch.cat(out).numpy()

    own = logits([(i, i) for i in range(n)], waves)
    res: dict[str, Any] = {"checkpoint": str(checkpoint), "arch": cfg.model.arch}
    clips = np.asarray([s["clip"] for s in samples])
    for kind in NEGATIVES:
        if kind in NULL_KINDS:  # this model's window length, the same seed
            idx = np.arange(n)
            neg = logits([(i, i) for i in idx], null_waves(kind, n, len(waves[0]), seed))
        else:
            idx = np.flatnonzero(partners[kind] >= 0)
            neg = logits([(int(i), int(partners[kind][i])) for i in idx], waves)
        res[kind] = _auc_with_interval(own[idx], neg, clips[idx])
    return res


def null_waves(kind: str, n: int, size: int, seed: int) -> list[np.ndarray]:
    """``n`` null sounds of ``size`` samples (silence, or noise drawn with ``seed``)."""
    rng = np.random.default_rng([seed, 25])
    return [null_sound(kind, size, rng) for _ in range(n)]


def evaluate_localization(
    data: str | os.PathLike,
    checkpoint,
    *,
    split: str = "auto",
    times_per_clip: int = 5,
    mode: str = "full",
    threshold: str | float = "median",
    max_clips: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str | None = None,
    negatives: bool = True,
    compare: Sequence[str | os.PathLike] = (),
    png_dir: str | os.PathLike | None = None,
    png_count: int = 12,
    progress: bool = False,
) -> dict[str, Any]:
    """Localisation metrics of an AVOL-Net and the trivial baselines (see the module docstring).

    Parameters
    ----------
    data : path-like
        Folder of annotated clips (``annotations.jsonl``, see
        :mod:`looklisten.data.demo_data`).
    checkpoint : path-like
        AVOL-Net run or checkpoint directory.
    split : {"auto", "val", "all"}
        Which clips (see :func:`select_clips`).
    times_per_clip : int
        Samples per clip.
    mode : {"full", "crop"}
        What the model sees (see :mod:`looklisten.tasks.localize`).
    threshold : {"median", "lvs"} or float
        Binarisation of the primary cIoU (:func:`looklisten.evaluation.map_metrics.ciou`).
    max_clips : int, optional
        Evaluate only the first clips (sorted by name).
    seed : int
        Seed of the random-map baseline and of the choice of negative sounds.
    batch_size : int
        Frames per forward pass.
    device : str, optional
        Default: cuda if available.
    negatives : bool
        Also compute the maps for negative sounds (``negative_audio``).
    compare : sequence of path-like
        Other runs (L3-Net, AVE-Net) whose correspondence logit is scored on the
        same frames and the same negative sounds (``negative_audio.compare``).
    png_dir : path-like, optional
        Write overlays of up to ``png_count`` samples (one per clip, two-object
        clips first), with the sounding object's box in green and the silent
        one's in red; with ``negatives``, also up to ``png_count // 2`` strips of
        the map for the true sound beside those for the negative sounds.
    progress : bool
        Progress bar.

    Returns
    -------
    dict
        JSON-ready; see the module docstring.
    """
    from looklisten.core.progress import progress_bar
    from looklisten.data.demo_data import load_annotations, sounding_object, sounding_segment
    from looklisten.evaluation.map_metrics import (
        IOU_THRESHOLDS,
        best_threshold_iou,
        box_mask,
        centre_prior,
        ciou,
        ciou_summary,
        pixel_scores,
        pointing_hit,
        random_map,
        two_object_choice,
        whole_image,
    )
    from looklisten.media.video import MediaReader

    if mode not in MAP_MODES:
        raise ValueError(f"mode must be one of {MAP_MODES}, got {mode!r}")
    if times_per_clip < 1:
        raise ValueError(f"times_per_clip must be >= 1, got {times_per_clip}")
    data = Path(data)
    if not (data / "annotations.jsonl").is_file():
        raise FileNotFoundError(
            f"{data}: no annotations.jsonl; localisation is evaluated on annotated demo "
            "clips ('looklisten make-demo-data DIR')"
        )
    model = get_model(checkpoint, device, arch="avol")
    cfg = model.cfg
    anns = load_annotations(data)
    files, split_used = select_clips(data, checkpoint, anns, split)
    if max_clips is not None:
        files = files[: max(0, int(max_clips))]
    if not files:
        raise ValueError(f"{data}: no clips to evaluate")

    # 1. the samples: frame, its own sound, the truth
    samples: list[dict[str, Any]] = []
    in_video: list[dict[str, Any]] = []  # frames whose own sound no visible object makes
    skipped_clips = []
    for clip_no, name in enumerate(
        progress_bar(files, desc="decode test clips", unit="clip", disable=not progress)
    ):
        ann = anns[name]
        times = sample_times(ann, times_per_clip, cfg.audio.clip_seconds)
        if not times:
            skipped_clips.append(name)
            continue
        with MediaReader(data / name) as reader:
            H, W = reader.info.height, reader.info.width
            # the whole track, as embedding and localize_video decode it (a decode
            # from a seek point can differ: see looklisten.inputs.prepare)
            track = reader.read_audio(0.0, None, cfg.audio.sample_rate)
            for t in times:
                obj = sounding_object(ann, t)
                if obj is None:  # its own sound comes from nothing on screen: a negative
                    in_video.append(
                        {
                            "clip": clip_no,
                            "frame": read_map_frame(reader, t, cfg, mode),
                            "wave": audio_window(track, t, cfg),
                            "source": sounding_segment(ann, t)["source"],
                        }
                    )
                    continue
                fi = min(
                    int(math.floor(t * float(ann["fps"]) + 1e-6)),
                    len(ann["objects"][0]["boxes"]) - 1,
                )
                boxes = [scaled_box(o["boxes"][fi], ann, H, W) for o in ann["objects"]]
                samples.append(
                    {
                        "clip": clip_no,
                        "name": name,
                        "t": t,
                        "size": (H, W),
                        "frame": read_map_frame(reader, t, cfg, mode),
                        "wave": audio_window(track, t, cfg),
                        "boxes": boxes,
                        "obj": obj,
                        "label": ann["objects"][obj]["label"],
                        "shown": {o["label"] for o in ann["objects"]},
                    }
                )
    if not samples:
        raise ValueError(f"{data}: no clip has a 1 s window with a single sounding object")
    n = len(samples)
    frames = [s["frame"] for s in samples]
    maps = maps_for(model, frames, [s["wave"] for s in samples], mode, batch_size)

    # 2. every method's heatmap at the frame's resolution, scored against the truth
    rec: dict[str, dict[str, list]] = {
        m: {k: [] for k in ("ciou", "fixed", "point", "two", "ap", "iou")} for m in METHODS
    }
    ceiling: list[float] = []
    geometry: list[tuple[float, float]] = []
    map_sizes: set[tuple[int, int]] = set()
    for i, (s, hmap) in enumerate(
        zip(
            progress_bar(samples, desc="score maps", unit="frame", disable=not progress),
            maps,
            strict=True,
        )
    ):
        H, W = s["size"]
        boxes, obj = s["boxes"], s["obj"]
        gt = box_mask(boxes[obj], (H, W))
        ceiling.append(_ceiling(float(gt.mean())))
        geometry.append(_object_geometry(boxes[obj], H, W))
        map_sizes.add(tuple(hmap.shape))
        gh, gw = (v // map_stride(cfg) for v in full_input_size(H, W, cfg))
        heat = {
            "avol": heatmap_to_frame(hmap, (H, W), cfg, mode),
            "centre_prior": centre_prior(H, W),
            "whole_image": whole_image(H, W),
            "random_map": random_map(gh, gw, np.random.default_rng([seed, i]), size=(H, W)),
        }
        if png_dir is not None:  # kept for the pictures only
            s["heat"] = heat["avol"]
        for m, hm in heat.items():
            r = rec[m]
            r["ciou"].append(ciou(hm, gt, threshold))
            r["fixed"].append(ciou(hm, gt, FIXED_THRESHOLD))
            r["point"].append(pointing_hit(hm, boxes[obj]))
            r["two"].append(
                two_object_choice(hm, boxes[0], boxes[1]) == obj if len(boxes) == 2 else None
            )
            ap, iou = pixel_scores(hm, gt)
            r["ap"].append(ap)
            r["iou"].append(iou)
    clips = np.asarray([s["clip"] for s in samples])
    best_thr = {m: best_threshold_iou(np.stack(rec[m]["iou"])) for m in METHODS}
    k_thr = {m: int(np.argmin(np.abs(IOU_THRESHOLDS - best_thr[m]["threshold"]))) for m in METHODS}

    def per_sample(m: str, metric: str) -> np.ndarray:
        r = rec[m]
        if metric == "pixel_ap":
            return np.asarray(r["ap"], dtype=np.float64)
        if metric == "best_threshold_iou":  # at the method's own data-set threshold
            return np.stack(r["iou"])[:, k_thr[m]]
        if metric == "ciou@0.5":
            return (np.asarray(r["ciou"]) >= 0.5).astype(np.float64)
        if metric == "mean_ciou":
            return np.asarray(r["ciou"], dtype=np.float64)
        if metric == "pointing":
            return np.asarray(r["point"], dtype=np.float64)
        raise KeyError(metric)

    def summary(m: str) -> dict[str, Any]:
        r = rec[m]
        p, f = ciou_summary(r["ciou"]), ciou_summary(r["fixed"])
        two = [v for v in r["two"] if v is not None]
        return {
            "pixel_ap": float(np.mean(r["ap"])),
            "best_threshold_iou": best_thr[m],
            "ciou@0.5": p["ciou@0.5"],
            "auc": p["auc"],
            "mean_ciou": p["mean_ciou"],
            "pointing": float(np.mean(r["point"])),
            "two_object_accuracy": float(np.mean(two)) if two else None,
            "fixed_0.5": {k: f[k] for k in ("ciou@0.5", "auc", "mean_ciou")},
        }

    def subset(idx: list[int]) -> dict[str, Any] | None:
        """The main metrics on some of the samples."""
        if not idx:
            return None
        out: dict[str, Any] = {"samples": len(idx)}
        for m in METHODS:
            out[m] = {k: float(per_sample(m, k)[idx].mean()) for k in BY_METRICS}
        return out

    n_shown = [len(s["boxes"]) for s in samples]
    by_size = {
        b: subset([i for i, (g, _) in enumerate(geometry) if _ratio_bin(g, SIZE_BINS) == b])
        for b in SIZE_BINS
    }
    by_distance = {
        b: subset([i for i, (_, d) in enumerate(geometry) if _ratio_bin(d, DISTANCE_BINS) == b])
        for b in DISTANCE_BINS
    }

    # 3. is AVOL-Net ahead of the best trivial baseline, metric by metric?
    versus: dict[str, Any] = {}
    from looklisten.evaluation.metrics import paired_bootstrap

    base_summ = {m: summary(m) for m in METHODS if m != "avol"}
    for metric in VERSUS_METRICS:
        value = {
            m: (
                v["best_threshold_iou"]["mean_iou"] if metric == "best_threshold_iou" else v[metric]
            )
            for m, v in base_summ.items()
        }
        best = max(value, key=value.get)
        b = paired_bootstrap(per_sample("avol", metric), per_sample(best, metric), clips)
        versus[metric] = {
            "baseline": best,
            "difference": round(b["difference"], 4),
            "ci95": [round(v, 4) for v in b["ci"]],
            "p_not_better": round(b["p_not_better"], 4),
        }
    versus["resampled"] = f"{len(np.unique(clips))} clips, {b['resamples']} times"

    thr_text = (
        "pixels strictly above the median of the min-max normalised heatmap (the top half "
        "of the frame; LVS / EZ-VSL)"
        if threshold in ("median", "lvs")
        else f"pixels of the min-max normalised heatmap above {threshold}"
    )
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "split": split_used,
        "clips": len(files) - len(skipped_clips),
        "samples": n,
        "two_object_samples": sum(v == 2 for v in n_shown),
        "times_per_clip": times_per_clip,
        "mode": mode,
        "map_size": sorted(map_sizes)[0] if len(map_sizes) == 1 else sorted(map_sizes),
        "protocol": {
            "sample": "frame at t (t on the frame grid) + the 1 s of audio centred "
            "on t; t evenly spaced among the times whose window lies in the clip and holds "
            "one sounding object; ground truth: that object's box in the frame at t",
            "heatmap": "AVOL-Net sigmoid map, "
            + (
                "whole frame, fully convolutional"
                if mode == "full"
                else "centre crop of training, 0 outside it"
            )
            + "; bilinearly upsampled to the frame",
            "pixel_ap": "average precision of the frame's pixels ranked by the heatmap against "
            "the box mask (threshold-free; ties enter together), mean over samples; best 1",
            "best_threshold_iou": "IoU of the min-max normalised heatmap > thr against the box, "
            "thr in 0, 0.01, .., 0.99: mean_iou at the one threshold best for the whole data "
            "set (per method; chosen on these samples), per_image_best = mean of each "
            "sample's best (an upper bound); best 1",
            "ciou_binarization": f"{threshold}: {thr_text}; a constant map predicts every pixel",
            "fixed_0.5_binarization": "pixels of the min-max normalised heatmap above 0.5",
            "ciou": "|pred & gt| / (|gt| + |pred & ~gt|); ciou@0.5 = share >= 0.5; auc over "
            "thresholds 0:0.05:1 (trapezoid)",
            "pointing": "heatmap argmax inside the sounding object's box",
            "two_object_accuracy": "two-object samples: mean heatmap higher in the sounding "
            "object's box than in the silent one's (ties: first object); chance 0.5",
            "by_size": "size = sqrt(box area / frame area) of the sounding object: "
            + ", ".join(f"{k} [{lo}, {hi})" for k, (lo, hi) in SIZE_BINS.items()),
            "by_distance": "distance of the box centre from the frame centre, max(|dx| / "
            "(W/2), |dy| / (H/2)), 0 centre .. 1 border: "
            + ", ".join(f"{k} [{lo}, {hi})" for k, (lo, hi) in DISTANCE_BINS.items()),
        },
        "avol": summary("avol"),
        "baselines": base_summ,
        "chance": {"two_object_accuracy": 0.5},
        "ceilings": {"pixel_ap": 1.0, "best_threshold_iou": 1.0},
        # the same metrics on the samples that show one object / two objects (where a
        # silent object competes with the sounding one and the centre prior has no edge)
        "by_objects": {
            "one": subset([i for i, v in enumerate(n_shown) if v == 1]),
            "two": subset([i for i, v in enumerate(n_shown) if v == 2]),
        },
        "by_size": by_size,
        "by_distance": by_distance,
        "avol_minus_best_baseline": versus,
    }
    if threshold in ("median", "lvs"):
        c = np.asarray(ceiling)
        result["ceiling"] = {
            "what": "best cIoU of any heatmap with distinct values under the median rule "
            "(it predicts half of the frame): min(2g, 1/(2g)), g = box share of the frame",
            "ciou@0.5": float(np.mean(c >= 0.5)),
            "mean_ciou": float(c.mean()),
        }
    if negatives:
        result["negative_audio"] = _negative_audio(
            model, data, samples, maps, mode, batch_size, seed, compare, device, in_video
        )
    if skipped_clips:
        result["skipped_clips"] = skipped_clips
    if png_dir is not None:
        shown = []
        for s in samples:  # one sample per clip
            if not shown or shown[-1]["clip"] != s["clip"]:
                shown.append(s)
        det = model.detector
        result["overlays"] = _write_overlays(Path(png_dir), data, shown, png_count, det)
        if negatives:
            result["negative_overlays"] = _write_negative_strips(
                Path(png_dir), data, shown, cfg, mode, max(1, png_count // 2), det
            )
    return result


def _negative_audio(
    model,
    data: Path,
    samples,
    maps,
    mode: str,
    batch_size: int,
    seed: int,
    compare,
    device,
    in_video=(),
) -> dict[str, Any]:
    """AVOL-Net's map for negative sounds: does its peak fall when nothing shown sounds?"""
    n = len(samples)
    partners = _negative_partners(
        [s["clip"] for s in samples],
        [s["label"] for s in samples],
        [s["shown"] for s in samples],
        seed,
    )
    clips = np.asarray([s["clip"] for s in samples])
    own_peak = np.asarray([float(np.max(m)) for m in maps])
    size = len(samples[0]["wave"])
    out: dict[str, Any] = {
        "what": "the peak of AVOL-Net's sigmoid map for the frame with its own sound versus "
        "with a negative sound: silence (zeros); absent_class, the sound of another clip at a "
        "time it sounds a class not shown in this frame; other_clip, the sound of another "
        "clip at any time (other objects; its class can be shown here: share_class_shown). "
        "roc_auc: how well the peak tells the own sound from the negative (1 perfect, 0.5 "
        "chance), 95 % interval over clips; detect@0.5: share of maps whose peak is >= 0.5 "
        "(the map says 'something here sounds'). AVOL-Net's AVC logit is the max of its "
        "map logits, so its AUC is the same for both.",
        "own": {
            "mean_peak": round(float(own_peak.mean()), 4),
            "detect@0.5": round(float(np.mean(own_peak >= 0.5)), 4),
        },
    }
    neg_maps: dict[str, dict[int, np.ndarray]] = {}
    neg_peaks: dict[str, np.ndarray] = {}
    for kind in NEGATIVES:
        if kind in NULL_KINDS:
            idx = np.arange(n)
            waves = null_waves(kind, n, size, seed)
        else:
            idx = np.flatnonzero(partners[kind] >= 0)
            waves = [samples[int(partners[kind][i])]["wave"] for i in idx]
        if not len(idx):
            out[kind] = None
            continue
        nm = maps_for(model, [samples[int(i)]["frame"] for i in idx], waves, mode, batch_size)
        peak = np.asarray([float(np.max(m)) for m in nm])
        neg_peaks[kind] = peak
        neg_maps[kind] = {int(i): m for i, m in zip(idx, nm, strict=True)}
        entry = {
            **_auc_with_interval(own_peak[idx], peak, clips[idx], seed=seed),
            "mean_peak": round(float(peak.mean()), 4),
            "detect@0.5": round(float(np.mean(peak >= 0.5)), 4),
        }
        if kind == "other_clip":
            shown = [
                samples[int(partners[kind][i])]["label"] in samples[int(i)]["shown"] for i in idx
            ]
            entry["share_class_shown"] = round(float(np.mean(shown)), 4)
        out[kind] = entry
    if in_video:  # frames whose own sound comes from nothing on screen (annotated)
        from sklearn.metrics import roc_auc_score

        nm = maps_for(
            model, [s["frame"] for s in in_video], [s["wave"] for s in in_video], mode, batch_size
        )
        peak = np.asarray([float(np.max(m)) for m in nm])
        neg_peaks["in_video"] = peak
        y = np.r_[np.ones(n), np.zeros(len(peak))]
        out["in_video"] = {
            "what": "frames whose own sound no visible object makes (annotated segments: "
            "silence, noise, an off-screen class), against all frames with their own sound "
            "(unpaired)",
            "roc_auc": round(float(roc_auc_score(y, np.r_[own_peak, peak])), 4),
            "samples": int(len(peak)),
            "sources": {k: sum(s["source"] == k for s in in_video) for k in NULL_SOURCES},
            "mean_peak": round(float(peak.mean()), 4),
            "detect@0.5": round(float(np.mean(peak >= 0.5)), 4),
        }
    out["detection"] = detection_scores(model.detector, own_peak, neg_peaks)
    if compare:
        out["compare"] = [
            _correspondence_scores(c, data, samples, partners, batch_size, device, seed)
            for c in compare
        ]
    for i, s in enumerate(samples):
        s["negative_maps"] = {k: v[i] for k, v in neg_maps.items() if i in v}
    return out


def detection_scores(
    detector, own_peak: np.ndarray, neg_peaks: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Does a visible object make the sound? The checkpoint's answer, scored.

    Positives: every frame with its own sound; negatives: the same frames with
    each negative sound. ``precision``, ``recall`` and ``f1`` at the threshold
    saved with the checkpoint, ``average_precision`` over all thresholds (and its
    trivial baseline: the share of positives), ``false_positive_rate`` per kind of
    negative, and the calibration: ``brier`` score and the expected calibration
    error over 10 bins (``ece``), on classes weighted equally as in the fit.
    """
    from sklearn.metrics import average_precision_score

    own_p = detector.probability(logit_of(own_peak))
    negs = {k: detector.probability(logit_of(v)) for k, v in neg_peaks.items()}
    neg_p = np.concatenate(list(negs.values())) if negs else np.zeros(0, np.float32)
    y = np.r_[np.ones(len(own_p)), np.zeros(len(neg_p))]
    p = np.r_[own_p, neg_p].astype(np.float64)
    yes = p >= detector.threshold
    tp, fp = int((yes & (y == 1)).sum()), int((yes & (y == 0)).sum())
    fn = int((~yes & (y == 1)).sum())
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    w = np.where(y == 1, 0.5 / max(len(own_p), 1), 0.5 / max(len(neg_p), 1))
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(
        abs(float(np.sum(w[bins == b] * (p[bins == b] - y[bins == b]))))
        for b in range(10)
        if np.any(bins == b)
    )
    return {
        "what": "the probability that a visible object makes the sound (the checkpoint's "
        "calibrated detector, looklisten.models.detector) for each frame with its own sound "
        "(positive) and with each negative sound; precision / recall / f1 at the threshold "
        "saved with the checkpoint, average precision over thresholds",
        "threshold": round(float(detector.threshold), 4),
        "calibrated": bool(detector.pairs),
        "positives": int(len(own_p)),
        "negatives": int(len(neg_p)),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
        "average_precision": round(float(average_precision_score(y, p)), 4),
        "average_precision_baseline": round(float(y.mean()), 4),
        "false_positive_rate": {
            k: round(float(np.mean(v >= detector.threshold)), 4) for k, v in negs.items()
        },
        "brier": round(float(np.sum(w * (p - y) ** 2)), 4),
        "ece": round(float(ece), 4),
    }


def _display_frame(data: Path, s: dict[str, Any]) -> np.ndarray:
    frame = s["frame"]
    return frame if frame.shape[:2] == s["size"] else _full_frame(data / s["name"], s["t"])


def _boxed(img: np.ndarray, s: dict[str, Any]) -> np.ndarray:
    from looklisten.media.overlay import draw_box

    for k, box in enumerate(s["boxes"]):
        if k != s["obj"]:
            draw_box(img, box, (255, 0, 0), 2)
    draw_box(img, s["boxes"][s["obj"]], (0, 255, 0), 2)
    return img


def _painted(heat: np.ndarray, peak: float, detector) -> np.ndarray:
    """The map to draw: nothing where the detector says no visible object makes the sound."""
    return heat if detector.visible(logit_of(peak)) else np.zeros_like(heat)


def _write_overlays(
    png_dir: Path, data: Path, shown: list[dict[str, Any]], count: int, detector
) -> list[str]:
    from looklisten.core.fileio import atomic_write_bytes
    from looklisten.media.overlay import encode_png, overlay, with_legend

    # Two-object samples first: they show whether the map picks the right object.
    shown = sorted(shown, key=lambda s: (len(s["boxes"]) != 2, s["clip"]))[: max(0, count)]
    written = []
    for s in shown:
        heat = _painted(s["heat"], float(np.max(s["heat"])), detector)
        img = with_legend(_boxed(overlay(_display_frame(data, s), heat), s))
        path = png_dir / f"{Path(s['name']).stem}_t{s['t']:.2f}_{s['label']}.png"
        atomic_write_bytes(path, encode_png(img))
        written.append(str(path))
    return written


def _write_negative_strips(
    png_dir: Path,
    data: Path,
    shown: list[dict[str, Any]],
    cfg,
    mode: str,
    count: int,
    detector,
) -> list[dict[str, Any]]:
    """PNG strips: the map for the frame's own sound, then for each negative sound.

    The maps are drawn with calibrated intensity (the overlay fades where the map is
    low), and not at all where the checkpoint's detector says no visible object
    makes the sound, as ``looklisten localize`` draws them.
    """
    from looklisten.core.fileio import atomic_write_bytes
    from looklisten.media.overlay import encode_png, overlay, with_legend

    shown = [s for s in shown if s.get("negative_maps")]
    shown = sorted(shown, key=lambda s: (len(s["boxes"]) != 1, s["clip"]))[: max(0, count)]
    written = []
    for s in shown:
        frame = _display_frame(data, s)
        panels = [("own sound", s["heat"], float(np.max(s["heat"])))]
        for kind in NEGATIVES:
            m = s["negative_maps"].get(kind)
            if m is not None:
                panels.append((kind, heatmap_to_frame(m, s["size"], cfg, mode), float(np.max(m))))
        imgs = [_boxed(overlay(frame, _painted(h, p, detector)), s) for _, h, p in panels]
        gap = np.full((frame.shape[0], 4, 3), 255, np.uint8)
        strip = with_legend(np.concatenate([x for img in imgs for x in (img, gap)][:-1], axis=1))
        path = png_dir / f"{Path(s['name']).stem}_t{s['t']:.2f}_negatives.png"
        atomic_write_bytes(path, encode_png(strip))
        written.append(
            {
                "png": str(path),
                "label": s["label"],
                "panels": [
                    {
                        "sound": k,
                        "peak": round(p, 4),
                        "probability": round(float(detector.probability(logit_of(p))), 4),
                        "painted": bool(detector.visible(logit_of(p))),
                    }
                    for k, _, p in panels
                ],
            }
        )
    return written
