"""Spawned worker pools: a script without a main guard gets advice, not a hang."""

import subprocess
import sys
import textwrap

import pytest

from looklisten.core.pool import WorkerError, process_pool


def _boom(x):
    import os

    os._exit(3)  # a worker that dies, as one killed for memory would


def test_a_dead_worker_raises_a_clear_error():
    with pytest.raises(WorkerError, match="killed for memory"):
        with process_pool(1) as ex:
            ex.submit(_boom, 0).result()


def _fail_or_mark(job):
    import time
    from pathlib import Path

    i, folder = job
    if i == 0:
        raise ValueError("bad clip")
    time.sleep(0.2)
    (Path(folder) / f"{i}.done").touch()


def test_a_failed_job_cancels_the_queued_ones(tmp_path):
    jobs = [(i, str(tmp_path)) for i in range(30)]
    with pytest.raises(ValueError, match="bad clip"):
        with process_pool(1) as ex:
            futures = [ex.submit(_fail_or_mark, job) for job in jobs]
            futures[0].result()
    # the error came back without running the 29 queued jobs first (6 s of them)
    assert len(list(tmp_path.glob("*.done"))) < 10


def test_a_script_without_main_guard_stops_with_advice(tmp_path):
    script = tmp_path / "noguard.py"
    script.write_text(
        textwrap.dedent(
            """\
            import looklisten
            looklisten.make_demo_data("clips", videos=2, workers=2, progress=False)
            print("rendered")
            """
        )
    )
    # multiprocessing.Pool would replace the failing workers forever: the timeout catches that
    r = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0 and "rendered" not in r.stdout
    assert 'if __name__ == "__main__":' in r.stderr and "WorkerError" in r.stderr
    assert r.stderr.count("Traceback") <= 3  # the parent's, and one per stopped worker at most
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        script.read_text()
        .replace("looklisten.make", 'if __name__ == "__main__":\n    looklisten.make')
        .replace('print("rendered")', '    print("rendered")')
    )
    r = subprocess.run(
        [sys.executable, str(guarded)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "rendered" in r.stdout, r.stderr
