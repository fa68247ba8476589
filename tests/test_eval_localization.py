"""``eval localization``'s metrics with a ceiling of 1, negative audio and breakdowns.

Metric tests are hand-computed; the evaluation runs on random-weight ``tiny``
checkpoints (plumbing, consistency, not what a trained model localises: the
the measured table of docs/guide/localization.md is made by ``benchmarks/compare_maps.py``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import load_annotations, make_demo_data
from looklisten.evaluation.localization import (
    DISTANCE_BINS,
    NEGATIVES,
    SIZE_BINS,
    _negative_partners,
    _object_geometry,
    _ratio_bin,
)
from looklisten.evaluation.map_metrics import (
    IOU_THRESHOLDS,
    best_threshold_iou,
    box_mask,
    centre_prior,
    pixel_scores,
    whole_image,
)
from looklisten.media.overlay import upsample_heatmap
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model

# ---------------------------------------------------------------------------
# pixel AP and best-threshold IoU
# ---------------------------------------------------------------------------


def test_a_perfect_map_scores_one_whatever_the_box_size():
    for box in ((10, 10, 14, 14), (0, 0, 60, 40), (5, 20, 64, 48)):
        gt = box_mask(box, (48, 64))
        ap, iou = pixel_scores(gt.astype(np.float32), gt)
        assert ap == 1.0 and iou.max() == 1.0 and iou[0] == 1.0
        assert best_threshold_iou(iou[None])["mean_iou"] == 1.0
    # the median rule's cIoU cannot: a 4x4 box of a 48x64 frame is 0.5 % of it


def test_a_constant_map_scores_the_box_share():
    gt = box_mask((0, 0, 16, 12), (48, 64))
    share = gt.mean()
    ap, iou = pixel_scores(whole_image(48, 64), gt)
    assert ap == pytest.approx(share) and np.allclose(iou, share)


def test_pixel_ap_is_sklearns_average_precision_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(10):
        h = np.round(rng.random((6, 8)), 1)  # coarse values: many ties after upsampling too
        gt = box_mask(
            tuple(int(v) for v in (*rng.integers(0, 20, 2), *rng.integers(25, 48, 2))), (48, 64)
        )
        ap, _ = pixel_scores(h, gt)
        up = upsample_heatmap(h, (48, 64))
        assert ap == pytest.approx(average_precision_score(gt.ravel(), up.ravel()), abs=1e-12)
    # exact ties: a map 1 on half the box and 0 elsewhere
    gt = box_mask((0, 0, 4, 2), (2, 8))  # 8 pixels
    h = np.zeros((2, 8))
    h[:, :2] = 1  # 4 of them
    ap, iou = pixel_scores(h, gt)
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)  # recall .5 at precision 1, then all
    assert iou[0] == pytest.approx(4 / 8)  # > 0: the 4 ones; IoU 4 / 8


def test_iou_at_a_threshold_by_hand():
    # normalised values 0, 0.25, 0.5, 1 on four pixels; the box holds the last two
    h = np.array([[0.0, 0.25, 0.5, 1.0]])
    gt = np.array([[False, False, True, True]])
    _, iou = pixel_scores(h, gt, np.array([0.0, 0.3, 0.6]))
    # > 0: 3 pixels, 2 in the box -> 2 / 3; > 0.3: the two box pixels -> 1; > 0.6: 1 of 2
    assert iou == pytest.approx([2 / 3, 1.0, 0.5])


def test_best_threshold_iou_per_data_set_and_per_image():
    ious = np.array([[0.2, 0.9, 0.1], [0.8, 0.4, 0.3]])
    r = best_threshold_iou(ious, np.array([0.0, 0.5, 0.9]))
    # means per threshold: .5, .65, .2 -> threshold .5; per image best: (.9 + .8) / 2
    assert r == pytest.approx({"threshold": 0.5, "mean_iou": 0.65, "per_image_best": 0.85})
    with pytest.raises(ValueError):
        best_threshold_iou(ious)  # not one column per threshold
    assert len(IOU_THRESHOLDS) == 100 and IOU_THRESHOLDS[0] == 0 and IOU_THRESHOLDS[-1] == 0.99


def test_the_centre_prior_wins_on_centred_boxes_and_loses_on_corner_boxes():
    H = W = 64
    prior = centre_prior(H, W)
    centred = pixel_scores(prior, box_mask((20, 20, 44, 44), (H, W)))[0]
    corner = pixel_scores(prior, box_mask((0, 0, 16, 16), (H, W)))[0]
    assert centred > 0.5 > 0.1 > corner


# ---------------------------------------------------------------------------
# breakdowns and the negative sounds
# ---------------------------------------------------------------------------


def test_object_geometry_and_bins():
    size, dist = _object_geometry((40, 30, 60, 50), 80, 100)  # 20x20 box at the centre
    assert size == pytest.approx(math.sqrt(400 / 8000)) and dist == 0.0
    size, dist = _object_geometry((0, 0, 10, 10), 80, 100)  # corner
    assert dist == pytest.approx(max(45 / 50, 35 / 40))
    assert _ratio_bin(0.1, SIZE_BINS) == "small" and _ratio_bin(0.6, SIZE_BINS) == "large"
    assert _ratio_bin(0.0, DISTANCE_BINS) == "centre" and _ratio_bin(1.0, DISTANCE_BINS) == "edge"


def test_negative_partners_come_from_other_clips_and_absent_classes():
    clips = [0, 0, 1, 1, 2, 3]
    sounding = ["dog", "dog", "cow", "dog", "bee", "cow"]
    shown = [{"dog"}, {"dog"}, {"cow", "dog"}, {"cow", "dog"}, {"bee"}, {"cow"}]
    p = _negative_partners(clips, sounding, shown, seed=0)
    for i in range(len(clips)):
        j = p["other_clip"][i]
        assert j >= 0 and clips[j] != clips[i]
        k = p["absent_class"][i]
        if k >= 0:
            assert clips[k] != clips[i] and sounding[k] not in shown[i]
    # clip 1 shows cow and dog: only the bee is absent from it
    assert all(sounding[p["absent_class"][i]] == "bee" for i in (2, 3))
    again = _negative_partners(clips, sounding, shown, seed=0)  # seeded
    assert all(np.array_equal(p[k], again[k]) for k in p)


# ---------------------------------------------------------------------------
# the evaluation (random weights: plumbing and consistency)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("loc_runs")
    torch.manual_seed(0)
    out = {}
    for arch in ("avol", "ave"):
        cfg = get_config("tiny", arch=arch)
        save_checkpoint(root / arch, create_model(cfg).eval(), cfg)
        out[arch] = root / arch
    return out


@pytest.fixture(scope="module")
def anywhere(tmp_path_factory):
    out = tmp_path_factory.mktemp("anywhere")
    make_demo_data(
        out, videos=4, seed=2, duration=3.0, workers=1, progress=False, layout="anywhere"
    )
    return out


def test_eval_localization_reports_ceiling_one_metrics_breakdowns_and_negatives(
    runs, anywhere, tmp_path, capsys
):
    png = tmp_path / "png"
    args = ["eval", "localization", str(anywhere), "--checkpoint", str(runs["avol"])]
    rc = main(
        args
        + ["--times", "2", "--quiet", "--compare", str(runs["ave"]), "--png-dir", str(png)]
        + ["--png-count", "4"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    n = res["samples"]
    assert n == 8 and res["ceilings"] == {"pixel_ap": 1.0, "best_threshold_iou": 1.0}
    methods = {"avol": res["avol"], **res["baselines"]}
    for m in methods.values():
        assert 0 < m["pixel_ap"] <= 1
        b = m["best_threshold_iou"]
        assert 0 < b["mean_iou"] <= b["per_image_best"] <= 1 and b["threshold"] in IOU_THRESHOLDS
    # the whole image's AP and IoU are the box share, which is its mean cIoU too
    w = res["baselines"]["whole_image"]
    assert w["pixel_ap"] == pytest.approx(w["mean_ciou"])
    assert w["best_threshold_iou"]["mean_iou"] == pytest.approx(w["mean_ciou"])
    # AVOL-Net minus the *best* baseline, metric by metric
    vs = res["avol_minus_best_baseline"]
    for key in ("pixel_ap", "ciou@0.5", "mean_ciou", "pointing"):
        best = max(res["baselines"], key=lambda b: res["baselines"][b][key])
        assert vs[key]["baseline"] == best
        want = res["avol"][key] - res["baselines"][best][key]
        assert vs[key]["difference"] == pytest.approx(want, abs=1e-4)
        assert vs[key]["ci95"][0] <= vs[key]["difference"] <= vs[key]["ci95"][1]
    assert vs["resampled"].startswith("4 clips")
    # the breakdowns partition the samples
    for key in ("by_size", "by_distance", "by_objects"):
        parts = [p for p in res[key].values() if p]
        assert sum(p["samples"] for p in parts) == n
        for p in parts:
            assert set(p) == {"samples", *methods}
    # objects anywhere: the samples are not all large and central
    anns = load_annotations(anywhere)
    assert {a["layout"] for a in anns.values()} == {"anywhere"}
    # negative audio: AUC per kind for the map's peak and for the AVE-Net's score
    neg = res["negative_audio"]
    for kind in NEGATIVES:
        assert 0 <= neg[kind]["roc_auc"] <= 1 and neg[kind]["samples"] <= n
        assert neg[kind]["ci95"][0] <= neg[kind]["ci95"][1]
    assert neg["silence"]["samples"] == n and "share_class_shown" in neg["other_clip"]
    (cmp,) = neg["compare"]
    assert cmp["arch"] == "ave" and set(NEGATIVES) <= set(cmp)
    # pictures: one overlay per clip, strips of own vs negative maps
    assert len(res["overlays"]) == 4 and all(Path(p).is_file() for p in res["overlays"])
    strips = res["negative_overlays"]
    assert len(strips) == 2
    for st in strips:
        assert Path(st["png"]).is_file()
        assert [p["sound"] for p in st["panels"]][:2] == ["own sound", "silence"]
    from PIL import Image

    with Image.open(strips[0]["png"]) as im:
        assert im.width > 3 * im.height  # side by side
    from looklisten.media.overlay import legend_strip

    for png in (res["overlays"][0], strips[0]["png"]):  # each picture carries its legend
        with Image.open(png) as im:
            legend = legend_strip(im.width)
            assert np.array_equal(np.asarray(im.convert("RGB"))[-len(legend) :], legend)


def test_eval_localization_without_negatives(runs, anywhere, capsys):
    args = ["eval", "localization", str(anywhere), "--checkpoint", str(runs["avol"])]
    rc = main(args + ["--times", "1", "--quiet", "--no-negatives"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "negative_audio" not in json.loads(captured.out)


def test_auc_with_interval_by_hand():
    from looklisten.evaluation.localization import _auc_with_interval

    clips = np.array([0, 0, 1, 1, 2, 2])
    pos, neg = np.array([0.9, 0.8, 0.7, 0.9, 0.6, 0.95]), np.zeros(6)
    r = _auc_with_interval(pos, neg, clips)
    assert r["roc_auc"] == 1.0 and r["ci95"] == [1.0, 1.0] and r["samples"] == 6
    assert _auc_with_interval(neg, pos, clips)["roc_auc"] == 0.0  # the direction matters
    # pairs (own, negative): 1 > .5, 1 > 0, .5 = .5 (a tie counts 1/2), .5 > 0
    r = _auc_with_interval(np.array([1.0, 0.5]), np.array([0.5, 0.0]), np.array([0, 1]))
    assert r["roc_auc"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_negative_maps_are_made_from_the_partners_sound(runs, anywhere, monkeypatch):
    """A stand-in map whose level is the sound's loudness: silence must score 0, and the
    negatives must be the partner's own windows (so the AUCs measure the map, not plumbing)."""
    import looklisten.evaluation.localization as loc

    real = loc.maps_for

    def loudness_maps(model, frames, waves, mode, batch_size):
        maps = real(model, frames, waves, mode, batch_size)
        return [np.full_like(m, float(np.sqrt(np.mean(np.square(w))))) for m, w in zip(maps, waves)]

    monkeypatch.setattr(loc, "maps_for", loudness_maps)
    res = loc.evaluate_localization(anywhere, runs["avol"], times_per_clip=2, device="cpu")
    neg = res["negative_audio"]
    assert neg["silence"]["roc_auc"] == 1.0 and neg["silence"]["mean_peak"] == 0.0
    # the other-clip negatives are the same windows as the own sounds, shuffled:
    # their mean loudness is that of the own sounds' drawn partners, within the range
    assert 0.0 < neg["other_clip"]["mean_peak"] <= 2 * neg["own"]["mean_peak"]


@pytest.mark.parametrize("motion", [{"vision.num_frames": 3}, {"vision.flow_frames": 2}])
def test_compare_with_a_motion_model_scores_its_own_frame_window(
    motion, runs, anywhere, tmp_path, capsys, monkeypatch
):
    """--compare with AVE+MF / AVE+OF feeds them their K-frame window / flow, as in training."""
    from looklisten.inputs import prepare

    cfg = get_config("tiny", arch="ave", **motion)
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "motion", create_model(cfg).eval(), cfg)
    seen = []
    real = prepare.Inputs.frame

    def frame(self, reader, t):
        x = real(self, reader, t)
        seen.append(tuple(x.shape))
        return x

    monkeypatch.setattr(prepare.Inputs, "frame", frame)
    args = ["eval", "localization", str(anywhere), "--checkpoint", str(runs["avol"])]
    args += ["--times", "1", "--quiet", "--compare", str(tmp_path / "motion")]
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (cmp,) = json.loads(captured.out)["negative_audio"]["compare"]
    assert cmp["arch"] == "ave" and set(NEGATIVES) <= set(cmp)
    for kind in NEGATIVES:
        assert 0 <= cmp[kind]["roc_auc"] <= 1
    s = cfg.vision.image_size
    want = (1, 3, 3, s, s) if "vision.num_frames" in motion else (1, 3 + 2 * 2, s, s)
    assert seen and set(seen) == {want}
