"""A newcomer's first hour (issue 28), as their command lines, on real encoded clips.

Nothing lost silently (a finished or running run is never trained over, a
failed start leaves nothing, runs and checkpoints can be copied), one set of
defaults and one calling convention, messages a user can act on, progress
that logs plain lines. Search and overlays: tests/test_search_newcomer.py and
tests/test_overlay_visible.py.
"""

import json
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from media import make_clip

from looklisten.cli.main import main
from looklisten.core.config import field_names, flat_fields, get_config
from looklisten.core.deprecation import LooklistenDeprecationWarning
from looklisten.data.demo_data import make_demo_data
from looklisten.models.checkpoint import load_model, load_state

TINY = ["--preset", "tiny", "--workers", "0", "--epochs", "1"]
TINY += [
    "--set",
    "train.batch_size=8",
    "--set",
    "train.epoch_pairs=32",
    "--set",
    "train.val_pairs=16",
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("newcomer") / "videos"
    make_demo_data(root, videos=8, seed=0, workers=2, progress=False, duration=3.0)
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))


def _train(capsys, data, out, *extra, quiet=True):
    argv = ["train", str(data), "--out", str(out), *TINY, *map(str, extra)]
    rc = main(argv + (["--quiet"] if quiet else []))
    return rc, capsys.readouterr()


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------- nothing lost silently


def test_a_finished_run_is_refused_overwritten_only_when_asked_and_resumed(
    videos, tmp_path, capsys
):
    run = tmp_path / "run"
    assert _train(capsys, videos, run, "--max-steps", 2)[0] == 0
    rc, out = _train(capsys, videos, run)
    line = _one_line(out.err)
    assert rc == 2 and "holds a run (l3, 2 steps)" in line
    assert "--resume continues it, --overwrite replaces it" in line
    assert load_state(run)["step"] == 2  # untouched
    rc, out = _train(capsys, videos, run, "--overwrite", "--max-steps", 1)
    assert rc == 0 and load_state(run)["step"] == 1
    rc, out = _train(capsys, videos, run, "--resume", "--max-steps", 3)
    assert rc == 0 and f"resuming {run} from step 1" in out.err
    summary = json.loads(out.out)
    assert summary["steps"] == 3  # --max-steps is a total
    assert summary["train_seconds"] >= summary["session_seconds"] > 0  # all sessions


def test_a_folder_another_process_trains_into_is_refused(videos, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'process 4242 on gpu-node-7')\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(run / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--overwrite"], ["--resume", "auto"]):
            rc, out = _train(capsys, videos, run, *extra)
            line = out.err.strip().splitlines()[-1]  # (after "a new run" with --resume auto)
            assert rc == 2 and "is being trained by process 4242 on gpu-node-7" in line, line
            assert out.err.count("error") == 1, out.err
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert _train(capsys, videos, run, "--max-steps", 1)[0] == 0  # the lock died with it


def test_a_start_that_fails_leaves_no_folder_and_says_why(videos, tmp_path, capsys):
    rc, out = _train(capsys, tmp_path / "typo", tmp_path / "run")
    assert rc == 2 and _one_line(out.err).endswith("typo: no such folder")
    rc, out = _train(capsys, videos / "clip_00000.mp4", tmp_path / "run")
    assert rc == 2 and "a file, not a folder" in _one_line(out.err)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not a video")
    rc, out = _train(capsys, empty, tmp_path / "run")
    line = _one_line(out.err)
    assert rc == 2 and "holds no media files" in line and ".mp4" in line and ".mov" in line
    assert not (tmp_path / "run").exists()
    # files that are all unusable: the reasons in the line, and still no folder left
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for i in range(3):
        make_clip(sounds / f"s{i}.m4a", "aac-m4a", duration=2.0, video=False)
    (sounds / "broken.mp4").write_bytes(b"\x00" * 64)
    rc, out = _train(capsys, sounds, tmp_path / "run")
    line = _one_line(out.err)
    assert rc == 2 and "0 of its 4 media files are usable" in line
    assert "3 files: no video stream" in line, line
    assert not (tmp_path / "run").exists()
    # a folder that existed keeps only what it held
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    rc, out = _train(capsys, sounds, keep)
    assert rc == 2 and sorted(p.name for p in keep.iterdir()) == ["mine.txt"]


def test_a_run_and_its_checkpoint_can_be_copied_and_moved(videos, tmp_path, capsys):
    ave = tmp_path / "ave"
    assert _train(capsys, videos, ave, "--model", "ave", "--max-steps", 1)[0] == 0
    run = tmp_path / "avol"
    rc, out = _train(capsys, videos, run, "--model", "avol", "--init", ave, "--max-steps", 1)
    assert rc == 0
    # what --init copied, and what it left at random
    assert "--init: copied 48 audio.features" in out.err and "48 vision.features" in out.err
    assert "head.vision at their initial values" in out.err
    assert (run / "checkpoint").is_dir() and not (run / "checkpoint").is_symlink()
    # cp -a elsewhere; the original run, the run it was initialised from and the data move
    moved = tmp_path / "elsewhere" / "avol"
    shutil.copytree(run, moved, symlinks=True)
    shutil.rmtree(run)
    shutil.rmtree(ave)
    data = shutil.move(videos, tmp_path / "videos-moved")
    try:
        assert load_model(moved).cfg.model.arch == "avol"
        alone = tmp_path / "just-the-checkpoint"
        shutil.copytree(moved / "checkpoint", alone, symlinks=True)
        assert load_model(alone).cfg.model.arch == "avol"
        rc, out = _train(capsys, data, moved, "--resume", "--max-steps", 2)
        assert rc == 0 and json.loads(out.out)["steps"] == 2
    finally:
        shutil.move(data, videos)


# ------------------------------------------------------------ defaults and conventions


def test_one_set_of_defaults_in_python_and_on_the_command_line(capsys):
    assert main(["config", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli == json.loads(json.dumps(flat_fields(get_config())))  # the same defaults
    assert list(cli) == field_names() and cli["preset"] == "small"
    assert cli["model.arch"] == "l3" and cli["train.objective"] == "avc"
    assert main(["config", "--preset", "tiny", "--model", "ave"]) == 0
    text = capsys.readouterr().out
    assert len(text.splitlines()) == len(field_names())
    assert any(ln.split() == ["train.objective", '"infonce"'] for ln in text.splitlines())
    # the best measured objective per head; the paper presets keep the papers' loss
    assert get_config(arch="ave").train.objective == "infonce"
    assert get_config("ots", arch="ave").train.objective == "avc"
    assert get_config(arch="avol").train.objective == "avc"


def test_a_mistyped_field_gets_a_suggestion(videos, tmp_path, capsys):
    rc, out = _train(capsys, videos, tmp_path / "run", "--set", "train.batchsize=4")
    line = _one_line(out.err)
    assert rc == 2 and "did you mean train.batch_size?" in line and "looklisten config" in line
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"did you mean sampler.null_fraction\?"):
        get_config(**{"sampler.null_frac": 0.1})
    with pytest.raises(ValueError, match=r"did you mean train.batch_size\?"):
        get_config(**{"model.batch_size": 8})  # the right name in another section


def test_max_steps_is_documented_as_a_total(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "a total, not extra steps" in help_text and "--overwrite" in help_text


def test_the_model_comes_first_and_old_calls_warn(videos, tmp_path, capsys):
    from looklisten import embed_audio, embed_image, embed_video

    run = tmp_path / "ave"
    assert _train(capsys, videos, run, "--model", "ave", "--max-steps", 1)[0] == 0
    clip = videos / "clip_00001.mp4"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new form warns about nothing
        new, times = embed_audio(run, clip, hop=0.5)
        image = embed_image(run, np.zeros((40, 60, 3), np.uint8))
        video = embed_video(run, clip, hop=1.0)
    assert video["image_embedding"].shape[1] == image.shape[1] == new.shape[1]
    for old in (
        lambda: embed_audio(clip, model=run, hop=0.5),  # the OpenL3-style call
        lambda: embed_audio(clip, run, hop=0.5),  # what the newcomer typed
    ):
        with pytest.warns(LooklistenDeprecationWarning, match=r"call embed_audio\(model, \.\.\.\)"):
            emb, ts = old()
        np.testing.assert_allclose(emb, new, atol=1e-6)
        np.testing.assert_array_equal(ts, times)
    with pytest.warns(LooklistenDeprecationWarning):
        np.testing.assert_allclose(
            embed_image(np.zeros((40, 60, 3), np.uint8), run), image, atol=1e-6
        )
    # a media file where the model goes says so
    with pytest.raises(ValueError, match=r"a file, not a model"):
        embed_audio(clip, clip)


def test_evaluations_leave_the_run_alone_unless_save(videos, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(capsys, videos, run, "--max-steps", 1)[0] == 0
    argv = ["eval", "avc", str(videos), "--checkpoint", str(run), "--pairs", "16", "--quiet"]
    assert main(argv) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)
    assert not (run / "eval").exists()
    assert main(argv + ["--no-save"]) == 0  # the old flag: accepted, and says it is the default
    assert "--no-save is the default now" in capsys.readouterr().err
    assert not (run / "eval").exists()
    assert main(argv + ["--save"]) == 0
    assert json.loads((run / "eval" / "avc.json").read_text()) == json.loads(
        capsys.readouterr().out
    )


# ------------------------------------------------------------------ messages, progress


def test_progress_is_plain_lines_in_a_log(videos, tmp_path, capsys, monkeypatch):
    from looklisten.core import progress

    monkeypatch.setattr(progress, "LINE_DELAY_SECONDS", 0.0)  # this short work too
    rc, out = _train(capsys, videos, tmp_path / "run", "--max-steps", 2, quiet=False)
    assert rc == 0 and "\r" not in out.err
    lines = out.err.splitlines()
    assert any(ln.startswith("decode training videos: ") for ln in lines), out.err
    assert any(ln.startswith("decode validation videos: ") for ln in lines), out.err
    train = [ln for ln in lines if ln.startswith("train: ")]
    assert train and train[-1].startswith("train: 2/2 step (100%)"), out.err
    assert len(lines) < 20  # lines, not a redraw per step


def test_progress_lines_come_every_tenth_of_the_work(capsys, monkeypatch):
    from looklisten.core import progress

    monkeypatch.setattr(progress, "LINE_EVERY_SECONDS", 3600.0)
    bar = progress.progress_bar(total=100, desc="embed", unit="file", mininterval=0, delay=0)
    for _ in range(100):
        bar.update()
        time.sleep(0.0005)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("embed: 0/100 file (0%)")
    assert lines[-1].startswith("embed: 100/100 file (100%)")
    assert 10 <= len(lines) <= 12, lines
    # work that ends within LINE_DELAY_SECONDS leaves no line at all
    bar = progress.progress_bar(total=3, desc="embed", unit="file")
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_video_in_an_audio_container_is_embedded_as_a_video(tmp_path, videos, capsys):
    run = tmp_path / "ave"
    assert _train(capsys, videos, run, "--model", "ave", "--max-steps", 1)[0] == 0
    folder = tmp_path / "camera"
    folder.mkdir()
    make_clip(folder / "walk.ogg", "vp8-vorbis-ogv", duration=2.0, sample_rate=22050)
    make_clip(folder / "voice.m4a", "aac-m4a", duration=2.0, video=False)
    (folder / "broken.ogg").write_bytes(b"OggS" + b"\x00" * 200)
    rc = main(["embed", str(folder), "--checkpoint", str(run), "--out", str(tmp_path / "emb")])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.ogg" in err
    with np.load(tmp_path / "emb" / "walk.ogg.npz") as z:
        assert str(z["modality"]) == "video" and z["image_embedding"].shape[0] > 0
    with np.load(tmp_path / "emb" / "voice.m4a.npz") as z:
        assert str(z["modality"]) == "audio"


def test_an_empty_folder_names_what_embed_and_index_look_for(tmp_path, capsys):
    from looklisten.models.checkpoint import save_checkpoint
    from looklisten.models.network import create_model

    cfg = get_config("tiny", arch="ave")
    run = tmp_path / "ave"
    save_checkpoint(run, create_model(cfg), cfg)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("not media")
    assert main(["embed", str(empty), "--checkpoint", str(run), "--out", str(tmp_path / "e")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"no media files in {empty}" in line and ".mp4" in line and ".wav" in line
    assert main(["index", str(empty), "--checkpoint", str(run), "--out", str(tmp_path / "i")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "no media or .npz files" in line and ".npz" in line and ".mkv" in line
