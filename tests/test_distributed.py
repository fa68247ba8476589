"""Two processes (torchrun, gloo on the CPU) train like one process with the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.data.shards import shard_folder
from looklisten.inputs.prepare import VisionTransform
from looklisten.models.audio import VOICE_DRAWS, random_gain, random_voice
from looklisten.models.network import create_model
from looklisten.training.trainer import augmentation_generator, train

RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 32,
    "train.val_pairs": 16,
    "train.epochs": 2,
    "train.log_every_steps": 1,
    "sampler.val_fraction": 0.3,
    # float64: in float32 the update of the audio trunk's first layers depends on the
    # summation order at the 1e-2 level (its input, a log-spectrogram, is far from
    # centred, and batch norm cancels the mean of its gradient), as much between 1 and 2
    # threads of one process as between 1 and 2 processes; Adam then turns float noise
    # in near-zero gradients into +-lr steps. float64 shows what the 2 processes compute.
    "train.dtype": "float64",
}
# Measured (2 busy cores): losses within 1.3e-7 relative (AVCLoss computes in float32),
# weight updates within 3.3e-10 of their size.
RTOL, ATOL = 1e-6, 1e-9


def test_rank_slices_of_a_batch_get_the_augmentation_of_their_global_positions():
    cfg = get_config("tiny")
    t = VisionTransform(cfg.vision)
    frames = torch.randint(0, 256, (8, cfg.vision.resize, cfg.vision.resize, 3), dtype=torch.uint8)
    wave = torch.randn(8, 100)
    whole = t(frames, train=True, generator=augmentation_generator(7, 3))
    gains = random_gain(wave, 0.1, augmentation_generator(7, 3, skip=5 * 8))
    for first in (0, 2, 4, 6):  # 4 ranks of 2
        part = t(
            frames[first : first + 2], train=True, generator=augmentation_generator(7, 3, 5 * first)
        )
        assert torch.equal(part, whole[first : first + 2])
        g = augmentation_generator(7, 3, skip=5 * 8 + first)
        assert torch.equal(random_gain(wave[first : first + 2], 0.1, g), gains[first : first + 2])
    voices = random_voice(wave, 16000, 0.2, 6.0, augmentation_generator(7, 3, skip=6 * 8), 5.0)
    for first in (0, 2, 4, 6):
        g = augmentation_generator(7, 3, skip=6 * 8 + VOICE_DRAWS * first)
        part = random_voice(wave[first : first + 2], 16000, 0.2, 6.0, g, 5.0)
        assert torch.allclose(part, voices[first : first + 2], atol=1e-6)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    make_demo_data(root / "clips", videos=8, seed=1, workers=2, progress=False, duration=3.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKLISTEN_CACHE", str(root / "cache"))
        cfg = get_config("tiny")
        shard_folder(root / "clips", root / "shards", cfg, workers=2, shard_size=3, progress=False)
    return root / "shards"


def _torchrun(shards, out, *extra, env=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "looklisten.cli", "train", str(shards), "--out", str(out), "--preset", "tiny"]
    cmd += ["--quiet", "--workers", "0"]
    for k, v in RUN.items():
        cmd += ["--set", f"{k}={v}"]
    proc = subprocess.run(cmd + list(extra), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _losses(run):
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["split"], r.get("loss", r.get("val_loss"))) for r in recs]


def _weights(run):
    return load_file(str(run / "checkpoint" / "model.safetensors"))


@pytest.fixture
def one_thread():
    """One torch thread in this process (as the gloo ranks), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_two_gloo_processes_match_one_and_resume_exactly(shards, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    one = train(shards, tmp_path / "one", get_config("tiny", **RUN), workers=0, progress=False)
    _torchrun(shards, tmp_path / "two", env=env)
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["processes"] == 2 and two["steps"] == one["steps"] == 8
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [x[:2] for x in a] == [x[:2] for x in b] and len(a) == 10
    torch.testing.assert_close(
        torch.tensor([x[2] for x in b]), torch.tensor([x[2] for x in a]), rtol=RTOL, atol=ATOL
    )
    assert two["val_avc_accuracy"] == one["val_avc_accuracy"]
    # what training changed, in one process and in two
    torch.manual_seed(0)
    init = {k: v.detach() for k, v in create_model(get_config("tiny", **RUN)).state_dict().items()}
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert w1.keys() == w2.keys() == init.keys()
    worst = 0.0
    for k in w1:
        if not w1[k].is_floating_point():
            assert torch.equal(w1[k], w2[k]), k  # BN batch counters
            continue
        d1, d2 = w1[k] - init[k], w2[k] - init[k]
        scale = d1.abs().max().clamp_min(1e-12)
        worst = max(worst, ((d2 - d1).abs().max() / scale).item())
        torch.testing.assert_close(d2 / scale, d1 / scale, rtol=0, atol=RTOL, msg=k)
    lrel = max(abs(x[2] - y[2]) / abs(y[2]) for x, y in zip(b, a))
    print(f"2 processes vs 1: losses {lrel:.1e}, weight updates {worst:.1e} relative")

    # killed in the middle of the first epoch, resumed with 2 processes: bit for bit the
    # uninterrupted 2-process run
    _torchrun(shards, tmp_path / "half", "--max-steps", "3", env=env)
    _torchrun(shards, tmp_path / "half", "--resume", env=env)
    assert _losses(tmp_path / "half")[-1] == _losses(tmp_path / "two")[-1]
    w3 = _weights(tmp_path / "half")
    for k in w2:
        torch.testing.assert_close(w3[k], w2[k], rtol=0, atol=0, msg=k)


@pytest.mark.slow
def test_own_rank_data_deals_shards_to_ranks_and_resumes_exactly(tmp_path, monkeypatch):
    """train.rank_data=own: each rank fetches and samples only its shards; resume is exact."""
    root = tmp_path
    make_demo_data(root / "clips", videos=16, seed=4, workers=2, progress=False, duration=3.0)
    cache = root / "cache"
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(cache))
    shard_folder(
        root / "clips", root / "shards", get_config("tiny"), workers=2, shard_size=2, progress=False
    )
    url = "file://" + str(root / "shards")  # a "remote" location: shards are fetched
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    own = ["--rank-data", "own", "--set", "sampler.val_fraction=0.5"]
    _torchrun(url, root / "run", *own, env=env)
    ranks = json.loads((root / "run" / "ranks.json").read_text())["ranks"]
    index = json.loads((root / "shards" / "index.json").read_text())
    all_shards = list(range(len(index["shards"])))
    assert [r["shards"] for r in ranks] == [all_shards[0::2], all_shards[1::2]]
    summary = json.loads((root / "run" / "metrics.json").read_text())
    assert summary["rank_data"] == "own" and summary["processes"] == 2
    assert sum(r["train_videos"] for r in ranks) == summary["train_videos"]
    assert sum(r["val_videos"] for r in ranks) == summary["val_videos"]
    # the union of what the ranks fetched is every shard, each once
    fetched = sorted(p.name for p in (cache.parent / "shards").rglob("shard-*.tar"))
    assert fetched == sorted(s["name"] for s in index["shards"])
    # interrupted inside the first epoch and resumed: the uninterrupted run, bit for bit
    _torchrun(url, root / "half", *own, "--max-steps", "3", env=env)
    _torchrun(url, root / "half", *own, "--resume", env=env)  # the same settings: no conflict
    assert _losses(root / "half")[-1] == _losses(root / "run")[-1]
    w1, w2 = _weights(root / "run"), _weights(root / "half")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=0, atol=0, msg=k)


def test_own_part_deals_whole_shards(monkeypatch):
    from looklisten.data.scan import VideoEntry
    from looklisten.training.distributed import DistEnv
    from looklisten.training.trainer import own_part

    def video(i):
        return VideoEntry(f"v{i}.mp4", 3.0, 10.0, 0.0, 64, 64, 16000, 1, 1000, 0)

    vids = [video(i) for i in range(12)]
    shard_of = {v.path: i // 3 for i, v in enumerate(vids)}  # 4 shards of 3
    train_v, val_v = vids[::2], vids[1::2]
    parts = [own_part(train_v, val_v, DistEnv(r, 2), shard_of) for r in range(2)]
    assert [p[2] for p in parts] == [[0, 2], [1, 3]]
    for tr, va, mine in parts:
        assert {shard_of[v.path] for v in tr + va} == set(mine)
    assert sorted(v.path for p in parts for v in p[0]) == sorted(v.path for v in train_v)
    with pytest.raises(ValueError, match="shard-size"):
        own_part(train_v, val_v, DistEnv(0, 4), shard_of)
