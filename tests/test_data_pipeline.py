"""Folder scan (rejects, cache, manifest) and pairs decoded from real encoded files."""

import os

import numpy as np
import pytest
from media import make_clip, truncate

from looklisten.core.config import get_config
from looklisten.data.sampler import FileSource, MemorySource, PairDataset, PairSampler
from looklisten.data.scan import scan_folder
from looklisten.evaluation.shortcut import audio_side_features, probe_accuracy


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    (root / "a" / "b").mkdir(parents=True)
    make_clip(root / "good1.mp4", "h264-aac", duration=3.0, fps=25, sample_rate=44100, channels=2)
    make_clip(
        root / "a" / "good2.webm", "vp9-opus", duration=2.5, fps=30, sample_rate=48000, channels=1
    )
    make_clip(
        root / "a" / "b" / "good3.avi",
        "mjpeg-pcm",
        duration=2.0,
        fps=15,
        sample_rate=16000,
        channels=1,
    )
    make_clip(
        root / "a" / "good4.mp4", "h264-aac", duration=2.2, fps=12, sample_rate=22050, channels=1
    )
    make_clip(root / "noaudio.mp4", "h264-aac", duration=2.0, audio=False)
    make_clip(root / "silent.mp4", "h264-aac", duration=2.0, silent=True)
    make_clip(root / "short.mp4", "h264-aac", duration=0.5)
    full = make_clip(root / "a" / "full.mp4", "h264-aac", duration=3.0)
    truncate(full.path, root / "a" / "truncated.mp4")
    full.path.unlink()
    # decided by content, not by name: an audio-only .m4a and a picture are listed with
    # their reason, a video in an audio container (.ogg) trains
    make_clip(root / "a" / "voice.m4a", "aac-m4a", duration=2.0, sample_rate=44100, channels=1)
    make_clip(root / "a" / "camera.ogg", "vp8-vorbis-ogv", duration=2.0, sample_rate=22050)
    from PIL import Image

    Image.new("RGB", (32, 24), (200, 30, 30)).save(root / "a" / "still.png")
    (root / "notes.mp4").write_text("this is not a video\n")
    (root / "readme.txt").write_text("ignored: not a video extension\n")
    return root


def test_scan_keeps_usable_videos_and_says_why_it_rejects(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    man = scan_folder(folder, min_seconds=1.0, progress=False, workers=2)
    assert [v.path for v in man.videos] == [
        "a/b/good3.avi",
        "a/camera.ogg",
        "a/good2.webm",
        "a/good4.mp4",
        "good1.mp4",
    ]
    reasons = dict(man.rejected)
    assert set(reasons) == {
        "noaudio.mp4",
        "silent.mp4",
        "short.mp4",
        "a/truncated.mp4",
        "notes.mp4",
        "a/voice.m4a",
        "a/still.png",
    }
    assert reasons["a/voice.m4a"] == "no video stream"
    assert reasons["a/still.png"] == "no audio stream"
    assert "no audio" in reasons["noaudio.mp4"]
    assert "silent" in reasons["silent.mp4"]
    assert "shorter" in reasons["short.mp4"]
    assert "truncated" in reasons["a/truncated.mp4"] or "corrupt" in reasons["a/truncated.mp4"]
    assert "not a media file" in reasons["notes.mp4"]
    good1 = next(v for v in man.videos if v.path == "good1.mp4")
    assert good1.fps == pytest.approx(25) and good1.duration == pytest.approx(3.0, abs=0.05)
    man.write(tmp_path / "run")
    lines = (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(man.videos)
    rej = (tmp_path / "run" / "rejected.tsv").read_text().splitlines()
    assert rej[0] == "path\treason" and len(rej) == 8

    # cached: an unchanged folder probes nothing; a changed file is probed again
    again = scan_folder(folder, min_seconds=1.0, progress=False)
    assert again.probed == 0 and again.videos == man.videos
    p = folder / "good1.mp4"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = scan_folder(folder, min_seconds=1.0, progress=False)
    assert third.probed == 1 and [v.path for v in third.videos] == [v.path for v in man.videos]


def test_scan_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(NotADirectoryError, match="nope"):
        scan_folder(tmp_path / "nope", progress=False)


def test_file_and_memory_sources_give_the_same_pairs(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny")
    man = scan_folder(folder, progress=False)
    sampler = PairSampler(man.videos, cfg.sampler, cfg.audio)
    files = PairDataset(sampler, FileSource(man.root, man.videos, cfg), 24, seed=0, train=True)
    mem = PairDataset(
        sampler,
        MemorySource(man.root, man.videos, cfg, workers=2, progress=False),
        24,
        seed=0,
        train=True,
    )
    for k in range(24):
        a, b = files[k], mem[k]
        assert a["label"] == b["label"] and a["audio_center"] == b["audio_center"]
        assert a["frame"].shape == (cfg.vision.resize, cfg.vision.resize, 3)
        assert np.abs(a["frame"].numpy().astype(int) - b["frame"].numpy()).mean() < 1.0
        # Not bit-identical: decoders are stateful (a decode after a seek differs a little
        # from one from the start), and Opus timestamps are whole milliseconds, so allow
        # a lag of up to 2 ms and compare shape.
        x, y = a["audio"].numpy(), b["audio"].numpy()
        lag = cfg.audio.sample_rate // 500
        best = max(
            np.corrcoef(x[lag:-lag], y[lag + d : len(y) - lag + d])[0, 1]
            for d in range(-lag, lag + 1)
        )
        assert best > 0.95
        assert abs(np.std(x) / np.std(y) - 1) < 0.1


@pytest.mark.parametrize("frame_grid", [True, False])
def test_shortcut_probe_on_decoded_audio(folder, tmp_path, monkeypatch, frame_grid):
    """An audio-only probe on real decoded windows, their content and timing: at chance with the fix."""
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny", **{"sampler.frame_grid": frame_grid})
    man = scan_folder(folder, progress=False)
    sampler = PairSampler(man.videos, cfg.sampler, cfg.audio)
    ds = PairDataset(
        sampler,
        MemorySource(man.root, man.videos, cfg, workers=2, progress=False),
        3000,
        seed=1,
        train=True,
    )
    X, y = [], []
    for k in range(len(ds)):
        item = ds[k]
        v = man.videos[item["audio_video"]]
        X.append(audio_side_features(item, v, cfg.audio.sample_rate))
        y.append(int(item["label"]))
    acc = probe_accuracy(np.array(X), np.array(y))
    if frame_grid:
        assert abs(acc - 0.5) < 0.04, acc  # 3000 samples: std ~0.009
    else:
        assert acc > 0.75, acc
