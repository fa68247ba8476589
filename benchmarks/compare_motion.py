"""AVE vs AVE+MF vs AVE+OF on the demo data, measured in one run with the same budget.

Objects that Sound found that more visual context (several frames, or a frame
plus optical flow) raises AVC accuracy but not cross-modal retrieval. This
trains the three variants at the ``tiny`` sizes on the same demo clips, for the
same number of steps of the same batch size (the same pairs, in the same
order), and prints one table:

* held-out AVC accuracy (the fixed validation pairs of held-out clips);
* cross-modal nDCG@30, im2aud and aud2im, on the held-out clips
  (:func:`looklisten.evaluation.retrieval.evaluate_retrieval`; random embeddings
  beside them);
* training pairs/s (median over the logged steps, after the first);
* the optical-flow precompute time (TV-L1, once per clip, all workers' CPU
  seconds) and its cost per frame.

    python benchmarks/compare_motion.py --data demo-data --videos 120 --steps 1500 --out runs/motion

The clips are made with ``looklisten make-demo-data`` if ``--data`` does not
exist. Finished runs in ``--out`` are reused (delete them to retrain).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

VARIANTS = {"AVE": "tiny", "AVE+MF": "tiny-ave-mf", "AVE+OF": "tiny-ave-of"}


def run_variant(name: str, preset: str, data: Path, out: Path, args) -> dict:
    from looklisten.core.config import get_config
    from looklisten.evaluation.retrieval import evaluate_retrieval
    from looklisten.training.trainer import Trainer

    run = out / preset
    cfg = get_config(
        preset,
        arch="ave",
        **{
            "train.batch_size": args.batch_size,
            "train.epoch_pairs": args.batch_size * args.steps,
            "train.epochs": 1,
            "train.val_pairs": args.val_pairs,
            "train.seed": args.seed,
        },
    )
    done = run / "compare.json"
    if done.is_file():
        return json.loads(done.read_text())
    tick = time.perf_counter()
    trainer = Trainer.from_folder(data, run, cfg, cache="memory", progress=not args.quiet)
    prepare = time.perf_counter() - tick
    (run / "metrics.jsonl").unlink(missing_ok=True)
    srcs = (trainer.train_set.source, trainer.val_set.source)
    flow_s = sum(getattr(s, "flow_seconds", 0.0) for s in srcs)
    frames = sum(len(f) for s in srcs for f in s.frames)
    summary = trainer.fit()
    speeds = [r["pairs_per_s"] for r in trainer.history if r.get("split") == "train"][1:]
    ret = evaluate_retrieval(data, run, progress=not args.quiet)
    nd = ret["cross_modal_ndcg"]
    row = {
        "variant": name,
        "preset": preset,
        "steps": summary["steps"],
        "pairs": summary["pairs"],
        "val_avc_accuracy": summary["val_avc_accuracy"],
        "ndcg30_im2aud": nd["im2aud"]["model"],
        "ndcg30_aud2im": nd["aud2im"]["model"],
        "random_ndcg30_im2aud": nd["im2aud"]["random"],
        "random_ndcg30_aud2im": nd["aud2im"]["random"],
        "pairs_per_s": statistics.median(speeds) if speeds else float("nan"),
        "train_seconds": summary["train_seconds"],
        "prepare_seconds": prepare,
        "flow_cpu_seconds": flow_s,
        "flow_ms_per_frame": 1000 * flow_s / frames if flow_s else 0.0,
        "frames_cached": frames,
        "eval_items": ret["items"]["items"],
    }
    done.write_text(json.dumps(row, indent=2))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("demo-data-motion"))
    p.add_argument("--videos", type=int, default=120, help="clips to make if --data is missing")
    p.add_argument("--out", type=Path, default=Path("runs/compare-motion"))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--val-pairs", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS), help="subset of AVE,AVE+MF,AVE+OF")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()

    import torch

    from looklisten.data.demo_data import make_demo_data

    if not args.data.exists():
        make_demo_data(args.data, videos=args.videos, seed=0, progress=not args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.variants.split(","):
        rows.append(run_variant(name, VARIANTS[name], args.data, args.out, args))
    (args.out / "compare.json").write_text(json.dumps(rows, indent=2))

    print(
        f"\n{args.data}: {args.steps} steps x {args.batch_size} pairs each, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        "| variant | preset | AVC acc (held-out) | nDCG@30 im2aud | nDCG@30 aud2im "
        "| pairs/s | flow precompute |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        flow = (
            f"{r['flow_cpu_seconds']:.0f} CPU-s ({r['flow_ms_per_frame']:.1f} ms/frame, "
            f"{r['frames_cached']} frames)"
            if r["flow_cpu_seconds"]
            else "-"
        )
        print(
            f"| {r['variant']} | {r['preset']} | {r['val_avc_accuracy']:.3f} "
            f"| {r['ndcg30_im2aud']:.3f} | {r['ndcg30_aud2im']:.3f} "
            f"| {r['pairs_per_s']:.0f} | {flow} |"
        )
    r0 = rows[0]
    print(
        f"random embeddings: nDCG@30 im2aud {r0['random_ndcg30_im2aud']:.3f}, "
        f"aud2im {r0['random_ndcg30_aud2im']:.3f} ({r0['eval_items']} held-out items)"
    )


if __name__ == "__main__":
    main()
