#!/usr/bin/env python
"""Does AVOL-Net learn to say "nothing on screen makes this sound"? With and without negatives.

One command trains two AVOL-Nets on the same budget (the same steps of the same
batch size, from the same AVE-Net trunks, as the demo does) and evaluates both with
``eval localization`` on one test set::

    python benchmarks/compare_negatives.py --out bench-out/negatives

* ``without``: the training clips of the demo (every sound is made by an object on
  screen) and no null pairs (``sampler.null_fraction=0``): the papers' AVOL-Net,
  whose only negatives are other videos' sounds.
* ``with``: the same clips rendered with a share ``--negatives`` of them holding a
  segment whose sound comes from nothing on screen (silence, noise only, a class not
  shown; ``make-demo-data --negatives``, annotated, so such windows are negatives),
  and ``--null-fraction`` of the pairs null (silence or noise only;
  looklisten.data.sampler).

Test set: ``--test-videos`` clips of another seed, objects anywhere in the frame,
``--negatives`` of them with a null segment (scored as ``in_video`` negatives).
Reported per variant: the ROC AUC of the map's peak, own sound against silence,
noise, an absent class, another clip and in-video null segments; the detector's
precision / recall / F1 at its saved threshold and average precision; pixel AP,
pointing and which-of-two. Writes ``OUT/results.json`` and ``OUT/table.md`` and
prints the table; finished runs are reused (``--retrain`` retrains).

``--curve 400,800`` also trains the ``with`` variant for those numbers of steps
(same warm start, same data) and adds a row per run: where the correspondence
negatives (an absent class, another clip) stand as training goes on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from looklisten.core.config import get_config
from looklisten.core.fileio import atomic_write_json, atomic_write_text
from looklisten.data.demo_data import make_demo_data

TEST_SEED = 1000
PRESET = "tiny"
EPOCHS = 4


def build(folder: Path, n: int, seed: int, layout: str, negatives: float, workers: int) -> Path:
    if not (folder / "annotations.jsonl").is_file():
        print(f"building {folder} ({n} clips, {layout}, negatives {negatives}) ...", flush=True)
        make_demo_data(
            folder,
            videos=n,
            seed=seed,
            layout=layout,
            negatives=negatives,
            workers=workers,
            progress=False,
        )
    return folder


def run(data: Path, out: Path, arch: str, steps: int, retrain: bool, **over) -> dict:
    from looklisten.training.trainer import train

    if (out / "metrics.json").is_file() and not retrain:
        print(f"reusing {out}", flush=True)
        return json.loads((out / "metrics.json").read_text())
    batch = get_config(PRESET, arch=arch).train.batch_size
    over = {"train.epochs": EPOCHS, "train.epoch_pairs": steps * batch // EPOCHS, **over}
    cfg = get_config(PRESET, arch=arch, **over)
    print(f"training {out.name}: {steps} steps ...", flush=True)
    tick = time.time()
    summary = train(data, out, cfg, progress=False)
    summary["wall_seconds"] = round(time.time() - tick, 1)
    return summary


def scores(res: dict) -> dict:
    neg = res["negative_audio"]
    row = {k: (neg[k] or {}).get("roc_auc") for k in ("silence", "noise", "absent_class")}
    row["other_clip"] = neg["other_clip"]["roc_auc"]
    row["in_video"] = (neg.get("in_video") or {}).get("roc_auc")
    det = neg["detection"]
    row.update({f"detect_{k}": det[k] for k in ("precision", "recall", "f1")})
    row["detect_ap"] = det["average_precision"]
    row["detect_ap_baseline"] = det["average_precision_baseline"]
    row["threshold"] = det["threshold"]
    avol = res["avol"]
    row["pixel_ap"] = avol["pixel_ap"]
    row["pointing"] = avol["pointing"]
    row["which_of_two"] = avol.get("two_object_accuracy")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-out/negatives")
    ap.add_argument("--videos", type=int, default=240)
    ap.add_argument("--test-videos", type=int, default=120)
    ap.add_argument("--ave-steps", type=int, default=400)
    ap.add_argument("--steps", type=int, default=200, help="AVOL-Net steps, both variants")
    ap.add_argument("--negatives", type=float, default=0.25)
    ap.add_argument("--null-fraction", type=float, default=None, help="default: AVOL's")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--curve", default="", help="more step counts for 'with', e.g. 400,800")
    args = ap.parse_args()
    from looklisten.core.config import AVOL_NULL_FRACTION
    from looklisten.evaluation.localization import evaluate_localization

    nf = AVOL_NULL_FRACTION if args.null_fraction is None else args.null_fraction
    root = Path(args.out)
    plain = build(root / "train", args.videos, 0, "train", 0.0, args.workers)
    with_neg = build(
        root / "train-negatives", args.videos, 0, "train", args.negatives, args.workers
    )
    test = build(
        root / "test", args.test_videos, TEST_SEED, "anywhere", args.negatives, args.workers
    )
    ave = root / "runs" / "ave"
    run(plain, ave, "ave", args.ave_steps, args.retrain, **{"train.objective": "infonce"})
    init = {"train.init": str(ave.resolve()), "train.objective": "avc"}
    variants = {
        "without": (plain, {**init, "sampler.null_fraction": 0.0}, args.steps),
        "with": (with_neg, {**init, "sampler.null_fraction": nf}, args.steps),
    }
    for steps in (int(x) for x in args.curve.split(",") if x.strip()):
        variants[f"with-{steps}-steps"] = (with_neg, {**init, "sampler.null_fraction": nf}, steps)
    results = {
        "setup": {**vars(args), "null_fraction": nf, "preset": PRESET},
        "variants": {},
    }
    for name, (data, over, steps) in variants.items():
        out = root / "runs" / f"avol-{name}"
        summary = run(data, out, "avol", steps, args.retrain, **over)
        print(f"evaluating {name} on {test} ...", flush=True)
        res = evaluate_localization(test, out, seed=0)
        results["variants"][name] = {
            "summary": summary,
            "scores": scores(res),
            "negative_audio": res["negative_audio"],
        }
    cols = list(results["variants"]["with"]["scores"])
    lines = ["| variant | steps | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for name, v in results["variants"].items():
        cells = ["" if v["scores"][c] is None else f"{v['scores'][c]:.3f}" for c in cols]
        lines.append(f"| {name} | {v['summary']['steps']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    atomic_write_json(root / "results.json", results)
    atomic_write_text(root / "table.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
