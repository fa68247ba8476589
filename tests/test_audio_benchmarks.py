"""Published sound benchmarks (ESC-50, ESC-10, UrbanSound8K): readers, official folds,
clip-level scores and ``looklisten eval probe --dataset`` on fixtures written in the
published formats."""

from __future__ import annotations

import csv
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.audio_benchmarks import read_benchmark, read_esc50, read_urbansound8k
from looklisten.evaluation.probe import (
    clip_scores,
    majority_clip_accuracy,
    official_fold_accuracy,
    official_splits,
    window_scores,
)
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model
from looklisten.tasks.features import iter_items

ESC50_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
US8K_HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
#: (target, category, in ESC-10, tone in Hz or 0 for noise)
ESC_CLASSES = [(0, "dog", True, 440.0), (1, "rooster", False, 2000.0), (2, "rain", True, 0.0)]
US8K_CLASSES = [(0, "air_conditioner", 300.0), (3, "dog_bark", 1500.0), (6, "gun_shot", 0.0)]


# -- fixtures in the published formats --------------------------------------------------


def write_wav(path: Path, x: np.ndarray, sr: int, sampwidth: int = 2) -> None:
    """Write float samples in [-1, 1], (N,) or (N, C), as PCM 16- or 24-bit with ``wave``."""
    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    scale = 2 ** (8 * sampwidth - 1) - 1
    ints = np.round(np.clip(x, -1, 1) * scale).astype("<i4")
    raw = ints.view(np.uint8).reshape(*ints.shape, 4)[..., :sampwidth].tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(sampwidth)
        w.setframerate(sr)
        w.writeframes(raw)


def sound(tone: float, seconds: float, sr: int, rng) -> np.ndarray:
    n = int(round(seconds * sr))
    noise = rng.standard_normal(n)
    if tone == 0.0:
        return 0.3 * noise / np.abs(noise).max()
    return 0.5 * np.sin(2 * np.pi * tone * np.arange(n) / sr) + 0.02 * noise


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def make_esc50(root: Path, per_fold: int = 2, missing: bool = True) -> Path:
    """ESC-50 as published: 44.1 kHz mono 16-bit, meta/esc50.csv, names fold-src-take.wav.

    Clips are 2 s (one is 5 s, as the real ones; one is 0.4 s); the last row,
    if ``missing``, names a file that is not on disk.
    """
    rng = np.random.default_rng(0)
    rows = []
    for fold in range(1, 6):
        for target, category, esc10, tone in ESC_CLASSES:
            for j in range(per_fold):
                src = 1000 * fold + 10 * target + j
                name = f"{fold}-{src}-A.wav"
                seconds = 5.0 if (fold, target, j) == (1, 0, 0) else 2.0
                seconds = 0.4 if (fold, target, j) == (2, 1, 0) else seconds
                write_wav(root / "audio" / name, sound(tone, seconds, 44100, rng), 44100)
                rows.append([name, fold, target, category, str(esc10), src, "A"])
    if missing:
        rows.append(["5-99999-A.wav", 5, 0, "dog", "True", 99999, "A"])
    write_csv(root / "meta" / "esc50.csv", ESC50_HEADER, rows)
    return root


def make_us8k(root: Path, folds=(1, 2, 3)) -> Path:
    """UrbanSound8K as published: audio/fold<k>/fsID-classID-occ-slice.wav, mixed formats.

    Formats cycle through stereo 44.1 kHz 16-bit, mono 48 kHz 24-bit and stereo
    96 kHz 24-bit; gun shots are 0.3 s (shorter than one window), the rest 1.5 s.
    """
    rng = np.random.default_rng(1)
    formats = [(44100, 2, 2), (48000, 1, 3), (96000, 2, 3)]
    rows = []
    for fold in folds:
        for i, (cid, name, tone) in enumerate(US8K_CLASSES):
            for j in range(2):
                sr, channels, width = formats[(i + j + fold) % 3]
                seconds = 0.3 if name == "gun_shot" else 1.5
                x = sound(tone, seconds, sr, rng)
                x = np.stack([x, 0.5 * x], 1) if channels == 2 else x
                fname = f"{100 * fold + 10 * cid + j}-{cid}-0-{j}.wav"
                write_wav(root / "audio" / f"fold{fold}" / fname, x, sr, width)
                rows.append([fname, 100 * fold + 10 * cid + j, 0.0, seconds, 1, fold, cid, name])
    write_csv(root / "metadata" / "UrbanSound8K.csv", US8K_HEADER, rows)
    return root


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    return make_esc50(tmp_path_factory.mktemp("esc50"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny L3-Net saved as a run (weights from another seed than its config's)."""
    cfg = get_config("tiny")
    torch.manual_seed(123)
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run, create_model(cfg), cfg)
    return run


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


# -- readers -------------------------------------------------------------------------------


def test_esc50_official_folds_from_the_fold_column_and_missing_files_counted(esc50):
    bench = read_esc50(esc50)
    assert bench.dataset == "esc50" and bench.folds == [1, 2, 3, 4, 5]
    assert len(bench.clips) == 5 * 3 * 2 and bench.listed == 31
    assert len(bench.failed) == 1 and "5-99999-A.wav: missing" in bench.failed[0]
    assert bench.classes == {0: "dog", 1: "rooster", 2: "rain"}
    for c in bench.clips:  # fold and class as the CSV writes them (the name's prefix is the fold)
        assert c.fold == int(Path(c.path).name.split("-")[0])
        assert c.label == dict((t, n) for t, n, _, _ in ESC_CLASSES)[c.class_index]
    assert "Piczak" in bench.protocol and "Arandjelovic" in bench.protocol


def test_esc10_subset_from_the_esc10_column_written_True_False(esc50):
    bench = read_benchmark("esc50", esc50, esc10=True)
    assert bench.dataset == "esc10" and "ESC-10" in bench.protocol
    assert {c.label for c in bench.clips} == {"dog", "rain"}  # rooster rows say False
    assert len(bench.clips) == 5 * 2 * 2 and bench.listed == 21  # the missing dog clip counts
    with pytest.raises(ValueError, match="esc50"):
        read_benchmark("urbansound8k", esc50, esc10=True)


def test_urbansound8k_per_fold_sub_folders(tmp_path):
    root = make_us8k(tmp_path)
    bench = read_urbansound8k(root)
    assert bench.folds == list(range(1, 11)) and len(bench.clips) == 3 * 3 * 2
    for c in bench.clips:
        assert Path(c.path).parent.name == f"fold{c.fold}"
    assert bench.classes == {0: "air_conditioner", 3: "dog_bark", 6: "gun_shot"}
    # a slice moved out of its fold's folder is missing, not found elsewhere
    moved = Path(bench.clips[0].path)
    moved.rename(root / "audio" / moved.name)
    again = read_urbansound8k(root)
    assert len(again.clips) == 17 and len(again.failed) == 1


def test_official_fold_k_is_exactly_the_test_set_of_split_k(esc50):
    bench = read_esc50(esc50)
    clip_folds = np.array([c.fold for c in bench.clips])
    window_clip = np.repeat(np.arange(len(bench.clips)), 3)  # 3 windows per clip
    splits = official_splits(window_clip, clip_folds, bench.folds)
    assert len(splits) == 5
    for k, (train, test) in zip(bench.folds, splits):
        test_clips, train_clips = set(window_clip[test]), set(window_clip[train])
        assert test_clips == set(np.flatnonzero(clip_folds == k))
        assert not test_clips & train_clips  # no file on both sides
        assert len(train) + len(test) == len(window_clip)


ESC_ROW = ["1-1-A.wav", "1", "0", "dog", "True", "1", "A"]


@pytest.mark.parametrize(
    "header, rows, message",
    [
        (ESC50_HEADER[:1] + ESC50_HEADER[2:], [], r"esc50\.csv:1: missing column 'fold'"),
        (
            ESC50_HEADER,
            [ESC_ROW, ["1-2-A.wav", "x", *ESC_ROW[2:]]],
            r"esc50\.csv:3: fold 'x' is not",
        ),
        (
            ESC50_HEADER,
            [["1-2-A.wav", "6", *ESC_ROW[2:]]],
            r"esc50\.csv:2: fold 6 is outside 1\.\.5",
        ),
        (
            ESC50_HEADER,
            [["../x.wav", *ESC_ROW[1:]]],
            r"esc50\.csv:2: filename '\.\./x\.wav' is not",
        ),
        (ESC50_HEADER, [ESC_ROW[:4] + ["yes"] + ESC_ROW[5:]], r"esc50\.csv:2: esc10 must be True"),
        (ESC50_HEADER, [ESC_ROW[:2] + ["50"] + ESC_ROW[3:]], r"esc50\.csv:2: target 50 is outside"),
        (ESC50_HEADER, [ESC_ROW, ESC_ROW], r"esc50\.csv:3: audio/1-1-A\.wav listed again"),
        (ESC50_HEADER, [ESC_ROW, ["1-2-A.wav", "1", "0", "cat", *ESC_ROW[4:]]], r":3: target 0"),
        (ESC50_HEADER, [ESC_ROW[:3]], r"esc50\.csv:2: 3 fields, the header has 7"),
        (ESC50_HEADER, [], r"esc50\.csv:1: no clips listed"),
        ([], [], r"esc50\.csv:1: empty file"),
    ],
)
def test_malformed_esc50_csv_gives_one_line_naming_file_and_line(tmp_path, header, rows, message):
    (tmp_path / "audio").mkdir()
    write_wav(tmp_path / "audio" / "1-1-A.wav", np.zeros(100), 44100)
    path = tmp_path / "meta" / "esc50.csv"
    if header:
        write_csv(path, header, rows)
    else:
        path.parent.mkdir()
        path.write_text("")
    with pytest.raises(ValueError, match=message) as err:
        read_esc50(tmp_path)
    assert "\n" not in str(err.value)


def test_us8k_fold_out_of_range_and_no_existing_file(tmp_path):
    row = ["1-0-0-0.wav", "1", "0", "1", "1", "11", "0", "air_conditioner"]
    write_csv(tmp_path / "metadata" / "UrbanSound8K.csv", US8K_HEADER, [row])
    with pytest.raises(ValueError, match=r"UrbanSound8K\.csv:2: fold 11 is outside 1\.\.10"):
        read_urbansound8k(tmp_path)
    row[5] = "1"
    write_csv(tmp_path / "metadata" / "UrbanSound8K.csv", US8K_HEADER, [row])
    with pytest.raises(ValueError, match=r"none of the 1 audio files it lists exists"):
        read_urbansound8k(tmp_path)


# -- what the network sees of the published files -------------------------------------------


def test_stereo_24_bit_and_short_clips_become_the_models_windows(tmp_path):
    """Stereo 44.1 kHz 16-bit and mono 48 kHz 24-bit are resampled and made mono; a clip
    shorter than one window gives one window, the clip then zeros; 5 s gives 5 windows."""
    cfg = get_config("tiny")
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    t = np.arange(int(2.0 * 44100)) / 44100
    s = np.sin(2 * np.pi * 500 * t)
    write_wav(tmp_path / "stereo.wav", np.stack([0.6 * s, 0.2 * s], 1), 44100, 2)
    t48 = np.arange(int(2.0 * 48000)) / 48000
    write_wav(tmp_path / "deep.wav", 0.5 * np.sin(2 * np.pi * 500 * t48), 48000, 3)
    write_wav(tmp_path / "short.wav", 0.5 * np.ones(int(0.3 * 44100)), 44100, 2)
    write_wav(tmp_path / "five.wav", np.zeros(5 * 44100), 44100, 2)
    files = [tmp_path / f for f in ("stereo.wav", "deep.wav", "short.wav", "five.wav")]
    failed: list[str] = []
    items = list(iter_items(files, cfg, "audio", 1.0, failed))
    assert not failed
    by_file = {i: [(t, x) for j, t, x in items if j == i] for i in range(4)}
    assert [t for t, _ in by_file[0]] == [0.5, 1.5] and len(by_file[3]) == 5
    rms = lambda x: float(np.sqrt(np.mean(x[n // 10 : -n // 10] ** 2)))  # noqa: E731
    assert rms(by_file[0][0][1]) == pytest.approx(0.4 / np.sqrt(2), rel=0.03)  # (0.6 + 0.2) / 2
    assert rms(by_file[1][0][1]) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)  # 24-bit scale
    [(t0, w)] = by_file[2]
    assert t0 == 0.5 and w.shape == (n,)
    assert np.abs(w[: int(0.28 * sr)] - 0.5).max() < 0.05  # the clip ...
    assert not w[int(0.32 * sr) :].any()  # ... then zeros


# -- clip-level scores ------------------------------------------------------------------


def test_clip_prediction_averages_window_scores_where_the_window_vote_disagrees():
    # clip 7: windows (0.6, 0.4), (0.6, 0.4), (0.0, 1.0): two of three windows vote
    # class 0, the mean score is (0.4, 0.6): class 1
    scores = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0], [0.9, 0.1]])
    clips, mean = clip_scores(scores, np.array([7, 7, 7, 2]))
    assert clips.tolist() == [2, 7]
    np.testing.assert_allclose(mean, [[0.9, 0.1], [0.4, 0.6]])
    assert mean.argmax(1).tolist() == [0, 1]


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
def test_official_fold_accuracy_scores_clips_by_mean_window_score(classifier):
    """Fold 1 trains on clips at x = -1 (a) and x = +1 (b); fold 2's clip has windows
    x = -0.1, -0.1, +5: two windows say a, the mean score says b (its true class)."""
    rng = np.random.default_rng(0)
    train_x = np.concatenate(
        [-1 + 0.1 * rng.standard_normal(20), 1 + 0.1 * rng.standard_normal(20)]
    )
    X = np.concatenate([train_x, [-0.1, -0.1, 5.0]])[:, None]
    window_clip = np.concatenate([np.repeat([0, 1], 20), [2, 2, 2]])
    labels, folds = np.array(["a", "b", "b"]), np.array([1, 1, 2])
    accs, correct = official_fold_accuracy(X, window_clip, labels, folds, [2], classifier)
    assert accs == [1.0] and correct[2] == 1.0 and np.isnan(correct[:2]).all()
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    clf = (LinearSVC() if classifier == "svm" else LogisticRegression()).fit(
        X[:40], labels[window_clip[:40]]
    )
    votes = clf.predict(X[40:])
    assert (votes == "a").sum() == 2  # the window vote would be wrong
    assert window_scores(clf, X[40:]).shape == (3, 2)


def test_majority_of_the_training_folds_clips():
    labels = np.array(["a", "a", "b", "b", "b", "a"])
    folds = np.array([1, 1, 1, 2, 2, 2])
    present = np.array([True, True, True, True, True, False])  # clip 5 gave no window
    accs, correct = majority_clip_accuracy(labels, folds, present, [1, 2])
    # fold 1 tested: training clips b, b -> b: 1/3; fold 2: training a, a, b -> a: 0/2
    assert accs == pytest.approx([1 / 3, 0.0]) and np.isnan(correct[5])


# -- the command --------------------------------------------------------------------------


def test_cli_probe_esc50_official_folds_end_to_end(esc50, checkpoint, capsys):
    res = run_cli(
        capsys,
        "eval",
        "probe",
        esc50,
        "--dataset",
        "esc50",
        "--checkpoint",
        checkpoint,
        "--quiet",
        "--save",
    )
    assert res["dataset"] == "esc50" and res["folds"] == [1, 2, 3, 4, 5]
    assert res["clips"] == 30 and res["windows"] == 28 * 2 + 5 + 1  # 2 s, one 5 s, one 0.4 s
    assert res["windows_per_clip"] == {"min": 1, "max": 5}
    assert res["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert len(res["failed"]) == 1 and res["listed"] == 31
    assert set(res["baselines"]) == {"random_weights", "handmade", "majority"}
    assert set(res["per_fold"]) == {"1", "2", "3", "4", "5"}
    assert all(row["clips"] == 6 for row in res["per_fold"].values())
    for row in [res["accuracy"], *res["baselines"].values()]:
        assert len(row["per_fold"]) == 5 and row["mean"] == pytest.approx(
            np.mean(row["per_fold"]), abs=1e-3
        )
    assert res["baselines"]["handmade"]["mean"] >= 0.9  # a tone, another tone, noise
    assert res["baselines"]["majority"]["mean"] <= 0.5
    m = res["margin"]
    assert m["over"] == max(
        ("random_weights", "handmade", "majority"), key=lambda k: res["baselines"][k]["mean"]
    )
    assert m["ci"][0] <= m["difference"] <= m["ci"][1] and m["clips"] == 30
    assert res["published"]["l3_net"] == 0.793 and "Arandjelović" in res["published"]["source"]
    assert "Piczak" in res["protocol"] and "window" in res["protocol"]
    saved = json.loads((checkpoint / "eval" / "probe_esc50.json").read_text())
    assert saved == res


def test_cli_probe_urbansound8k_and_esc10(tmp_path, esc50, checkpoint, capsys):
    root = make_us8k(tmp_path / "us8k")
    res = run_cli(
        capsys,
        "eval",
        "probe",
        root,
        "--dataset",
        "urbansound8k",
        "--checkpoint",
        checkpoint,
        "--classifier",
        "logreg",
        "--quiet",
    )
    assert res["folds"] == [1, 2, 3] and res["folds_without_clips"] == list(range(4, 11))
    assert res["clips"] == 18 and res["windows"] == 18  # 1.5 s and 0.3 s: one window each
    assert res["published"] is None and "Salamon" in res["protocol"]
    res = run_cli(
        capsys,
        "eval",
        "probe",
        esc50,
        "--esc10",
        "--checkpoint",
        checkpoint,
        "--quiet",
    )
    assert res["dataset"] == "esc10" and res["clips"] == 20 and res["classes"] == 2
    assert res["published"] is None
    rc = main(
        [
            "eval",
            "probe",
            str(esc50),
            "--dataset",
            "esc50",
            "--modality",
            "image",
            "--checkpoint",
            str(checkpoint),
        ]
    )
    assert rc == 2 and "audio" in capsys.readouterr().err
