"""``looklisten eval localization DIR --dataset flickr|vggss``: the published benchmarks.

Evaluates an AVOL-Net on a copy of Flickr-SoundNet (Senocak et al. 2018) or
VGG-SS (Chen et al. 2021) laid out as the LVS / EZ-VSL code expects
(:mod:`looklisten.data.localization_benchmarks`), with the metrics computed as
EZ-VSL's ``test.py`` and ``utils.py`` compute them, so the numbers sit beside
the published ones, and trivial baselines on the same images.

Protocol (EZ-VSL ``test.py``; differences from it in *italics*)
---------------------------------------------------------------
* **Picture**: the whole frame resized to 224 x 224, bicubic
  (:func:`looklisten.inputs.prepare.benchmark_frame`). *AVOL-Net then sees
  this square picture as any whole frame in its ``"full"`` mode
  (:func:`looklisten.inputs.prepare.image_input`: scaled to the checkpoint's
  ``vision.resize``, the scale it was trained at).*
* **Sound**: *the model's 1 s window (EZ-VSL: 3 s)* from the middle of the
  file, mono, clipped to [-1, 1], tiled when the file is shorter
  (:func:`looklisten.inputs.prepare.middle_window`).
* **Map**: AVOL-Net's sigmoid map, upsampled to 224 x 224 bilinearly with
  ``align_corners=True``
  (:func:`looklisten.evaluation.map_metrics.reference_upsample`).
* **Ground truth**: Flickr-SoundNet, the annotators' boxes summed, halved and
  capped at 1 (:func:`~looklisten.evaluation.map_metrics.consensus_map`:
  0, 0.5 or 1); VGG-SS, the union of the boxes
  (:func:`~looklisten.evaluation.map_metrics.union_map`).
* **cIoU**: min-max normalised map (a constant map as it is), prediction = the
  pixels ``>=`` the value of rank ``int(224 * 224 * 0.5)``, ``cIoU = sum(pred *
  gt) / (sum(gt) + sum(pred * (gt == 0)))``
  (:func:`~looklisten.evaluation.map_metrics.reference_ciou`); ``ciou@0.5``
  = share of images with cIoU >= 0.5, ``auc`` = ``sklearn.metrics.auc`` over
  the thresholds ``0.05 * i`` (:func:`~looklisten.evaluation.map_metrics.auc_21`),
  ``mean_ciou``. *An image whose ground truth is empty (no box, or boxes of
  no area at 224 px) scores 0, as in the reference code, and is counted in
  ``notes``.*

Baselines on the same images, same metrics: ``whole_image`` (a constant map:
under ``>=`` it predicts every pixel), ``centre_prior`` (a centred Gaussian,
:func:`~looklisten.evaluation.map_metrics.centre_prior`) and ``random_map``
(uniform noise at AVOL-Net's map size, seeded per image, upsampled like its map).

Our own metrics, against the ground truth binarised as ``gt > 0`` (images with
a non-empty one): ``pixel_ap`` and ``best_threshold_iou``
(:func:`~looklisten.evaluation.map_metrics.pixel_scores`,
:func:`~looklisten.evaluation.map_metrics.best_threshold_iou`), and
``pointing`` (the map's maximum, first in row-major order, inside ``gt > 0``).

``avol_minus_best_baseline``: per metric, AVOL-Net minus the baseline best on
that metric, with a 95 % paired bootstrap interval over images
(:func:`looklisten.evaluation.metrics.paired_bootstrap`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from looklisten.data.localization_benchmarks import GT_SIZE, BenchmarkItem, find_benchmark
from looklisten.evaluation.map_metrics import (
    IOU_THRESHOLDS,
    auc_21,
    best_threshold_iou,
    centre_prior,
    consensus_map,
    pixel_scores,
    random_map,
    reference_ciou,
    reference_summary,
    reference_upsample,
    union_map,
    whole_image,
)
from looklisten.inputs.prepare import benchmark_frame, load_audio, middle_window
from looklisten.media.video import MediaError
from looklisten.models.checkpoint import get_model
from looklisten.tasks.localize import maps_for

#: Methods scored, AVOL-Net first.
METHODS = ("avol", "whole_image", "centre_prior", "random_map")
#: Metrics of the margins over the best baseline.
MARGIN_METRICS = ("ciou@0.5", "auc", "mean_ciou", "pixel_ap", "best_threshold_iou", "pointing")
#: Images decoded and scored at a time (bounds memory on large test sets).
CHUNK = 256

PUBLISHED = {
    "flickr": {
        "ezvsl": {
            "ciou@0.5": 0.819,
            "auc": 0.626,
            "source": "EZ-VSL, Mo & Morgado 2022, Flickr-SoundNet test, trained on Flickr 10k",
        },
        "whole_image": {
            "ciou@0.5": 0.608,
            "source": "a constant map under this protocol on Flickr-SoundNet test, "
            "as quoted in the sound-source localisation literature",
        },
    },
    "vggss": {
        "ezvsl": {
            "ciou@0.5": 0.39,
            "approximate": True,
            "source": "EZ-VSL, Mo & Morgado 2022, VGG-SS test, trained on VGG-Sound 144k: "
            "about 0.39 (approximate)",
        },
    },
}

GROUND_TRUTH = {
    "flickr": "every annotator's box (XML, 256 px) scaled int(224 * v / 256), summed, / 2, "
    "capped at 1: 0, 0.5 or 1 per pixel",
    "vggss": "boxes in [0, 1] -> int(224 * clip(v, 0, 1)), their union = 1",
}

PROTOCOL = {
    "reference": "the evaluation code of EZ-VSL (Mo & Morgado, ECCV 2022; github "
    "stoneMo/EZ-VSL, test.py / utils.py / datasets.py) and LVS (Chen et al., CVPR 2021; "
    "github hche11/Localizing-Visual-Sounds-the-Hard-Way), reimplemented",
    "items": "test list (first CSV column) intersected with ids that have frames/<id>.jpg "
    "and audio/<id>.wav, sorted; without a list every id with frame, sound and annotation",
    "picture": "whole frame resized to 224x224, bicubic (PIL); AVOL-Net sees it as a whole "
    "frame in 'full' mode, scaled to its vision.resize",
    "sound": "the model's 1 s window (EZ-VSL: 3 s) from the middle of the file, mono, "
    "clipped to [-1, 1], tiled when the file is shorter",
    "map": "sigmoid map upsampled to 224x224, bilinear, align_corners=True",
    "ciou": "min-max normalised map (a constant one as is); pred = map >= sort(map)"
    "[int(224*224*0.5)]; sum(pred*gt) / (sum(gt) + sum(pred*(gt==0))) with the soft gt; "
    "an empty gt scores 0",
    "ciou@0.5": "share of images with cIoU >= 0.5",
    "auc": "sklearn.metrics.auc over thresholds 0.05*i, i = 0..20, of the share of images "
    "with cIoU >= threshold",
    "pixel_ap": "average precision of the 224x224 pixels ranked by the map against gt > 0 "
    "(images with a non-empty gt); best 1",
    "best_threshold_iou": "IoU of the min-max normalised map > thr against gt > 0, at the "
    "data set's best thr in 0, 0.01, .., 0.99 (chosen on these images); best 1",
    "pointing": "the map's maximum (first in row-major order) inside gt > 0",
    "baselines": "whole_image: a constant map (predicts every pixel under >=); "
    "centre_prior: centred Gaussian, sigma = 1/4 side; random_map: uniform noise at "
    "AVOL-Net's map size, seeded per image, upsampled like its map",
    "margins": "AVOL-Net minus the baseline best on each metric, 95 % paired bootstrap "
    "interval over images",
}


def _gt(dataset: str, item: BenchmarkItem) -> np.ndarray:
    boxes = item.boxes
    return consensus_map(boxes, GT_SIZE) if dataset == "flickr" else union_map(boxes, GT_SIZE)


def _load(item: BenchmarkItem, cfg) -> tuple[np.ndarray, np.ndarray, bool]:
    """(224 px frame, the model's window, whether the sound was tiled); MediaError if bad."""
    frame = benchmark_frame(item.frame, GT_SIZE)
    track = load_audio(item.audio, cfg.audio.sample_rate)
    if not len(track):
        raise MediaError(item.audio, "no audio samples")
    n = cfg.audio.clip_samples
    return frame, middle_window(track, n), len(track) < n


def _score(maps: dict[str, np.ndarray], gt: np.ndarray, rec: dict[str, dict[str, list]]) -> None:
    """Append each method's per-image scores (own metrics NaN / None for an empty gt)."""
    mask = gt > 0
    for m, heat in maps.items():
        r = rec[m]
        r["ciou"].append(reference_ciou(heat, gt))
        if mask.any():
            ap, iou = pixel_scores(heat, mask)
            r["ap"].append(ap)
            r["iou"].append(iou)
            r["point"].append(float(mask.flat[int(np.argmax(heat))]))
        else:
            r["ap"].append(np.nan)
            r["iou"].append(None)
            r["point"].append(np.nan)


def _per_image(r: dict[str, list], metric: str, k_thr: int | None) -> np.ndarray:
    """One value per image of a method for ``metric`` (NaN where undefined)."""
    c = np.asarray(r["ciou"], dtype=np.float64)
    if metric == "ciou@0.5":
        return (c >= 0.5).astype(np.float64)
    if metric == "auc":
        return np.asarray([auc_21([v]) for v in c])
    if metric == "mean_ciou":
        return c
    if metric == "pixel_ap":
        return np.asarray(r["ap"], dtype=np.float64)
    if metric == "pointing":
        return np.asarray(r["point"], dtype=np.float64)
    if metric == "best_threshold_iou":
        return np.asarray([np.nan if v is None else v[k_thr] for v in r["iou"]])
    raise KeyError(metric)


def _summary(r: dict[str, list]) -> tuple[dict[str, Any], int | None]:
    """A method's metrics, and the index of its best IoU threshold."""
    out: dict[str, Any] = {k: round(v, 4) for k, v in reference_summary(r["ciou"]).items()}
    ious = [v for v in r["iou"] if v is not None]
    if not ious:
        out.update(pixel_ap=None, best_threshold_iou=None, pointing=None)
        return out, None
    best = best_threshold_iou(np.stack(ious))
    k = int(np.argmin(np.abs(IOU_THRESHOLDS - best["threshold"])))
    out["pixel_ap"] = round(float(np.nanmean(r["ap"])), 4)
    out["best_threshold_iou"] = {key: round(v, 4) for key, v in best.items()}
    out["pointing"] = round(float(np.nanmean(r["point"])), 4)
    return out, k


def _headline(v) -> float:
    """The number a method is ranked by: best_threshold_iou's mean_iou, else the value."""
    return v["mean_iou"] if isinstance(v, dict) else v


def _margins(rec, summ, k_thr, seed: int) -> dict[str, Any]:
    from looklisten.evaluation.metrics import paired_bootstrap

    n = len(rec["avol"]["ciou"])
    images = np.arange(n)
    out: dict[str, Any] = {}
    for metric in MARGIN_METRICS:
        if summ["avol"][metric] is None:
            out[metric] = None
            continue
        best = max((m for m in METHODS if m != "avol"), key=lambda m: _headline(summ[m][metric]))
        a = _per_image(rec["avol"], metric, k_thr["avol"])
        b = _per_image(rec[best], metric, k_thr[best])
        boot = paired_bootstrap(a, b, images, seed=seed)
        out[metric] = {
            "baseline": best,
            "difference": round(boot["difference"], 4) + 0.0,  # + 0.0: no "-0.0"
            "ci95": [round(v, 4) + 0.0 for v in boot["ci"]],
            "p_not_better": round(boot["p_not_better"], 4),
            "images": boot["queries"],
        }
    return out


def evaluate_benchmark_localization(
    data: str | os.PathLike,
    checkpoint,
    *,
    dataset: str,
    gt_path: str | os.PathLike | None = None,
    test_list: str | os.PathLike | None = None,
    seed: int = 0,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """AVOL-Net and the trivial baselines on Flickr-SoundNet or VGG-SS (module docstring).

    Parameters
    ----------
    data : path-like
        ``DIR`` with ``frames/``, ``audio/`` and the annotations.
    checkpoint : path-like or AVNet
        An AVOL-Net run, checkpoint or model.
    dataset : {"flickr", "vggss"}
    gt_path : path-like, optional
        Annotation folder (Flickr) or ``vggss.json`` (default: under ``data``).
    test_list : path-like, optional
        ``flickr_test.csv`` / ``vggss_test.csv`` (first column: ids).
    seed : int
        Seed of the random-map baseline and of the bootstrap.
    batch_size : int
        Frames per forward pass.
    device : str, optional
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        JSON-ready: ``n``, ``avol``, ``baselines``, ``avol_minus_best_baseline``,
        ``published``, ``protocol``, ``failed``, ``notes`` (and where the data came from).
    """
    from looklisten.core.progress import progress_bar

    bench = find_benchmark(data, dataset, gt_path, test_list)
    model = get_model(checkpoint, device, arch="avol")
    cfg = model.cfg
    failed = list(bench.failed)
    rec = {m: {"ciou": [], "ap": [], "iou": [], "point": []} for m in METHODS}
    prior, flat = centre_prior(GT_SIZE, GT_SIZE), whole_image(GT_SIZE, GT_SIZE)
    ids, map_sizes, tiled, empty = [], set(), 0, 0
    bar = progress_bar(total=len(bench.items), desc="images", unit="img", disable=not progress)
    for start in range(0, len(bench.items), CHUNK):
        loaded = []
        for item in bench.items[start : start + CHUNK]:
            try:
                frame, window, short = _load(item, cfg)
            except (MediaError, OSError, ValueError) as e:
                failed.append({"id": item.id, "reason": " ".join(str(e).split())})
                continue
            loaded.append((item, frame, window))
            tiled += short
        maps = maps_for(
            model, [f for _, f, _ in loaded], [w for _, _, w in loaded], "full", batch_size
        )
        for (item, _, _), hmap in zip(loaded, maps, strict=True):
            k = len(ids)
            gt = _gt(dataset, item)
            empty += not gt.any()
            map_sizes.add(tuple(hmap.shape))
            noise = random_map(*hmap.shape, rng=np.random.default_rng([seed, k]))
            heat = {
                "avol": reference_upsample(hmap, GT_SIZE),
                "whole_image": flat,
                "centre_prior": prior,
                "random_map": reference_upsample(noise, GT_SIZE),
            }
            _score(heat, gt, rec)
            ids.append(item.id)
        bar.update(min(CHUNK, len(bench.items) - start))
    bar.close()
    if not ids:
        why = f" (e.g. {failed[0]['id']}: {failed[0]['reason']})" if failed else ""
        raise ValueError(f"{data}: no {dataset} item could be evaluated{why}")
    if empty == len(ids):
        raise ValueError(
            f"{bench.annotations}: no box of any evaluated item covers a pixel; "
            f"is it the {dataset} annotation format?"
        )
    notes = list(bench.notes)
    if empty:
        notes.append(
            f"{empty} image(s) have an empty ground truth (no box, or boxes of no area at "
            "224 px): cIoU 0 for every method, as in the reference code; left out of "
            "pixel_ap, best_threshold_iou and pointing"
        )
    if tiled:
        notes.append(f"{tiled} sound(s) shorter than the model's window were tiled")
    summ, k_thr = {}, {}
    for m in METHODS:
        summ[m], k_thr[m] = _summary(rec[m])
    return {
        "dataset": dataset,
        "data": str(data),
        "annotations": str(bench.annotations),
        "test_list": None if test_list is None else str(test_list),
        "checkpoint": str(getattr(model, "checkpoint_path", checkpoint)),
        "n": len(ids),
        "map_size": sorted(map_sizes)[0] if len(map_sizes) == 1 else sorted(map_sizes),
        "avol": summ["avol"],
        "baselines": {m: summ[m] for m in METHODS if m != "avol"},
        "avol_minus_best_baseline": _margins(rec, summ, k_thr, seed),
        "published": PUBLISHED[dataset],
        "protocol": {**PROTOCOL, "ground_truth": GROUND_TRUTH[dataset]},
        "failed": failed,
        "notes": notes,
    }
