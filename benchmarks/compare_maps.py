#!/usr/bin/env python
"""Which AVOL-Net option localises best, on a test set that does not reward the centre?

One command trains AVOL-Net variants on the same CPU budget and evaluates each with
``eval localization`` on clips whose objects appear anywhere in the frame, small to
large (``make-demo-data --layout anywhere``)::

    python benchmarks/compare_maps.py --out bench-out/maps --minutes 2.5

Data: the demo's training clips (``--videos``, seed 0, the training layout) and a
test set of ``--test-videos`` clips of another seed in the ``anywhere`` layout.

Models (``tiny`` preset, AVOL-Net at 128 px): every variant starts from the same
AVE-Net trunks (an AVE-Net trained with InfoNCE for ``--ave-steps`` steps, as in the
demo, which warm-starts its AVOL-Net the same way) and trains for the same *time*:
each variant's step time is measured first (forward, backward and Adam on a batch
of its own inputs, in this process), and it trains ``minutes x 60 / step time``
steps with a cosine schedule that ends there. The variants (:data:`VARIANTS`):

* ``avc``: the paper's AVOL-Net (AVC loss, 8x8 map);
* ``mil``: the contrastive multiple-instance objective (EZ-VSL's max over
  locations, then InfoNCE);
* ``avc-atrous``, ``mil-atrous``: the same with ``model.atrous`` (the vision
  trunk's last stage at stride 8: a 16x16 map, the same weights).

Each is evaluated on every test clip (5 frames each) with
:func:`looklisten.evaluation.localization.evaluate_localization`: pixel AP,
best-threshold IoU, cIoU@0.5, pointing, which-of-two, beside the trivial baselines
with paired bootstrap intervals against the best, by object size and distance from
the centre, and negative audio (silence, absent class, other clip) with the
AVE-Net's correspondence score beside. Writes ``OUT/results.json`` and
``OUT/table.md`` and prints the table. Finished runs are reused (``--retrain``
retrains).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from looklisten.core.config import get_config
from looklisten.core.fileio import atomic_write_json, atomic_write_text
from looklisten.data.demo_data import make_demo_data

sys.path.insert(0, str(Path(__file__).parent))
from compare_objectives import TEST_SEED, step_seconds  # noqa: E402

#: (name, objective, atrous)
VARIANTS = (
    ("avc", "avc", False),
    ("mil", "mil", False),
    ("avc-atrous", "avc", True),
    ("mil-atrous", "mil", True),
)


def build_data(root: Path, videos: int, test_videos: int, workers: int) -> tuple[Path, Path]:
    train, test = root / "train", root / "test-anywhere"
    for folder, n, seed, layout in (
        (train, videos, 0, "train"),
        (test, test_videos, TEST_SEED, "anywhere"),
    ):
        if not (folder / "annotations.jsonl").is_file():
            print(f"building {folder} ({n} clips, layout {layout}) ...", flush=True)
            make_demo_data(
                folder, videos=n, seed=seed, workers=workers, progress=False, layout=layout
            )
    return train, test


def _train(data: Path, run: Path, cfg, budget: float, retrain: bool) -> tuple[dict, float | None]:
    from looklisten.training.trainer import train

    done = run / "metrics.json"
    wall = None
    if retrain or not done.is_file():
        t0 = time.time()
        train(data, run, cfg, progress=False, time_budget=budget)
        wall = time.time() - t0
    return json.loads(done.read_text()), wall


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-out/maps")
    ap.add_argument("--minutes", type=float, default=2.5, help="training time per variant")
    ap.add_argument("--ave-steps", type=int, default=400, help="steps of the AVE-Net (init)")
    ap.add_argument("--videos", type=int, default=240)
    ap.add_argument("--test-videos", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--only", help="comma-separated variant names")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)
    from looklisten.evaluation.localization import evaluate_localization

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    train_dir, test_dir = build_data(out / "data", args.videos, args.test_videos, args.workers)
    ave = get_config(args.preset, arch="ave")
    ave_cfg = get_config(
        args.preset,
        arch="ave",
        **{
            "train.objective": "infonce",
            "train.epochs": 1,
            "train.epoch_pairs": args.ave_steps * ave.train.batch_size,
        },
    )
    ave_run = out / "runs" / "ave-infonce"
    print(f"AVE-Net (InfoNCE, {args.ave_steps} steps) -> {ave_run}", flush=True)
    _train(train_dir, ave_run, ave_cfg, 3600, False)
    results: dict = {
        "train_data": str(train_dir),
        "test_data": str(test_dir),
        "init": str(ave_run),
        "minutes": args.minutes,
        "variants": {},
    }
    res_path = out / "results.json"
    if res_path.is_file():
        results["variants"] = json.loads(res_path.read_text()).get("variants", {})
    only = set(args.only.split(",")) if args.only else None
    todo = [v for v in VARIANTS if not only or v[0] in only]
    # step times of every variant first, back to back (the same machine load for all)
    secs = {
        atrous: step_seconds(get_config(args.preset, arch="avol", **{"model.atrous": atrous}))
        for atrous in sorted({v[2] for v in todo})
    }
    print("seconds per step:", secs, flush=True)
    for name, objective, atrous in todo:
        base = get_config(args.preset, arch="avol", **{"model.atrous": atrous})
        sec = secs[atrous]
        steps = max(10, int(args.minutes * 60 / sec))
        cfg = get_config(
            args.preset,
            arch="avol",
            **{
                "model.atrous": atrous,
                "train.objective": objective,
                "train.init": str(ave_run),
                "train.epochs": 1,
                "train.epoch_pairs": steps * base.train.batch_size,
            },
        )
        run = out / "runs" / name
        print(f"{name}: {steps} steps ({sec:.3f} s/step) -> {run}", flush=True)
        summary, wall = _train(train_dir, run, cfg, 3 * args.minutes * 60, args.retrain)
        print(f"evaluating {name} on {test_dir} ...", flush=True)
        t0 = time.time()
        loc = evaluate_localization(test_dir, run, compare=[ave_run])
        results["variants"][name] = {
            "objective": objective,
            "atrous": atrous,
            "step_seconds": round(sec, 4),
            "steps": summary.get("steps"),
            "train_wall_seconds": round(wall, 1) if wall else None,
            "eval_seconds": round(time.time() - t0, 1),
            "localization": loc,
        }
        atomic_write_json(res_path, results)
    text = table(results)
    atomic_write_text(out / "table.md", text)
    print(text)
    return results


def _f(v, nd=3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _ci(d) -> str:
    return f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] vs {d['baseline']}"


def table(results: dict) -> str:
    rows = [
        "| variant | steps | map | pixel AP | best-thr IoU | cIoU@0.5 (median; fixed 0.5) "
        "| pointing | which of two | AUC silence | AUC absent class | AUC other clip |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base_row = None
    for name, v in results["variants"].items():
        loc = v["localization"]
        a, neg = loc["avol"], loc.get("negative_audio") or {}
        auc = [
            _f((neg.get(k) or {}).get("roc_auc")) for k in ("silence", "absent_class", "other_clip")
        ]
        rows.append(
            f"| {name} | {v['steps']} | {loc['map_size']} | {_f(a['pixel_ap'])} "
            f"| {_f(a['best_threshold_iou']['mean_iou'])} | {_f(a['ciou@0.5'])}; "
            f"{_f(a['fixed_0.5']['ciou@0.5'])} "
            f"| {_f(a['pointing'])} | {_f(a['two_object_accuracy'])} | " + " | ".join(auc) + " |"
        )
        base_row = loc
    out = "\n".join(rows) + "\n"
    if base_row:
        b = base_row["baselines"]
        out += "\nTrivial baselines on the same samples:\n\n"
        out += "| baseline | pixel AP | best-thr IoU | cIoU@0.5 | pointing | which of two |\n"
        out += "|---|---|---|---|---|---|\n"
        for k, m in b.items():
            out += (
                f"| {k} | {_f(m['pixel_ap'])} | {_f(m['best_threshold_iou']['mean_iou'])} "
                f"| {_f(m['ciou@0.5'])}; {_f(m['fixed_0.5']['ciou@0.5'])} | {_f(m['pointing'])} "
                f"| {_f(m['two_object_accuracy'])} |\n"
            )
        c = base_row.get("ceiling")
        if c:
            out += f"\nMedian-rule ceiling of cIoU@0.5 on these boxes: {_f(c['ciou@0.5'])}\n"
        cmp = (base_row.get("negative_audio") or {}).get("compare") or []
        for c in cmp:
            out += (
                f"\n{c['arch']} correspondence score on the same negatives: AUC silence "
                f"{_f(c['silence']['roc_auc'])}, absent class {_f((c.get('absent_class') or {}).get('roc_auc'))}, "
                f"other clip {_f((c.get('other_clip') or {}).get('roc_auc'))}\n"
            )
    out += "\nAVOL-Net minus the best trivial baseline (95 % paired bootstrap over clips):\n\n"
    out += "| variant | pixel AP | best-thr IoU | cIoU@0.5 | pointing |\n|---|---|---|---|---|\n"
    for name, v in results["variants"].items():
        vs = v["localization"]["avol_minus_best_baseline"]
        out += (
            f"| {name} | {_ci(vs['pixel_ap'])} | {_ci(vs['best_threshold_iou'])} "
            f"| {_ci(vs['ciou@0.5'])} | {_ci(vs['pointing'])} |\n"
        )
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--table"]:  # reprint the table of a finished results.json
        print(table(json.loads(Path(sys.argv[2]).read_text())))
    else:
        main()
