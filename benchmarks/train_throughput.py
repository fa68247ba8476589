"""Training throughput per preset: loader pairs/s, step pairs/s, FLOPs and MFU, in one table.

For each preset this measures, in one run on this machine:

* **loader pairs/s**: the real data path alone (a ``PairDataset`` over a
  ``MemorySource``, a ``FileSource`` or the ``ShardSource`` of shards written
  from demo clips (``--loader memory|files|shards``), batched by a
  ``DataLoader`` with ``--workers`` processes), worker start-up excluded;
* **train pairs/s**: one training step as ``looklisten train`` does it
  (vision crop / flip / jitter of uint8 frames, audio gain, forward with the
  spectrogram inside the model, loss, backward, Adam) on random inputs of the
  preset's shapes, warm-up steps excluded;
* **model FLOPs per pair** (``looklisten.models.flops``: convolutions and matrix
  products, 2 FLOPs per multiply-add; training = 3 x forward) and the achieved
  training FLOP/s;
* the device's **measured peak** matrix-multiply rate (a large ``torch.mm``,
  best of several repeats: fp32 on the CPU with the same threads; fp32 and
  bf16 on CUDA), and **MFU** = achieved / peak.

The peak is re-measured right before every timed step, and MFU is the median
over steps of (that step's FLOP/s) / (the peak measured just before it), so a
machine shared with other work gives comparable ratios. On CUDA the training
step uses bf16 autocast (MFU against the bf16 peak) and channels-last
tensors, as ``looklisten train`` does; ``--compile`` wraps the model in
``torch.compile``.

On a CPU shared with other work, ``--threads 1 --clock cpu`` times the steps,
the peak and the loader (its worker processes included) by CPU time instead of
the wall clock: pairs per core-second, whatever else the machine runs. The
``loader / train`` column is then the loader's pairs per core-second over the
training step's.

    python benchmarks/train_throughput.py --presets tiny,ots --batch 16 --json out.json
    python benchmarks/train_throughput.py --presets ots --loader none --steps 5 --profile
    python benchmarks/train_throughput.py --presets tiny,ots --threads 1 --clock cpu
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from looklisten.core.config import get_config
from looklisten.inputs.prepare import VisionTransform
from looklisten.models.audio import random_gain
from looklisten.models.flops import TRAINING_FLOPS_FACTOR, model_flops_per_pair
from looklisten.models.losses import AVCLoss
from looklisten.models.network import create_model

PAPER_2017_PAIRS_PER_S_PER_GPU = 22  # L3-Net: 60 M pairs in ~2 days on 16 GPUs


# ---------------------------------------------------------------------------
# Timing and the peak
# ---------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, clock: str = "wall") -> float:
    """Seconds one call of ``fn`` takes (CUDA events on a GPU).

    ``clock="cpu"`` (CPU only) counts this process's CPU time instead of the
    wall clock: on a machine shared with other work, and with one thread, that
    is the time the step really ran, whatever else was scheduled meanwhile.
    """
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _sync(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    now = time.process_time if clock == "cpu" else time.perf_counter
    t0 = now()
    fn()
    return now() - t0


class PeakMeter:
    """The device's matrix-multiply rate: ``torch.mm`` of two n x n matrices.

    ``measure()`` returns FLOP/s, the best of ``repeats`` products (one
    product on the CPU, a burst of ``burst`` back-to-back on CUDA, where a
    single product is too short to time).
    """

    def __init__(
        self, device: torch.device, dtype: torch.dtype, n: int, repeats: int = 3, clock="wall"
    ):
        self.device, self.dtype, self.n, self.repeats = device, dtype, n, repeats
        self.clock = clock
        g = torch.Generator(device="cpu").manual_seed(0)
        self.a = torch.randn(n, n, generator=g).to(device, dtype)
        self.b = torch.randn(n, n, generator=g).to(device, dtype)
        self.c = torch.empty(n, n, device=device, dtype=dtype)
        self.burst = 10 if device.type == "cuda" else 1
        self.measure()  # warm-up: library dispatch, first-touch pages, GPU clocks

    def _run(self) -> None:
        for _ in range(self.burst):
            torch.mm(self.a, self.b, out=self.c)

    def measure(self) -> float:
        best = min(timed(self._run, self.device, self.clock) for _ in range(self.repeats))
        return 2 * self.n**3 * self.burst / best


# ---------------------------------------------------------------------------
# The training step
# ---------------------------------------------------------------------------


def make_step(cfg, device: torch.device, batch: int, args):
    """A closure doing one training step as ``looklisten.training.trainer.Trainer`` does it."""
    torch.manual_seed(0)
    model = create_model(cfg).to(device).train()
    flops = model_flops_per_pair(model)
    opt_kw = {"fused": True} if args.fused_adam else {}
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, **opt_kw
    )
    fwd = torch.compile(model) if args.compile else model
    transform = VisionTransform(cfg.vision)
    loss_fn = AVCLoss()
    amp = device.type == "cuda" and cfg.train.amp and not args.no_amp
    r = cfg.vision.resize
    g = torch.Generator().manual_seed(0)
    k = cfg.vision.num_frames
    fshape = (batch, k, r, r, 3) if k > 1 else (batch, r, r, 3)
    frames = torch.randint(0, 256, fshape, dtype=torch.uint8, generator=g).to(device)
    wave = (0.1 * torch.randn(batch, cfg.audio.clip_samples, generator=g)).to(device)
    label = torch.randint(0, 2, (batch,), generator=g).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        image = transform(frames, train=True, generator=gen)
        w = random_gain(wave, cfg.audio.gain_jitter, gen) if cfg.audio.gain_jitter > 0 else wave
        if cfg.train.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = fwd(image, w)
        loss = loss_fn(out, label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, flops, amp


def bench_train(preset: str, args, device: torch.device, peaks: dict) -> dict:
    cfg = get_config(preset, arch=args.model)
    if args.channels_last != "preset":
        cfg = cfg.with_overrides(**{"train.channels_last": args.channels_last == "on"})
    batch = args.batch or (
        128 if device.type == "cuda" else 16 if preset in ("ots", "paper") else 64
    )
    step, flops, amp = make_step(cfg, device, batch, args)
    for _ in range(args.warmup):
        step()
    _sync(device)
    meter = peaks["bf16" if amp else "fp32"]
    times, ratios, peak_rates = [], [], []
    for _ in range(args.steps):
        peak = meter.measure()
        t = timed(step, device, args.clock)
        times.append(t)
        peak_rates.append(peak)
        ratios.append(flops.training * batch / t / peak)
    t_med = statistics.median(times)
    row = {
        "preset": preset,
        "model": cfg.model.arch,
        "batch": batch,
        "precision": "bf16 autocast" if amp else "fp32",
        "channels_last": cfg.train.channels_last,
        "compile": bool(args.compile),
        "fused_adam": bool(args.fused_adam),
        "step_seconds": times,
        "train_pairs_per_s": batch / t_med,
        "forward_flops_per_pair": flops.forward,
        "train_flops_per_pair": flops.training,
        "achieved_flops_per_s": flops.training * batch / t_med,
        "peak_flops_per_s": statistics.median(peak_rates),
        "peak_dtype": "bf16" if amp else "fp32",
        "mfu": statistics.median(ratios),
        "mfu_per_step": ratios,
        "clock": args.clock,
    }
    if args.profile:
        row["profile"] = profile_step(
            step, device, flops, batch, t_med, statistics.median(peak_rates)
        )
    return row


# What the time of a step goes to, by the profiler's operator names (self time).
_KINDS = (
    ("conv", ("convolution",)),
    ("batch norm", ("batch_norm",)),
    ("relu", ("relu", "clamp_min", "threshold_backward")),
    ("pooling", ("max_pool", "amax")),
    ("spectrogram", ("stft", "fft")),
)


def profile_step(
    step, device: torch.device, flops, batch: int, step_seconds: float, peak: float
) -> dict:
    """One more step under ``torch.profiler``: its time by kind of work, and the
    convolutions' own FLOP/s over the peak (how close the matrix work itself is).

    The profiler's clock is the wall clock; its shares are applied to the
    step's time as measured (``step_seconds``, by ``--clock``)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
        _sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    seconds: dict[str, float] = {k: 0.0 for k, _ in _KINDS}
    seconds["optimizer"] = seconds["other"] = 0.0
    total = 0.0
    for e in prof.key_averages():
        t = getattr(e, attr, 0.0) / 1e6
        total += t
        if e.key.startswith("Optimizer.step"):
            continue
        kind = next((k for k, keys in _KINDS if any(x in e.key for x in keys)), "other")
        seconds[kind] += t
    # The optimiser's element-wise ops are children of its record_function span.
    opt = [e for e in prof.events() if e.name.startswith("Optimizer.step")]
    if opt and device.type == "cpu":
        t_opt = sum(e.cpu_time_total for e in opt) / 1e6
        seconds["optimizer"] = t_opt
        seconds["other"] = max(0.0, seconds["other"] - t_opt)
    share = {k: v / max(total, 1e-12) for k, v in seconds.items()}
    conv_flops = TRAINING_FLOPS_FACTOR * flops.by_kind.get("conv", 0) * batch
    return {
        "share": share,
        "profiled_seconds": seconds,
        "conv_mfu": conv_flops / max(share["conv"] * step_seconds, 1e-12) / peak,
    }


# ---------------------------------------------------------------------------
# The loader
# ---------------------------------------------------------------------------


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_loader(preset: str, args, data: Path, device: torch.device) -> dict:
    from looklisten.data.sampler import FileSource, MemorySource, PairDataset, PairSampler
    from looklisten.data.scan import scan_folder

    cfg = get_config(preset, arch=args.model)
    batch = args.loader_batch
    man = scan_folder(data, min_seconds=cfg.audio.clip_seconds, progress=False)
    t0 = time.perf_counter()
    if args.loader == "memory":
        source = MemorySource(
            man.root, man.videos, cfg, workers=os.cpu_count() or 1, progress=False
        )
    elif args.loader == "shards":  # written once per preset (setup time), then memory-mapped
        from looklisten.data.shards import ShardSet, shard_folder

        out = Path(tempfile.mkdtemp(prefix=f"shards-{preset}-"))
        shard_folder(data, out, cfg, workers=os.cpu_count() or 1, progress=False)
        shards = ShardSet.open(out)
        source = shards.source(man.videos, cfg)
    else:
        source = FileSource(man.root, man.videos, cfg)
    preload = time.perf_counter() - t0
    n_batches = max(2, args.loader_pairs // batch) + 1
    ds = PairDataset(
        PairSampler(man.videos, cfg.sampler, cfg.audio), source, n_batches * batch, 0, True
    )
    kw = {}
    if args.workers > 0:
        kw = {"num_workers": args.workers, "prefetch_factor": 4}
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch, drop_last=True, pin_memory=device.type == "cuda", **kw
    )
    if args.clock == "cpu":
        # CPU seconds of this process and of the workers (counted once they
        # have exited): pairs per core-second, comparable with the training
        # step's. Worker start-up is included (cheap with fork).
        t0, c0 = time.process_time(), _children_cpu()
        n = sum(len(b["label"]) for b in loader)
        rate = n / (time.process_time() - t0 + _children_cpu() - c0)
        startup = float("nan")
    else:
        it = iter(loader)
        t0 = time.perf_counter()
        next(it)  # worker start-up and the first batch: excluded
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(len(b["label"]) for b in it)
        rate = n / (time.perf_counter() - t0)
        del it  # the workers exit
    if args.loader == "shards":
        import shutil

        del loader, ds, source
        shutil.rmtree(out, ignore_errors=True)
    return {
        "source": args.loader,
        "workers": args.workers,
        "loader_batch": batch,
        "loader_pairs_per_s": rate,
        "loader_startup_seconds": startup,
        "source_setup_seconds": preload,
        "videos": len(man.videos),
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _si(x: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if abs(x) >= scale:
            return f"{x / scale:.1f} {unit}"
    return f"{x:.0f}"


def table(rows: list[dict]) -> str:
    cols = (
        "preset",
        "batch",
        "precision",
        "loader pairs/s",
        "train pairs/s",
        "loader / train",
        "fwd FLOPs/pair",
        "train FLOP/s",
        "peak FLOP/s",
        "MFU",
    )
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for r in rows:
        train = r["train_pairs_per_s"]
        loader = r.get("loader_pairs_per_s")
        cells = (
            r["preset"],
            str(r["batch"]),
            r["precision"],
            "-" if loader is None else f"{loader:.1f}",
            f"{train:.2f}",
            "-" if loader is None else f"{loader / train:.1f}x",
            _si(r["forward_flops_per_pair"]),
            _si(r["achieved_flops_per_s"]),
            f"{_si(r['peak_flops_per_s'])} ({r['peak_dtype']})",
            f"{100 * r['mfu']:.1f} %",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--presets", default="tiny,small,ots,paper")
    ap.add_argument("--model", default="l3", choices=("l3", "ave", "avol"))
    ap.add_argument(
        "--batch",
        type=int,
        help="training batch (default: 16 for ots/paper on a CPU, 64 else; 128 on CUDA)",
    )
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per preset")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--channels-last", choices=("preset", "on", "off"), default="preset")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--fused-adam", action="store_true", help="Adam(fused=True)")
    ap.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    ap.add_argument("--loader", choices=("memory", "files", "shards", "none"), default="memory")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the loader")
    ap.add_argument("--loader-batch", type=int, default=64)
    ap.add_argument("--loader-pairs", type=int, default=512)
    ap.add_argument("--data", help="folder of videos (default: --videos fresh demo clips)")
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument(
        "--peak-size", type=int, help="n of the n x n peak product (2048 CPU, 8192 CUDA)"
    )
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: time steps and peak by this process's CPU time (a shared machine, --threads 1)",
    )
    ap.add_argument("--profile", action="store_true", help="where a step's time goes")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.clock == "cpu" and device.type != "cpu":
        ap.error("--clock cpu is for CPU runs (CUDA steps are timed with CUDA events)")
    n = args.peak_size or (8192 if device.type == "cuda" else 2048)
    peaks = {"fp32": PeakMeter(device, torch.float32, n, clock=args.clock)}
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak is plain fp32
        peaks["bf16"] = PeakMeter(device, torch.bfloat16, n)
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads, {os.cpu_count()} cores"
    env = {
        "device": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "peak_fp32_flops_per_s": peaks["fp32"].measure(),
    }
    if "bf16" in peaks:
        env["peak_bf16_flops_per_s"] = peaks["bf16"].measure()
    print(f"# train throughput: {env['device']}, torch {env['torch']}", file=sys.stderr)

    presets = [p for p in args.presets.split(",") if p]
    rows = []
    with contextlib.ExitStack() as stack:
        data = Path(args.data) if args.data else None
        if data is None and args.loader != "none":
            from looklisten.data.demo_data import make_demo_data

            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            data = make_demo_data(Path(tmp) / "demo", videos=args.videos, seed=0, progress=False)
        for preset in presets:
            row = bench_train(preset, args, device, peaks)
            if args.loader != "none":
                row.update(bench_loader(preset, args, data, device))
            rows.append(row)
            print(
                f"{preset}: {row['train_pairs_per_s']:.2f} pairs/s, MFU {row['mfu']:.3f}",
                file=sys.stderr,
            )

    print(table(rows))
    if args.profile:
        kinds = list(rows[0]["profile"]["share"])
        print("\n| preset | " + " | ".join(kinds) + " | conv FLOP/s / peak |")
        print("|" + " --- |" * (len(kinds) + 2))
        for r in rows:
            p = r["profile"]
            cells = [f"{100 * p['share'][k]:.0f} %" for k in kinds]
            print(f"| {r['preset']} | " + " | ".join(cells) + f" | {100 * p['conv_mfu']:.0f} % |")
    print(
        f"\nMFU: achieved training FLOP/s (3 x forward FLOPs x pairs/s) over the peak "
        f"{rows[0]['peak_dtype'] if rows else 'fp32'} torch.mm rate measured before each step "
        f"(median over {args.steps} steps; {args.clock} clock). "
        f"Loader: {args.loader} source, {args.workers} workers. "
        f"L3-Net (2017): about {PAPER_2017_PAIRS_PER_S_PER_GPU} pairs/s per GPU."
    )
    result = {"env": env, "args": vars(args), "rows": rows}
    if args.json:
        from looklisten.core.fileio import atomic_write_json

        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
