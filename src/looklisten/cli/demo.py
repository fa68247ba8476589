"""``looklisten demo`` / ``make demo``: the whole product on the built-in demo clips, on a CPU.

What it does, in order (each step's output lands in ``OUT``)::

    DATA/                    demo clips (built if absent; see looklisten.data.demo_data):
                             half with large central objects, half with objects
                             anywhere, small to large
    DATA-test/               more clips, another seed: never trained on, the test set of
                             the retrieval and localisation evaluations (built if absent);
                             objects anywhere in the frame, small to large
    OUT/l3/                  an L3-Net run (AVC task)               -> metrics.json, checkpoint/
    OUT/ave/                 an AVE-Net run (cross-modal embeddings)
    OUT/avol/                an AVOL-Net run (localisation), warm-started from
                             the AVE-Net's trunks (``train --init``)
    OUT/*/eval/avc.json               each network's AVC accuracy on 1024 fixed pairs of
                                      DATA-test (``eval avc``), beside the always-yes,
                                      always-no and coin-flip baselines
    OUT/ave/eval/retrieval.json       nDCG@30 / recall@k of AVE-Net, random, L3 (+CCA), on
                                      DATA-test, with a bootstrap interval of AVE - L3+CCA
    OUT/avol/eval/localization.json   pixel AP, best-threshold IoU, cIoU, pointing of
                                      AVOL-Net and trivial baselines, by object size and
                                      distance from the centre, and the maps for negative
                                      sounds (beside L3 / AVE scores), on DATA-test
    OUT/overlays/*.png, *.mp4         AVOL-Net heatmaps over test frames, and one
                                      held-out clip with the heatmap and its sound
    DATA-digits/, DATA-digits-test/   handwritten digits spoken by many voices: the
                                      training writers and voices (many short clips,
                                      each digit drawn and spoken anew), and others
                                      never trained on (--kind digits --split train|test)
    OUT/digits/              an AVE-Net (InfoNCE) trained on DATA-digits, each example
                             with another voice, noise and colours (DIGITS_SET)
    OUT/digits/eval/avc.json, retrieval.json   its AVC accuracy and cross-modal
                                      retrieval on DATA-digits-test: held-out
                                      exemplars, where only the category links an
                                      image to a sound
    OUT/digits-avol/         an AVOL-Net warm-started from it; eval/localization.json:
                             which of two written digits is spoken, on DATA-digits-test
    OUT/report.html          one page: curves, retrieval examples, overlays, metrics
    OUT/metrics.json         the summary (``val_avc_accuracy`` is the L3-Net's)

Every run is an ordinary training run: ``looklisten embed / search / localize /
eval ... --checkpoint OUT/ave`` work on them. A run that already finished (its
``metrics.json`` exists) is reused, so a second ``make demo`` only redoes the
evaluations and the report.

The training plan (:data:`DEMO_PLAN`: steps, objectives, warm starts) is sized for 2
CPU cores: the whole demo took 24 minutes on a fresh clone, 10 of them the digits
part (``OUT/metrics.json`` has each phase's wall time under ``seconds``);
``--time-budget`` caps each run's training time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from looklisten.core.config import arch_overrides
from looklisten.core.fileio import atomic_write_json

log = logging.getLogger("looklisten.cli.demo")

DEMO_MODELS = ("l3", "ave", "avol")
#: The frames the demo's L3-Net and AVE-Net see: the tiny preset's AVOL-Net size (128 px
#: crops of 144 px frames) rather than tiny's 64 px, where the test set's small objects
#: are a few pixels wide. On the same clips and test set it lifted AVE-Net's nDCG@30
#: from 0.26 / 0.29 to 0.50 / 0.53 and its test AVC accuracy from 0.69 to 0.78 for 1.4x
#: the training minutes (benchmarks/time_to_accuracy.py, docs/results/demo.md).
DEMO_FRAMES: dict[str, Any] = dict(arch_overrides("tiny")["avol"])
#: How the digits networks see their training examples: each one with another voice
#: (speed, spectral envelope), noise floor and channel order of the colours, never
#: mirrored. A clip's own voice variant, noise, background and ink still pair its
#: frames with its sound; these make that pairing cost more than recognising the
#: digit (benchmarks/digits_categories.py measures what each part buys).
DIGITS_SET: dict[str, Any] = {
    "audio.speed_jitter": 0.2,
    "audio.eq_jitter_db": 6.0,
    "audio.noise_snr_db": 5.0,
    "vision.hflip": False,
    "vision.channel_shuffle": True,
}
#: Steps of the digits AVE-Net and of the digits AVOL-Net warm-started from it.
DIGITS_STEPS, DIGITS_AVOL_STEPS = 1000, 200
#: The training plan of each demo run: ``steps`` of the preset's batch (64 pairs for
#: tiny) in ``epochs`` epochs (a validation each) with a cosine schedule that ends
#: where training stops, config overrides (``set``; its frame sizes apply to the tiny
#: preset only) and the run whose weights it starts from (``init``, ``train --init``).
#: L3-Net and AVOL-Net train with the papers' loss on every pair of each batch
#: (``avc-all``: AVOL-Net reached in 1.2 training minutes the localisation that
#: ``avc`` reached in 4.9), AVE-Net with InfoNCE (better retrieval than ``avc-all``
#: at the same step). AVOL-Net starts from the AVE-Net's trunks. "digits" is the
#: held-out-exemplar AVE-Net (issue 23's). docs/results/demo.md says what they cost;
#: benchmarks/time_to_accuracy.py measures what they buy per training minute.
DEMO_PLAN: dict[str, dict[str, Any]] = {
    "l3": {"steps": 600, "epochs": 4, "set": {**DEMO_FRAMES, "train.objective": "avc-all"}},
    "ave": {"steps": 400, "epochs": 4, "set": {**DEMO_FRAMES, "train.objective": "infonce"}},
    "avol": {"steps": 600, "epochs": 4, "set": {"train.objective": "avc-all"}, "init": "ave"},
    "digits": {
        "steps": DIGITS_STEPS,
        "epochs": 4,
        "set": {**DIGITS_SET, "train.objective": "infonce"},
    },
    "digits-avol": {
        "steps": DIGITS_AVOL_STEPS,
        "epochs": 2,
        "set": {**DIGITS_SET, "train.objective": "avc-all"},
        "init": "digits",
    },
}
OVERLAY_PNGS = 8
#: Clips in the demo's test set. The 15 % held out of DATA (36 clips) measure AVC
#: accuracy during training but are too few to rank retrieval methods: AVE-Net
#: minus L3+CCA nDCG@30 had a 95 % interval of +-0.10 on them, +-0.02 to +-0.05 on
#: 120 clips.
TEST_VIDEOS = 120
#: The training clips' layout: half large central objects, half objects anywhere, small
#: to large (make-demo-data --layout mixed), so the test set (all "anywhere") is in the
#: training distribution.
TRAIN_LAYOUT = "mixed"
#: The test set's data seed is the demo's seed plus this (other layouts, other times).
TEST_SEED_OFFSET = 1000
#: Share of the stamps clips (training and test) with a segment whose sound comes from
#: nothing on screen (silence, noise, a class not shown): training sees them as
#: negatives, the localisation evaluation scores them (make-demo-data --negatives).
DEMO_NEGATIVES = 0.25
#: The held-out-exemplar part: an AVE-Net on the digits' training writers and
#: voices, evaluated on the test writers and voices (DATA-digits, DATA-digits-test).
DIGITS_ARCH = "ave"
#: The L3-Net's linear probes run by the demo. The image probe took 291 s of a
#: 22-minute demo (more than any training run); ``looklisten eval probe DATA
#: --checkpoint OUT/l3 --modality image`` runs it.
DEMO_PROBES = ("audio",)
#: Fixed pairs of each network's AVC evaluation on the test set (looklisten eval avc).
TEST_AVC_PAIRS = 1024
#: Fixed pairs of the held-out AVC evaluation (looklisten eval avc).
AVC_PAIRS = 2000
#: Fixed test pairs of each point of the digits AVE-Net's test curve (every epoch end).
TEST_CURVE_PAIRS = 300


def _earlier(run: Path, cfg) -> dict | None:
    """The summary of a run of the same model and preset already in ``run``, else None."""
    summary_path = run / "metrics.json"
    if summary_path.is_file() and (run / "checkpoint").exists():
        summary = json.loads(summary_path.read_text())
        if summary.get("model") == cfg.model.arch and summary.get("preset") == cfg.preset:
            return summary
    return None


def _train_or_reuse(data: Path, run: Path, cfg, time_budget: float | None, progress: bool) -> dict:
    from looklisten.training.preemption import Preempted
    from looklisten.training.trainer import train

    summary = _earlier(run, cfg)
    if summary is not None and not summary.get("preempted"):
        print(f"reusing {run} (delete it to retrain)")
        return summary
    resume = summary is not None  # stopped by a signal last time: continue it
    print(f"{'resuming' if resume else 'training'} {cfg.model.arch} ({cfg.preset}) -> {run}")
    summary = train(
        data, run, cfg, progress=progress, time_budget=time_budget, resume=resume, overwrite=True
    )
    if summary.get("preempted"):
        raise Preempted(str(run), summary)
    return summary


def _overlay_video(data: Path, run: Path, out_dir: Path) -> Path | None:
    """AVOL heatmaps over one held-out clip (two objects if there is one), with its sound."""
    from looklisten.media.overlay import write_overlay_video
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.localize import localize_video, paint_visible

    split = json.loads((run / "split.json").read_text())
    anns = {}
    ann_path = data / "annotations.jsonl"
    if ann_path.is_file():
        for line in ann_path.read_text().splitlines():
            if line.strip():
                a = json.loads(line)
                anns[a["file"]] = a
    val = sorted(split["val"], key=lambda p: (len(anns.get(p, {}).get("objects", [])) != 2, p))
    if not val:
        return None
    src = data / val[0]
    model = get_model(run, arch="avol")
    heat, times, prob = localize_video(model, src, with_probability=True)
    dst = out_dir / f"{Path(val[0]).stem}_avol.mp4"
    write_overlay_video(src, dst, paint_visible(model, heat, prob), times)
    return dst


def run_demo(
    data: str | os.PathLike = "demo-data",
    out: str | os.PathLike = "demo-out",
    *,
    videos: int = 240,
    test_videos: int = TEST_VIDEOS,
    test_data: str | os.PathLike | None = None,
    workers: int | None = None,
    models: tuple[str, ...] = DEMO_MODELS,
    preset: str = "tiny",
    epochs: int | None = None,
    time_budget: float | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    digits: bool = True,
    digits_videos: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo (see the module docstring); return the summary written to OUT/metrics.json.

    Parameters
    ----------
    test_videos : int
        Clips in the test set (``0``: evaluate on DATA's held-out clips instead).
    test_data : path-like, optional
        The test set's folder (default ``DATA-test``; built if absent).
    models : tuple of {"l3", "ave", "avol"}
        Which networks to train (default all three).
    epochs : int, optional
        Epochs of the preset's size for every model (default: the demo's plan,
        :data:`DEMO_PLAN`).
    time_budget : float, optional
        Seconds of training per model at most.
    overrides : dict, optional
        Dotted config overrides for every model (``--set``).
    digits : bool
        Also train and evaluate the held-out-exemplar part (handwritten and spoken
        digits; see the module docstring).
    digits_videos : int, optional
        Clips of the digits' training set (default: ``make-demo-data``'s for digits
        training sets, :data:`looklisten.data.demo_data.DIGITS_TRAIN_VIDEOS`).
    """
    from looklisten.core.config import get_config
    from looklisten.data.demo_data import make_demo_data

    for arch in models:  # a bad model name or --set fails here, before anything is written
        get_config(preset, arch=arch, **(overrides or {}))
    data, out = Path(data), Path(out)
    base = data if data.name else data.resolve()  # "--data ." has no name of its own
    seconds: dict[str, float] = {}  # wall time of each phase, for docs/results/demo.md's budget
    timer = _Timer(seconds)
    if not (data / "annotations.jsonl").is_file():
        print(f"building demo data in {data} ...")
        with timer("data: stamps"):
            make_demo_data(
                data,
                videos=videos,
                seed=seed,
                layout=TRAIN_LAYOUT,
                negatives=DEMO_NEGATIVES,
                workers=workers,
                progress=progress,
            )
    if test_videos > 0:  # the evaluations' own clips, never trained on
        test = Path(test_data) if test_data is not None else base.with_name(base.name + "-test")
        if not (test / "annotations.jsonl").is_file():
            print(f"building the test set in {test} ...")
            with timer("data: stamps test"):
                make_demo_data(
                    test,
                    videos=test_videos,
                    seed=seed + TEST_SEED_OFFSET,
                    layout="anywhere",
                    negatives=DEMO_NEGATIVES,
                    workers=workers,
                    progress=progress,
                )
        from looklisten.data.demo_data import load_annotations

        n_test = len(load_annotations(test))  # a test set built earlier keeps its own size
        where = f"the {n_test} test clips ({test})"
    else:
        test, where = data, "held-out clips"
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Path] = {}
    summary: dict[str, Any] = {"data": str(data), "test_data": str(test), "runs": {}}
    for arch in models:
        over = _plan(preset, arch, arch, seed, epochs, overrides)
        init = DEMO_PLAN[arch].get("init")
        if init in runs:  # a warm start, e.g. AVOL-Net from the AVE-Net's trunks
            over.setdefault("train.init", str(runs[init].resolve()))
        cfg = get_config(preset, arch=arch, **over)
        runs[arch] = out / arch
        with timer(f"train {arch}"):
            s = _train_or_reuse(data, runs[arch], cfg, time_budget, progress)
        summary["runs"][arch] = {"run": str(runs[arch]), **s}
        print(f"{arch}: held-out AVC accuracy {s['val_avc_accuracy']:.3f} (chance 0.5)")
    if test_videos > 0 and runs:  # every network on the same fixed pairs of the test set
        from looklisten.evaluation.avc import evaluate_avc
        from looklisten.models.checkpoint import save_eval

        print(f"evaluating AVC accuracy on {where} ...")
        with timer("eval avc"):
            for arch, run in runs.items():
                res = evaluate_avc(test, run, pairs=TEST_AVC_PAIRS, seed=seed)
                save_eval(run, "avc.json", res)
                summary["runs"][arch]["test_avc"] = {
                    k: res[k] for k in ("accuracy", "ci95", "roc_auc", "pairs")
                }
    first = models[0] if models else None
    if first:
        summary["val_avc_accuracy"] = summary["runs"][first]["val_avc_accuracy"]
        summary["val_avc_accuracy_model"] = first

    from looklisten.models.checkpoint import save_eval

    if "ave" in runs:
        from looklisten.evaluation.retrieval import evaluate_retrieval

        print(f"evaluating cross-modal retrieval on {where} ...")
        with timer("eval retrieval"):
            res = evaluate_retrieval(test, runs["ave"], baseline_checkpoint=runs.get("l3"))
        save_eval(runs["ave"], "retrieval.json", res)
        summary["retrieval"] = res.get("cross_modal_ndcg", res.get("scores"))
    if "avol" in runs:
        from looklisten.evaluation.localization import evaluate_localization

        print(f"evaluating localisation on {where} and writing overlays ...")
        overlays = out / "overlays"
        with timer("eval localization"):
            res = evaluate_localization(
                test,
                runs["avol"],
                compare=[runs[a] for a in ("l3", "ave") if a in runs],
                png_dir=overlays,
                png_count=OVERLAY_PNGS,
            )
        save_eval(runs["avol"], "localization.json", res)
        summary["localization"] = {
            k: res[k]
            for k in ("avol", "baselines", "avol_minus_best_baseline", "negative_audio", "samples")
        }
        with timer("overlay video"):
            video = _overlay_video(data, runs["avol"], overlays)
        summary["overlays"] = str(overlays)
        if video:
            summary["overlay_video"] = str(video)
    if "l3" in runs:  # L3's transfer experiments and what its units learned (for the report)
        from looklisten.evaluation.probe import evaluate_probe
        from looklisten.evaluation.units import evaluate_units

        print("linear probes and unit galleries of the L3-Net on the demo labels ...")
        summary["probes"] = {}
        for modality in DEMO_PROBES:
            with timer(f"eval probe {modality}"):
                res = evaluate_probe(data, runs["l3"], modality=modality)
            save_eval(runs["l3"], f"probe_{modality}.json", res)
            summary["probes"][modality] = _probe_line(res)
        with timer("eval units"):
            save_eval(runs["l3"], "units.json", evaluate_units(data, runs["l3"]))
    if digits:
        summary["digits"] = _digits_part(
            base,
            out,
            runs,
            preset,
            seed,
            epochs,
            overrides,
            time_budget,
            (digits_videos, test_videos or TEST_VIDEOS),
            workers,
            progress,
            timer,
        )
    with timer("report"):
        report = _write_report(out, runs)
    if report:
        summary["report"] = str(report)
    summary["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    atomic_write_json(out / "metrics.json", summary)
    return summary


class _Timer:
    """``with timer("phase"):`` adds the phase's wall time to ``seconds``."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    @contextlib.contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def demo_plan() -> dict[str, dict[str, Any]]:
    """A copy of :data:`DEMO_PLAN` (for benchmarks/time_to_accuracy.py)."""
    return copy.deepcopy(DEMO_PLAN)


def _plan(preset, arch, name, seed, epochs, overrides) -> dict[str, Any]:
    """Config overrides of one demo run: the seed, its plan (DEMO_PLAN) or ``epochs``."""
    from looklisten.core.config import get_config

    plan = DEMO_PLAN[name]
    fixed = {k: v for k, v in plan["set"].items() if preset == "tiny" or k not in DEMO_FRAMES}
    over = {"train.seed": seed, **fixed, **(overrides or {})}
    if epochs:
        over.setdefault("train.epochs", epochs)
    elif "train.epochs" not in over and "train.epoch_pairs" not in over:
        batch = get_config(preset, arch=arch, **over).train.batch_size
        over["train.epochs"] = plan["epochs"]
        over["train.epoch_pairs"] = plan["steps"] * batch // plan["epochs"]
    return over


def _probe_line(res: dict) -> dict[str, Any]:
    """Mean probe accuracies: the network's and its baselines'."""
    return {"model": res["accuracy"]["mean"], **{k: v["mean"] for k, v in res["baselines"].items()}}


def _digits_part(
    base: Path,
    out: Path,
    runs: dict[str, Path],
    preset: str,
    seed: int,
    epochs: int | None,
    overrides: dict[str, Any] | None,
    time_budget: float | None,
    videos: tuple[int | None, int],
    workers: int,
    progress: bool,
    timer,
) -> dict[str, Any]:
    """The held-out-exemplar part: digits AVE-Net and AVOL-Net, evaluated on other
    writers and voices (adds ``runs["digits"]``, ``runs["digits-avol"]``)."""
    from looklisten.core.config import get_config
    from looklisten.data.demo_data import load_annotations, make_demo_data
    from looklisten.evaluation.localization import evaluate_localization
    from looklisten.models.checkpoint import save_eval

    train_dir = base.with_name(base.name + "-digits")
    test_dir = base.with_name(base.name + "-digits-test")
    if (train_dir / "annotations.jsonl").is_file():
        first = next(iter(load_annotations(train_dir).values()), {})
        if "voice_variants" not in first:  # an older demo's clips: one exemplar per clip
            print(f"rebuilding {train_dir}: its clips predate per-clip handwriting and voices")
            for f in train_dir.glob("clip_*.mp4"):
                f.unlink()
            (train_dir / "annotations.jsonl").unlink()
    for folder, split in ((train_dir, "train"), (test_dir, "test")):
        if not (folder / "annotations.jsonl").is_file():
            print(f"building the digits ({split} writers and voices) in {folder} ...")
            with timer(f"data: digits {split}"):
                make_demo_data(
                    folder,
                    videos=videos[0] if split == "train" else videos[1],
                    seed=seed if split == "train" else seed + TEST_SEED_OFFSET,
                    kind="digits",
                    split=split,
                    layout=TRAIN_LAYOUT if split == "train" else "anywhere",
                    workers=workers,
                    progress=progress,
                )
    for name, arch in (("digits", DIGITS_ARCH), ("digits-avol", "avol")):
        over = _plan(preset, arch, name, seed, epochs, overrides)
        init = DEMO_PLAN[name].get("init")
        if init in runs:
            over.setdefault("train.init", str(runs[init].resolve()))
        runs[name] = out / name
        cfg = get_config(preset, arch=arch, **over)
        with timer(f"train {name}"):
            if name == "digits" and time_budget is None:  # its learning curve on the test set
                _train_with_test_curve(train_dir, runs[name], cfg, test_dir, seed, progress)
            else:
                _train_or_reuse(train_dir, runs[name], cfg, time_budget, progress)
    with timer("eval digits (avc, retrieval, localization)"):
        summary = _held_out_digits(runs["digits"], train_dir, test_dir, seed)
        print(f"evaluating the digits AVOL-Net on {test_dir} ...")
        loc = evaluate_localization(test_dir, runs["digits-avol"])
        save_eval(runs["digits-avol"], "localization.json", loc)
    summary["localization"] = {
        "run": str(runs["digits-avol"]),
        **{k: loc[k] for k in ("avol", "baselines", "avol_minus_best_baseline", "samples")},
    }
    return summary


def _train_with_test_curve(
    data: Path, run: Path, cfg, test: Path, seed: int, progress: bool
) -> dict[str, Any]:
    """Train a new run (or reuse a finished one), measuring AVC accuracy on ``test`` at
    every epoch end: ``RUN/eval/test_curve.json``, drawn by the report beside the run's
    training and held-out curves (memorising the clips, or recognising the digits?)."""
    from looklisten.core.fileio import atomic_write_json
    from looklisten.evaluation.avc import evaluate_avc
    from looklisten.training.run_folder import check_new_run, run_lock
    from looklisten.training.trainer import Trainer

    if _earlier(run, cfg) is not None:  # finished: reused; stopped by a signal: continued
        return _train_or_reuse(data, run, cfg, None, progress)
    print(f"training {cfg.model.arch} ({cfg.preset}) -> {run}, its test curve on {test}")
    run.mkdir(parents=True, exist_ok=True)
    with run_lock(run):
        check_new_run(run, overwrite=True)
        trainer = Trainer.from_folder(data, run, cfg, progress=progress)
        rows = []
        for epoch in range(1, cfg.train.epochs + 1):
            summary = trainer.fit(max_steps=epoch * trainer.steps_per_epoch)
            res = evaluate_avc(test, run, pairs=TEST_CURVE_PAIRS, seed=seed)
            rows.append({"step": trainer.step, "accuracy": res["accuracy"], "ci95": res["ci95"]})
        atomic_write_json(
            run / "eval" / "test_curve.json",
            {"data": str(test), "pairs": TEST_CURVE_PAIRS, "seed": seed, "rows": rows},
        )
    return summary


def _held_out_digits(run: Path, train_dir: Path, test_dir: Path, seed: int) -> dict[str, Any]:
    """The digits AVE-Net on writers and voices it never saw: AVC accuracy and retrieval."""
    from looklisten.evaluation.avc import evaluate_avc
    from looklisten.evaluation.retrieval import evaluate_retrieval
    from looklisten.models.checkpoint import save_eval

    print(f"evaluating the digits AVE-Net on held-out writers and voices ({test_dir}) ...")
    avc = evaluate_avc(test_dir, run, pairs=AVC_PAIRS, seed=seed)
    save_eval(run, "avc.json", avc)
    ret = evaluate_retrieval(test_dir, run)
    save_eval(run, "retrieval.json", ret)
    summary = json.loads((run / "metrics.json").read_text())
    return {
        "run": str(run),
        "train_data": str(train_dir),
        "test_data": str(test_dir),
        "objective": avc["model"]["objective"],
        "val_avc_accuracy": summary["val_avc_accuracy"],
        "held_out_avc": {k: avc[k] for k in ("accuracy", "ci95", "roc_auc", "pairs", "baselines")},
        "held_out_retrieval": ret["cross_modal_ndcg"],
    }


def _write_report(out: Path, runs: dict[str, Path]) -> Path | None:
    from looklisten.report.page import write_report

    if not runs:
        return None
    first, *rest = runs.values()  # each run's own data (its manifest.jsonl)
    return write_report(first, out=out / "report.html", others=rest)
