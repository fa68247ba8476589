"""AVC accuracy of any checkpoint on a folder: fixed pairs, baselines, the CLI, bad files."""

import json
import shutil

import pytest
import torch

import looklisten
from looklisten.cli.main import main
from looklisten.core.config import get_config
from looklisten.data import sampler
from looklisten.data.demo_data import make_demo_data
from looklisten.evaluation.avc import evaluate_avc
from looklisten.media.video import MediaError
from looklisten.models.checkpoint import load_config, save_checkpoint
from looklisten.models.network import create_model
from looklisten.training.trainer import train

SMALL_RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 32,
    "train.val_pairs": 16,
    "train.epochs": 1,
    "sampler.val_fraction": 0.3,
}
#: Each pair decoded from the files in this process (no worker start-up), as the run was.
FAST = {"cache": "files", "workers": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """10 encoded demo clips, a tiny L3-Net trained 4 steps on them, and a random-init one."""
    root = tmp_path_factory.mktemp("avc")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOOKLISTEN_CACHE", str(root / "cache"))
    make_demo_data(root / "data", videos=10, seed=6, workers=2, progress=False, duration=3.0)
    cfg = get_config("tiny", **SMALL_RUN)
    train(root / "data", root / "run", cfg, cache="files", workers=0, progress=False)
    torch.manual_seed(0)
    save_checkpoint(root / "random", create_model(load_config(root / "run")), cfg)
    yield root
    mp.undo()


def test_fixed_pairs_for_every_checkpoint_baselines_and_interval(run):
    data = run / "data"
    a = evaluate_avc(data, run / "run", pairs=64, **FAST)
    assert evaluate_avc(data, run / "run", pairs=64, **FAST) == a  # deterministic
    assert a["pairs"] == a["positives"] + a["negatives"] == 64
    assert a["videos"] == 10 and a["skipped"] == {"count": 0, "files": []}
    lo, hi = a["ci95"]
    assert lo <= a["accuracy"] <= hi and 0 <= a["roc_auc"] <= 1
    # the trivial baselines are measured on the same 64 pairs
    base = a["baselines"]
    assert base["always_yes"] == round(a["positives"] / 64, 4)
    assert base["always_no"] == round(a["negatives"] / 64, 4)
    assert 0 <= base["coin_flip"] <= 1 and a["chance"] == 0.5
    best = max(base.values())
    margin = a["minus_best_baseline"]
    assert base[margin["baseline"]] == best
    assert margin["difference"] == pytest.approx(a["accuracy"] - best, abs=1e-3)
    assert margin["ci95"][0] <= margin["difference"] <= margin["ci95"][1]
    assert a["model"] == {"arch": "l3", "preset": "tiny", "objective": "avc"}
    s = a["sampler"]
    assert s["positive_fraction"] == 0.5 and s["frame_grid"] and s["seed"] == 0
    assert "trained on" in a["note"]  # DATA is the run's own folder

    # another checkpoint with the same input settings: the very same pairs
    r = evaluate_avc(data, run / "random", pairs=64, **FAST)
    assert r["sampler"] == s and r["baselines"] == base
    assert abs(r["accuracy"] - 0.5) <= 0.15, r  # untrained: about chance
    # another seed: other pairs
    assert (
        evaluate_avc(data, run / "run", pairs=64, seed=1, **FAST)["sampler"]["pairs_digest"]
        != (s["pairs_digest"])
    )
    # The fixture's run trained 4 steps: too short to assert that it beats chance
    # (tests/test_train.py's slow test trains one that does).


def test_the_runs_own_validation_pairs_give_its_validation_accuracy(run, tmp_path):
    """The same input path as the trainer's validate(): its held-out videos, its seed and
    number of pairs reproduce the accuracy the run logged."""
    split = json.loads((run / "run" / "split.json").read_text())
    for rel in split["val"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(run / "data" / rel, tmp_path / rel)
    logged = json.loads((run / "run" / "metrics.json").read_text())
    res = evaluate_avc(tmp_path, run / "run", pairs=16, seed=0, batch_size=8, **FAST)
    assert res["videos"] == len(split["val"]) and "note" not in res
    assert res["accuracy"] == round(logged["val_avc_accuracy"], 4)


def test_one_video_is_one_clear_error(run, tmp_path, capsys):
    shutil.copy(run / "data" / "clip_00000.mp4", tmp_path)
    with pytest.raises(ValueError, match="at least 2 usable videos.*found 1"):
        evaluate_avc(tmp_path, run / "run", **FAST)
    rc = main(["eval", "avc", str(tmp_path), "--checkpoint", str(run / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "found 1" in err, err


def test_cli_prints_one_json_object_and_saves_it(run, capsys):
    argv = ["eval", "avc", run / "data", "--checkpoint", run / "random", "--pairs", 32]
    argv += ["--seed", 3, "--batch-size", 16, "--cache", "files", "--workers", 0, "--save"]
    rc = main([str(a) for a in [*argv, "--device", "cpu", "--quiet"]])
    out = capsys.readouterr()
    assert rc == 0, out.err
    res = json.loads(out.out)  # the whole output is one object
    assert res["evaluation"] == "avc" and res["pairs"] == 32 and res["sampler"]["seed"] == 3
    assert json.loads((run / "random" / "eval" / "avc.json").read_text()) == res
    assert looklisten.evaluate_avc is evaluate_avc


def test_broken_files_are_skipped_and_listed(run, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(run / "data", data)
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    full = (data / "clip_00001.mp4").read_bytes()
    (data / "cut.mp4").write_bytes(full[: len(full) // 3])
    # a file the scanner accepts but whose audio fails to decode: its pairs are redrawn
    audio = sampler.FileSource.audio

    def failing(self, vid, center):
        if self.videos[vid].path == "clip_00002.mp4":
            raise MediaError(self.root / "clip_00002.mp4", "truncated or corrupt: test")
        return audio(self, vid, center)

    monkeypatch.setattr(sampler.FileSource, "audio", failing)
    res = evaluate_avc(data, run / "run", pairs=32, **FAST)
    assert res["pairs"] == 32 and res["accuracy"] is not None
    assert res["skipped"]["count"] == 3, res["skipped"]
    names = "\n".join(res["skipped"]["files"])
    assert "broken.mp4" in names and "cut.mp4" in names
    assert "clip_00002.mp4: truncated or corrupt: test" in names
