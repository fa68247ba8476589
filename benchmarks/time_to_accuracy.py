#!/usr/bin/env python
"""Time to accuracy: held-out quality against training minutes, for training recipes.

One command trains the demo's three networks with each recipe on the same clips and
evaluates them on the same test set every ``--evals``-th of their run::

    python benchmarks/time_to_accuracy.py --out bench-out/tta --recipes today,demo

* Training clips: the demo's (``--videos`` 240 clips, a quarter with a sound from
  nothing on screen), laid out ``--layout`` (``mixed``: the demo's; ``train``: the
  large central objects the demo trained on before). Test clips: ``--test-videos``
  120 of another seed, objects anywhere in the frame, small to large (the demo's
  test set).
* Each recipe trains, in order, an AVE-Net, an L3-Net and an AVOL-Net (warm-started
  from that recipe's AVE-Net where the recipe says so), each as one run whose
  cosine schedule ends where the recipe ends; training pauses at ``--evals``
  equally spaced steps (epoch ends: the run validates and checkpoints there anyway)
  and the checkpoint is evaluated on the test set:

  - every network: AVC accuracy and ROC AUC on ``--pairs`` fixed test pairs
    (``eval avc``: the same pairs for every checkpoint of one input size);
  - AVE-Net: cross-modal nDCG@30 both ways (``eval retrieval``);
  - AVOL-Net: which of two sounds, pointing, pixel AP and the share of own-sound
    maps whose peak reaches 0.5 (``eval localization``).

  The clock counts training only (``Trainer.fit``: steps and the run's own
  validations), not decoding the clips or the test evaluations. Pausing does not
  change training: a paused run continues with exactly the batches of an
  uninterrupted one.
* Time to a quality: for each network, the minutes the recipe took to first reach
  the *final* quality of the first recipe named (the baseline), read off the curve
  (the first evaluation at or above it). A recipe that never reaches it gets none.

Writes ``OUT/results.json`` (every evaluation), ``OUT/table.md`` (printed too) and
``OUT/time_to_accuracy.png`` (the curves). Runs live in ``OUT/runs/``, named by
what they train: a network trained alike in two recipes (same plan, same warm
start) is trained once, and finished runs are reused unless ``--retrain``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from looklisten.cli.demo import (
    DEMO_FRAMES,
    DEMO_NEGATIVES,
    TEST_SEED_OFFSET,
    TEST_VIDEOS,
    demo_plan,
)
from looklisten.core.config import get_config
from looklisten.core.fileio import atomic_write_json, atomic_write_text
from looklisten.data.demo_data import make_demo_data

PRESET = "tiny"
ORDER = ("ave", "l3", "avol")  # AVOL-Net may start from the AVE-Net's trunks

#: The demo's recipe before issue 24 (400 / 400 / 800 steps of 64 pairs in 4 epochs:
#: L3-Net and AVOL-Net with the papers' AVC loss, AVE-Net with InfoNCE; AVOL-Net
#: warm-started from the AVE-Net). "demo" is the demo's current plan (cli/demo.py).
PX128 = DEMO_FRAMES  # 128 px crops of 144 px frames (tiny's AVOL-Net size)
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "today": {
        "ave": {"steps": 400, "epochs": 4, "set": {"train.objective": "infonce"}},
        "l3": {"steps": 400, "epochs": 4, "set": {"train.objective": "avc"}},
        "avol": {"steps": 800, "epochs": 4, "set": {"train.objective": "avc"}, "init": "ave"},
    },
    # today's steps, the papers' loss on every pair of the batch (train.objective=avc-all)
    # for L3-Net and AVOL-Net (AVE-Net: today's, the same run)
    "avc-all": {
        "ave": {"steps": 400, "epochs": 4, "set": {"train.objective": "infonce"}},
        "l3": {"steps": 400, "epochs": 4, "set": {"train.objective": "avc-all"}},
        "avol": {"steps": 800, "epochs": 4, "set": {"train.objective": "avc-all"}, "init": "ave"},
    },
    # the same with AVE-Net on avc-all too (InfoNCE's in-batch negatives include clips of
    # the sounding object's own class, which it must push apart)
    "avc-all-ave": {
        "ave": {"steps": 400, "epochs": 4, "set": {"train.objective": "avc-all"}},
        "l3": {"steps": 400, "epochs": 4, "set": {"train.objective": "avc-all"}},
        "avol": {"steps": 800, "epochs": 4, "set": {"train.objective": "avc-all"}, "init": "ave"},
    },
    # every network at AVOL-Net's 128 px (tiny: 64 px for L3-Net and AVE-Net), AVOL-Net
    # warm-started from an AVE-Net of its own input size, for half the steps
    "px128": {
        "ave": {"steps": 400, "epochs": 4, "set": {**PX128, "train.objective": "infonce"}},
        "l3": {"steps": 400, "epochs": 4, "set": {**PX128, "train.objective": "avc-all"}},
        "avol": {"steps": 400, "epochs": 4, "set": {"train.objective": "avc-all"}, "init": "ave"},
    },
    "px128-ave-all": {
        "ave": {"steps": 400, "epochs": 4, "set": {**PX128, "train.objective": "avc-all"}},
        "l3": {"steps": 400, "epochs": 4, "set": {**PX128, "train.objective": "avc-all"}},
        "avol": {"steps": 400, "epochs": 4, "set": {"train.objective": "avc-all"}, "init": "ave"},
    },
}


def recipe(name: str) -> dict[str, dict[str, Any]]:
    if name == "demo":
        return demo_plan()
    if name in RECIPES:
        return RECIPES[name]
    raise SystemExit(f"unknown recipe {name!r}; known: demo, {', '.join(RECIPES)}")


def build(folder: Path, n: int, seed: int, layout: str) -> Path:
    if not (folder / "annotations.jsonl").is_file():
        print(f"building {folder} ({n} clips, layout {layout}) ...", flush=True)
        make_demo_data(
            folder, videos=n, seed=seed, layout=layout, negatives=DEMO_NEGATIVES, progress=False
        )
    return folder


def evaluate(arch: str, run: Path, test: Path, pairs: int) -> dict[str, float]:
    from looklisten.evaluation.avc import evaluate_avc

    avc = evaluate_avc(test, run, pairs=pairs, seed=0, progress=False)
    row = {"avc": avc["accuracy"], "roc_auc": avc["roc_auc"]}
    if arch == "ave":
        from looklisten.evaluation.retrieval import evaluate_retrieval

        nd = evaluate_retrieval(test, run, progress=False)["cross_modal_ndcg"]
        row["ndcg_im2aud"], row["ndcg_aud2im"] = nd["im2aud"]["model"], nd["aud2im"]["model"]
    if arch == "avol":
        from looklisten.evaluation.localization import evaluate_localization

        loc = evaluate_localization(test, run, progress=False)
        row["which_of_two"] = loc["avol"]["two_object_accuracy"]
        row["pointing"] = loc["avol"]["pointing"]
        row["pixel_ap"] = loc["avol"]["pixel_ap"]
        row["peak_0.5"] = loc["negative_audio"]["own"]["detect@0.5"]
    return {k: round(float(v), 4) for k, v in row.items()}


def train_curve(
    data: Path, test: Path, out: Path, arch: str, plan: dict, evals: int, pairs: int, init: str
) -> list[dict]:
    from looklisten.training.trainer import Trainer

    batch = get_config(PRESET, arch=arch, **plan["set"]).train.batch_size
    epochs = plan["epochs"]
    over = {
        "train.epochs": epochs,
        "train.epoch_pairs": plan["steps"] * batch // epochs,
        "train.seed": 0,
        **plan["set"],
    }
    if init:
        over["train.init"] = init
    cfg = get_config(PRESET, arch=arch, **over)
    (out / "metrics.jsonl").unlink(missing_ok=True)  # a run left unfinished starts anew
    trainer = Trainer.from_folder(data, out, cfg, device="cpu", progress=False)
    total = epochs * trainer.steps_per_epoch
    stops = sorted({max(1, round(total * (k + 1) / evals)) for k in range(evals)})
    rows, seconds = [], 0.0
    for stop in stops:
        tick = time.perf_counter()
        trainer.fit(max_steps=stop)
        seconds += time.perf_counter() - tick
        row = {"step": trainer.step, "train_minutes": round(seconds / 60, 3)}
        row.update(evaluate(arch, out, test, pairs))
        print(f"  {arch} step {trainer.step:4d}  {seconds / 60:5.2f} min  {row}", flush=True)
        rows.append(row)
    return rows


#: The quality each network is timed to, and whether higher is better.
QUALITY = {"l3": "avc", "ave": "ndcg_aud2im", "avol": "which_of_two"}


def minutes_to(curve: list[dict], key: str, target: float) -> float | None:
    return next((r["train_minutes"] for r in curve if r[key] >= target - 1e-9), None)


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    names = list(results)
    base = names[0]
    lines = [
        f"| network | quality | recipe | final | minutes to {base}'s final | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for arch in ORDER:
        key = QUALITY[arch]
        if arch not in results[base]:
            continue
        target = results[base][arch][-1][key]
        base_min = minutes_to(results[base][arch], key, target)
        for name in names:
            curve = results[name].get(arch)
            if not curve:
                continue
            m = minutes_to(curve, key, target)
            ratio = f"{m / base_min:.2f}" if m is not None and base_min else "not reached"
            lines.append(
                f"| {arch} | {key} | {name} | {curve[-1][key]:.3f} | "
                f"{'' if m is None else f'{m:.2f}'} | {ratio} |"
            )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("l3", "avc", "L3-Net: test AVC accuracy"),
        ("ave", "avc", "AVE-Net: test AVC accuracy"),
        ("ave", "ndcg_aud2im", "AVE-Net: nDCG@30 audio->image"),
        ("ave", "ndcg_im2aud", "AVE-Net: nDCG@30 image->audio"),
        ("avol", "which_of_two", "AVOL-Net: which of two"),
        ("avol", "pointing", "AVOL-Net: pointing"),
        ("avol", "pixel_ap", "AVOL-Net: pixel AP"),
        ("avol", "peak_0.5", "AVOL-Net: own-sound maps peaking >= 0.5"),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7))
    for ax, (arch, key, title) in zip(axes.flat, panels):
        for k, (name, curves) in enumerate(results.items()):
            c = curves.get(arch)
            if c:  # a network two recipes share is drawn twice: styles tell them apart
                x, y = [r["train_minutes"] for r in c], [r[key] for r in c]
                ax.plot(x, y, ["o-", "s--", "^:", "D-."][k % 4], ms=7 - k, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-out/tta")
    ap.add_argument("--recipes", default="today,demo", help="first: the baseline")
    ap.add_argument("--models", default=",".join(ORDER))
    ap.add_argument("--layout", default="mixed", help="training clips' layout")
    ap.add_argument("--videos", type=int, default=240)
    ap.add_argument("--test-videos", type=int, default=TEST_VIDEOS)
    ap.add_argument("--evals", type=int, default=4, help="evaluations per run")
    ap.add_argument("--pairs", type=int, default=1000, help="test AVC pairs")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    data = build(out / f"data-{args.layout}", args.videos, 0, args.layout)
    test = build(out / "data-test", args.test_videos, TEST_SEED_OFFSET, "anywhere")
    models = [m for m in ORDER if m in args.models.split(",")]
    results: dict[str, dict[str, list[dict]]] = {}
    for name in args.recipes.split(","):
        plan = recipe(name)
        print(f"recipe {name}:", flush=True)
        curves: dict[str, list[dict]] = {}
        folders: dict[str, Path] = {}
        for arch in models:
            init = plan[arch].get("init", "")
            init_run = str(folders[init].resolve()) if init in folders else ""
            # a network trained alike (plan and warm start) in two recipes is trained once
            key = json.dumps([arch, plan[arch], init_run, args.evals, args.pairs], sort_keys=True)
            folders[arch] = out / "runs" / f"{arch}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
            cached = folders[arch] / "curve.json"
            if cached.is_file() and not args.retrain:
                curves[arch] = json.loads(cached.read_text())
                print(f"  {arch}: reusing {folders[arch]}", flush=True)
                continue
            curves[arch] = train_curve(
                data, test, folders[arch], arch, plan[arch], args.evals, args.pairs, init_run
            )
            atomic_write_json(cached, curves[arch])
        results[name] = curves
    text = table(results)
    atomic_write_text(out / "table.md", text + "\n")
    atomic_write_json(out / "results.json", {"args": vars(args), "curves": results})
    plot(results, out / "time_to_accuracy.png")
    print(text)
    print(f"wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'time_to_accuracy.png'}")


if __name__ == "__main__":
    main()
