"""Sound-source localisation metrics and heatmap helpers.

Everything here is model-independent: a *heatmap* is a plain ``np.ndarray`` of
shape ``(h, w)`` (e.g. AVOL-Net's 14x14 sigmoid map) where larger values mean
"the sound comes from here". Ground truth is a bounding box in the image's pixel
coordinates or a boolean mask at the image's resolution.

Coordinates
-----------
A box is ``(x0, y0, x1, y1)`` in pixels of an image of size ``(H, W)``: ``x``
runs along the width (columns), ``y`` along the height (rows). Pixel ``(i, j)``
(row ``i``, column ``j``) covers ``[j, j+1) x [i, i+1)`` and its centre is
``(j + 0.5, i + 0.5)``. A pixel belongs to a box when its centre lies inside the
closed box ``x0 <= j + 0.5 <= x1`` and ``y0 <= i + 0.5 <= y1``; for integer boxes
this is exactly the slice ``mask[y0:y1, x0:x1]`` used by the LVS / EZ-VSL
evaluation code.

Metrics
-------
* :func:`ciou` / :func:`ciou_summary`: consensus IoU of Senocak et al. (2018)
  with a single binary annotation, summarised as ``ciou@0.5`` and the AUC of
  the success-rate curve, after the LVS (Chen et al. 2021) and EZ-VSL (Mo &
  Morgado 2022) evaluation scripts (the demo evaluation's rules; see
  :func:`ciou` for where they differ from each script).
* :func:`reference_upsample`, :func:`consensus_map`, :func:`union_map`,
  :func:`reference_ciou`, :func:`auc_21`, :func:`reference_summary`: the
  EZ-VSL test code's rules, literally, for the Flickr-SoundNet and VGG-SS
  benchmarks (soft consensus ground truth, ``>=`` the median, 0.05 * i
  thresholds).
* :func:`pointing_hit`: pointing game (is the heatmap's maximum in the box).
* :func:`two_object_choice`: which of two boxes a heatmap favours.
* :func:`pixel_scores`: metrics whose best value is 1 for any box: the pixel
  average precision of the map against the box mask (threshold-free, as in
  DenseAV, Hamilton et al. 2024) and the IoU of the map binarised at each of
  :data:`IOU_THRESHOLDS`, from which :func:`best_threshold_iou` takes the
  IoU at the best single threshold of a data set and at each image's own best.

Baselines
---------
:func:`centre_prior`, :func:`whole_image` and :func:`random_map` produce heatmaps
that need no model, to put the metrics in context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from looklisten.media.overlay import as_size, upsample_heatmap

Box = Sequence[float]

#: Thresholds of the success-rate curve whose area is :func:`ciou_summary`'s ``auc``.
AUC_THRESHOLDS = np.linspace(0.0, 1.0, 21)
#: Thresholds on the min-max normalised map at which :func:`pixel_scores` gives the IoU
#: (a pixel is predicted when its normalised value is strictly above the threshold).
IOU_THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 2)


def _as_box(box: Box) -> tuple[float, float, float, float]:
    if len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box must be finite, got {box!r}")
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must satisfy x0 <= x1 and y0 <= y1, got {box!r}")
    return x0, y0, x1, y1


def _as_heatmap(heatmap: np.ndarray) -> np.ndarray:
    h = np.asarray(heatmap)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (h, w), got shape {h.shape}")
    if h.size == 0:
        raise ValueError("heatmap is empty")
    if not np.issubdtype(h.dtype, np.floating):
        h = h.astype(np.float32)
    if not np.all(np.isfinite(h)):
        raise ValueError("heatmap contains NaN or infinite values")
    return h


def box_mask(box: Box, size: Sequence[int]) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside a box.

    Parameters
    ----------
    box : (x0, y0, x1, y1)
        Box in pixel coordinates (``x`` along the width). The box is clipped to
        the image implicitly: parts outside it select nothing.
    size : (H, W)
        Image height and width.

    Returns
    -------
    np.ndarray, shape (H, W), bool
        ``mask[i, j]`` is True iff ``x0 <= j + 0.5 <= x1`` and
        ``y0 <= i + 0.5 <= y1``. For integer boxes this equals
        ``mask[y0:y1, x0:x1] = True``.
    """
    H, W = as_size(size)
    x0, y0, x1, y1 = _as_box(box)
    cx = np.arange(W) + 0.5
    cy = np.arange(H) + 0.5
    in_x = (cx >= x0) & (cx <= x1)
    in_y = (cy >= y0) & (cy <= y1)
    return in_y[:, None] & in_x[None, :]


def _minmax(h: np.ndarray) -> np.ndarray | None:
    """Min-max normalise to [0, 1]; None for a constant map."""
    h = h.astype(np.float64)
    lo, hi = float(h.min()), float(h.max())
    if not hi > lo:
        return None
    return (h - lo) / (hi - lo)


def binarize(heatmap: np.ndarray, threshold: str | float = "median") -> np.ndarray:
    """The binary prediction that :func:`ciou` scores (see there for the protocol).

    Parameters
    ----------
    heatmap : np.ndarray, shape (H, W)
        Heatmap at the resolution of the ground truth.
    threshold : {"median", "lvs"} or float
        Binarisation rule, see :func:`ciou`.

    Returns
    -------
    np.ndarray, shape (H, W), bool
        Predicted sounding region.
    """
    h = _as_heatmap(heatmap)
    norm = _minmax(h)
    if norm is None:
        # A constant map carries no localisation: it predicts the whole image.
        return np.ones(h.shape, dtype=bool)
    if isinstance(threshold, str):
        if threshold == "median":
            thr = float(np.median(norm))
        elif threshold == "lvs":
            thr = float(np.sort(norm, axis=None)[norm.size // 2])
        else:
            raise ValueError(f"threshold must be 'median', 'lvs' or a float, got {threshold!r}")
    else:
        thr = float(threshold)
        if not 0.0 <= thr <= 1.0:
            raise ValueError(f"a numeric threshold must be in [0, 1], got {thr}")
    return norm > thr


def _map_and_mask(
    heatmap: np.ndarray, gt_mask: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """(heatmap at the mask's size, boolean mask, its pixel count), checked."""
    gt = np.asarray(gt_mask).astype(bool)
    if gt.ndim != 2:
        raise ValueError(f"gt_mask must be 2-D (H, W), got shape {gt.shape}")
    n_gt = int(gt.sum())
    if n_gt == 0:
        raise ValueError(f"gt_mask is empty: {what} undefined")
    h = _as_heatmap(heatmap)
    if h.shape != gt.shape:
        if h.shape[0] > gt.shape[0] or h.shape[1] > gt.shape[1]:
            raise ValueError(
                f"heatmap {h.shape} is larger than gt_mask {gt.shape}; resize it first"
            )
        h = upsample_heatmap(h, gt.shape)
    return h, gt, n_gt


def ciou(
    heatmap: np.ndarray,
    gt_mask: np.ndarray,
    threshold: str | float = "median",
) -> float:
    """Consensus IoU (cIoU) of one heatmap against one ground-truth mask.

    The protocol of the sound-source localisation literature (Senocak et al.,
    CVPR 2018) with a single binary annotation, after the LVS and EZ-VSL
    evaluation code; the demo evaluation uses it. For the benchmarks
    themselves use :func:`reference_ciou`, which follows EZ-VSL's code
    literally (soft consensus ground truth, ``>=``, ``align_corners=True``).

    1. **Resize.** If ``heatmap`` is smaller than ``gt_mask`` it is first
       upsampled to ``gt_mask.shape`` with :func:`upsample_heatmap` (bilinear,
       ``align_corners=False``, as LVS's ``cv2.resize``; EZ-VSL uses
       ``align_corners=True``). Pass a heatmap already at the image
       resolution to control this yourself.
    2. **Min-max normalise** it to [0, 1]: ``(h - min) / (max - min)``.
    3. **Binarise** it. The prediction is the set of pixels *strictly above*
       a threshold ``thr``::

           pred = normalised > thr

       chosen by ``threshold``:

       * ``"median"`` (default): ``thr = np.median(normalised)``. With distinct
         values this keeps exactly the top half of the pixels; it is the
         "keep the top 50 %" rule of the literature.
       * ``"lvs"``: ``thr = sort(normalised)[H * W // 2]``, the threshold the
         LVS / EZ-VSL scripts compute. For an even pixel count with distinct
         values it keeps one pixel fewer than ``"median"`` (immaterial at
         224x224), but the two differ on maps with ties: a map that is 1 on
         exactly half of the pixels and 0 elsewhere keeps that half under
         ``"median"`` (thr = 0.5) and *nothing* under ``"lvs"`` (thr = 1).
       * a float in [0, 1]: a fixed threshold on the normalised map
         (``0.5`` keeps pixels above the mid-range, not the top half).

       Pixels *equal* to the threshold are not predicted, so a map with a
       large plateau at its top can predict fewer than half of the pixels
       (a map that is 1 on 75 % of the image predicts nothing under
       ``"median"``). LVS's ``test.py`` does the same (``pred > threshold``);
       EZ-VSL's ``Evaluator.cal_CIOU`` predicts the pixels ``>=`` the
       threshold, which keeps at least half of the pixels
       (:func:`reference_ciou`).

       **Constant maps.** Min-max normalisation is undefined when
       ``max == min``, and a literal "strictly above the median" would predict
       nothing (cIoU 0). We instead treat a constant map as predicting *every*
       pixel, for any ``threshold``: that is the literature's "whole image"
       baseline, whose cIoU is ``|gt| / (H * W)`` (see :func:`whole_image`).
    4. **IoU against the ground truth**::

           ciou = |pred & gt| / (|gt| + |pred & ~gt|)

       which, for a binary ground truth, is the ordinary IoU
       ``|pred & gt| / |pred | gt|``. (On Flickr-SoundNet the reference code
       scores a *soft* consensus map instead, :func:`consensus_map`.)

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w) or (H, W)
        Heatmap (any real values; larger = more likely to sound).
    gt_mask : np.ndarray, shape (H, W), bool
        Ground-truth sounding region, e.g. from :func:`box_mask`. Must not be
        empty.
    threshold : {"median", "lvs"} or float, default "median"
        Binarisation rule, see step 3.

    Returns
    -------
    float
        cIoU in [0, 1].
    """
    h, gt, n_gt = _map_and_mask(heatmap, gt_mask, "cIoU is")
    pred = binarize(h, threshold)
    inter = int(np.count_nonzero(pred & gt))
    false_pos = int(np.count_nonzero(pred & ~gt))
    return inter / (n_gt + false_pos)


def ciou_summary(cious: np.ndarray | Sequence[float]) -> dict[str, float]:
    """Summarise per-image cIoUs as in the LVS / EZ-VSL tables.

    Parameters
    ----------
    cious : array-like, shape (N,)
        One cIoU per test image (from :func:`ciou`).

    Returns
    -------
    dict
        ``"ciou@0.5"``: share of images with cIoU >= 0.5.
        ``"auc"``: area under the success-rate curve
        ``s(t) = mean(cious >= t)`` sampled at ``t = np.linspace(0, 1, 21)``
        (:data:`AUC_THRESHOLDS`) and integrated with the trapezoid rule over
        ``t`` in [0, 1] (the ``sklearn.metrics.auc`` call of the reference code).
        ``"mean_ciou"``: mean cIoU.
        ``"n"``: number of images (as a float, to keep the dict homogeneous).
    """
    c = np.asarray(cious, dtype=np.float64).reshape(-1)
    if c.size == 0:
        raise ValueError("no cIoU values to summarise")
    if not np.all(np.isfinite(c)):
        raise ValueError("cIoU values must be finite")
    success = (c[None, :] >= AUC_THRESHOLDS[:, None]).mean(axis=1)
    return {
        "ciou@0.5": float(np.mean(c >= 0.5)),
        "auc": float(np.trapezoid(success, AUC_THRESHOLDS)),
        "mean_ciou": float(c.mean()),
        "n": float(c.size),
    }


# ---------------------------------------------------------------------------
# The benchmarks' reference rules (EZ-VSL's test code, literally)
# ---------------------------------------------------------------------------

#: Side of the benchmarks' ground-truth maps (LVS / EZ-VSL: 224 x 224).
REFERENCE_SIZE = 224
#: Success-rate thresholds of the reference AUC: ``0.05 * i`` for i = 0..20, as the
#: reference code writes them (0.05 * 3 = 0.15000000000000002, not 0.15).
REFERENCE_AUC_THRESHOLDS = tuple(0.05 * i for i in range(21))


def _box_slices(box: Sequence[int]) -> tuple[slice, slice]:
    """``(rows, cols)`` of ``gt[ymin:ymax, xmin:xmax]``; negative ends clamped to 0."""
    if len(box) != 4:
        raise ValueError(f"box must be (xmin, ymin, xmax, ymax), got {box!r}")
    x0, y0, x1, y1 = (max(0, int(v)) for v in box)
    return slice(y0, y1), slice(x0, x1)


def box_count_map(boxes: Sequence[Sequence[int]], size: int = REFERENCE_SIZE) -> np.ndarray:
    """How many boxes cover each pixel: ``gt[ymin:ymax, xmin:xmax] += 1`` per box.

    Parameters
    ----------
    boxes : sequence of (xmin, ymin, xmax, ymax), int
        Integer pixel coordinates on the ``size x size`` frame (numpy slice
        rules: ``xmax`` excluded, ends past the frame cut off; an empty or
        inverted box adds nothing). A negative coordinate counts as 0 (the
        reference code's slice would wrap around from the far side instead).
    size : int
        Map side.

    Returns
    -------
    np.ndarray, shape (size, size), float64
    """
    gt = np.zeros((size, size), dtype=np.float64)
    for box in boxes:
        rows, cols = _box_slices(box)
        gt[rows, cols] += 1
    return gt


def consensus_map(boxes: Sequence[Sequence[int]], size: int = REFERENCE_SIZE) -> np.ndarray:
    """Flickr-SoundNet's soft ground truth: the annotators' boxes, summed, / 2, capped at 1.

    EZ-VSL's ``bbox2gtmap(..., format='flickr')`` and LVS's ``testset_gt``:
    every box adds 1 inside it (:func:`box_count_map`), the sum is divided by
    2 and clipped at 1, so a pixel inside one annotator's box is worth 0.5 and
    a pixel inside two or more is worth 1 (the consensus of Senocak et al. 2018).

    Parameters
    ----------
    boxes : sequence of (xmin, ymin, xmax, ymax), int
        All annotators' boxes on the ``size x size`` frame.
    size : int

    Returns
    -------
    np.ndarray, shape (size, size), float64
        Values in {0, 0.5, 1}.
    """
    return np.minimum(box_count_map(boxes, size) / 2, 1.0)


def union_map(boxes: Sequence[Sequence[int]], size: int = REFERENCE_SIZE) -> np.ndarray:
    """VGG-SS's binary ground truth: 1 inside any box (LVS / EZ-VSL ``format='vggss'``).

    Returns
    -------
    np.ndarray, shape (size, size), float64
        Values in {0, 1}.
    """
    return (box_count_map(boxes, size) > 0).astype(np.float64)


def reference_upsample(heatmap: np.ndarray, size: int = REFERENCE_SIZE) -> np.ndarray:
    """A model map at ``size x size``: bilinear with ``align_corners=True``, as EZ-VSL's test.

    EZ-VSL's ``validate``: ``F.interpolate(heatmap, size=(224, 224),
    mode='bilinear', align_corners=True)`` (corner cells pinned to the
    frame's corner pixels; :func:`upsample_heatmap` and LVS's ``cv2.resize``
    use ``align_corners=False``).

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w)
    size : int

    Returns
    -------
    np.ndarray, shape (size, size), float32
    """
    import torch
    import torch.nn.functional as F

    h = _as_heatmap(heatmap)
    t = torch.from_numpy(np.ascontiguousarray(h, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=True)
    return out[0, 0].numpy()


def reference_normalise(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1]; a constant map is returned as it is.

    The reference code's ``normalize_img`` (LVS and EZ-VSL ``utils.py``).

    Parameters
    ----------
    heatmap : np.ndarray, shape (H, W)

    Returns
    -------
    np.ndarray, shape (H, W)
    """
    h = _as_heatmap(heatmap)
    lo, hi = h.min(), h.max()
    return (h - lo) / (hi - lo) if hi - lo != 0 else h


def reference_prediction(heatmap: np.ndarray) -> np.ndarray:
    """The binary prediction of EZ-VSL's test: normalised map ``>=`` its median-rank value.

    ``thr = np.sort(pred.flatten())[int(H * W * 0.5)]`` and ``pred >= thr``
    (EZ-VSL ``test.py`` and ``Evaluator.cal_CIOU``). With distinct values it
    keeps the top ``H * W - int(H * W * 0.5)`` pixels (half); ties at the
    threshold are all kept, so a constant map predicts every pixel (the
    whole-image baseline).

    Parameters
    ----------
    heatmap : np.ndarray, shape (H, W)
        Map at the ground truth's resolution (:func:`reference_upsample`).

    Returns
    -------
    np.ndarray, shape (H, W), bool
    """
    pred = reference_normalise(heatmap)
    thr = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] * 0.5)]
    return pred >= thr


def reference_ciou(heatmap: np.ndarray, gt_map: np.ndarray) -> float:
    """cIoU exactly as EZ-VSL's ``Evaluator.cal_CIOU`` computes it.

    ``pred = reference_prediction(heatmap)`` (0/1) and::

        ciou = sum(pred * gt) / (sum(gt) + sum(pred * (gt == 0)))

    with the *soft* ground truth of Flickr-SoundNet (:func:`consensus_map`:
    a predicted pixel in one annotator's box earns 0.5, a missed one costs
    0.5) or VGG-SS's binary one (:func:`union_map`). An empty ground truth
    gives 0 (the prediction is never empty).

    Parameters
    ----------
    heatmap : np.ndarray, shape (H, W)
        Map at the ground truth's resolution.
    gt_map : np.ndarray, shape (H, W), float
        Ground truth in [0, 1].

    Returns
    -------
    float
        In [0, 1]. A constant map scores ``sum(gt) / (sum(gt) + #(gt == 0))``,
        i.e. ``sum(gt) / (H * W)`` for a binary ground truth.
    """
    gt = np.asarray(gt_map, dtype=np.float64)
    h = _as_heatmap(heatmap)
    if h.shape != gt.shape:
        raise ValueError(f"heatmap {h.shape} and gt_map {gt.shape} differ; upsample the map first")
    pred = reference_prediction(h).astype(np.float64)
    return float(np.sum(pred * gt) / (np.sum(gt) + np.sum(pred * (gt == 0))))


def auc_21(cious: np.ndarray | Sequence[float]) -> float:
    """Area under the success-rate curve, as the reference code computes it.

    ``sklearn.metrics.auc(x, y)`` (trapezoid rule) with ``x = [0.05 * i for i
    in range(21)]`` (:data:`REFERENCE_AUC_THRESHOLDS`) and ``y[i] = share of
    images with cIoU >= x[i]`` (LVS ``test.py``, EZ-VSL
    ``Evaluator.finalize_AUC``). The AUC is linear in ``y``, so it is also the
    mean of the images' own AUCs (``auc_21([c])``).

    Parameters
    ----------
    cious : array-like, shape (N,)

    Returns
    -------
    float
        In [0, 1].
    """
    from sklearn.metrics import auc

    c = _check_cious(cious)
    x = list(REFERENCE_AUC_THRESHOLDS)
    return float(auc(x, [np.sum(c >= t) / len(c) for t in x]))


def _check_cious(cious) -> np.ndarray:
    c = np.asarray(cious, dtype=np.float64).reshape(-1)
    if c.size == 0:
        raise ValueError("no cIoU values to summarise")
    if not np.all(np.isfinite(c)):
        raise ValueError("cIoU values must be finite")
    return c


def reference_summary(cious: np.ndarray | Sequence[float]) -> dict[str, float]:
    """The benchmarks' table entries: ``ciou@0.5``, ``auc`` and ``mean_ciou``.

    EZ-VSL's ``finalize_AP50`` (``mean(ciou >= 0.5)``), ``finalize_AUC``
    (:func:`auc_21`) and ``finalize_cIoU`` (mean).

    Parameters
    ----------
    cious : array-like, shape (N,)
        :func:`reference_ciou` of each image.

    Returns
    -------
    dict
        ``{"ciou@0.5": float, "auc": float, "mean_ciou": float}``.
    """
    c = _check_cious(cious)
    return {
        "ciou@0.5": float(np.mean(c >= 0.5)),
        "auc": auc_21(c),
        "mean_ciou": float(c.mean()),
    }


def _at_size(heatmap: np.ndarray, size: Sequence[int] | None) -> np.ndarray:
    h = _as_heatmap(heatmap)
    if size is not None and h.shape != as_size(size):
        h = upsample_heatmap(h, size)
    return h


def pointing_hit(heatmap: np.ndarray, box: Box, size: Sequence[int] | None = None) -> bool:
    """Pointing game: does the heatmap's maximum fall inside the box?

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w)
        Heatmap.
    box : (x0, y0, x1, y1)
        Ground-truth box in the image's pixel coordinates.
    size : (H, W), optional
        Image size. When given, the heatmap is first upsampled to it
        (:func:`upsample_heatmap`); otherwise the heatmap is taken to be at the
        image's resolution already.

    Returns
    -------
    bool
        True iff the centre of the argmax pixel (the first one in row-major
        order on ties) lies inside the box (same rule as :func:`box_mask`).
    """
    h = _at_size(heatmap, size)
    i, j = np.unravel_index(int(np.argmax(h)), h.shape)
    x0, y0, x1, y1 = _as_box(box)
    cx, cy = j + 0.5, i + 0.5
    return bool(x0 <= cx <= x1 and y0 <= cy <= y1)


def two_object_choice(
    heatmap: np.ndarray, box_a: Box, box_b: Box, size: Sequence[int] | None = None
) -> int:
    """Which of two boxes the heatmap favours.

    For "which of the two objects makes the sound" accuracy: the heatmap's
    mean inside each box is compared.

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w)
        Heatmap.
    box_a, box_b : (x0, y0, x1, y1)
        The two candidate boxes in the image's pixel coordinates.
    size : (H, W), optional
        Image size; when given the heatmap is upsampled to it first, otherwise
        the boxes are in the heatmap's own pixel coordinates.

    Returns
    -------
    int
        0 if ``mean(heatmap[box_a]) >= mean(heatmap[box_b])`` (ties go to
        ``box_a``), else 1.
    """
    h = _at_size(heatmap, size)
    means = []
    for name, box in (("box_a", box_a), ("box_b", box_b)):
        m = box_mask(box, h.shape)
        if not m.any():
            raise ValueError(f"{name} {box!r} contains no pixel centre of a {h.shape} map")
        means.append(float(h[m].mean()))
    return 0 if means[0] >= means[1] else 1


def pixel_scores(
    heatmap: np.ndarray, gt_mask: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> tuple[float, np.ndarray]:
    """Pixel average precision and the IoU at each threshold: metrics with a ceiling of 1.

    Unlike cIoU under the median rule, which always predicts half of the image,
    both reach 1 for a map that is high exactly on the box, whatever its size.

    * **Average precision** of the pixels ranked by the map against the
      ground-truth mask, ``sum_n (R_n - R_{n-1}) P_n`` over the map's distinct
      values from high to low (``sklearn.metrics.average_precision_score``;
      tied pixels enter together). Threshold-free and invariant to any
      increasing transform of the map. A constant map scores the box's share
      of the image (the AP of a random ranking).
    * **IoU** ``|pred & gt| / |pred | gt|`` of ``pred = normalised > thr`` for
      each ``thr`` in ``thresholds``, ``normalised`` being the min-max
      normalised map (as for :func:`ciou`). A constant map predicts every pixel
      at every threshold (IoU = the box's share).

    Parameters
    ----------
    heatmap : np.ndarray, shape (h, w) or (H, W)
        Heatmap; upsampled to ``gt_mask``'s size if smaller (as :func:`ciou`).
    gt_mask : np.ndarray, shape (H, W), bool
        Ground truth; must not be empty.
    thresholds : np.ndarray, shape (T,)
        Thresholds in [0, 1) on the normalised map.

    Returns
    -------
    (ap, iou) : (float, np.ndarray of shape (T,))
    """
    h, gt, n_gt = _map_and_mask(heatmap, gt_mask, "the pixel scores are")
    thr = np.asarray(thresholds, dtype=np.float64)
    norm = _minmax(h)
    if norm is None:
        share = n_gt / gt.size
        return share, np.full(thr.shape, share)
    v, y = norm.reshape(-1), gt.reshape(-1)
    # average precision over the map's distinct values, high to low
    raw = h.reshape(-1)
    order = np.argsort(-raw, kind="stable")
    s, ys = raw[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end of each run of ties
    tp = np.cumsum(ys)[last].astype(np.float64)
    precision = tp / (last + 1)
    recall = tp / n_gt
    ap = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    # IoU at each threshold from the sorted values inside and outside the box
    inside = np.sort(v[y])
    above_in = n_gt - np.searchsorted(inside, thr, side="right")
    above_all = v.size - np.searchsorted(np.sort(v), thr, side="right")
    iou = above_in / (n_gt + above_all - above_in)
    return ap, iou.astype(np.float64)


def best_threshold_iou(
    ious: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> dict[str, float]:
    """IoU at the best single threshold of a data set, and at each image's own best.

    Parameters
    ----------
    ious : np.ndarray, shape (N, T)
        :func:`pixel_scores`' IoU curves of N images.
    thresholds : np.ndarray, shape (T,)

    Returns
    -------
    dict
        ``"threshold"``: the threshold with the highest mean IoU over the images
        (the lowest on ties); ``"mean_iou"``: that mean (the data set's
        best-threshold IoU, chosen on the evaluated images themselves, so
        slightly optimistic for every method alike); ``"per_image_best"``: the
        mean over images of each image's best IoU (an upper bound no single
        threshold reaches).
    """
    m = np.asarray(ious, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(thresholds) or not len(m):
        raise ValueError(f"ious must be (N, {len(thresholds)}) with N >= 1, got {m.shape}")
    mean = m.mean(axis=0)
    k = int(np.argmax(mean))
    return {
        "threshold": float(thresholds[k]),
        "mean_iou": float(mean[k]),
        "per_image_best": float(m.max(axis=1).mean()),
    }


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------


def centre_prior(H: int, W: int, sigma_frac: float = 0.25) -> np.ndarray:
    """A Gaussian bump at the image centre: the "sound is in the middle" prior.

    Parameters
    ----------
    H, W : int
        Map size.
    sigma_frac : float
        Standard deviation as a fraction of the side:
        ``sigma_y = sigma_frac * H``, ``sigma_x = sigma_frac * W``.

    Returns
    -------
    np.ndarray, shape (H, W), float32
        ``exp(-((x - W/2)^2 / (2 sigma_x^2) + (y - H/2)^2 / (2 sigma_y^2)))``
        at pixel centres; values in (0, 1].
    """
    H, W = as_size((H, W))
    if not sigma_frac > 0:
        raise ValueError(f"sigma_frac must be positive, got {sigma_frac}")
    y = (np.arange(H) + 0.5 - H / 2) / (sigma_frac * H)
    x = (np.arange(W) + 0.5 - W / 2) / (sigma_frac * W)
    g = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))
    return g.astype(np.float32)


def whole_image(H: int, W: int) -> np.ndarray:
    """A constant map: the "the whole image sounds" baseline.

    Under :func:`ciou` (any threshold) a constant map predicts every pixel,
    so its cIoU is ``|gt| / (H * W)``, the literature's whole-image baseline;
    under :func:`pointing_hit` it points at pixel (0, 0).

    Returns
    -------
    np.ndarray, shape (H, W), float32
        All ones.
    """
    H, W = as_size((H, W))
    return np.ones((H, W), dtype=np.float32)


def random_map(
    h: int,
    w: int,
    rng: np.random.Generator | int | None = None,
    size: Sequence[int] | None = None,
) -> np.ndarray:
    """Uniform noise at the model's map resolution (chance-level baseline).

    Parameters
    ----------
    h, w : int
        Resolution of the noise (the model's map, e.g. 14x14).
    rng : np.random.Generator or int, optional
        Random generator or seed.
    size : (H, W), optional
        If given, the noise is upsampled bilinearly to this size, so it is
        smooth at the scale of the model's cells like a real heatmap.

    Returns
    -------
    np.ndarray, shape (h, w) or (H, W), float32
        Values in [0, 1).
    """
    h, w = as_size((h, w))
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    noise = gen.random((h, w), dtype=np.float32)
    if size is not None:
        noise = upsample_heatmap(noise, size)
    return noise
