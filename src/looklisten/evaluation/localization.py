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
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from looklisten.core.config import MAP_MODES
from looklisten.inputs.prepare import (
    audio_window,
    full_input_size,
    map_stride,
    read_frame_at,
    read_map_frame,
)
from looklisten.models.checkpoint import get_model
from looklisten.tasks.localize import heatmap_to_frame, maps_for

METHODS = ("avol", "centre_prior", "whole_image", "random_map")
FIXED_THRESHOLD = 0.5


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
        Seed of the random-map baseline.
    batch_size : int
        Frames per forward pass.
    device : str, optional
        Default: cuda if available.
    png_dir : path-like, optional
        Write overlays of up to ``png_count`` samples (one per clip, two-object
        clips first), with the sounding object's box in green and the silent
        one's in red.
    progress : bool
        Progress bar.

    Returns
    -------
    dict
        JSON-ready; see :func:`main` output / the module docstring.
    """
    from tqdm.auto import tqdm

    from looklisten.data.demo_data import load_annotations, sounding_object
    from looklisten.evaluation.map_metrics import (
        box_mask,
        centre_prior,
        ciou,
        ciou_summary,
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
    prim: dict[str, list[float]] = {m: [] for m in METHODS}
    fixed: dict[str, list[float]] = {m: [] for m in METHODS}
    point: dict[str, list[bool]] = {m: [] for m in METHODS}
    two: dict[str, list[bool]] = {m: [] for m in METHODS}
    ceiling: list[float] = []
    shown_objects: list[int] = []  # objects in the frame, per sample
    sample_clip: list[int] = []  # the clip of each sample (the bootstrap resamples clips)
    map_sizes: set[tuple[int, int]] = set()
    shown: list[dict[str, Any]] = []
    n_samples = 0
    skipped_clips = []
    for clip_no, name in enumerate(tqdm(files, desc="eval", unit="clip", disable=not progress)):
        ann = anns[name]
        times = sample_times(ann, times_per_clip, cfg.audio.clip_seconds)
        if not times:
            skipped_clips.append(name)
            continue
        with MediaReader(data / name) as reader:
            frames = [read_map_frame(reader, t, cfg, mode) for t in times]
            size = (reader.info.height, reader.info.width)
            # the whole track, as embedding and localize_video decode it (a decode
            # from a seek point can differ: see looklisten.inputs.prepare)
            track = reader.read_audio(0.0, None, cfg.audio.sample_rate)
        waves = [audio_window(track, t, cfg) for t in times]
        maps = maps_for(model, frames, waves, mode, batch_size)
        for t, frame, hmap in zip(times, frames, maps, strict=True):
            H, W = size
            obj = sounding_object(ann, t)
            fi = min(
                int(math.floor(t * float(ann["fps"]) + 1e-6)), len(ann["objects"][0]["boxes"]) - 1
            )
            boxes = [scaled_box(o["boxes"][fi], ann, H, W) for o in ann["objects"]]
            gt = box_mask(boxes[obj], (H, W))
            g = float(gt.mean())
            ceiling.append(_ceiling(g))
            shown_objects.append(len(boxes))
            sample_clip.append(clip_no)
            map_sizes.add(tuple(hmap.shape))
            gh, gw = (s // map_stride(cfg) for s in full_input_size(H, W, cfg))
            heat = {
                "avol": heatmap_to_frame(hmap, (H, W), cfg, mode),
                "centre_prior": centre_prior(H, W),
                "whole_image": whole_image(H, W),
                "random_map": random_map(
                    gh, gw, np.random.default_rng([seed, n_samples]), size=(H, W)
                ),
            }
            for m, hm in heat.items():
                prim[m].append(ciou(hm, gt, threshold))
                fixed[m].append(ciou(hm, gt, FIXED_THRESHOLD))
                point[m].append(pointing_hit(hm, boxes[obj]))
                if len(boxes) == 2:
                    two[m].append(two_object_choice(hm, boxes[0], boxes[1]) == obj)
            if png_dir is not None and (not shown or shown[-1]["clip"] != clip_no):
                shown.append(
                    {
                        "clip": clip_no,
                        "name": name,
                        "t": t,
                        "frame": frame
                        if frame.shape[:2] == (H, W)
                        else _full_frame(data / name, t),
                        "heat": heat["avol"],
                        "boxes": boxes,
                        "obj": obj,
                        "label": ann["objects"][obj]["label"],
                    }
                )
            n_samples += 1
    if n_samples == 0:
        raise ValueError(f"{data}: no clip has a 1 s window with a single sounding object")

    def summary(m: str) -> dict[str, Any]:
        p = ciou_summary(prim[m])
        f = ciou_summary(fixed[m])
        return {
            "ciou@0.5": p["ciou@0.5"],
            "auc": p["auc"],
            "mean_ciou": p["mean_ciou"],
            "pointing": float(np.mean(point[m])),
            "two_object_accuracy": float(np.mean(two[m])) if two[m] else None,
            "fixed_0.5": {k: f[k] for k in ("ciou@0.5", "auc", "mean_ciou")},
        }

    def subset(count: int) -> dict[str, Any] | None:
        """cIoU and pointing on the samples that show ``count`` objects."""
        idx = [i for i, n in enumerate(shown_objects) if n == count]
        if not idx:
            return None
        out: dict[str, Any] = {"samples": len(idx)}
        for m in METHODS:
            p = ciou_summary([prim[m][i] for i in idx])
            out[m] = {
                "ciou@0.5": p["ciou@0.5"],
                "auc": p["auc"],
                "pointing": float(np.mean([point[m][i] for i in idx])),
            }
        return out

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
        "samples": n_samples,
        "two_object_samples": len(two["avol"]),
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
            "ciou_binarization": f"{threshold}: {thr_text}; a constant map predicts every pixel",
            "fixed_0.5_binarization": "pixels of the min-max normalised heatmap above 0.5",
            "ciou": "|pred & gt| / (|gt| + |pred & ~gt|); ciou@0.5 = share >= 0.5; auc over "
            "thresholds 0:0.05:1 (trapezoid)",
            "pointing": "heatmap argmax inside the sounding object's box",
            "two_object_accuracy": "two-object samples: mean heatmap higher in the sounding "
            "object's box than in the silent one's (ties: first object); chance 0.5",
        },
        "avol": summary("avol"),
        "baselines": {m: summary(m) for m in METHODS if m != "avol"},
        "chance": {"two_object_accuracy": 0.5},
        # the same metrics on the samples that show one object / two objects (where a
        # silent object competes with the sounding one and the centre prior has no edge)
        "by_objects": {"one": subset(1), "two": subset(2)},
    }
    if threshold in ("median", "lvs"):
        c = np.asarray(ceiling)
        result["ceiling"] = {
            "what": "best cIoU of any heatmap with distinct values under the median rule "
            "(it predicts half of the frame): min(2g, 1/(2g)), g = box share of the frame",
            "ciou@0.5": float(np.mean(c >= 0.5)),
            "mean_ciou": float(c.mean()),
        }
    # is AVOL-Net's margin over the strongest trivial baseline more than luck?
    result["avol_minus_centre_prior"] = _versus("centre_prior", prim, point, sample_clip)
    if skipped_clips:
        result["skipped_clips"] = skipped_clips
    if png_dir is not None:
        result["overlays"] = _write_overlays(Path(png_dir), shown, png_count)
    return result


def _versus(
    baseline: str,
    cious: dict[str, list[float]],
    point: dict[str, list[bool]],
    clips: list[int],
) -> dict[str, Any]:
    """AVOL-Net minus a baseline per metric, with a 95 % paired bootstrap over clips."""
    from looklisten.evaluation.metrics import paired_bootstrap

    per_sample = {
        "ciou@0.5": lambda m: (np.asarray(cious[m]) >= 0.5).astype(np.float64),
        "mean_ciou": lambda m: np.asarray(cious[m], dtype=np.float64),
        "pointing": lambda m: np.asarray(point[m], dtype=np.float64),
    }
    out: dict[str, Any] = {}
    for name, values in per_sample.items():
        b = paired_bootstrap(values("avol"), values(baseline), np.asarray(clips))
        out["resampled"] = f"{b['groups']} clips, {b['resamples']} times"
        out[name] = {
            "difference": round(b["difference"], 4),
            "ci95": [round(v, 4) for v in b["ci"]],
            "p_not_better": round(b["p_not_better"], 4),
        }
    return out


def _write_overlays(png_dir: Path, shown: list[dict[str, Any]], count: int) -> list[str]:
    from looklisten.core.fileio import atomic_write_bytes
    from looklisten.media.overlay import draw_box, encode_png, overlay

    # Two-object samples first: they show whether the map picks the right object.
    shown = sorted(shown, key=lambda s: (len(s["boxes"]) != 2, s["clip"]))[: max(0, count)]
    written = []
    for s in shown:
        img = overlay(s["frame"], s["heat"], alpha=0.5)
        for k, box in enumerate(s["boxes"]):
            if k != s["obj"]:
                draw_box(img, box, (255, 0, 0), 2)
        draw_box(img, s["boxes"][s["obj"]], (0, 255, 0), 2)
        stem = Path(s["name"]).stem
        path = png_dir / f"{stem}_t{s['t']:.2f}_{s['label']}.png"
        atomic_write_bytes(path, encode_png(img))
        written.append(str(path))
    return written
