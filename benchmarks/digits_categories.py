#!/usr/bin/env python
"""Categories, not clips: digits written and spoken by people the networks never met.

One command measures whether audio-visual correspondence alone teaches the networks
what a digit looks and sounds like (docs/results/digits.md)::

    python benchmarks/digits_categories.py --out bench-out/digits

Test sets (never trained on): ``test``, ``--test-videos`` clips of the digits' test
split (MNIST test-set writers, voices never used for training, the two human
speakers among them; digits anywhere in the frame, small to large: the demo's
digits test set), and ``test-human``, ``--human-videos`` clips spoken by the two
human speakers only (Tux Paint's recordings), reported on their own.

1. **Ablation** (AVE-Net, InfoNCE, the tiny preset, ``--ablation-steps`` steps from
   random initialisation, the same seed), one arm per training recipe:

   - ``before``: the training set as it was (240 clips of 6 s, large central digits,
     the shipped handwriting and recordings as they are);
   - ``short``: many short clips (2000 of 2 s, digits large or anywhere);
   - ``short+vary``: the same clips with every digit drawn and every recording
     spoken anew (``make-demo-data``'s default for digits training sets now);
   - ``short+vary+examples``: and each training example with another voice, noise
     floor and colour order (``looklisten.cli.demo.DIGITS_SET``): the demo's recipe.

   Each run is evaluated ``--evals`` times (epoch ends): AVC accuracy on fixed test
   pairs and on fixed pairs of the clips it trains on (the memorisation curve), and
   cross-modal nDCG@30 on the test set.
2. **Exemplars**: the recipe on the first ``--exemplars`` clips of its training set
   (each its own handwriting and voice variant): held-out AVC against the number of
   distinct training exemplars.
3. **Targets** on the recipe, from scratch: the AVE-Net (``--steps``; the recipe's
   arm when equal to ``--ablation-steps``), an L3-Net with the papers' AVC loss
   (``--l3-steps``) and an AVOL-Net (AVC on every pair of the batch, 128 px frames)
   warm-started from the AVE-Net (``--avol-steps``). Each on the test set and on the
   human speakers: AVC accuracy on ``--final-pairs`` pairs with its 95 % interval and
   ROC AUC; nDCG@30 both ways beside random (AVE-Net); which of two, pixel AP and its
   margin over the best trivial map (AVOL-Net); linear probes on the L3-Net's audio
   and image branches on the test set (writers and voices it never met) against the
   raw input (log-mel spectrogram, pixels), hand-made features, the same network
   with random weights and the majority label, with the margin over the best of them
   and its interval over files (``eval probe``).

Training uses the library's trainer (what ``looklisten train`` runs), pausing at the
evaluation points; a paused run continues with exactly the batches of an
uninterrupted one. Writes ``OUT/results.json``, ``OUT/table.md`` (printed) and
``OUT/learning_curves.png``. Finished runs are reused unless ``--retrain``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from looklisten.cli.demo import DIGITS_SET
from looklisten.core.config import get_config
from looklisten.core.fileio import atomic_write_json, atomic_write_text
from looklisten.data.demo_data import (
    DEFAULT_DURATION,
    DEFAULT_VIDEOS,
    DIGITS_TRAIN_DURATION,
    DIGITS_TRAIN_VIDEOS,
    digit_voices,
    make_demo_data,
)

PRESET = "tiny"
SEED = 0
TEST_SEED = 1000
HUMAN_VOICES = [v for v in digit_voices("test") if v.startswith("tuxpaint-")]
#: The training sets: clips, seconds, layout, whether each digit is drawn and spoken anew.
TRAIN_SETS: dict[str, dict[str, Any]] = {
    "before": {
        "videos": DEFAULT_VIDEOS,
        "duration": DEFAULT_DURATION,
        "layout": "train",
        "vary": False,
    },
    "short": {
        "videos": DIGITS_TRAIN_VIDEOS,
        "duration": DIGITS_TRAIN_DURATION,
        "layout": "mixed",
        "vary": False,
    },
    "vary": {
        "videos": DIGITS_TRAIN_VIDEOS,
        "duration": DIGITS_TRAIN_DURATION,
        "layout": "mixed",
        "vary": True,
    },
}
#: The ablation's arms: a training set and the training-time variation (DIGITS_SET) or none.
ARMS: dict[str, tuple[str, bool]] = {
    "before": ("before", False),
    "short": ("short", False),
    "short+vary": ("vary", False),
    "short+vary+examples": ("vary", True),
}
RECIPE = "short+vary+examples"
AVE = {"train.objective": "infonce"}
L3 = {"train.objective": "avc"}
AVOL = {"train.objective": "avc-all"}


def build(folder: Path, **kw) -> Path:
    if not (folder / "annotations.jsonl").is_file():
        t = time.perf_counter()
        make_demo_data(folder, kind="digits", progress=False, **kw)
        print(f"built {folder} in {time.perf_counter() - t:.0f} s", flush=True)
    return folder


def subset(full: Path, folder: Path, keep) -> Path:
    """Clips of ``full`` (links) with their annotations: the first ``keep`` (an int) or
    those named in ``keep`` (a set of file names)."""
    if not (folder / "annotations.jsonl").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        lines = (full / "annotations.jsonl").read_text().splitlines()
        if isinstance(keep, int):
            lines = lines[:keep]
        else:
            lines = [x for x in lines if json.loads(x)["file"] in keep]
        for line in lines:
            name = json.loads(line)["file"]
            (folder / name).unlink(missing_ok=True)
            (folder / name).symlink_to((full / name).resolve())
        atomic_write_text(folder / "annotations.jsonl", "\n".join(lines) + "\n")
    return folder


def avc(data: Path, run: Path, pairs: int) -> dict[str, Any]:
    from looklisten.evaluation.avc import evaluate_avc

    r = evaluate_avc(data, run, pairs=pairs, seed=0, progress=False)
    return {
        "accuracy": round(r["accuracy"], 4),
        "ci95": r["ci95"],
        "roc_auc": round(r["roc_auc"], 4),
    }


def retrieval(data: Path, run: Path) -> dict[str, Any]:
    from looklisten.evaluation.retrieval import evaluate_retrieval

    nd = evaluate_retrieval(data, run, progress=False)["cross_modal_ndcg"]
    return {
        d: {
            k: None if v is None else round(float(v), 4)
            for k, v in nd[d].items()
            if v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for d in ("im2aud", "aud2im")
    }


def train_curve(
    data: Path, test: Path, out: Path, arch: str, over: dict, steps: int, evals: int, pairs: int
) -> list[dict]:
    """Train ``arch`` for ``steps`` (one cosine schedule), evaluating at ``evals`` epoch ends."""
    from looklisten.training.trainer import Trainer

    batch = get_config(PRESET, arch=arch, **over).train.batch_size
    epochs = max(1, evals)
    cfg = get_config(
        PRESET,
        arch=arch,
        **{
            "train.epochs": epochs,
            "train.epoch_pairs": steps * batch // epochs,
            "train.seed": SEED,
            **over,
        },
    )
    (out / "metrics.jsonl").unlink(missing_ok=True)  # a run left unfinished starts anew
    trainer = Trainer.from_folder(data, out, cfg, device="cpu", progress=False)
    last = epochs * trainer.steps_per_epoch
    stops = sorted({max(1, round(last * (k + 1) / epochs)) for k in range(epochs)})
    # the clips it trains on (not its held-out 15 %), for the memorisation curve
    split = json.loads((out / "split.json").read_text())
    seen = subset(data, data.with_name(data.name + ".train-clips"), set(split["train"]))
    rows, seconds = [], 0.0
    for stop in stops:
        tick = time.perf_counter()
        trainer.fit(max_steps=stop)
        seconds += time.perf_counter() - tick
        row = {
            "step": trainer.step,
            "train_minutes": round(seconds / 60, 3),
            "test_avc": avc(test, out, pairs)["accuracy"],
            "train_clips_avc": avc(seen, out, pairs)["accuracy"],
        }
        if arch == "ave":
            nd = retrieval(test, out)
            row["ndcg_im2aud"], row["ndcg_aud2im"] = nd["im2aud"]["model"], nd["aud2im"]["model"]
        print(f"  {out.name} {row}", flush=True)
        rows.append(row)
    return rows


def run_once(path: Path, fn, retrain: bool):
    """``fn()``'s result, cached in ``path`` (JSON)."""
    if path.is_file() and not retrain:
        return json.loads(path.read_text())
    res = fn()
    atomic_write_json(path, res)
    return res


def targets_of(run: Path, arch: str, test: Path, human: Path, pairs: int) -> dict[str, Any]:
    """Every target measure of one finished run, on the test set and the human speakers."""
    res: dict[str, Any] = {
        "test": {"avc": avc(test, run, pairs)},
        "human": {"avc": avc(human, run, pairs)},
    }
    if arch == "ave":
        res["test"]["ndcg@30"] = retrieval(test, run)
        res["human"]["ndcg@30"] = retrieval(human, run)
    if arch == "avol":
        from looklisten.evaluation.localization import evaluate_localization

        loc = evaluate_localization(test, run, progress=False)
        res["test"]["localization"] = {
            "which_of_two": loc["avol"]["two_object_accuracy"],
            "pixel_ap": loc["avol"]["pixel_ap"],
            "pointing": loc["avol"]["pointing"],
            "baselines": loc["baselines"],
            "pixel_ap_minus_best_baseline": loc["avol_minus_best_baseline"]["pixel_ap"],
        }
    if arch == "l3":
        from looklisten.evaluation.probe import evaluate_probe

        for modality in ("audio", "image"):
            p = evaluate_probe(test, run, modality=modality)
            res["test"][f"probe_{modality}"] = {
                "accuracy": p["accuracy"]["mean"],
                **{k: v["mean"] for k, v in p["baselines"].items()},
                "margin": {k: p["margin"][k] for k in ("over", "difference", "ci")},
                "items": p["items"],
            }
    return res


def _curve(ax, rows: list[dict], colour: str, name: str) -> None:
    steps = [r["step"] for r in rows]
    ax.plot(
        steps,
        [r["train_clips_avc"] for r in rows],
        "--o",
        color=colour,
        ms=4,
        label=f"{name}: its training clips",
    )
    ax.plot(
        steps,
        [r["test_avc"] for r in rows],
        "-o",
        color=colour,
        ms=5,
        label=f"{name}: held-out writers and voices",
    )


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(19, 5.2))
    colours = ["tab:red", "tab:orange", "tab:blue", "tab:green"]
    for (name, rows), colour in zip(res["ablation"].items(), colours):
        _curve(a, rows, colour, name)
    a.set_title("ablation (AVE-Net, InfoNCE): training data and examples")
    _curve(b, res["ave_curve"], "tab:green", "AVE-Net (InfoNCE)")
    if res.get("l3_curve"):
        _curve(b, res["l3_curve"], "tab:purple", "L3-Net (AVC loss)")
    nets = "AVE-Net and L3-Net" if res.get("l3_curve") else "AVE-Net"
    b.set_title(f"the recipe ({nets}): memorising vs recognising")
    for ax in (a, b):
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_xlabel("training steps (batch 64)")
        ax.set_ylabel("AVC accuracy")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ex = {int(k): v for k, v in res["exemplars"].items()}
    xs = sorted(ex)
    c.plot(xs, [ex[x] for x in xs], "-o", color="tab:green")
    c.set_xscale("log")
    c.axhline(0.5, color="grey", lw=0.8)
    c.set_xlabel("distinct training clips (each its own handwriting and voice variant)")
    c.set_ylabel("held-out AVC accuracy")
    c.set_title(f"held-out AVC against training exemplars ({res['args']['ablation_steps']} steps)")
    c.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def f3(v, sign: str = "") -> str:
    return "n/a" if v is None else f"{v:{sign}.3f}"


def table(res: dict[str, Any]) -> str:
    lines = [
        "| ablation (AVE-Net, InfoNCE) | steps | held-out AVC | its training clips AVC | nDCG@30 im→aud / aud→im |",
        "|---|---|---|---|---|",
    ]
    for name, curve in res["ablation"].items():
        last = curve[-1]
        lines.append(
            f"| {name} | {last['step']} | {last['test_avc']:.3f} | {last['train_clips_avc']:.3f} | "
            f"{f3(last['ndcg_im2aud'])} / {f3(last['ndcg_aud2im'])} |"
        )
    lines += ["", "| distinct training clips (vary) | held-out AVC |", "|---|---|"]
    lines += [
        f"| {n} | {a:.3f} |" for n, a in sorted(res["exemplars"].items(), key=lambda x: int(x[0]))
    ]
    lines += ["", "| network | set | AVC [95 % CI] | ROC AUC | other |", "|---|---|---|---|---|"]
    for arch, r in res["targets"].items():
        for where in ("test", "human"):
            t = r[where]
            other = []
            if "ndcg@30" in t:
                nd = t["ndcg@30"]
                other.append(
                    f"nDCG@30 im→aud {f3(nd['im2aud']['model'])} (random "
                    f"{f3(nd['im2aud']['random'])}), aud→im {f3(nd['aud2im']['model'])}"
                )
            if "localization" in t:
                loc = t["localization"]
                d = loc["pixel_ap_minus_best_baseline"]
                other.append(
                    f"which of two {loc['which_of_two']:.3f}, pixel AP {loc['pixel_ap']:.3f} "
                    f"({d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] over "
                    f"{d['baseline']})"
                )
            for m in ("audio", "image"):
                p = t.get(f"probe_{m}")
                if p:
                    other.append(
                        f"{m} probe {p['accuracy']:.3f} vs raw {p['raw_input']:.3f}, random "
                        f"{p['random_weights']:.3f} (margin over {p['margin']['over']} "
                        f"{p['margin']['difference']:+.3f} [{p['margin']['ci'][0]:+.3f}, {p['margin']['ci'][1]:+.3f}])"
                    )
            a = t["avc"]
            lines.append(
                f"| {arch} | {where} | {a['accuracy']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}] | "
                f"{a['roc_auc']:.3f} | {'; '.join(other)} |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-out/digits")
    ap.add_argument("--test-videos", type=int, default=120)
    ap.add_argument("--human-videos", type=int, default=60)
    ap.add_argument("--ablation-steps", type=int, default=1000, help="steps of each arm")
    ap.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="the target AVE-Net's steps (equal to --ablation-steps: the recipe's arm)",
    )
    ap.add_argument("--l3-steps", type=int, default=1000)
    ap.add_argument("--avol-steps", type=int, default=300)
    ap.add_argument("--exemplars", default="250,700", help="clips of the exemplar curve")
    ap.add_argument("--evals", type=int, default=3, help="evaluations per run")
    ap.add_argument("--pairs", type=int, default=400, help="AVC pairs of a curve's evaluation")
    ap.add_argument("--final-pairs", type=int, default=2000, help="AVC pairs of the targets")
    ap.add_argument(
        "--train-videos",
        type=int,
        default=DIGITS_TRAIN_VIDEOS,
        help="clips of the short training sets (the 'before' set: at most this many)",
    )
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    d = out / "data"
    test = build(
        d / "test", videos=args.test_videos, seed=TEST_SEED, split="test", layout="anywhere"
    )
    human = build(
        d / "test-human",
        videos=args.human_videos,
        seed=TEST_SEED + 1,
        split="test",
        layout="anywhere",
        voices=HUMAN_VOICES,
    )
    sets = {
        n: build(
            d / n,
            seed=SEED,
            split="train",
            **{**kw, "videos": min(kw["videos"], args.train_videos)},
        )
        for n, kw in TRAIN_SETS.items()
    }
    res: dict[str, Any] = {"args": vars(args), "ablation": {}, "exemplars": {}, "targets": {}}
    runs = out / "runs"
    recipe = {**AVE, **DIGITS_SET}
    for name, (data_name, examples) in ARMS.items():
        run = runs / f"ave-{name}"
        over = {**AVE, **(DIGITS_SET if examples else {})}
        res["ablation"][name] = run_once(
            run / "curve.json",
            lambda data=sets[data_name], run=run, over=over: train_curve(
                data, test, run, "ave", over, args.ablation_steps, args.evals, args.pairs
            ),
            args.retrain,
        )
    for n in [int(x) for x in args.exemplars.split(",") if x]:
        data = subset(sets["vary"], d / f"vary-{n}", n)
        run = runs / f"ave-exemplars-{n}"
        curve = run_once(
            run / "curve.json",
            lambda data=data, run=run: train_curve(
                data, test, run, "ave", recipe, args.ablation_steps, 1, args.pairs
            ),
            args.retrain,
        )
        res["exemplars"][n] = curve[-1]["test_avc"]
    res["exemplars"][args.train_videos] = res["ablation"][RECIPE][-1]["test_avc"]
    # the targets, from scratch on the recipe: its AVE-Net, an L3-Net with the papers'
    # AVC loss, an AVOL-Net warm-started from the AVE-Net
    ave_run, l3_run, avol_run = runs / "ave", runs / "l3", runs / "avol"
    if args.steps == args.ablation_steps:  # the recipe's arm is that AVE-Net
        ave_run = runs / f"ave-{RECIPE}"
    res["ave_curve"] = run_once(
        ave_run / "curve.json",
        lambda: train_curve(
            sets["vary"], test, ave_run, "ave", recipe, args.steps, args.evals + 1, args.pairs
        ),
        args.retrain,
    )
    res["l3_curve"] = run_once(
        l3_run / "curve.json",
        lambda: train_curve(
            sets["vary"],
            test,
            l3_run,
            "l3",
            {**L3, **DIGITS_SET},
            args.l3_steps,
            args.evals,
            args.pairs,
        ),
        args.retrain,
    )
    res["avol_curve"] = run_once(
        avol_run / "curve.json",
        lambda: train_curve(
            sets["vary"],
            test,
            avol_run,
            "avol",
            {**AVOL, **DIGITS_SET, "train.init": str(ave_run.resolve())},
            args.avol_steps,
            1,
            args.pairs,
        ),
        args.retrain,
    )
    for arch, run in (("ave", ave_run), ("l3", l3_run), ("avol", avol_run)):
        res["targets"][arch] = run_once(
            run / "targets.json",
            lambda arch=arch, run=run: targets_of(run, arch, test, human, args.final_pairs),
            args.retrain,
        )
    res["minutes"] = round((time.perf_counter() - start) / 60, 1)
    text = table(res)
    atomic_write_text(out / "table.md", text + "\n")
    atomic_write_json(out / "results.json", res)
    plot(res, out / "learning_curves.png")
    print(text)
    print(
        f"{res['minutes']} min; wrote {out / 'results.json'}, {out / 'table.md'}, "
        f"{out / 'learning_curves.png'}"
    )


if __name__ == "__main__":
    main()
