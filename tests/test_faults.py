"""The fault matrix: odd and broken media, killed writes, damaged files, crafted
indexes and bad command lines.

Every fault ends in one clear line naming the file and the reason, or in a
valid result; never a traceback, a hang or a crash, and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import (
    decode_index,
    make_clip,
    refuse_audio_seeks,
    truncate,
)

from looklisten.cli.main import main
from looklisten.core.config import Config, get_config
from looklisten.core.fileio import DamagedFileError, clean_leftovers, temp_prefix
from looklisten.data.scan import scan_folder
from looklisten.media.video import MediaError, MediaReader
from looklisten.models.checkpoint import load_model, load_state, save_checkpoint
from looklisten.models.network import create_model

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
CAMERA_SR = 11024  # the camera's odd rate


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(TESTS)])
    return env


def _one_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text, text
    return lines[0]


def _cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------- the camera AVI


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    """An MJPEG + mono u8 PCM AVI at 11,024 Hz whose audio stream refuses seeks."""
    folder = tmp_path_factory.mktemp("camera")
    clip = make_clip(folder / "camera.avi", "mjpeg-pcm8", 4.5, 11.0, CAMERA_SR, 1, size=(160, 120))
    assert refuse_audio_seeks(clip.path) > 0
    return clip


def test_the_camera_fixture_refuses_audio_seeks_but_plays(camera):
    with av.open(str(camera.path)) as c:
        with pytest.raises(PermissionError):
            c.seek(0, stream=c.streams.audio[0], backward=True)
    with av.open(str(camera.path)) as c:
        assert sum(f.samples for f in c.decode(audio=0)) == round(4.5 * CAMERA_SR)


@pytest.mark.parametrize("audio_mode", ["other", "start"])
def test_the_reader_reads_every_window_of_the_camera_avi_exactly(camera, audio_mode):
    with MediaReader(camera.path) as r:
        whole = r.read_audio(0.0, None)
    assert len(whole) == round(4.5 * CAMERA_SR)
    with MediaReader(camera.path) as r:
        if audio_mode == "start":
            r.audio_seek = "start"  # the last resort, forced
        for t0 in np.arange(0.0, 3.5, 0.29):
            w = r.read_audio(t0, t0 + 1.0)
            i = round(t0 * CAMERA_SR)
            assert w.shape == (CAMERA_SR,)  # never short, never empty
            np.testing.assert_array_equal(w, whole[i : i + CAMERA_SR])
        assert r.audio_seek == audio_mode  # "other": found by itself after one EPERM
        r.check()


def test_the_reader_decodes_video_from_the_start_when_seeks_fail(camera):
    with MediaReader(camera.path) as r:
        r.video_seek = "start"
        for t in (3.0, 0.5, 2.2, 4.0):
            assert decode_index(r.read_frame(t)) == camera.frame_at(t)
        assert r.stats["video_restarts"] >= 2 and r.stats["video_seeks"] == 0


@pytest.mark.slow
def test_every_entry_point_takes_the_camera_avi(camera, tmp_path, monkeypatch):
    from looklisten import build_index, embed_audio, embed_video, localize_video, search
    from looklisten.data.shards import shard_folder

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    ave_cfg = get_config("tiny", arch="ave")
    torch.manual_seed(0)
    ave = save_checkpoint(tmp_path / "ave", create_model(ave_cfg), ave_cfg)
    avol_cfg = get_config("tiny", arch="avol")
    avol = create_model(avol_cfg).eval()

    emb, ts = embed_audio(ave, camera.path, hop=0.5)
    assert len(emb) == len(ts) >= 8 and np.isfinite(emb).all()
    video = embed_video(ave, camera.path, hop=0.5)
    n = len(video["timestamps"])
    assert video["audio_embedding"].shape[0] == video["image_embedding"].shape[0] == n >= 8
    maps, times = localize_video(avol, camera.path, hop=0.5)
    assert len(maps) == len(times) >= 8 and np.isfinite(maps).all()
    index, failures = build_index(ave, [camera.path.parent], tmp_path / "index", progress=False)
    assert failures == []
    hits = search(tmp_path / "index", video=camera.path, at=2.0, target="audio", k=2)
    assert hits and hits[0].file.endswith("camera.avi")
    manifest = scan_folder(camera.path.parent, progress=False)
    assert [v.path for v in manifest.videos] == ["camera.avi"], manifest.rejected
    shards = shard_folder(camera.path.parent, tmp_path / "shards", ave_cfg, progress=False)
    assert [v["path"] for v in shards["videos"]] == ["camera.avi"]


def test_a_window_with_no_decodable_audio_says_so(tmp_path):
    clip = make_clip(tmp_path / "a.webm", "vp9-opus", 3.0, 10.0, 16000, 1)
    cut = truncate(clip.path, tmp_path / "cut.webm", 0.5)
    with MediaReader(cut) as r:
        with pytest.raises(MediaError, match="no audio decodes in 2.000-3.000 s") as e:
            r.read_audio(2.0, 3.0, 16000)
    assert "outside" not in str(e.value)  # the old message contradicted the header


def test_a_window_past_the_end_is_refused_without_decoding_the_whole_file(camera, monkeypatch):
    """Seeks that land where nothing decodes make the reader seek further back, and in
    the end decode from the start, but only for a window inside the audio."""
    from looklisten.media.video import _AudioChunk

    with MediaReader(camera.path) as r:
        whole_decodes = []

        def nothing_after_a_seek(c, st, keep_from, t1, skip_first):
            if skip_first:  # every seek lands at the end of the stream
                return _AudioChunk(np.zeros(0, np.float32), None, CAMERA_SR, True, 0, 0)
            whole_decodes.append(keep_from)
            return collect(c, st, keep_from, t1, skip_first)

        collect = r._collect_audio
        monkeypatch.setattr(r, "_collect_audio", nothing_after_a_seek)
        with pytest.raises(MediaError, match="outside the audio stream"):
            r.read_audio(1000.0, 1001.0)  # far past the end: the backward seeks stay past it
        assert whole_decodes == []
        w = r.read_audio(2.0, 3.0)  # inside: found by decoding from the start
        assert len(whole_decodes) == 1 and w.shape == (CAMERA_SR,) and np.abs(w).max() > 0.1


def test_audio_that_stops_inside_a_window_is_an_error_not_silence(tmp_path):
    clip = make_clip(tmp_path / "a.webm", "vp9-opus", 3.0, 10.0, 16000, 1)
    cut = truncate(clip.path, tmp_path / "cut.webm", 0.6)
    with MediaReader(cut) as r:
        r.read_audio(0.0, 1.0, 16000)  # before the cut: fine
        with pytest.raises(MediaError, match=r"the audio stops at 1\.\d+ s, inside the window"):
            r.read_audio(1.5, 2.5, 16000)


# ---------------------------------------------------------------- a training folder


GOOD = {  # name: (format, duration): legitimate odd files, all accepted
    "plain.mp4": ("h264-aac", 3.0),
    "plain2.mp4": ("h264-aac", 3.0),
    "mjpeg.avi": ("mjpeg-pcm", 3.0),
    "vp9.webm": ("vp9-opus", 3.0),
    "phone.mov": ("h264-aac-mov", 3.0),
    "ogg.ogv": ("vp8-vorbis-ogv", 3.0),
    "mp3.mp4": ("mpeg4-mp3", 3.0),
}


@pytest.mark.slow
def test_a_training_folder_with_bad_files_skips_and_lists_them(camera, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    for name, (fmt, dur) in GOOD.items():
        make_clip(data / name, fmt, dur, 10.0, 16000, 2)
    (data / "camera.avi").write_bytes(camera.path.read_bytes())
    bad = {
        "cut.mp4": "truncated or corrupt",
        "text.mp4": "not a media file",
        "empty.mp4": "empty",
        "audio_only.mp4": "no video stream",
        "video_only.mp4": "no audio stream",
        "silent.mp4": "silent",
        "short.mp4": "shorter than",
    }
    src = make_clip(tmp_path / "src.mp4", "h264-aac", 3.0, 10.0, 16000, 2)
    truncate(src.path, data / "cut.mp4", 0.5)
    (data / "text.mp4").write_text("this is not a video\n")
    (data / "empty.mp4").write_bytes(b"")
    make_clip(data / "audio_only.mp4", "h264-aac", 3.0, 10.0, 16000, 1, video=False)
    make_clip(data / "video_only.mp4", "h264-aac", 3.0, 10.0, 16000, 1, audio=False)
    make_clip(data / "silent.mp4", "h264-aac", 3.0, 10.0, 16000, 1, silent=True)
    make_clip(data / "short.mp4", "h264-aac", 0.5, 10.0, 16000, 1)

    from looklisten.training.trainer import train

    cfg = get_config(
        "tiny",
        arch="ave",
        **{"train.batch_size": 4, "train.epoch_pairs": 8, "train.val_pairs": 4, "train.epochs": 1},
    )
    # the memory cache decodes every accepted file through the training input path
    summary = train(data, tmp_path / "run", cfg, cache="memory", progress=False, workers=0)
    assert summary["steps"] == 2
    manifest = [
        json.loads(x) for x in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()
    ]
    assert sorted(m["path"] for m in manifest[1:]) == sorted([*GOOD, "camera.avi"])
    rows = (tmp_path / "run" / "rejected.tsv").read_text().splitlines()[1:]
    reasons = dict(r.split("\t", 1) for r in rows)
    assert sorted(reasons) == sorted(bad)
    for name, why in bad.items():
        assert why in reasons[name], (name, reasons[name])


# ---------------------------------------------------------------- fuzzed media


def test_fuzzed_files_give_one_clear_error_or_a_valid_result(tmp_path):
    from fuzz import mutate

    paths = []
    for fmt, ext in (("h264-aac", ".mp4"), ("vp9-opus", ".webm"), ("mjpeg-pcm", ".avi")):
        data = make_clip(tmp_path / f"src{ext}", fmt, 3.0, 10.0, 16000, 1).path.read_bytes()
        for seed in range(40):
            p = tmp_path / f"{fmt}-{seed}{ext}"
            p.write_bytes(mutate(data, seed))
            paths.append(str(p))
    proc = subprocess.run(
        [sys.executable, str(TESTS / "fuzz.py"), *paths],
        capture_output=True,
        text=True,
        timeout=300,  # a hang fails here
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # a crash (signal) fails here
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in rows] == paths
    for r in rows:
        assert "exception" not in r, r
        if "error" in r:
            assert r["error"].startswith(r["file"] + ": ") and "\n" not in r["error"], r
    assert 0 < sum("ok" in r for r in rows) < len(rows)


# ---------------------------------------------------------------- damaged checkpoints


def _damage(ckpt: Path, how: str) -> Path:
    if how == "truncated weights":
        p = ckpt / "model.safetensors"
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    elif how == "garbage weights":
        p = ckpt / "model.safetensors"
        p.write_bytes(b"\x00garbage" * 100)
    elif how == "broken config":
        p = ckpt / "config.json"
        p.write_text(p.read_text()[:50])
    elif how == "bad config value":
        p = ckpt / "config.json"
        d = json.loads(p.read_text())
        d["train"]["batch_size"] = "abc"
        p.write_text(json.dumps(d))
    return p


DAMAGES = ["truncated weights", "garbage weights", "broken config", "bad config value"]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_checkpoint_is_one_line_everywhere(how, tmp_path, capsys):
    cfg = get_config("tiny", arch="ave")
    save_checkpoint(tmp_path / "run", create_model(cfg), cfg, torch.optim.Adam([torch.zeros(1)]))
    ckpt = (tmp_path / "run" / "checkpoint").resolve()
    bad = _damage(ckpt, how)
    with pytest.raises(DamagedFileError, match="damaged checkpoint") as e:
        load_model(tmp_path / "run")
    named = tmp_path / "run" / "checkpoint" / bad.name  # the path the user gave, not the version
    assert str(e.value).startswith(f"{named}: damaged") and "\n" not in str(e.value)
    clip = make_clip(tmp_path / "a.wav.mp4", "h264-aac", 2.0, 10.0, 16000, 1)
    rc, _, err = _cli(
        capsys, "embed", clip.path, "--checkpoint", tmp_path / "run", "--out", tmp_path / "e"
    )
    assert rc == 2 and "damaged checkpoint" in _one_line(err)
    rc, _, err = _cli(capsys, "train", tmp_path, "--out", tmp_path / "run", "--resume")
    assert rc == 2 and "damaged checkpoint" in _one_line(err)


def test_a_checkpoint_from_a_newer_looklisten_names_the_unknown_field(tmp_path, capsys):
    """A config field this version lacks is not damage: the message names it and the upgrade."""
    from looklisten.models.checkpoint import NewerCheckpointError

    cfg = get_config("tiny", arch="ave")
    save_checkpoint(tmp_path / "run", create_model(cfg), cfg, torch.optim.Adam([torch.zeros(1)]))
    p = tmp_path / "run" / "checkpoint" / "config.json"
    d = json.loads(p.read_text())
    d["vision"]["hdr_tone_map"] = True
    p.write_text(json.dumps(d))
    with pytest.raises(NewerCheckpointError) as e:
        load_model(tmp_path / "run")
    msg = str(e.value)
    assert "'vision.hdr_tone_map'" in msg and "newer looklisten" in msg
    assert "damaged" not in msg and msg.startswith(str(p))
    clip = make_clip(tmp_path / "a.mp4", "h264-aac", 2.0, 10.0, 16000, 1)
    rc, _, err = _cli(
        capsys, "embed", clip.path, "--checkpoint", tmp_path / "run", "--out", tmp_path / "e"
    )
    line = _one_line(err)
    assert rc == 2 and "'vision.hdr_tone_map'" in line and "upgrade looklisten" in line


# ---------------------------------------------------------------- config values


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train.batch_size", "abc", "train.batch_size must be an integer"),
        ("train.batch_size", 0, "train.batch_size must be >= 1"),
        ("train.batch_size", 2.5, "train.batch_size must be an integer"),
        ("train.lr", -1.0, "train.lr must be > 0"),
        ("train.lr", "fast", "train.lr must be a number"),
        ("train.amp", 1, "train.amp must be true or false"),
        ("train.optimizer", "lbfgs", "train.optimizer must be one of adam, sgd"),
        ("train.schedule", "linear", "train.schedule must be one of step, cosine"),
        ("train.epochs", 0, "train.epochs must be >= 1"),
        ("train.num_workers", -1, "train.num_workers must be >= 0"),
        ("audio.sample_rate", 0, "audio.sample_rate must be >= 1000"),
        ("audio.kind", "mfcc", "audio.kind must be one of spectrogram, logmel"),
        ("audio.win_seconds", 1.0, "more than audio.n_fft"),
        ("audio.fmax", 1e6, "audio.fmax must lie in"),
        ("vision.image_size", 1000, "must not exceed vision.resize"),
        ("vision.std", [1, 1], "vision.std must be a list of 3 values"),
        ("vision.std", [1, 0, 1], "vision.std must be > 0 each"),
        ("model.arch", "vit", "model.arch must be one of l3, ave, avol"),
        ("model.widths", [8, 8, 8, "x"], "model.widths[3] must be an integer"),
        ("model.conv1_stride", 3, "model.conv1_stride must be 1 or 2"),
        ("model.temporal_kernel", 2, "model.temporal_kernel must be odd"),
        ("sampler.positive_fraction", 1.0, "sampler.positive_fraction must be in (0, 1)"),
        ("sampler.val_fraction", float("nan"), "sampler.val_fraction must be a finite number"),
        ("train.nope", 1, "unknown config field 'train.nope'"),
        ("train", 1, "'train' is a config section"),
    ],
)
def test_every_config_field_is_checked(key, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_config("tiny", **{key: value})
    # the same rule for a checkpoint's config.json
    d = get_config("tiny").to_dict()
    section, _, name = key.partition(".")
    if name:
        d[section][name] = value
    else:
        d[section] = value
    with pytest.raises(ValueError):
        Config.from_dict(json.loads(json.dumps(d)))


def test_every_preset_is_valid_and_round_trips():
    from looklisten.core.config import ARCHS, list_presets

    for preset in list_presets():
        for arch in ARCHS:
            cfg = get_config(preset, arch=arch)
            assert Config.from_json(cfg.to_json()) == cfg
    assert get_config("tiny", **{"train.lr": 1}).train.lr == 1.0  # ints widen to floats


@pytest.mark.parametrize(
    "setting", ["train.batch_size=abc", "train.batch_size=0", "train.nope=1", "train.batch_size"]
)
def test_a_bad_set_fails_before_anything_is_written(setting, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    rc, _, err = _cli(
        capsys, "train", tmp_path / "data", "--out", tmp_path / "run", "--set", setting
    )
    assert rc == 2
    assert _one_line(err).startswith("looklisten train: error:")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- leftovers of killed writes


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    cfg = get_config("tiny")
    model = create_model(cfg)
    run = tmp_path / "run"
    save_checkpoint(run, model, cfg)
    mine = temp_prefix(run / "checkpoint")
    dead = mine.replace(f".{os.getpid()}-", f".{_dead_pid()}-")
    other_host = f".checkpoint.{os.getpid()}-00000000-"
    made = {
        "dead dir": run / (dead + "abc"),
        "dead link": run / (dead + "link"),
        "dead file": run / (dead + "x.tmp"),
        "mine": run / (mine + "def"),
        "other host, new": run / (other_host + "new"),
        "other host, old": run / (other_host + "old"),
        "other name": run / (dead.replace(".checkpoint.", ".metrics.jsonl.") + "y.tmp"),
    }
    for key, p in made.items():
        if key == "dead link":
            p.symlink_to(made["dead dir"].name)
        elif "dir" in key or key == "mine":
            p.mkdir()
            (p / "model.safetensors").write_bytes(b"x" * 1000)
        else:
            p.write_bytes(b"x")
    old = time.time() - 3 * 24 * 3600
    os.utime(made["other host, old"], (old, old))

    save_checkpoint(run, model, cfg)  # the next save cleans up
    gone = {k for k, p in made.items() if not os.path.lexists(p)}
    assert gone == {"dead dir", "dead link", "dead file", "other host, old"}
    # the replaced version went with the swap: only what is not a dead writer's stays
    assert {p.name for p in run.iterdir() if p.name.startswith(".")} == {
        made[k].name for k in made.keys() - gone
    }
    load_model(run)
    assert clean_leftovers(run) == [run / made["other name"].name]  # any name, when asked


KILL_WRITER = {
    "checkpoint": """
import sys, torch
from looklisten.core.config import get_config
from looklisten.models.checkpoint import save_checkpoint
from looklisten.models.network import create_model
cfg = get_config("tiny"); m = create_model(cfg); i = 0
while True:
    i += 1
    with torch.no_grad():
        for p in m.parameters(): p.fill_(i)
    save_checkpoint(sys.argv[1], m, cfg, state={"i": i})
    print(i, flush=True)
""",
    "index": """
import sys, numpy as np
from looklisten.tasks.index import EmbeddingIndex
i = 0
while True:
    i += 1
    idx = EmbeddingIndex(dim=16)
    idx.add("audio", np.random.default_rng(i).normal(size=(500 + i, 16)),
            [{"file": f"f{j}", "time": float(i)} for j in range(500 + i)])
    idx.save(sys.argv[1])
    print(i, flush=True)
""",
}


def _last_good(what: str, path: Path) -> int:
    if what == "checkpoint":
        model = load_model(path)
        i = load_state(path)["i"]
        assert all(bool((p == i).all()) for p in model.parameters())
        return i
    from looklisten.tasks.index import EmbeddingIndex

    idx = EmbeddingIndex.load(path)
    items = idx._stores["audio"].items
    i = int(items[0]["time"])
    assert len(items) == 500 + i and {it["time"] for it in items} == {float(i)}
    return i


@pytest.mark.slow
@pytest.mark.parametrize("what", ["checkpoint", "index"])
def test_kill_9_during_writes_leaves_the_last_good_state(what, tmp_path):
    target = tmp_path / "run" if what == "checkpoint" else tmp_path / "index"
    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER[what], str(target)],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        written = int(proc.stdout.readline())  # one complete write at least
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split()
        proc.wait()
        written = int(rest[-1]) if rest else written
        good = _last_good(what, target / "checkpoint" if what == "checkpoint" else target)
        assert good in (written, written + 1)  # the last finished write, or one just after
        seen = max(seen, good)
    # the next writer cleans what the killed ones left
    parent = target if what == "checkpoint" else target.parent
    name = "checkpoint" if what == "checkpoint" else target.name
    if what == "checkpoint":
        cfg = get_config("tiny")
        save_checkpoint(target, create_model(cfg), cfg, state={"i": 0})
    else:
        from looklisten.tasks.index import EmbeddingIndex

        idx = EmbeddingIndex(dim=16)
        idx.add("audio", np.zeros((1, 16)) + 1, [{"file": "f", "time": 0.0}])
        idx.save(target)
    left = [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]
    assert left == [] and (parent / name).is_dir() and not (parent / name).is_symlink(), left


@pytest.mark.slow
def test_training_killed_mid_run_resumes_exactly(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from looklisten.data.demo_data import make_demo_data
    from looklisten.training.trainer import train

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    make_demo_data(data, videos=6, seed=0, workers=1, progress=False, duration=3.0)
    over = {
        "train.batch_size": 8,
        "train.epoch_pairs": 24,
        "train.val_pairs": 8,
        "train.epochs": 2,
        "train.save_every_steps": 1,
        "sampler.val_fraction": 0.34,
    }
    full = train(data, tmp_path / "full", get_config("tiny", **over), progress=False, workers=0)
    argv = [
        sys.executable,
        "-m",
        "looklisten.cli",
        "train",
        str(data),
        "--out",
        str(tmp_path / "k"),
    ]
    argv += ["--preset", "tiny", "--model", "l3", "--quiet", "--workers", "0"]
    argv += [a for k, v in over.items() for a in ("--set", f"{k}={v}")]
    # the same float arithmetic as this process: as many torch threads
    env = {**_env(), "LOOKLISTEN_CACHE": str(tmp_path / "cache")}
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    proc = subprocess.Popen(argv, env=env)
    state = tmp_path / "k" / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["step"] >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["step"] < full["steps"], "killed too late"
    resumed = train(
        data, tmp_path / "k", get_config("tiny", **over), resume=True, progress=False, workers=0
    )
    assert resumed["steps"] == full["steps"]
    a = load_file(str(tmp_path / "full" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "k" / "checkpoint" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    left = [p.name for p in (tmp_path / "k").iterdir() if p.name.startswith(".checkpoint.")]
    assert left == [], left  # the killed writer's temporary went at the next save


# ---------------------------------------------------------------- crafted shard indexes


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    from looklisten.data.shards import shard_folder

    root = tmp_path_factory.mktemp("shards")
    data = root / "data"
    data.mkdir()
    for i in range(2):
        make_clip(data / f"c{i}.mp4", "h264-aac", 2.0, 10.0, 16000, 1)
    out = root / "shards"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKLISTEN_CACHE", str(root / "cache"))
        shard_folder(data, out, get_config("tiny"), progress=False, shard_size=1, workers=1)
    return out


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda ix: ix["shards"][0].update(name="../escape.tar"), "shards[0].name"),
        (lambda ix: ix["shards"][0].update(name="/etc/passwd"), "shards[0].name"),
        (lambda ix: ix["shards"][0].update(name="sub/shard.tar"), "shards[0].name"),
        (lambda ix: ix["shards"][0].update(name=".hidden.tar"), "shards[0].name"),
        (lambda ix: ix["shards"][0].update(name=["a.tar"]), "shards[0].name"),
        (lambda ix: ix["shards"][0].update(bytes=-5), "shards[0].bytes"),
        (lambda ix: ix["shards"][0].update(sha256="abc"), "shards[0].sha256"),
        (lambda ix: ix["videos"][0].update(shard=7), "videos[0].shard"),
        (lambda ix: ix["videos"][0].update(meta=[0, 10**12]), "videos[0].meta"),
        (lambda ix: ix.pop("shards"), "shards: missing"),
        (lambda ix: ix["videos"][0].pop("duration"), "videos[0]: missing duration"),
        (lambda ix: ix["settings"].pop("resize"), "settings: needs integer"),
        (lambda ix: ix.update(rejected="none"), "rejected: not a list"),
    ],
)
def test_a_crafted_shard_index_is_refused(shard_dir, tmp_path, change, key):
    from looklisten.data.shards import ShardSet

    index = json.loads((shard_dir / "index.json").read_text())
    assert index["shards"][0]["sha256"]
    change(index)
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=re.escape(key)) as e:
        ShardSet.open(crafted)
    assert str(crafted / "index.json") in str(e.value)


def test_a_fetched_shard_is_checked_against_its_hash(shard_dir, tmp_path, monkeypatch):
    import shutil

    from looklisten.data.shards import ShardSet

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    remote = tmp_path / "bucket"
    shutil.copytree(shard_dir, remote)
    ShardSet.open(f"file://{remote}").fetch(progress=False)  # intact: fine
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache2"))
    tar = sorted(remote.glob("*.tar"))[0]
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    tar.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 differs"):
        ShardSet.open(f"file://{remote}").fetch(progress=False)


# ---------------------------------------------------------------- bad command lines


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    for arch in ("ave", "avol"):
        cfg = get_config("tiny", arch=arch)
        save_checkpoint(root / arch, create_model(cfg), cfg)
    clip = make_clip(root / "clip.mp4", "h264-aac", 2.0, 10.0, 16000, 1)
    (root / "notes.mp4").write_text("not a video\n")
    (root / "folder").mkdir()
    return {
        "root": root,
        "ave": root / "ave",
        "avol": root / "avol",
        "clip": clip.path,
        "text": root / "notes.mp4",
    }


CLI_MATRIX = [
    (["embed", "{root}/missing.mp4", "--checkpoint", "{ave}", "--out", "{root}/e"], "missing.mp4"),
    (["embed", "{text}", "--checkpoint", "{ave}", "--out", "{root}/e"], "notes.mp4"),
    (["embed", "{clip}", "--checkpoint", "{root}/nowhere", "--out", "{root}/e"], "nowhere"),
    (["embed", "{clip}", "--checkpoint", "{ave}", "--hop", "-1", "--out", "{root}/e"], "hop"),
    (["localize", "{clip}", "--checkpoint", "{ave}", "--out", "{root}/o.mp4"], "AVOL-Net"),
    (["localize", "{text}", "--checkpoint", "{avol}", "--out", "{root}/o.mp4"], "notes.mp4"),
    (["search", "{root}/no-index", "--video", "{clip}", "--at", "1"], "no-index"),
    (["train", "{root}/no-data", "--out", "{root}/r1"], "no-data"),
    (["train", "{root}/folder", "--out", "{root}/r2", "--resume"], "r2"),
    (["train", "{root}/folder", "--out", "{root}/r3", "--set", "train.lr=-1"], "train.lr"),
    (["train", "{root}/folder", "--out", "{root}/r4", "--preset", "huge"], "huge"),
    (["train", "{root}/folder", "--out", "{root}/r5", "--batch-size", "x"], "batch-size"),
    (["shard", "{root}/no-data", "--out", "{root}/s"], "no-data"),
    (["eval", "localization", "{root}/no-data", "--checkpoint", "{ave}"], "no-data"),
    (["index", "{clip}", "--checkpoint", "{root}/nowhere", "--out", "{root}/i"], "nowhere"),
    (["index", "{root}/folder", "--checkpoint", "{ave}", "--out", "{root}/i"], "no media"),
    (["frobnicate"], "frobnicate"),
    (["demo", "--set", "train.batch_size=0", "--out", "{root}/d"], "train.batch_size"),
]


@pytest.mark.parametrize("argv, names", CLI_MATRIX, ids=[" ".join(a[:2]) for a, _ in CLI_MATRIX])
def test_every_bad_command_line_is_one_line(cli_files, capsys, argv, names):
    argv = [a.format(**cli_files) for a in argv]
    rc, _, err = _cli(capsys, *argv)
    assert rc not in (0, None)
    line = _one_line(err)
    assert names in line, line
    assert not (cli_files["root"] / "d").exists()
