"""Training end to end on real encoded demo clips: metrics, checkpoints, exact resume, bad files."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from looklisten.core.config import get_config
from looklisten.data.demo_data import make_demo_data
from looklisten.training.trainer import train

SMALL_RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 32,
    "train.val_pairs": 16,
    "train.epochs": 2,
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_data(root, videos=10, seed=0, workers=2, progress=False, duration=3.0)
    return root


def _weights(run):
    return load_file(str(run / "checkpoint" / "model.safetensors"))


def test_train_writes_metrics_and_checkpoint_and_resumes_exactly(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny", **SMALL_RUN)
    full = train(clips, tmp_path / "full", cfg, progress=False)
    assert full["steps"] == 8 and 0.0 <= full["val_avc_accuracy"] <= 1.0
    run = tmp_path / "full"
    for name in ("manifest.jsonl", "rejected.tsv", "split.json", "metrics.jsonl", "metrics.json"):
        assert (run / name).is_file(), name
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if r["split"] == "val"] == [4, 8]
    assert all(
        {"loss", "avc_accuracy", "lr", "pairs_per_s"} <= r.keys()
        for r in recs
        if r["split"] == "train"
    )
    split = json.loads((run / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"])

    # interrupted after one epoch (same config), then resumed: the same weights as the
    # uninterrupted run
    half = train(clips, tmp_path / "half", cfg, max_steps=4, progress=False)
    assert half["steps"] == 4
    resumed = train(clips, tmp_path / "half", cfg, resume=True, progress=False)
    assert resumed["steps"] == 8
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert resumed["val_avc_accuracy"] == full["val_avc_accuracy"]

    # killed in the middle of an epoch: resumes at the next pair of that epoch
    train(clips, tmp_path / "mid", cfg, max_steps=3, progress=False)
    assert train(clips, tmp_path / "mid", cfg, resume=True, progress=False)["steps"] == 8
    c = _weights(tmp_path / "mid")
    for k in a:
        torch.testing.assert_close(a[k], c[k], rtol=0, atol=0, msg=k)


def test_a_bad_file_in_the_folder_is_skipped_and_reported(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    shutil.copytree(clips, data)
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    full = (data / "clip_00000.mp4").read_bytes()
    (data / "cut.mp4").write_bytes(full[: len(full) // 3])
    summary = train(
        data,
        tmp_path / "run",
        get_config("tiny", **{**SMALL_RUN, "train.epochs": 1}),
        progress=False,
    )
    assert summary["steps"] == 4
    rejected = (tmp_path / "run" / "rejected.tsv").read_text()
    assert "broken.mp4" in rejected and "cut.mp4" in rejected


def test_cli_train_help_and_errors(tmp_path, capsys):
    from looklisten.cli.main import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("demo", "make-demo-data", "train", "presets"):
        assert cmd in out
    # each command is listed once (the description does not repeat argparse's list)
    from looklisten.cli.main import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ")]
    assert sorted(c for c in listed if c in commands) == sorted(commands)
    assert (
        main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    )
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


def test_resume_refuses_a_conflicting_setting_and_honours_more_epochs(
    clips, tmp_path, monkeypatch, capsys
):
    from looklisten.cli.main import main

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    base = [str(clips), "--out", str(run), "--quiet"]
    tiny = ["--preset", "tiny", "--batch-size", "8", "--epoch-pairs", "16", "--epochs", "1"]
    assert main(["train", *base, *tiny]) == 0
    capsys.readouterr()
    before = (run / "checkpoint" / "state.json").read_text()
    for extra, field in [
        (["--batch-size", "16"], "train.batch_size=16"),
        (["--set", "train.lr=0.5"], "train.lr=0.5"),
        (["--model", "ave"], "model.arch='ave'"),
        (["--preset", "small"], "preset='small'"),
    ]:
        assert main(["train", *base, "--resume", *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and field in err and "conflicts" in err, err
        assert (run / "checkpoint" / "state.json").read_text() == before  # nothing ran
    # the checkpoint's own values are no conflict; more epochs continue the run
    assert main(["train", *base, "--resume", "--batch-size", "8", "--epochs", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4
    saved = json.loads((run / "checkpoint" / "config.json").read_text())
    assert saved["train"]["epochs"] == 2 and saved["train"]["batch_size"] == 8


@pytest.mark.slow
def test_tiny_l3_beats_chance_on_held_out_demo_clips(tmp_path_factory, monkeypatch):
    """The real task, end to end: encoded demo clips -> L3-Net (tiny) -> held-out AVC accuracy."""
    root = tmp_path_factory.mktemp("demo60")
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(root / "cache"))
    make_demo_data(root / "data", videos=60, seed=5, workers=2, progress=False)
    cfg = get_config(
        "tiny", **{"train.epoch_pairs": 64 * 100, "train.epochs": 4, "train.val_pairs": 1024}
    )
    summary = train(root / "data", root / "run", cfg, progress=False)
    assert summary["val_videos"] >= 5
    # 1024 held-out pairs: chance is 0.5 with a standard deviation of 0.016
    assert summary["val_avc_accuracy"] > 0.6, summary


def test_init_warm_starts_avol_from_an_ave_run(clips, tmp_path, monkeypatch):
    """--init copies the trunks (and the audio branch) of another run; the rest starts fresh."""
    from looklisten.cli.main import main
    from looklisten.models.checkpoint import init_weights, save_checkpoint
    from looklisten.models.network import create_model

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(1)
    ave_cfg = get_config("tiny", arch="ave")
    save_checkpoint(tmp_path / "ave", create_model(ave_cfg), ave_cfg)
    src = _weights(tmp_path / "ave")
    avol = create_model(get_config("tiny", arch="avol"))
    info = init_weights(avol, tmp_path / "ave", avol.cfg)
    own = avol.state_dict()
    assert any(k.startswith("vision.") for k in info["copied"])
    assert "head.audio.fc1.weight" in info["copied"]  # the same audio branch in both heads
    assert "head.calibration.weight" in info["kept"]
    for k in info["copied"]:
        assert torch.equal(own[k], src[k]), k
    # another audio frontend: refused with the reason
    small = create_model(get_config("small", arch="avol"))
    with pytest.raises(ValueError, match="audio frontend"):
        init_weights(small, tmp_path / "ave", small.cfg)
    # through the CLI; the run records where it started from
    args = [
        "train",
        str(clips),
        "--model",
        "avol",
        "--preset",
        "tiny",
        "--out",
        str(tmp_path / "r"),
    ]
    args += ["--init", str(tmp_path / "ave"), "--quiet", "--epochs", "1"]
    for k, v in SMALL_RUN.items():
        if k != "train.epochs":
            args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert summary["init"] == str((tmp_path / "ave").resolve())
