"""Set-up shared by every test file.

``make test`` runs the suite in parallel with pytest-xdist (one worker per core,
at most 4). Each worker then computes with one thread, and so do the processes
its tests start (the CLI, torchrun's ranks): two workers of two threads each on
two cores ran the suite slower than one process did (923 s against 780 s).
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the subprocesses tests start
    import torch

    torch.set_num_threads(1)
