"""Shards: written once from real encoded clips, resumable, and serving the raw folder's pairs."""

import io
import json

import numpy as np
import pytest
import webdataset as wds
from media import decode_index, make_clip

from looklisten.core.config import get_config
from looklisten.data.scan import scan_folder
from looklisten.data.shards import ShardSet, is_shard_location, shard_folder
from looklisten.inputs.prepare import item_from_clip
from looklisten.training.trainer import Trainer

CFG = get_config(
    "tiny",
    **{
        "train.batch_size": 8,
        "train.epoch_pairs": 48,
        "train.val_pairs": 16,
        "sampler.val_fraction": 0.3,
        "sampler.split_seed": 5,
    },
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    (root / "a").mkdir()
    make_clip(root / "good1.mp4", "h264-aac", duration=3.0, fps=25, sample_rate=44100, channels=2)
    make_clip(root / "a" / "good2.webm", "vp9-opus", duration=2.5, fps=30, sample_rate=48000)
    make_clip(root / "a" / "good3.avi", "mjpeg-pcm", duration=2.0, fps=15, sample_rate=16000)
    make_clip(root / "a" / "good4.mp4", "h264-aac", duration=2.2, fps=12, sample_rate=22050)
    make_clip(root / "good5.mp4", "h264-aac", duration=2.4, fps=24, sample_rate=32000)
    make_clip(root / "good6.mp4", "h264-aac", duration=2.0, fps=20, sample_rate=16000)
    make_clip(root / "noaudio.mp4", "h264-aac", duration=2.0, audio=False)
    (root / "notes.mp4").write_text("this is not a video\n")
    return root


@pytest.fixture(autouse=True)
def scan_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory):
    from looklisten.cli.main import main

    out = tmp_path_factory.mktemp("shards")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKLISTEN_CACHE", str(tmp_path_factory.mktemp("cache")))
        args = ["shard", str(folder), "--out", str(out), "--preset", "tiny", "--quiet"]
        assert main(args + ["--workers", "2", "--shard-size", "4"]) == 0
    return out


def test_shards_hold_every_usable_video_in_the_webdataset_layout(folder, shards):
    index = json.loads((shards / "index.json").read_text())
    man = scan_folder(folder, min_seconds=CFG.audio.clip_seconds, progress=False)
    assert [v["path"] for v in index["videos"]] == [v.path for v in man.videos]
    assert len(man.videos) == 6 and [s["name"] for s in index["shards"]] == [
        "shard-000000.tar",
        "shard-000001.tar",
    ]
    rejected = (shards / "rejected.tsv").read_text()
    assert "noaudio.mp4" in rejected and "notes.mp4" in rejected
    assert index["settings"]["resize"] == CFG.vision.resize
    assert index["settings"]["sample_rate"] == CFG.audio.sample_rate
    # any WebDataset reader sees one sample per video: its frames, audio and metadata
    samples = list(wds.WebDataset(str(shards / "shard-000000.tar"), shardshuffle=False))
    assert len(samples) == 4
    for s, v in zip(samples, man.videos[:4]):
        meta = json.loads(s["json"])
        assert meta["entry"]["path"] == v.path
        assert sum(k.endswith(".jpg") for k in s) == v.num_frames
        audio = np.load(io.BytesIO(s["audio.npy"]))
        assert audio.dtype == np.float16
        assert abs(len(audio) - v.duration * CFG.audio.sample_rate) < 0.05 * CFG.audio.sample_rate
    # no temporary files left behind
    assert not [p for p in shards.iterdir() if p.name.startswith(".")]


def test_a_rerun_resumes_and_redoes_only_missing_or_torn_shards(folder, shards, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for p in shards.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    again = shard_folder(folder, out, CFG, workers=1, shard_size=4, progress=False)
    assert (again["written"], again["skipped"]) == (0, 2)
    # a kill while writing shard 1: its tar is gone, a torn temporary is left
    first = (out / "shard-000000.tar").stat().st_mtime_ns
    (out / "shard-000001.tar").unlink()
    (out / ".shard-000001.tar.tmp").write_bytes(b"torn")
    again = shard_folder(folder, out, CFG, workers=1, shard_size=4, progress=False)
    assert (again["written"], again["skipped"]) == (1, 1)
    assert (out / "shard-000000.tar").stat().st_mtime_ns == first
    assert (out / "shard-000001.tar").read_bytes() == (shards / "shard-000001.tar").read_bytes()
    # other settings (another preset's sizes) redo everything
    other = shard_folder(folder, out, get_config("small"), workers=2, shard_size=4, progress=False)
    assert other["written"] == 2


def _pairs(trainer, n):
    return [trainer.train_set[k] for k in range(n)] + [trainer.val_set[k] for k in range(8)]


@pytest.mark.slow
def test_training_from_shards_sees_the_raw_folders_pairs(folder, shards, tmp_path):
    raw = Trainer.from_folder(folder, tmp_path / "raw", CFG, cache="memory", progress=False)
    sh = Trainer.from_folder(shards, tmp_path / "sh", CFG, progress=False, workers=0)
    split_raw = json.loads((tmp_path / "raw" / "split.json").read_text())
    assert json.loads((tmp_path / "sh" / "split.json").read_text()) == split_raw
    assert raw.train_set.sampler.videos == sh.train_set.sampler.videos
    for a, b in zip(_pairs(raw, 48), _pairs(sh, 48)):
        for key in ("label", "frame_video", "audio_video", "frame_time", "audio_center"):
            assert a[key] == b[key], key
        x, y = a["frame"].numpy().astype(int), b["frame"].numpy().astype(int)
        assert x.shape == y.shape == (CFG.vision.resize, CFG.vision.resize, 3)
        assert np.abs(x - y).mean() < 4.0  # JPEG (quality 90) on black/white code cells
        assert decode_index(x) == decode_index(y)  # the same frame of the same video
        # the same decoded track, stored as float16: rounding only
        np.testing.assert_allclose(a["audio"].numpy(), b["audio"].numpy(), rtol=0, atol=5e-4)
    # multi-frame items (AVE+MF): the same window of frames as the memory cache
    mf = get_config("tiny-ave-mf")
    src = ShardSet.open(shards).source(raw.train_set.sampler.videos, mf)
    mem = raw.train_set.source
    for vid in range(len(src.videos)):
        for index in (0, 7):
            got = src.frame(vid, index, 0.0)
            want = item_from_clip(mem.frames[vid], None, index, mf.vision)
            assert got.shape == want.shape == (mf.vision.num_frames, *want.shape[1:])
            assert [decode_index(f) for f in got] == [decode_index(f) for f in want]
    with pytest.raises(ValueError, match="--preset tiny"):
        Trainer.from_folder(shards, tmp_path / "x", get_config("small"), progress=False)


def test_shards_by_url_are_fetched_once_into_the_cache(shards, tmp_path):
    url = "file://" + str(shards)
    assert is_shard_location(url) and is_shard_location(shards)
    assert not is_shard_location(shards.parent)
    remote = ShardSet.open(url)
    local = ShardSet.open(shards)
    assert remote.videos == local.videos and remote.remote and not local.remote
    remote.fetch(progress=False)
    assert sorted(p.name for p in remote.local_dir.glob("*.tar")) == [
        "shard-000000.tar",
        "shard-000001.tar",
    ]
    assert str(remote.local_dir).startswith(str(tmp_path / "cache"))
    a = remote.source(remote.videos, CFG)
    b = local.source(local.videos, CFG)
    for vid in range(len(remote.videos)):
        assert np.array_equal(a.frame(vid, 3, 0.0), b.frame(vid, 3, 0.0))
        assert np.array_equal(a.audio(vid, 1.0), b.audio(vid, 1.0))
    with pytest.raises(ValueError, match="fsspec"):
        ShardSet.open("nosuchprotocol://bucket/shards")


@pytest.mark.slow
def test_optical_flow_is_computed_once_into_the_shards(tmp_path):
    """AVE+OF shards hold each clip's TV-L1 flow: the pairs' flow is the in-memory cache's."""
    from looklisten.data.demo_data import make_demo_data
    from looklisten.data.sampler import MemorySource

    make_demo_data(tmp_path / "clips", videos=3, seed=2, duration=2.0, workers=1, progress=False)
    of = get_config("tiny-ave-of")
    out = shard_folder(
        tmp_path / "clips", tmp_path / "of", of, workers=2, shard_size=2, progress=False
    )
    assert out["settings"]["flow"]["bound"] == of.vision.flow_bound
    shards = ShardSet.open(tmp_path / "of")
    src = shards.source(shards.videos, of)
    mem = MemorySource(tmp_path / "clips", shards.videos, of, workers=1, progress=False)
    rgb = slice(0, 3)
    for vid, v in enumerate(shards.videos):
        assert len(src.flows[vid]) == v.num_frames - 1
        for index in (0, 5, v.num_frames - 1):
            got, want = src.frame(vid, index, 0.0), mem.frame(vid, index, 0.0)
            assert got.shape == want.shape == (*want.shape[:2], 3 + 2 * of.vision.flow_frames)
            np.testing.assert_array_equal(got[..., 3:], want[..., 3:])  # lossless PNG flow
            assert np.abs(got[..., rgb].astype(int) - want[..., rgb]).mean() < 4.0  # JPEG
        assert np.abs(src.decode_flow(vid, 5).astype(int) - 128).max() > 0  # the clips move
    # a flow preset needs flow in the shards; the plain preset of that size reads them too
    plain = shard_folder(
        tmp_path / "clips", tmp_path / "plain", get_config("tiny"), workers=1, progress=False
    )
    assert plain["settings"]["flow"] is None
    with pytest.raises(ValueError, match="reshard"):
        ShardSet.open(tmp_path / "plain").source(shards.videos, of)
    ShardSet.open(tmp_path / "of").check(get_config("tiny"))
