"""Set-up shared by every test file.

``make test`` runs the suite in parallel with pytest-xdist (one worker per core,
at most 4, ``--dist worksteal``). Each worker then computes with one thread, and
so do the processes its tests start (the CLI, torchrun's ranks): two workers of
two threads each on two cores ran the suite slower than one process did (923 s
against 780 s). The files with tests marked ``slow`` are started first, so that the longest
ones do not end up alone at the end while the other workers idle (whole files:
their shared fixtures are built once per worker).
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the subprocesses tests start
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("numprocesses", None):  # a plain run keeps the file order
        return
    # whole files at a time, so that a file's shared fixtures are built once per worker
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable
