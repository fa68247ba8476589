"""Sounds that nothing on screen makes: null pairs, annotated null segments, the calibrated
"a visible object makes this sound" detector, overlays that paint nothing, its evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from looklisten.cli.main import main
from looklisten.core.config import AVOL_NULL_FRACTION, get_config
from looklisten.data.demo_data import (
    load_annotations,
    make_demo_data,
    null_intervals,
    sounding_object,
)
from looklisten.data.sampler import (
    NOISE_RMS,
    MemorySource,
    PairDataset,
    PairSampler,
    null_sound,
)
from looklisten.data.scan import scan_folder
from looklisten.models.detector import UNCALIBRATED, SourceDetector, fit_detector, peak_logit
from looklisten.models.losses import CalibrationLoss, symmetric_nce

TINY_RUN = {
    "train.batch_size": 16,
    "train.epoch_pairs": 64,
    "train.val_pairs": 64,
    "train.epochs": 2,
    "sampler.val_fraction": 0.34,
}


# ---------------------------------------------------------------- null sounds, pairs


def test_null_sounds_are_silence_or_noise_at_a_random_level():
    rng = np.random.default_rng(0)
    assert not null_sound("silence", 1000, rng).any()
    levels = []
    for _ in range(40):
        x = null_sound("noise", 16000, rng)
        assert x.dtype == np.float32 and x.shape == (16000,) and np.abs(x).max() <= 1
        levels.append(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))
    assert NOISE_RMS[0] * 0.9 <= min(levels) and max(levels) <= NOISE_RMS[1] * 1.1
    assert max(levels) / min(levels) > 10  # from hiss to loud
    with pytest.raises(ValueError, match="silence"):
        null_sound("music", 10, rng)
    a = null_sound("noise", 500, np.random.default_rng(3))
    assert np.array_equal(a, null_sound("noise", 500, np.random.default_rng(3)))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Six 4 s clips, every one with a segment whose sound comes from nothing on screen."""
    root = tmp_path_factory.mktemp("neg")
    make_demo_data(root, videos=6, seed=3, duration=4.0, workers=2, progress=False, negatives=1.0)
    return root


def test_the_generator_annotates_segments_from_nothing_on_screen(clips):
    anns = load_annotations(clips)
    sources = set()
    for ann in anns.values():
        segs = ann["sounding"]
        assert segs[0]["start"] == 0.0 and segs[-1]["end"] == ann["duration"]
        assert all(a["end"] == b["start"] for a, b in zip(segs, segs[1:]))
        (null,) = [g for g in segs if g["object"] is None]
        assert null["end"] - null["start"] >= 1.5 - 1e-9
        sources.add(null["source"])
        if null["source"] == "offscreen":
            assert null["label"] not in ann["labels"]  # a class not shown
        t = (null["start"] + null["end"]) / 2
        assert sounding_object(ann, t) is None
        assert null_intervals(ann) == [(null["start"], null["end"])]
    assert len(sources) >= 2


def test_a_silent_segment_is_quiet_and_the_others_are_not(clips):
    from looklisten.media.video import read_audio

    anns = load_annotations(clips)
    quiet = [
        a
        for a in anns.values()
        if a["sounding"]
        and any(g["object"] is None and g["source"] == "silence" for g in a["sounding"])
    ]
    assert quiet, "the fixture's seed draws a silent segment"
    ann = quiet[0]
    x = read_audio(clips / ann["file"], 0, None, 16000)
    (null,) = [g for g in ann["sounding"] if g["object"] is None]
    s0, s1 = int(null["start"] * 16000) + 800, int(null["end"] * 16000) - 800
    rest = np.r_[x[: max(0, s0 - 1600)], x[s1 + 1600 :]]
    assert np.sqrt(np.mean(x[s0:s1] ** 2)) < 0.5 * np.sqrt(np.mean(rest**2))


def test_null_pairs_and_off_screen_windows_are_negatives(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny", arch="avol")
    assert cfg.sampler.null_fraction == AVOL_NULL_FRACTION > 0
    assert get_config("tiny", arch="ave").sampler.null_fraction == 0
    videos = scan_folder(clips, progress=False).videos
    from looklisten.data.demo_data import off_screen

    intervals = off_screen(clips, videos)
    sampler = PairSampler(videos, cfg.sampler, cfg.audio, null_fraction=0.3, off_screen=intervals)
    rng = np.random.default_rng(0)
    specs = [sampler.sample(rng) for _ in range(3000)]
    null = [s for s in specs if s.null]
    assert abs(len(null) / len(specs) - 0.3) < 0.04
    assert all(s.label == 0 and s.audio_video == -1 for s in null)
    assert {s.null for s in null} == {"silence", "noise"}
    # a positive whose window lies mostly in a segment from nothing on screen is a negative
    same = [s for s in specs if not s.null and s.frame_video == s.audio_video]
    for s in same:
        inside = sampler.off_screen_share(s.audio_video, s.audio_center) > 0.5
        assert s.label == (0 if inside else 1)
    assert any(s.label == 0 for s in same) and any(s.label == 1 for s in same)
    # without null_fraction the sampler draws exactly the pairs it always drew
    plain = PairSampler(videos, cfg.sampler, cfg.audio)
    again = PairSampler(videos, cfg.sampler, cfg.audio, null_fraction=0.0)
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    assert [plain.sample(r1) for _ in range(50)] == [again.sample(r2) for _ in range(50)]
    # the dataset gives null pairs a null sound
    src = MemorySource(clips, videos, cfg, workers=1, progress=False)
    ds = PairDataset(sampler, src, 64, seed=0, train=True)
    items = [ds[k] for k in range(64)]
    for it in items:
        assert it["audio"].shape == (cfg.audio.clip_samples,)
    nulls = [it for it in items if it["audio_video"] == -1]
    assert nulls and all(it["label"] == 0 for it in nulls)
    assert any(not it["audio"].any() for it in nulls)  # silence


# ---------------------------------------------------------------- losses


def test_contrastive_loss_with_null_rows():
    torch.manual_seed(0)
    n, d = 6, 8
    img, aud = torch.randn(n, d), torch.randn(n, d)
    sim = torch.nn.functional.normalize(img, dim=1) @ torch.nn.functional.normalize(aud, dim=1).T
    vid = torch.arange(n)
    tau = torch.tensor(0.1)
    every = torch.ones(n, dtype=torch.bool)
    assert torch.allclose(
        symmetric_nce(sim, vid, vid, tau, every), symmetric_nce(sim, vid, vid, tau)
    )
    # a null row is no target; its sound is a negative for every image
    pos = every.clone()
    pos[-1] = False
    loss = symmetric_nce(sim, vid, vid, tau, pos)
    keep = torch.arange(n - 1)
    i2a = torch.nn.functional.cross_entropy(sim[keep] / tau, keep)  # all n sounds compete
    a2i = torch.nn.functional.cross_entropy(sim.T[keep] / tau, keep)  # all n images compete
    assert torch.allclose(loss, 0.5 * (i2a + a2i))
    # the null sound closer to the images makes the loss larger
    sim2 = sim.clone()
    sim2[:, -1] = 1.0
    assert symmetric_nce(sim2, vid, vid, tau, pos) > loss


def test_calibration_loss_counts_null_rows_as_negatives():
    from looklisten.models.heads import AVOLHead

    torch.manual_seed(0)
    head = AVOLHead(4, 8)
    img, aud = torch.randn(4, 8, 3, 3), torch.randn(4, 8)
    vid = torch.arange(4)
    pos = torch.tensor([True, True, True, False])
    loss, correct, pairs = CalibrationLoss()(head, img, aud, vid, vid, pos)
    assert int(pairs) == 3 + 4 + 1  # 3 pairs; 4 rolled negatives and 1 null pair
    assert 0 <= int(correct) <= int(pairs) and torch.isfinite(loss)


# ---------------------------------------------------------------- the detector


def test_fit_detector_calibrates_and_thresholds():
    rng = np.random.default_rng(0)
    # scores from a known logistic model: P(y=1 | s) = sigmoid(2 s - 1), even classes
    s = rng.normal(0, 2, 20000)
    y = rng.random(20000) < 1 / (1 + np.exp(-(2 * s - 1)))
    det = fit_detector(s[y], s[~y])
    # the fit weights the classes equally: its intercept absorbs the prior
    prior = np.log(y.mean() / (1 - y.mean()))
    assert det.a == pytest.approx(2.0, rel=0.1)
    assert det.b == pytest.approx(-1.0 - prior, abs=0.15)
    assert 0.6 < det.balanced_accuracy < 1 and det.pairs == 20000
    # separable scores: perfect, the threshold between the two sides
    sep = fit_detector([3.0, 4.0, 5.0], [-5.0, -4.0, -3.0])
    assert sep.balanced_accuracy == 1.0
    assert sep.visible([3.0]).all() and not sep.visible([-3.0]).any()
    assert fit_detector([], [1.0]) is UNCALIBRATED
    assert SourceDetector.from_dict(sep.to_dict()) == sep
    assert SourceDetector.from_dict(None) is UNCALIBRATED
    maps = np.full((2, 3, 3), 0.2)
    maps[1, 1, 1] = 0.9
    assert np.allclose(peak_logit(maps), np.log([0.25, 9.0]))


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def avol_run(clips, tmp_path_factory):
    from looklisten.training.trainer import train

    out = tmp_path_factory.mktemp("avolneg") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKLISTEN_CACHE", str(out.parent / "cache"))
        cfg = get_config("tiny", arch="avol", **TINY_RUN)
        train(clips, out, cfg, progress=False, workers=0, cache="memory")
    return out


def test_training_fits_and_saves_the_detector(avol_run):
    from looklisten.models.checkpoint import load_model, load_state

    state = load_state(avol_run)
    det = state["source_detector"]
    assert det["pairs"] > 0 and 0 < det["threshold"] < 1
    model = load_model(avol_run)
    assert model.detector == SourceDetector.from_dict(det)
    vals = [r for r in state["history"] if r["split"] == "val"]
    assert all("val_source_balanced_accuracy" in r for r in vals)


def test_localize_returns_the_probability_and_the_overlay_paints_nothing_when_no(
    avol_run, clips, tmp_path, capsys
):
    import dataclasses

    from PIL import Image

    from looklisten.inputs.prepare import load_image
    from looklisten.models.checkpoint import load_model
    from looklisten.tasks.localize import localize, localize_video, paint_visible

    model = load_model(avol_run)
    clip = sorted(clips.glob("*.mp4"))[0]
    maps, times, prob = localize_video(model, clip, with_probability=True)
    assert prob.shape == times.shape and ((0 <= prob) & (prob <= 1)).all()
    assert np.allclose(prob, model.detector.probability(peak_logit(maps)))
    painted = paint_visible(model, maps, prob)
    keep = prob >= model.detector.threshold
    assert np.array_equal(painted[keep], maps[keep]) and not painted[~keep].any()
    # one image + sound: the heatmap and its probability
    from looklisten.media.video import MediaReader

    with MediaReader(clip) as r:
        frame = r.read_frame(1.0)
    heat, p = localize(model, frame, np.zeros(16000, np.float32), sr=16000, with_probability=True)
    assert heat.shape == frame.shape[:2] and 0 <= p <= 1
    # a detector that never says yes: the overlay leaves the picture as it was
    png = tmp_path / "frame.png"
    Image.fromarray(frame).save(png)
    no = dataclasses.replace(model.detector, threshold=1.01)
    (tmp_path / "run").mkdir()
    import shutil

    shutil.copytree(avol_run / "checkpoint", tmp_path / "run" / "checkpoint")
    st = tmp_path / "run" / "checkpoint" / "state.json"
    d = json.loads(st.read_text())
    d["source_detector"] = no.to_dict()
    st.write_text(json.dumps(d))
    rc = main(
        [
            "localize",
            str(png),
            "--audio",
            str(clip),
            "--checkpoint",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "o.png"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "nothing painted" in out and "p = " in out
    assert np.array_equal(
        load_image(tmp_path / "o.png")[: frame.shape[0]], frame
    )  # over the legend
    rc = main(
        [
            "localize",
            str(clip),
            "--checkpoint",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "o.mp4"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "in 0 of them" in out


def test_eval_localization_scores_the_detector_and_in_video_negatives(avol_run, clips, capsys):
    rc = main(
        [
            "eval",
            "localization",
            str(clips),
            "--checkpoint",
            str(avol_run),
            "--split",
            "all",
            "--times",
            "3",
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    neg = json.loads(captured.out)["negative_audio"]
    assert {"silence", "noise", "absent_class", "other_clip"} <= set(neg)
    det = neg["detection"]
    for k in ("precision", "recall", "f1", "average_precision", "brier", "ece"):
        assert 0 <= det[k] <= 1, k
    assert det["calibrated"] and det["positives"] > 0 and det["negatives"] > det["positives"]
    assert set(det["false_positive_rate"]) >= {"silence", "noise", "in_video"}
    iv = neg["in_video"]
    assert (
        iv["samples"] > 0
        and 0 <= iv["roc_auc"] <= 1
        and sum(iv["sources"].values()) == iv["samples"]
    )


def test_unit_galleries_take_unlabelled_moments(avol_run, clips):
    """Items of a segment from nothing on screen have no label; selectivity ignores them."""
    from looklisten.evaluation.units import evaluate_units

    res = evaluate_units(clips, avol_run, top=8, units=2)
    for branch in res["branches"].values():
        m = branch["mean_selectivity"]
        assert m is None or -1 <= m <= 1
