#!/usr/bin/env python
"""Do the networks learn categories, and which objective learns them faster?

One command trains five networks on the same CPU budget and evaluates each on
exemplars it never saw::

    python benchmarks/compare_objectives.py --out bench-out/objectives --minutes 4

For each data kind (``--kinds digits,stamps``):

* ``digits``: trained on ``make-demo-data --kind digits --split train`` (MNIST
  training-set writers, the training voices), evaluated on ``--split test``
  (MNIST test-set writers, voices never used for training, two of them human).
  This is the held-out-exemplar test: only the *category* links them.
* ``stamps``: trained on the demo clips, evaluated on clips of another seed (the
  demo's test set): the same photo and recording per class in new layouts, so
  it measures recognition of memorised exemplars.

Models (tiny preset): L3-Net (AVC loss), AVE-Net (AVC loss), AVE-Net (InfoNCE),
AVOL-Net (AVC loss), AVOL-Net (contrastive MIL), all from random weights. The
budget is the same *time*: each model's step time is measured first (forward,
backward and Adam on a batch of its own inputs, in this process), and it trains
``minutes x 60 / step time`` steps with a cosine schedule that ends there
(``train.epochs=1``). Each model is then evaluated on the held-out clips with
the library's evaluations:

* AVC accuracy (``evaluate_avc``: 2000 fixed shortcut-free pairs, the same
  pairs for every model; 95 % bootstrap interval over videos; ROC AUC);
* cross-modal retrieval nDCG@30 both ways (``evaluate_retrieval``) of the
  AVE-Nets, beside random embeddings and L3-Net + CCA (the L3-Net trained here);
* localisation of the AVOL-Nets (``evaluate_localization``) beside the trivial
  baselines (centre prior, whole image, random map);
* the objectives' margins on the *same* pairs and queries with paired bootstrap
  intervals: AVE InfoNCE - AVE AVC (AVC accuracy, nDCG@30 both ways) and AVOL
  MIL - AVOL AVC (AVC accuracy).

Writes ``OUT/results.json`` (everything) and ``OUT/table.md`` (docs/results/digits.md's
table) and prints the table. Runs that finished are reused (delete
``OUT/runs/KIND/NAME`` to retrain); ``--retrain`` retrains every one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from looklisten.core.config import get_config
from looklisten.core.fileio import atomic_write_json, atomic_write_text
from looklisten.data.demo_data import make_demo_data

MODELS = (  # (name, arch, objective)
    ("l3", "l3", "avc"),
    ("ave-avc", "ave", "avc"),
    ("ave-infonce", "ave", "infonce"),
    ("avol-avc", "avol", "avc"),
    ("avol-mil", "avol", "mil"),
)
PAIRS = 2000  # AVC evaluation pairs
TEST_SEED = 1000  # the test clips' data seed (the demo's test set: seed + 1000)


def build_data(root: Path, kind: str, videos: int, test_videos: int, workers: int):
    """(train folder, test folder) of ``kind``, built if absent."""
    train, test = root / f"{kind}-train", root / f"{kind}-test"
    held_out = {"kind": kind, "split": "test"} if kind == "digits" else {"kind": kind}
    for folder, n, seed, extra in (
        (train, videos, 0, {"kind": kind}),
        (test, test_videos, TEST_SEED, held_out),
    ):
        if not (folder / "annotations.jsonl").is_file():
            print(f"building {folder} ({n} clips) ...", flush=True)
            make_demo_data(folder, videos=n, seed=seed, workers=workers, progress=False, **extra)
    return train, test


def step_seconds(cfg, repeats: int = 6) -> float:
    """Seconds per training step of ``cfg``'s network (the median of ``repeats``).

    Forward, backward and Adam on a batch of the preset's inputs
    (``train_throughput.make_step``). The objectives' losses cost next to nothing
    beside the trunks, so both objectives of one architecture get the same steps.
    """
    from train_throughput import make_step, timed

    opts = argparse.Namespace(fused_adam=False, compile=False, no_amp=True)
    step, _, _ = make_step(cfg, torch.device("cpu"), cfg.train.batch_size, opts)
    for _ in range(2):  # warm-up
        step()
    return float(np.median([timed(step, torch.device("cpu")) for _ in range(repeats)]))


def per_query_ndcg(test: Path, run: Path, k: int = 30) -> dict:
    """Per-query nDCG@k of an AVE-Net on every video of ``test`` (both directions)."""
    from looklisten.data.labels import Labels
    from looklisten.evaluation.metrics import cross_modal_eval
    from looklisten.evaluation.retrieval import choose_videos, collect_items
    from looklisten.models.checkpoint import get_model

    model = get_model(run)
    items = collect_items(choose_videos(test, run)["eval"], model, Labels(test, None))
    labs, groups = items["labels"].astype(str), items["groups"]
    s = cross_modal_eval(items["image"], items["audio"], labs, groups, k=k, return_per_query=True)
    return {d: np.asarray(s[d]["per_query"]["ndcg"]) for d in ("im2aud", "aud2im")} | {
        "groups": groups
    }


def margin(a, b, groups) -> dict:
    from looklisten.evaluation.metrics import paired_bootstrap

    a, b = np.asarray(a, float), np.asarray(b, float)
    if not (np.isfinite(a) & np.isfinite(b)).any():
        return {"difference": None, "ci95": [None, None], "note": "no query with a value"}
    boot = paired_bootstrap(a, b, np.asarray(groups))
    return {
        "difference": round(boot["difference"], 4),
        "ci95": [round(v, 4) for v in boot["ci"]],
        "p_not_better": round(boot["p_not_better"], 4),
        "resampled": f"{boot['groups']} videos, {boot['resamples']} times",
    }


def run_kind(kind: str, args) -> dict:
    from looklisten.evaluation.avc import evaluate_avc
    from looklisten.evaluation.localization import evaluate_localization
    from looklisten.evaluation.retrieval import evaluate_retrieval
    from looklisten.training.trainer import train

    out = Path(args.out)
    train_dir, test_dir = build_data(
        out / "data", kind, args.videos, args.test_videos, args.workers
    )
    res: dict = {"train_data": str(train_dir), "test_data": str(test_dir), "models": {}}
    runs: dict[str, Path] = {}
    per_pair: dict[str, dict] = {}
    for name, arch, objective in MODELS:
        run = out / "runs" / kind / name
        runs[name] = run
        base = get_config(args.preset, arch=arch)
        sec = args.step_seconds[arch]
        steps = max(10, int(args.minutes * 60 / sec))
        cfg = get_config(
            args.preset,
            arch=arch,
            **{
                "train.objective": objective,
                "train.epochs": 1,
                "train.epoch_pairs": steps * base.train.batch_size,
                "train.seed": args.seed,
            },
        )
        done = run / "metrics.json"
        if args.retrain or not done.is_file():
            print(f"[{kind}] training {name}: {steps} steps ({sec:.3f} s/step) ...", flush=True)
            t0 = time.time()
            # the budget is the step count; the time limit only guards against a stall
            train(train_dir, run, cfg, progress=False, time_budget=3 * args.minutes * 60)
            wall = time.time() - t0
        else:
            print(f"[{kind}] reusing {run}", flush=True)
            wall = None
        summary = json.loads(done.read_text())
        row = {
            "arch": arch,
            "objective": objective,
            "step_seconds": round(sec, 4),
            "steps": summary.get("steps"),
            "train_wall_seconds": round(wall, 1) if wall else None,
            "val_avc_accuracy": summary.get("val_avc_accuracy"),
        }
        print(f"[{kind}] evaluating {name} on {test_dir} ...", flush=True)
        avc = evaluate_avc(test_dir, run, pairs=PAIRS, seed=0, per_pair=True)
        per_pair[name] = avc.pop("per_pair")
        row["avc"] = {k: avc[k] for k in ("accuracy", "ci95", "roc_auc", "minus_best_baseline")}
        row["avc"]["baselines"] = avc["baselines"]
        if arch == "ave":
            r = evaluate_retrieval(test_dir, run, baseline_checkpoint=runs["l3"])
            row["retrieval"] = r["cross_modal_ndcg"]
            row["retrieval_items"] = r["items"]["items"]
        if arch == "avol":
            loc = evaluate_localization(test_dir, run)
            row["localization"] = {
                "samples": loc["samples"],
                "avol": loc["avol"],
                "baselines": loc["baselines"],
                "minus_best_baseline": loc["avol_minus_best_baseline"],
            }
        res["models"][name] = row
    # the objectives on the same pairs / queries
    cmp = {}
    for new, old in (("ave-infonce", "ave-avc"), ("avol-mil", "avol-avc")):
        a, b = per_pair[new], per_pair[old]
        assert np.array_equal(a["label"], b["label"]) and np.array_equal(a["group"], b["group"])
        cmp[f"{new} - {old}"] = {"avc_accuracy": margin(a["correct"], b["correct"], a["group"])}
    qa, qb = (
        per_query_ndcg(test_dir, runs["ave-infonce"]),
        per_query_ndcg(test_dir, runs["ave-avc"]),
    )
    for d in ("im2aud", "aud2im"):
        keep = np.isfinite(qa[d]) & np.isfinite(qb[d])
        cmp["ave-infonce - ave-avc"][f"ndcg@30 {d}"] = margin(
            qa[d][keep], qb[d][keep], qa["groups"][keep]
        )
    res["objectives"] = cmp
    return res


def _f(v, nd=3) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _ci(d) -> str:
    if d["difference"] is None:
        return "–"
    return f"{_f(d['difference'], 3)} [{_f(d['ci95'][0], 3)}, {_f(d['ci95'][1], 3)}]"


def table(results: dict) -> str:
    lines = []
    for kind, res in results["kinds"].items():
        lines += [
            f"**{kind}** (trained on {res['train_data']}, evaluated on {res['test_data']})",
            "",
            "| model | steps | AVC acc. [95 % CI] | ROC AUC | nDCG@30 im→aud (random, L3+CCA) "
            "| nDCG@30 aud→im (random, L3+CCA) | pointing (centre prior) | cIoU@0.5 (centre prior) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in res["models"].items():
            a = row["avc"]
            acc = f"{_f(a['accuracy'])} [{_f(a['ci95'][0])}, {_f(a['ci95'][1])}]"
            cells = [name, str(row["steps"]), acc, _f(a["roc_auc"])]
            for d in ("im2aud", "aud2im"):
                r = row.get("retrieval", {}).get(d)
                cells.append(
                    f"{_f(r['model'])} ({_f(r['random'])}, {_f(r.get('l3_cca'))})" if r else "–"
                )
            loc = row.get("localization")
            if loc:
                cp = loc["baselines"]["centre_prior"]
                cells.append(f"{_f(loc['avol']['pointing'])} ({_f(cp['pointing'])})")
                cells.append(f"{_f(loc['avol']['ciou@0.5'])} ({_f(cp['ciou@0.5'])})")
            else:
                cells += ["–", "–"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for pair, m in res["objectives"].items():
            parts = [f"{k} {_ci(v)}" for k, v in m.items()]
            lines.append(f"* {pair}: " + "; ".join(parts))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-out/objectives")
    ap.add_argument("--kinds", default="digits,stamps")
    ap.add_argument("--minutes", type=float, default=4.0, help="training time per model")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--videos", type=int, default=240, help="training clips per kind")
    ap.add_argument("--test-videos", type=int, default=120, help="held-out clips per kind")
    ap.add_argument("--workers", type=int, default=2, help="processes building the clips")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)
    # Step times first, on a machine doing nothing else: they fix every run's steps,
    # so the results do not depend on what else runs later.
    args.step_seconds = {
        arch: step_seconds(get_config(args.preset, arch=arch)) for arch in ("l3", "ave", "avol")
    }
    print("seconds per step:", args.step_seconds, flush=True)
    results = {
        "command": "python benchmarks/compare_objectives.py " + " ".join(argv or sys.argv[1:]),
        "minutes_per_model": args.minutes,
        "preset": args.preset,
        "threads": torch.get_num_threads(),
        "step_seconds": args.step_seconds,
        "kinds": {},
    }
    out = Path(args.out)
    for kind in args.kinds.split(","):
        results["kinds"][kind] = run_kind(kind, args)
        atomic_write_json(out / "results.json", results)
    text = table(results)
    atomic_write_text(out / "table.md", text + "\n")
    print(text)
    return results


if __name__ == "__main__":
    main()
