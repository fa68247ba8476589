"""Graceful preemption: stop at a step boundary on SIGTERM / SIGUSR1, with every rank agreeing.

A cluster stops a job by sending SIGTERM some seconds before SIGKILL (SLURM
preemption and ``scancel``, a spot reclaim, Kubernetes); SLURM can also send
SIGUSR1 ahead of time (``#SBATCH --signal=USR1@120``). :class:`StopSignals`
turns these signals into a flag instead of an exit; the training loop reads it
after every step through :class:`StopAgreement`, writes a checkpoint and
returns (``looklisten train`` then exits with code 75).

Under ``torchrun`` the signal may reach some ranks only, or reach them at
different steps. After step ``s`` every rank starts a non-blocking all-reduce
(max) of its flag, and collects it after step ``s + 1``: all ranks learn the
same answer at the same step, so they stop together, rank 0 writes one
checkpoint, and no rank waits in a collective the others never join. The
all-reduce of one integer runs on the CPU (the gloo process group; a gloo side
group beside NCCL) and overlaps a whole step, so it costs the loop nothing
measurable and never synchronises the GPU.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from looklisten.core.pool import STOP_SIGNALS  # the signals that ask a run to checkpoint and stop

if TYPE_CHECKING:  # torch is imported where it is used: the CLI imports Preempted at start
    import torch

    from looklisten.training.distributed import DistEnv

log = logging.getLogger(__name__)


class StopSignals:
    """A context that records :data:`STOP_SIGNALS` instead of dying of them.

    ``received`` is the name of the first signal that arrived (None before).
    The previous handlers are restored on exit. Signal handlers can be set in
    the main thread only; elsewhere this records nothing (and says so in the log).

    Examples
    --------
    >>> with StopSignals() as stop:  # doctest: +SKIP
    ...     while not stop.received:
    ...         work()
    """

    def __init__(self, names: tuple[str, ...] = STOP_SIGNALS) -> None:
        self.signals = [getattr(signal, n) for n in names if hasattr(signal, n)]
        self.received: str | None = None  # the first signal's name
        self.code = 0  # its number (0: none yet)
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received, self.code = signal.Signals(signum).name, int(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            log.info("not in the main thread: %s will not stop training gracefully", STOP_SIGNALS)
            return self
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


class StopAgreement:
    """The ranks' common answer to "has any rank been asked to stop?", one step late.

    Call :meth:`poll` once after every step on every rank, with this rank's
    signal number (0: none). In one process it returns it. With several, it
    returns the largest over ranks of the numbers given one call earlier (a
    non-blocking all-reduce started at the previous call), identical on every
    rank. :meth:`now` answers at once (a blocking all-reduce: before the loop).
    Call :meth:`close` before leaving the loop.
    """

    def __init__(self, env: DistEnv | None = None, device: torch.device | None = None) -> None:
        from looklisten.training.distributed import SINGLE

        self.env = env = env or SINGLE
        self.group = None
        if env.distributed and device is not None and device.type != "cpu":
            import torch.distributed as dist

            self.group = dist.new_group(backend="gloo")  # CPU integers, off the GPU stream
        self._pending = None  # (work, tensor) of the all-reduce in flight

    def _reduce(self, code: int, async_op: bool):
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(code)], dtype=torch.int32)
        work = dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group, async_op=async_op)
        return work, t

    def now(self, code: int) -> int:
        """The largest of the ranks' ``code`` (blocking)."""
        if not self.env.distributed:
            return code
        self.close()
        _, t = self._reduce(code, False)
        return int(t.item())

    def poll(self, code: int) -> int:
        """The largest of the ranks' codes at the previous call (see the class); 0 at the first."""
        if not self.env.distributed:
            return code
        agreed = self.close()
        self._pending = self._reduce(code, True)
        return agreed

    def close(self) -> int:
        """Collect the all-reduce in flight, if any; return its answer (0 if none)."""
        if self._pending is None:
            return 0
        work, t = self._pending
        self._pending = None
        work.wait()
        return int(t.item())


class Preempted(Exception):
    """A job made of several trainings (the demo) was stopped by a signal in one of them.

    That training wrote its checkpoint; ``summary`` is what it returned.
    """

    def __init__(self, run: str, summary: dict) -> None:
        self.run, self.summary = run, summary
        super().__init__(
            f"{summary.get('preempted')}: stopped {run} after step {summary.get('steps')} "
            "with a checkpoint; run the same command again to continue"
        )


def signal_name(code: int) -> str:
    """``15`` -> ``"SIGTERM"``."""
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


__all__ = ["STOP_SIGNALS", "Preempted", "StopAgreement", "StopSignals", "signal_name"]
