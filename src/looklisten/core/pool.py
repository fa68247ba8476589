"""Worker processes for decoding (demo clips, the in-memory cache, shard writing).

They are *spawned*, not forked: a process forked from one whose torch (GNU
OpenMP) or OpenCV thread pools have run can deadlock or crash as soon as it
uses them (seen: shard writers computing TV-L1 flow hung on a futex after the
parent had trained; cache workers died with BrokenProcessPool when an AVE+MF
and an AVE+OF run were trained one after the other in one process). Spawning
costs a second or so per worker, once per pool.

A spawned worker imports the main script again before it starts. A script
that calls looklisten at its top level, without ``if __name__ == "__main__":``,
would so start the same work again in every worker; :func:`process_pool` stops
such a worker at once with a message that says so, and the parent raises
:class:`WorkerError` with the same advice instead of a deep traceback (or, with
``multiprocessing.Pool``, an endless loop of replacement workers).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

MAIN_GUARD_ADVICE = (
    "looklisten starts worker processes that import your main script again: in a "
    'script, put the code that calls looklisten under `if __name__ == "__main__":`'
)


#: The signals a looklisten job may handle itself, to stop gracefully
#: (SIGTERM / SIGUSR1: see looklisten.training.preemption).
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


def handled_stop_signals() -> list[str]:
    """The :data:`STOP_SIGNALS` this process has a handler for (a forked child: inherited)."""
    return [
        n
        for n in STOP_SIGNALS
        if signal.getsignal(getattr(signal, n)) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    ]


def ignore_stop_signals(names: list[str] | None = None) -> None:
    """In a worker process: ignore ``names`` (default: :func:`handled_stop_signals`).

    A scheduler may signal a job's whole process group; the parent, which
    handles these signals to stop gracefully, then ends its workers itself.
    (PyTorch's DataLoader workers set a C handler that dies of SIGTERM, over the
    inherited one: call this from their ``worker_init_fn``.)
    """
    for name in handled_stop_signals() if names is None else names:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


class WorkerError(RuntimeError):
    """A worker process died (killed for memory, or it could not start)."""


def in_worker_bootstrap() -> bool:
    """True while a spawned worker is still importing the parent's main script."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def refuse_in_worker_bootstrap() -> None:
    """Stop a spawned worker that is re-running the main script's looklisten calls."""
    if in_worker_bootstrap():
        raise SystemExit(f"looklisten: a worker process stopped. {MAIN_GUARD_ADVICE}.")


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` (at least 1) spawned processes, as a context manager.

    Raises
    ------
    WorkerError
        When a worker dies, with the likely causes (a missing main guard, memory).
    """
    refuse_in_worker_bootstrap()
    # When the parent handles a stop signal (a training run), its workers ignore it: a
    # scheduler that signals the whole process group must not kill the pool under it.
    handled = handled_stop_signals()
    ex = ProcessPoolExecutor(
        max(1, int(workers)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=ignore_stop_signals if handled else None,
        initargs=(handled,) if handled else (),
    )
    try:
        yield ex
    except BaseException as e:
        # a failed job (or Ctrl-C) must not wait for every queued job to run first
        ex.shutdown(wait=True, cancel_futures=True)
        if not isinstance(e, BrokenProcessPool):
            raise
        raise WorkerError(
            f"a looklisten worker process died ({e}). Either {MAIN_GUARD_ADVICE}; or it "
            "was killed for memory: use fewer workers."
        ) from e
    else:
        ex.shutdown(wait=True)
