"""Data path and training throughput on this machine, as ratios measured in one run.

1. Pair sampling from encoded videos (FileSource: seek + decode one frame and
   one second of audio per pair) next to the floor: the same reads through the
   reader alone, with no sampling, cropping or batching around them. Also the
   in-memory source (decode once, then slice).
2. Training pairs/s of each preset (forward + backward + Adam step on random
   inputs of the preset's shapes), and each preset's time per pair relative to
   ``tiny``.

    python benchmarks/bench_data_and_train.py [--data DIR] [--pairs 300] [--presets tiny,small,ots,paper]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from looklisten.core.config import get_config
from looklisten.data.sampler import FileSource, MemorySource, PairDataset, PairSampler
from looklisten.data.scan import scan_folder
from looklisten.inputs.prepare import VisionTransform
from looklisten.media.video import MediaReader
from looklisten.models.losses import AVCLoss
from looklisten.models.network import create_model


def bench_data(data: Path, preset: str, pairs: int) -> list[tuple[str, float]]:
    cfg = get_config(preset)
    man = scan_folder(data, min_seconds=cfg.audio.clip_seconds, progress=False)
    videos = man.videos
    sampler = PairSampler(videos, cfg.sampler, cfg.audio)
    rng = np.random.default_rng(0)
    specs = [sampler.sample(rng) for _ in range(pairs)]

    # the floor: just the reads the pairs need, readers kept open
    readers = {}
    t0 = time.perf_counter()
    for s in specs:
        for vid in (s.frame_video, s.audio_video):
            if vid not in readers:
                readers[vid] = MediaReader(man.root / videos[vid].path)
        fps = videos[s.frame_video].fps
        readers[s.frame_video].read_frame(s.frame_time + 0.5 / fps, size=cfg.vision.resize)
        c0 = s.audio_center - cfg.audio.clip_seconds / 2
        readers[s.audio_video].read_audio(c0, c0 + cfg.audio.clip_seconds, cfg.audio.sample_rate)
    floor = pairs / (time.perf_counter() - t0)
    for r in readers.values():
        r.close()

    ds = PairDataset(sampler, FileSource(man.root, videos, cfg), pairs, seed=0, train=True)
    t0 = time.perf_counter()
    for k in range(pairs):
        ds[k]
    file_rate = pairs / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    mem = MemorySource(man.root, videos, cfg, workers=2, progress=False)
    preload = time.perf_counter() - t0
    ds = PairDataset(sampler, mem, pairs * 10, seed=0, train=True)
    t0 = time.perf_counter()
    for k in range(pairs * 10):
        ds[k]
    mem_rate = pairs * 10 / (time.perf_counter() - t0)
    return [
        ("reads only (the floor)", floor),
        ("FileSource pairs", file_rate),
        ("MemorySource pairs", mem_rate),
        (f"MemorySource preload of {len(videos)} videos (s)", preload),
    ]


def bench_train(preset: str, batch: int, steps: int) -> float:
    cfg = get_config(preset)
    torch.manual_seed(0)
    model = create_model(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    tf = VisionTransform(cfg.vision)
    loss_fn = AVCLoss()
    r = cfg.vision.resize
    frames = torch.randint(0, 255, (batch, r, r, 3), dtype=torch.uint8)
    wave = torch.randn(batch, cfg.audio.clip_samples) * 0.1
    label = torch.randint(0, 2, (batch,))

    def step():
        image = tf(frames, train=True).contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(image, wave), label)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", help="folder of videos (default: 24 fresh demo clips)")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--presets", default="tiny,small,ots,paper")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else None
        if data is None:
            from looklisten.data.demo_data import make_demo_data

            data = make_demo_data(Path(tmp) / "demo", videos=24, seed=0, progress=False)
        print(f"\n## data path ({data}, tiny preset: frames scaled to the preset's size)")
        rows = bench_data(data, "tiny", args.pairs)
        floor = rows[0][1]
        print(f"| {'what':44s} | {'pairs/s':>9s} | {'x floor':>7s} |")
        for name, rate in rows:
            if name.endswith("(s)"):
                print(f"| {name:44s} | {rate:9.1f} s |")
            else:
                print(f"| {name:44s} | {rate:9.1f} | {rate / floor:7.2f} |")

    print("\n## training step (forward + backward + Adam), random inputs")
    results = []
    for preset in args.presets.split(","):
        batch = {"paper": 8, "ots": 16}.get(preset, 64)
        steps = {"paper": 2, "ots": 3}.get(preset, 5)
        results.append((preset, batch, bench_train(preset, batch, steps)))
    base = next((r for p, _, r in results if p == "tiny"), results[0][2])
    print(f"| {'preset':8s} | {'batch':>5s} | {'pairs/s':>8s} | {'time/pair vs tiny':>17s} |")
    for preset, batch, rate in results:
        print(f"| {preset:8s} | {batch:5d} | {rate:8.1f} | {base / rate:16.1f}x |")


if __name__ == "__main__":
    main()
