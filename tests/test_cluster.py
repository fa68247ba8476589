"""Training that survives clusters: SIGTERM / SIGUSR1 preemption, requeues with --resume auto,
torchrun restarts after a killed rank, and disks that are full or read-only.

Every run here is the real command line in its own process (``python -m looklisten.cli``,
under ``torchrun`` for two gloo ranks), signalled or killed from outside as a
scheduler would. The full and read-only disks are a real tmpfs mounted in a user
namespace (``unshare``; skipped where the kernel refuses one), a real file-size limit
(RLIMIT_FSIZE) under torchrun, and a failing fsync in the write layer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from looklisten.core.config import get_config
from looklisten.core.fileio import WriteError
from looklisten.data.demo_data import make_demo_data

ROOT = Path(__file__).resolve().parents[1]

# 20 steps an epoch, 2 epochs: long enough to be signalled in the middle
RUN = {
    "train.batch_size": 8,
    "train.epoch_pairs": 160,
    "train.val_pairs": 8,
    "train.epochs": 2,
    "train.log_every_steps": 1,
    "sampler.val_fraction": 0.34,
}
TOTAL = 40
# torchrun's report of each failed rank
EXITCODE = re.compile(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def _exit_codes(torchrun_stderr: str) -> dict[int, int]:
    """Each rank's exit code, from torchrun's report (ranks that exited 0 are not listed)."""
    return {int(r): int(c) for r, c in EXITCODE.findall(torchrun_stderr)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster") / "clips"
    make_demo_data(root, videos=6, seed=0, workers=2, progress=False, duration=3.0)
    return root


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    env["LOOKLISTEN_CACHE"] = str(cache)
    env["OMP_NUM_THREADS"] = "1"  # the same float arithmetic in every run and rank
    env.pop("WORLD_SIZE", None)
    return env


# Every job runs in its own process group, killed after the test: a failing test
# must not leave torchrun's ranks running.
_GROUPS: list[int] = []


@pytest.fixture(autouse=True)
def _kill_leftover_jobs():
    yield
    while _GROUPS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(_GROUPS.pop(), signal.SIGKILL)


def _start(argv: list[str], env: dict, **kw) -> subprocess.Popen:
    """Start a job (stdout and stderr captured as text) in a process group of its own."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(argv, env=env, text=True, start_new_session=True, **kw)
    _GROUPS.append(proc.pid)
    return proc


def _run(argv: list[str], env: dict, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run a job to its end (as subprocess.run with capture_output)."""
    proc = _start(argv, env, **kw)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _train_argv(data: Path, out: Path, *extra: str, ranks: int = 1) -> list[str]:
    """The job's command line: the same for the first start and every requeue."""
    argv = [sys.executable, "-m"]
    if ranks > 1:
        argv += ["torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
        argv += [a for a in extra if a.startswith("--max-restarts") or a.startswith("--signals")]
        argv += ["-m"]
    argv += ["looklisten.cli", "train", str(data), "--out", str(out), "--preset", "tiny"]
    argv += ["--model", "l3", "--resume", "auto", "--quiet", "--workers", "0"]
    argv += [a for k, v in RUN.items() for a in ("--set", f"{k}={v}")]
    return argv + [a for a in extra if not a.startswith(("--max-restarts", "--signals"))]


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(x)["step"] for x in lines if x.strip().endswith("}")]
    return max(steps, default=0)


def _wait_for_step(proc: subprocess.Popen, run: Path, step: int, timeout: float = 240) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if (s := _last_step(run)) >= step:
            return s
        time.sleep(0.01)
    raise AssertionError(f"the run never reached step {step} (exit code {proc.poll()})")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (torchrun's ranks), in pid order."""
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (d / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d.name))
    return sorted(kids)


def _weights(run: Path) -> dict:
    return load_file(str(run / "checkpoint" / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=0, atol=0, msg=k)


def _state_step(run: Path) -> int:
    return json.loads((run / "checkpoint" / "state.json").read_text())["step"]


def _leftovers(run: Path) -> list[str]:
    """Temporary siblings in ``run`` (not its lock file)."""
    return [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]


# ------------------------------------------------------------------ one process


def test_sigterm_at_a_random_step_checkpoints_and_the_requeue_is_bit_identical(data, tmp_path):
    env = _env(tmp_path / "cache")
    full = _run(_train_argv(data, tmp_path / "full"), env)
    assert full.returncode == 0, full.stderr[-3000:]
    assert "no checkpoint in" in full.stderr and "a new run" in full.stderr

    # the scheduler's SIGTERM at a random step
    k = int(np.random.default_rng().integers(2, 20))
    run = tmp_path / "job"
    proc = _start(_train_argv(data, run), env)
    _wait_for_step(proc, run, k)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, f"step {k}: {err[-3000:]}"
    said = [ln for ln in err.splitlines() if "SIGTERM" in ln]
    assert len(said) == 1 and "stopped after step" in said[0] and "--resume auto" in said[0], err
    summary = json.loads(out)
    stopped = summary["steps"]
    assert summary["preempted"] == "SIGTERM"
    assert k <= stopped < TOTAL, (k, stopped)  # the step in progress, or the next one
    assert _state_step(run) == stopped  # the checkpoint holds the stop step itself
    assert _leftovers(run) == []

    # requeued with the same command line
    again = _run(_train_argv(data, run), env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {run} from step {stopped}" in again.stderr
    assert json.loads(again.stdout)["steps"] == TOTAL
    _assert_same_weights(tmp_path / "full", run)
    vals = [
        [
            r
            for r in map(json.loads, (p / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "val"
        ]
        for p in (tmp_path / "full", run)
    ]
    assert vals[0] == vals[1] and len(vals[0]) == 2


def test_sigterm_to_the_whole_process_group_stops_cleanly_with_loader_workers(data, tmp_path):
    """Schedulers often signal every process of a job: DataLoader workers must not die of it."""
    run = tmp_path / "job"
    argv = _train_argv(data, run, "--cache", "files")
    argv[argv.index("--workers") + 1] = "2"
    proc = _start(argv, _env(tmp_path / "cache"))  # its own process group, as a job step
    _wait_for_step(proc, run, 3)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert "DataLoader worker" not in err and "Traceback" not in err, err[-3000:]
    assert json.loads(out)["preempted"] == "SIGTERM"
    # nothing of the job is left running (multiprocessing's resource tracker of the
    # spawned scan workers ignores SIGTERM and leaves once the run has exited)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


def test_resume_auto_refuses_a_conflicting_setting_and_a_damaged_checkpoint(data, tmp_path):
    env = _env(tmp_path / "cache")
    run = tmp_path / "run"
    first = _run(_train_argv(data, run, "--max-steps", "2"), env)
    assert first.returncode == 0, first.stderr[-3000:]
    # the same check as --resume: another batch size would break the exact resume
    argv = _train_argv(data, run, "--set", "train.batch_size=4")
    bad = _run(argv, env)
    assert bad.returncode == 2 and "train.batch_size=4" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    # a damaged checkpoint is reported, never trained over
    (run / "checkpoint" / "model.safetensors").unlink()
    bad = _run(_train_argv(data, run), env)
    assert bad.returncode == 2 and "checkpoint" in bad.stderr, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == [  # untouched
        "config.json",
        "optimizer.safetensors",
        "state.json",
    ]


def test_resume_takes_no_value_but_auto(tmp_path, capsys):
    from looklisten.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", "DATA", "--out", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--resume takes no value or 'auto'" in err and len(err.strip().splitlines()) == 1


def test_a_signal_outside_the_main_thread_changes_nothing():
    import threading

    from looklisten.training.preemption import StopSignals

    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def body():
        with StopSignals() as stop:
            seen.append(stop.received)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [None] and signal.getsignal(signal.SIGTERM) is before
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert stop.received == "SIGUSR1" and stop.code == signal.SIGUSR1
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_the_demo_continues_a_training_it_was_stopped_in(data, tmp_path, monkeypatch, capsys):
    """In one process, as `looklisten demo` trains: SIGUSR1 mid-run, then the demo again."""
    import threading

    from looklisten.cli.demo import _train_or_reuse
    from looklisten.training.preemption import Preempted

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny", arch="l3", **RUN)
    run = tmp_path / "l3"
    # a late signal (after the run restored its handlers) must not end pytest
    previous = signal.signal(signal.SIGUSR1, lambda *a: None)

    def scheduler():
        deadline = time.time() + 120
        while _last_step(run) < 3 and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGUSR1)

    try:
        threading.Thread(target=scheduler, daemon=True).start()
        with pytest.raises(Preempted) as e:
            _train_or_reuse(data, run, cfg, None, False)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    stopped = e.value.summary["steps"]
    assert e.value.summary["preempted"] == "SIGUSR1" and 3 <= stopped < TOTAL
    assert "run the same command again" in str(e.value)
    summary = _train_or_reuse(data, run, cfg, None, False)  # the demo again: continues
    assert summary["steps"] == TOTAL and summary["preempted"] is None
    assert f"resuming l3 (tiny) -> {run}" in capsys.readouterr().out
    _train_or_reuse(data, run, cfg, None, False)  # and now reuses the finished run
    assert "reusing" in capsys.readouterr().out


def test_decoding_workers_leave_the_stop_signals_to_a_training_parent():
    """A scheduler may signal the whole process group: the in-memory cache's workers live on."""
    from looklisten.core.pool import process_pool
    from looklisten.training.preemption import StopSignals

    with process_pool(1) as ex:  # outside a training run: the default
        assert ex.submit(signal.getsignal, signal.SIGTERM).result() == signal.SIG_DFL
    with StopSignals(), process_pool(1) as ex:
        assert ex.submit(signal.getsignal, signal.SIGTERM).result() == signal.SIG_IGN
        assert ex.submit(signal.getsignal, signal.SIGUSR1).result() == signal.SIG_IGN


# ------------------------------------------------------------------ torchrun, 2 gloo ranks


@pytest.fixture(scope="module")
def ddp_reference(data, tmp_path_factory):
    """An uninterrupted 2-rank run: what every interrupted one must end as, bit for bit."""
    root = tmp_path_factory.mktemp("ddp-ref")
    proc = _run(_train_argv(data, root / "run", ranks=2), _env(root / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


@pytest.mark.slow
def test_torchrun_ranks_stop_together_on_a_signal_and_requeues_continue(
    data, ddp_reference, tmp_path
):
    env = _env(tmp_path / "cache")
    run = tmp_path / "job"
    rng = np.random.default_rng()
    argv = _train_argv(data, run, "--signals-to-handle=SIGTERM,SIGINT,SIGUSR1", ranks=2)

    # 1. SIGTERM reaches rank 1 only: rank 0 learns of it and both stop at the same step
    k = int(rng.integers(2, 15))
    proc = _start(argv, env)
    _wait_for_step(proc, run, k)
    ranks = _children(proc.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[1], signal.SIGTERM)
    out, err = proc.communicate(timeout=120)  # no deadlock
    assert _exit_codes(err) == {0: 75, 1: 75}, err[-3000:]
    first = json.loads((run / "metrics.json").read_text())  # written by rank 0
    assert first["preempted"] == "SIGTERM" and first["processes"] == 2
    assert k <= first["steps"] < TOTAL and _state_step(run) == first["steps"]
    assert sum("stopped after step" in ln for ln in err.splitlines()) == 1  # rank 0's line

    # 2. requeued; this time the scheduler signals torchrun itself (SIGUSR1, forwarded)
    k2 = min(TOTAL - 8, first["steps"] + int(rng.integers(2, 8)))
    proc = _start(argv, env)
    _wait_for_step(proc, run, k2)
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert f"resuming {run} from step {first['steps']}" in err, err[-3000:]
    second = json.loads((run / "metrics.json").read_text())
    assert second["preempted"] == "SIGUSR1", err[-3000:]
    assert k2 <= second["steps"] < TOTAL and _state_step(run) == second["steps"]

    # 3. requeued again: runs to the end, as if never interrupted
    done = _run(argv, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["steps"] == TOTAL
    _assert_same_weights(ddp_reference, run)
    assert _leftovers(run) == []


@pytest.mark.slow
def test_torchrun_max_restarts_after_a_killed_rank_continue_from_the_last_checkpoint(
    data, ddp_reference, tmp_path
):
    env = _env(tmp_path / "cache")
    run = tmp_path / "job"
    argv = _train_argv(data, run, "--max-restarts=1", "--set", "train.save_every_steps=4", ranks=2)
    proc = _start(argv, env)
    k = int(np.random.default_rng().integers(6, 18))
    _wait_for_step(proc, run, k)
    ranks = _children(proc.pid)
    os.kill(ranks[1], signal.SIGKILL)  # a node lost, a rank killed by the OOM killer
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    resumed = re.findall(rf"resuming {re.escape(str(run))} from step (\d+)", err)
    assert len(resumed) == 1 and 4 <= int(resumed[0]) <= k + 4, err[-3000:]
    assert json.loads((run / "metrics.json").read_text())["steps"] == TOTAL
    _assert_same_weights(ddp_reference, run)


@pytest.mark.slow
def test_torchrun_a_checkpoint_rank_0_cannot_write_stops_every_rank_in_one_line(data, tmp_path):
    """A real write error (the file-size limit, EFBIG) on rank 0: no rank waits for it."""

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a signal (inherited)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # a checkpoint is ~7 MB

    run = tmp_path / "job"
    argv = _train_argv(data, run, "--max-steps", "3", ranks=2)
    proc = _run(argv, _env(tmp_path / "cache"), timeout=300, preexec_fn=limit_file_size)
    assert proc.returncode != 0
    assert _exit_codes(proc.stderr) == {0: 74, 1: 74}, proc.stderr[-3000:]
    # one line per rank and no traceback of ours (the ranks share stderr: their lines
    # may run together, so count messages, not lines)
    assert proc.stderr.count("looklisten train: error:") == 2, proc.stderr[-3000:]
    assert f"error: cannot write {run}/checkpoint: File too large [EFBIG]" in proc.stderr
    assert f"error: cannot write {run}/checkpoint: rank 0 could not write it" in proc.stderr
    assert "[rank0]: Traceback" not in proc.stderr and "[rank1]: Traceback" not in proc.stderr
    assert not (run / "checkpoint").exists()
    assert _leftovers(run) == []


# ------------------------------------------------------------------ full and read-only disks


def _failing_fsync(monkeypatch, names: set[str], code: int = errno.ENOSPC):
    """``os.fsync`` fails with ``code`` for files whose path contains one of ``names``."""
    real = os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if any(n in path for n in names):
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_one(tmp_path, monkeypatch):
    from looklisten.models.checkpoint import load_model, load_state, save_checkpoint
    from looklisten.models.network import create_model

    cfg = get_config("tiny")
    model = create_model(cfg)
    save_checkpoint(tmp_path / "run", model, cfg, state={"step": 1})
    _failing_fsync(monkeypatch, {"model.safetensors"})
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(WriteError) as e:
        save_checkpoint(tmp_path / "run", model, cfg, state={"step": 2})
    assert (
        str(e.value) == f"cannot write {tmp_path}/run/checkpoint: No space left on device [ENOSPC]"
    )
    assert e.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert load_state(tmp_path / "run")["step"] == 1
    load_model(tmp_path / "run")
    assert _leftovers(tmp_path / "run") == []


def test_an_index_that_cannot_be_written_keeps_the_last_one(tmp_path, monkeypatch):
    from looklisten.tasks.index import EmbeddingIndex

    idx = EmbeddingIndex(dim=8)
    idx.add("audio", np.ones((2, 8)), [{"file": "a", "time": 0.0}, {"file": "a", "time": 1.0}])
    idx.save(tmp_path / "idx")
    idx.add("audio", np.ones((1, 8)), [{"file": "b", "time": 0.0}])
    _failing_fsync(monkeypatch, {"audio.faiss"})
    with pytest.raises(WriteError, match=r"cannot write .*idx: No space left on device"):
        idx.save(tmp_path / "idx")
    monkeypatch.undo()
    assert EmbeddingIndex.load(tmp_path / "idx").count("audio") == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".idx.")] == []


def test_embed_goes_on_with_the_next_file_when_one_output_cannot_be_written(
    data, tmp_path, monkeypatch, capsys
):
    from looklisten.cli.main import main
    from looklisten.models.checkpoint import save_checkpoint
    from looklisten.models.network import create_model

    cfg = get_config("tiny")
    save_checkpoint(tmp_path / "run", create_model(cfg), cfg)
    clips = sorted(data.glob("*.mp4"))[:2]
    _failing_fsync(monkeypatch, {clips[0].name + ".npz"})
    rc = main(
        [
            "embed",
            *map(str, clips),
            "--checkpoint",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "emb"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == [
        f"error: {clips[0]}: cannot write {tmp_path}/emb/{clips[0].name}.npz: "
        "No space left on device [ENOSPC]"
    ], err
    assert sorted(p.name for p in (tmp_path / "emb").iterdir()) == [clips[1].name + ".npz"]


def test_shards_stop_at_the_shard_that_cannot_be_written_and_a_rerun_continues(
    data, tmp_path, monkeypatch
):
    from looklisten.data.shards import shard_folder

    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    cfg = get_config("tiny")
    out = tmp_path / "shards"
    _failing_fsync(monkeypatch, {"shard-000001"})
    with pytest.raises(WriteError) as e:
        shard_folder(data, out, cfg, workers=1, shard_size=2, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"cannot write {out}/shard-000001.tar: No space left on device [ENOSPC]")
    assert "run the same command again to continue" in msg
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial tar
    monkeypatch.undo()
    monkeypatch.setenv("LOOKLISTEN_CACHE", str(tmp_path / "cache"))
    done = shard_folder(data, out, cfg, workers=1, shard_size=2, progress=False)
    assert done["skipped"] == 1 and done["written"] == 2


# The same on a real disk: a small tmpfs, filled up and then made read-only, in a user
# namespace. The script runs each command as a user types it and prints what it saw.
DISK_SCRIPT = r"""
import contextlib, io, json, os, shutil, subprocess, sys
from pathlib import Path
from looklisten.cli.main import main
from looklisten.models.checkpoint import load_model, load_state
from looklisten.tasks.index import EmbeddingIndex

def job():
    disk, data, model = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], check=True)
    train = ["train", data, "--preset", "tiny", "--model", "l3", "--quiet", "--workers", "0",
             "--set", "train.batch_size=8", "--set", "train.epoch_pairs=16",
             "--set", "train.val_pairs=8", "--set", "sampler.val_fraction=0.34"]
    seen = {}

    def run(name, argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code
        seen[name] = {"rc": rc, "err": [ln for ln in err.getvalue().splitlines() if ln.strip()]}

    def fill(leave):
        st = os.statvfs(disk)
        free = st.f_bavail * st.f_frsize
        with open(disk / "filler", "ab") as f:
            f.write(b"\0" * max(0, free - leave))

    def hidden(folder):
        return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".") and p.name != ".lock")

    run("train", train + ["--out", str(disk / "run"), "--max-steps", "1", "--set", "train.epochs=1"])
    run("index", ["index", data, "--checkpoint", model, "--out", str(disk / "idx"), "--quiet"])
    fill(leave=64 << 10)  # room for small files, not for a checkpoint or an index
    run("train_full", train + ["--out", str(disk / "run"), "--resume", "auto", "--set", "train.epochs=2"])
    run("index_full", ["index", data, "--checkpoint", model, "--out", str(disk / "idx"), "--quiet", "--hop", "0.1"])
    run("shard_full", ["shard", data, "--out", str(disk / "shards"), "--shard-size", "2", "--workers", "1", "--quiet"])
    seen["after_full"] = {
        "step": load_state(disk / "run")["step"],
        "loads": load_model(disk / "run") is not None,
        "index_items": EmbeddingIndex.load(disk / "idx").count("audio"),
        "hidden_run": hidden(disk / "run"), "hidden_top": hidden(disk),
        "hidden_shards": hidden(disk / "shards") if (disk / "shards").exists() else [],
    }
    os.unlink(disk / "filler")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    run("train_ro", train + ["--out", str(disk / "run"), "--resume", "auto", "--set", "train.epochs=2"])
    run("embed_ro", ["embed", data, "--checkpoint", model, "--out", str(disk / "emb"), "--quiet"])
    run("index_ro", ["index", data, "--checkpoint", model, "--out", str(disk / "idx2"), "--quiet"])
    seen["after_ro"] = {"step": load_state(disk / "run")["step"],
                        "index_items": EmbeddingIndex.load(disk / "idx").count("audio")}
    print(json.dumps(seen))


if __name__ == "__main__":  # looklisten's worker processes import this file again
    job()
"""


def _userns_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d && rmdir $d"
    return (
        subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True).returncode == 0
    )


@pytest.mark.slow
@pytest.mark.skipif(not _userns_tmpfs(), reason="no tmpfs in a user namespace on this machine")
def test_a_full_then_read_only_disk_gives_one_line_and_keeps_the_last_good_state(data, tmp_path):
    from looklisten.models.checkpoint import save_checkpoint
    from looklisten.models.network import create_model

    cfg = get_config("tiny")
    save_checkpoint(tmp_path / "model", create_model(cfg), cfg)
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "disk.py"
    script.write_text(DISK_SCRIPT)
    argv = ["unshare", "-rm", sys.executable, str(script), str(disk), str(data)]
    proc = _run(argv + [str(tmp_path / "model")], _env(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["train"]["rc"] == 0 and seen["index"]["rc"] == 0, seen
    full = "No space left on device [ENOSPC]"
    ro = "Read-only file system [EROFS]"
    for name, rc, path, reason in [
        ("train_full", 74, f"{disk}/run/checkpoint", full),
        ("index_full", 74, f"{disk}/idx", full),
        ("shard_full", 74, f"{disk}/shards/shard-", full),
        ("train_ro", 74, f"{disk}/run/", ro),
        ("embed_ro", 74, f"{disk}/emb", ro),
        ("index_ro", 74, f"{disk}", ro),
    ]:
        got = seen[name]
        errors = [ln for ln in got["err"] if "error" in ln]
        assert got["rc"] == rc and len(errors) == 1, (name, got)
        assert f"cannot write {path}" in errors[0] and reason in errors[0], (name, errors)
    assert seen["after_full"] == {
        "step": 1,
        "loads": True,
        "index_items": seen["after_full"]["index_items"],
        "hidden_run": [],
        "hidden_top": [],
        "hidden_shards": [],
    }
    assert seen["after_full"]["index_items"] > 0
    assert seen["after_ro"] == {"step": 1, "index_items": seen["after_full"]["index_items"]}
