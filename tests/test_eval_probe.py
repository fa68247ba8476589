"""Linear probes: grouped folds, hand-made features, named layers, and the CLI on a tiny run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.evaluation.probe import cross_validate, grouped_folds, majority_accuracy
from looklisten.models.audio import mel_filterbank
from looklisten.tasks.features import (
    RAW_TIME_BINS,
    color_histogram,
    layer_features,
    layer_maps,
    layer_names,
    logmel_stats,
    random_model,
)
from looklisten.training.trainer import train

SMALL_RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 32,
    "train.val_pairs": 16,
    "train.epochs": 1,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny L3-Net trained for 4 steps on 10 encoded demo clips."""
    root = tmp_path_factory.mktemp("probe")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOOKLISTEN_CACHE", str(root / "cache"))
    make_demo_data(root / "data", videos=10, seed=3, workers=2, progress=False, duration=3.0)
    train(root / "data", root / "run", get_config("tiny", **SMALL_RUN), progress=False)
    yield root
    mp.undo()


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


# -- folds ----------------------------------------------------------------------


def test_grouped_folds_never_split_a_file():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), rng.integers(1, 8, size=40))
    file_label = rng.integers(0, 4, size=40)
    labels = file_label[groups]
    splits = grouped_folds(labels, groups, folds=5, seed=1)
    assert len(splits) == 5
    tested = np.concatenate([te for _, te in splits])
    assert sorted(tested.tolist()) == list(range(len(groups)))  # each item tested once
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
        assert len(set(tr) | set(te)) == len(groups)
    # fewer files than folds: as many folds as files
    assert len(grouped_folds(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]), folds=5)) == 3
    with pytest.raises(ValueError, match="2 files"):
        grouped_folds(np.array([0, 1]), np.array([7, 7]))


def test_cross_validate_and_majority_on_separable_data():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 4)
    y = (np.arange(30) % 3)[groups].astype(str)
    X = rng.standard_normal((120, 5)) + 4.0 * (np.arange(30) % 3)[groups, None]
    splits = grouped_folds(y, groups, 3)
    for kind in ("svm", "logreg"):
        assert np.mean(cross_validate(X, y, splits, kind)) > 0.95
    maj = majority_accuracy(y, splits)
    assert all(0.0 <= a <= 0.5 for a in maj)


# -- hand-made features -----------------------------------------------------------


def test_color_histogram_hand_case():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2] = (255, 0, 0)  # 8 pixels -> levels (7, 0, 0) -> bin 7 * 64 = 448
    img[2] = (0, 0, 255)  # 4 pixels -> (0, 0, 7) -> bin 7
    img[3] = (100, 50, 200)  # 4 pixels -> (3, 1, 6) -> bin 3 * 64 + 8 + 6 = 206
    h = color_histogram([img])
    assert h.shape == (1, 512)
    expected = np.zeros(512)
    expected[[448, 7, 206]] = [0.5, 0.25, 0.25]
    np.testing.assert_allclose(h[0], expected)
    assert color_histogram(np.zeros((2, 3, 3, 3), np.uint8), bins=4)[:, 0].tolist() == [1.0, 1.0]


def test_logmel_stats_hand_case():
    audio = get_config("tiny").audio
    n, sr, m = audio.clip_samples, audio.sample_rate, audio.n_mels
    # silence: every band is log(eps), constant over time
    s = logmel_stats(np.zeros((1, n), np.float32), audio)
    assert s.shape == (1, 2 * m)
    np.testing.assert_allclose(s[0, :m], np.log(audio.log_eps), rtol=1e-5)
    np.testing.assert_allclose(s[0, m:], 0.0, atol=1e-6)
    # a steady sine: the loudest band is the one whose filter weighs its frequency most,
    # and doubling the amplitude adds log(4) to every band's mean, not to its std
    f = 1000.0
    x = (0.1 * np.sin(2 * np.pi * f * np.arange(n) / sr)).astype(np.float32)
    a, b = logmel_stats(np.stack([x, 2 * x]), audio)
    fb = mel_filterbank(sr, audio.n_fft, m, audio.fmin, audio.fmax)
    assert np.argmax(a[:m]) == np.argmax(fb[:, int(round(f * audio.n_fft / sr))])
    loud = a[:m] > a[:m].max() - 10  # bands the sine reaches (far above the eps floor)
    np.testing.assert_allclose((b - a)[:m][loud], np.log(4.0), atol=1e-3)
    np.testing.assert_allclose(b[m:][loud], a[m:][loud], atol=1e-3)


# -- named layers ---------------------------------------------------------------------


def test_named_layers_and_default_matches_the_transfer_features():
    cfg = get_config("tiny")
    net = random_model(cfg)
    names = layer_names(net, "audio")
    assert names[0] == "conv1_1" and names[-1] == "conv4_2" and "pool3" in names
    rng = np.random.default_rng(0)
    waves = list(0.1 * rng.standard_normal((3, cfg.audio.clip_samples)).astype(np.float32))
    with torch.inference_mode():
        ref = net.embed_audio(torch.from_numpy(np.stack(waves))).numpy()
    np.testing.assert_allclose(layer_features(net, "audio", waves), ref, rtol=1e-5, atol=1e-6)
    frames = list(rng.integers(0, 255, (2, 72, 72, 3), dtype=np.uint8))
    assert layer_maps(net, "image", frames, "conv2_1").shape == (2, 32, 16, 16)
    with pytest.raises(ValueError, match="conv4_2"):
        layer_maps(net, "image", frames, "fc7")
    # the random baseline is the run's initial state: same seed, same weights
    again = random_model(cfg)
    for p, q in zip(net.parameters(), again.parameters()):
        assert torch.equal(p, q)


# -- the command ------------------------------------------------------------------------


@pytest.mark.slow  # a tiny run is trained first (module fixture)
def test_cli_probe_audio_on_demo_annotations(run, capsys, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(run / "cache"))
    res = run_cli(
        capsys,
        "eval",
        "probe",
        run / "data",
        "--checkpoint",
        run / "run",
        "--modality",
        "audio",
        "--folds",
        3,
        "--quiet",
        "--save",
    )
    assert res["items"] == 10 * 3 and res["files"] == 10  # 3 s clips: windows at 0.5, 1.5, 2.5
    assert res["labels_from"] == "annotations" and res["folds"] == 3 and res["classes"] >= 2
    assert res["chance"] == pytest.approx(1 / res["classes"], abs=1e-4)
    for row in [res["accuracy"], *res["baselines"].values()]:
        assert 0.0 <= row["mean"] <= 1.0 and len(row["per_fold"]) == 3
    assert set(res["baselines"]) == {"random_weights", "handmade", "raw_input", "majority"}
    bins = RAW_TIME_BINS * 64  # the tiny preset's 64 mel bands
    assert res["feature_dims"] == {
        "model": 128,
        "random_weights": 128,
        "handmade": 128,
        "raw_input": bins,
    }
    # the margin over the best baseline, with its interval over files
    m = res["margin"]
    best = max(res["baselines"], key=lambda k: res["baselines"][k]["mean"])
    assert m["over"] == best and m["files"] == 10 and m["ci"][0] <= m["difference"] <= m["ci"][1]
    saved = json.loads((run / "run" / "eval" / "probe_audio.json").read_text())
    assert saved == res


@pytest.mark.slow  # a tiny run is trained first (module fixture)
def test_cli_probe_images_from_folders(run, tmp_path, capsys):
    """Labels from sub-folders; colour histograms separate reddish from bluish pictures."""
    rng = np.random.default_rng(0)
    for label, colour in (("red", (200, 40, 40)), ("blue", (40, 40, 200))):
        (tmp_path / label).mkdir()
        for i in range(6):
            img = np.clip(rng.normal(colour, 30, (80, 96, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / label / f"{i}.png")
    res = run_cli(
        capsys,
        "eval",
        "probe",
        tmp_path,
        "--checkpoint",
        run / "run",
        "--modality",
        "image",
        "--classifier",
        "logreg",
        "--folds",
        3,
        "--layer",
        "conv3_2",
        "--quiet",
    )
    assert res["labels_from"] == "folders" and res["items"] == 12 and res["classes"] == 2
    assert res["layer"] == "conv3_2" and res["feature_dims"]["model"] == 64
    assert res["baselines"]["handmade"]["mean"] == 1.0
    assert not (run / "run" / "eval" / "probe_image.json").exists()


@pytest.mark.slow  # a tiny run is trained first (module fixture)
def test_cli_probe_errors(run, capsys):
    rc = main(
        [
            "eval",
            "probe",
            str(run / "data"),
            "--checkpoint",
            str(run / "run"),
            "--modality",
            "image",
            "--layer",
            "nope",
        ]
    )
    assert rc == 2
    assert "conv4_2" in capsys.readouterr().err
