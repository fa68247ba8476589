"""The shortcut audit: audio-only probe on real decoded pairs, and the two short runs."""

import json

import numpy as np
import pytest

from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.data.scan import scan_folder
from looklisten.evaluation.shortcut import (
    AudioTrackSource,
    probe_accuracy,
    probe_sampler,
    spectral_features,
    timing_features,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("shortcut")
    make_demo_data(root / "data", videos=10, seed=4, workers=2, progress=False, duration=3.0)
    return root


def test_timing_and_spectral_features_hand_values():
    # 15 fps: frame times are k / 15; 1.0 s is on the grid, 1.02 s is 0.3 of a frame past it
    on = timing_features(1.0, 3.0, 15.0)
    np.testing.assert_allclose(on, [1.0, 1 / 3, 0.0, 0.0, 15.0], atol=1e-12)
    off = timing_features(1.02, 3.0, 15.0)
    np.testing.assert_allclose(off[2:4], [0.3, 0.3], atol=1e-9)
    np.testing.assert_allclose(timing_features(1.06, 3.0, 15.0)[2:4], [0.9, 0.1], atol=1e-9)
    sr = 16000
    t = np.arange(sr) / sr
    f = spectral_features(np.sin(2 * np.pi * 1000 * t), sr)  # 20 ms frames: 50 Hz bins
    assert f.shape == (64,) and np.argmax(f) == 20


def test_probe_helper_finds_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1200)
    X = rng.standard_normal((1200, 6))
    assert abs(probe_accuracy(X, y) - 0.5) < 0.06
    X[:, 3] += 2.0 * y
    assert probe_accuracy(X, y) > 0.8


def test_audio_only_probe_on_decoded_demo_pairs(clips, tmp_path, monkeypatch):
    """Real encoded clips, the sampler's own pairs: chance with the fix, shortcut without."""
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny")
    man = scan_folder(clips / "data", progress=False)
    source = AudioTrackSource(man.root, man.videos, cfg)
    res = probe_sampler(man.root, man.videos, cfg, pairs=1500, seed=1, source=source)
    fixed, naive = res["fixed"], res["naive"]
    assert fixed["pairs"] == naive["pairs"] == 1500
    # 1500 balanced pairs: standard error 0.013
    assert fixed["at_chance"] and abs(fixed["accuracy"] - 0.5) < 0.04, fixed
    assert abs(fixed["timing_only"] - 0.5) < 0.04 and abs(fixed["content_only"] - 0.5) < 0.05
    assert not naive["at_chance"] and naive["accuracy"] > 0.9, naive
    assert naive["timing_only"] > 0.9


@pytest.mark.slow
def test_cli_shortcut_trains_both_runs_and_saves_json(clips, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "audit"
    argv = ["eval", "shortcut", clips / "data", "--out", out, "--steps", 3, "--batch-size", 8]
    argv += ["--val-pairs", 32, "--pairs", 600, "--quiet"]
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    res = json.loads(captured.out)
    assert json.loads((out / "shortcut.json").read_text()) == res
    assert res["chance"] == 0.5 and "protocol" in res
    assert set(res["audio_only_probe"]) == {"fixed", "naive"}
    assert res["verdict"]["probe_above_chance_without_fix"]
    for name, frame_grid in (("fixed", True), ("naive", False)):
        run = res["avc"][name]
        assert run["frame_grid"] is frame_grid and run["steps"] == 3 and run["val_pairs"] == 32
        assert (out / f"frame_grid_{str(frame_grid).lower()}" / "checkpoint").is_dir()
        for key in ("val_accuracy_own_pairs", "val_accuracy_honest_pairs"):
            assert 0.0 <= run[key] <= 1.0
    # the fixed run's own validation pairs are the honest pairs: same score
    assert res["avc"]["fixed"]["val_accuracy_own_pairs"] == pytest.approx(
        res["avc"]["fixed"]["val_accuracy_honest_pairs"]
    )
    assert "naive_run_own_minus_honest" in res["verdict"]
