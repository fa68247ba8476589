"""A run folder's guards: no silent overwrite, one trainer at a time, nothing left by a failed start.

``looklisten train DIR --out RUN`` into a folder that already holds a run is
refused unless it resumes (``--resume``) or replaces it (``--overwrite``); a
folder some process is training into is refused either way (:func:`run_lock`,
an advisory ``flock`` on ``RUN/.lock`` that the kernel releases when the
process dies, so a killed run never leaves a stale lock). A run that fails
before its first step (an empty or missing data folder, a bad setting) leaves
the folder as it found it (:func:`snapshot`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from looklisten.core.fileio import WriteError, remove_version
from looklisten.models.checkpoint import CHECKPOINT_DIR, EVAL_DIR, has_checkpoint

#: What a run writes into its folder (cleared by ``overwrite``; a run's other
#: files, e.g. a user's notes, are left alone).
RUN_FILES = (
    CHECKPOINT_DIR,
    "metrics.json",
    "metrics.jsonl",
    "manifest.jsonl",
    "rejected.tsv",
    "split.json",
    "ranks.json",
    EVAL_DIR,
)
LOCK_FILE = ".lock"


class RunExistsError(ValueError):
    """``out`` holds a run and the call neither resumes nor overwrites it."""


class RunBusyError(ValueError):
    """Another process is training into ``out``."""


def holds_run(out: str | os.PathLike) -> bool:
    """Whether ``out`` holds a run: a checkpoint, or the files of a run that started."""
    p = Path(out)
    return has_checkpoint(p) or any(
        (p / name).exists() for name in ("metrics.jsonl", "metrics.json", "manifest.jsonl")
    )


def describe_run(out: str | os.PathLike) -> str:
    """A few words on the run in ``out``: finished, stopped at step N, or never checkpointed."""
    p = Path(out)
    if not has_checkpoint(p):
        return "a run that stopped before its first checkpoint"
    summary = p / "metrics.json"
    with contextlib.suppress(OSError, ValueError):
        s = json.loads(summary.read_text())
        how = "stopped " if s.get("preempted") or s.get("stopped_by_time_budget") else ""
        return f"a {how}run ({s.get('model', '?')}, {s.get('steps', '?')} steps)"
    return "a run with a checkpoint"


def check_new_run(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse a new run into ``out`` when it holds one, unless ``overwrite`` (then clear it)."""
    if not holds_run(out):
        return
    if not overwrite:
        raise RunExistsError(
            f"{out} holds {describe_run(out)}: --resume continues it, --overwrite replaces "
            "it (Python: resume=True / overwrite=True), or give another --out"
        )
    clear_run(out)


def clear_run(out: str | os.PathLike) -> None:
    """Remove what a run wrote into ``out`` (:data:`RUN_FILES`)."""
    for name in RUN_FILES:
        remove_version(Path(out) / name)


@contextlib.contextmanager
def run_lock(out: str | os.PathLike, enabled: bool = True) -> Iterator[None]:
    """Hold ``out/.lock`` while training; :class:`RunBusyError` if another process holds it.

    ``enabled`` False (the other ranks of a torchrun job: rank 0 holds the lock)
    does nothing. The lock file records the holder's pid and host for the message.
    """
    if not enabled:
        yield
        return
    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a read-only or forbidden run folder: one line, exit code 74
        raise WriteError.of(path, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise RunBusyError(
                f"{out} is being trained by {holder}: wait for it to end or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def snapshot(out: str | os.PathLike) -> Callable[[], None]:
    """Note what ``out`` holds now; the returned function removes whatever was added since
    (``out`` itself if it is new). For a run's start: a start that fails (scan, split,
    set-up) leaves no folder or file behind.
    """
    p = Path(out)
    existed = p.exists()
    before = {e.name for e in os.scandir(p)} if existed and p.is_dir() else set()

    def undo() -> None:
        if not existed:
            shutil.rmtree(p, ignore_errors=True)
            return
        with contextlib.suppress(OSError):
            for e in os.scandir(p):
                if e.name in before:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)

    return undo
