"""What graceful preemption costs a distributed training step: the ranks' stop agreement.

``looklisten train`` under torchrun asks, after every step, whether any rank
received SIGTERM / SIGUSR1 (``looklisten.training.preemption.StopAgreement``:
a non-blocking all-reduce of one integer, started after step s and collected
after step s + 1). This script measures what that adds to a step, in one run
on this machine: W gloo processes train the same DDP model (a preset's
L3-Net, random inputs of its shapes, AVC loss, Adam), in alternating blocks of
steps with and without the agreement, so both sides see the same machine load.
It prints one markdown table: the median step time of each side, their ratio,
and the agreement's own time (``poll`` alone, between steps).

    python benchmarks/bench_stop_agreement.py --preset tiny --ranks 2 --blocks 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _rank(rank: int, world: int, init: str, args, out: dict) -> None:
    from looklisten.core.config import get_config
    from looklisten.models.losses import AVCLoss
    from looklisten.models.network import create_model
    from looklisten.training.distributed import DistEnv, sync_batchnorm, wrap_ddp
    from looklisten.training.preemption import StopAgreement

    torch.set_num_threads(args.threads)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    env = DistEnv(rank, world, rank, world, True)
    device = torch.device("cpu")
    cfg = get_config(args.preset, arch="l3")
    torch.manual_seed(0)
    model = sync_batchnorm(create_model(cfg), device)
    net = wrap_ddp(model, env, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = AVCLoss()
    g = torch.Generator().manual_seed(rank)
    b, s = args.batch, cfg.vision.image_size
    image = torch.randn(b, 3, s, s, generator=g)
    wave = 0.1 * torch.randn(b, cfg.audio.clip_samples, generator=g)
    label = torch.randint(0, 2, (b,), generator=g)
    agree = StopAgreement(env, device)

    def step() -> None:
        loss = loss_fn(net(image, wave), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    times: dict[str, list[float]] = {"without": [], "with": [], "poll": []}
    for block in range(2 * args.blocks):
        side = "with" if block % 2 else "without"
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            if side == "with":
                t1 = time.perf_counter()
                agree.poll(0)
                times["poll"].append(time.perf_counter() - t1)
            times[side].append(time.perf_counter() - t0)
        agree.close()
    dist.destroy_process_group()
    if rank == 0:
        out.update({k: v for k, v in times.items()})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="pairs per rank")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--blocks", type=int, default=10, help="blocks of each side, alternating")
    p.add_argument("--steps", type=int, default=10, help="steps per block")
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        out = manager.dict()
        init = "file://" + os.path.join(tmp, "rendezvous")
        mp.spawn(_rank, args=(args.ranks, init, args, out), nprocs=args.ranks, join=True)
        times = dict(out)
    without = statistics.median(times["without"])
    with_ = statistics.median(times["with"])
    poll = statistics.median(times["poll"])
    print(
        f"| preset | ranks | pairs/rank | step without (ms) | step with (ms) | with / without "
        f"| poll alone (µs) |\n|---|---|---|---|---|---|---|\n"
        f"| {args.preset} | {args.ranks} | {args.batch} | {1e3 * without:.2f} | "
        f"{1e3 * with_:.2f} | {with_ / without:.3f} | {1e6 * poll:.0f} |"
    )


if __name__ == "__main__":
    main()
