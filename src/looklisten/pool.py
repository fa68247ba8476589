"""Worker processes for decoding (the in-memory cache, shard writing).

They are *spawned*, not forked: a process forked from one whose torch (GNU
OpenMP) or OpenCV thread pools have run can deadlock or crash as soon as it
uses them (seen: shard writers computing TV-L1 flow hung on a futex after the
parent had trained; cache workers died with BrokenProcessPool when an AVE+MF
and an AVE+OF run were trained one after the other in one process). Spawning
costs a second or so per worker, once per pool.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` (at least 1) spawned processes."""
    return ProcessPoolExecutor(
        max(1, int(workers)), mp_context=multiprocessing.get_context("spawn")
    )
