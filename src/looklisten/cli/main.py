"""The ``looklisten`` command line. Heavy modules are imported inside each command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from looklisten.core.config import DEFAULT_ARCH, DEFAULT_PRESET

DESCRIPTION = """\
looklisten: learn what things look like and sound like from unlabelled video
(Look, Listen and Learn: L3-Net; Objects that Sound: AVE-Net, AVOL-Net).

Run 'looklisten COMMAND --help' for a command's options.

exit codes:
  0    done
  1    done, but some inputs failed (each named on its own line)
  2    bad command line or input (one line says what)
  74   a file could not be written: full, read-only or forbidden disk (one line
       names it; the previous checkpoint or index is kept)
  75   train: stopped by SIGTERM / SIGUSR1 after writing a checkpoint; run the
       same command with --resume auto to continue
  130  interrupted (Ctrl-C)
"""

#: Exit codes (documented in DESCRIPTION). 74 and 75 are sysexits.h's EX_IOERR, EX_TEMPFAIL.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_WRITE, EXIT_PREEMPTED, EXIT_INTERRUPTED = 74, 75, 130


TRAIN_HELP = """\
Scan DIR recursively for videos, reject unusable ones (listed in
OUT/rejected.tsv with reasons), split by video, and train on the audio-visual
correspondence task. Metrics go to OUT/metrics.jsonl, the checkpoint to
OUT/checkpoint/.

On a cluster: SIGTERM or SIGUSR1 (preemption, scancel, a spot reclaim) ends
the run after the current step with a checkpoint and exit code 75; under
torchrun every rank stops at the same step. A requeued job given the same
command with --resume auto continues where it stopped (or starts, if RUN has
no checkpoint yet).
"""

DEMO_HELP = """\
Build the demo data if absent; train an L3-Net, an AVE-Net and an AVOL-Net
(tiny preset) on the CPU; evaluate cross-modal retrieval and localisation on a
test set of clips never trained on (DATA-test); write heatmap overlays,
OUT/report.html and OUT/metrics.json (val_avc_accuracy: the first model's
held-out AVC accuracy). Finished runs in OUT are reused.
"""


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ValueError(f"--set expects KEY=VALUE, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _given_overrides(args) -> dict:
    """The config fields the command line sets (--set and the named options)."""
    over = _overrides(args.set)
    if getattr(args, "batch_size", None):
        over["train.batch_size"] = args.batch_size
    if getattr(args, "lr", None):
        over["train.lr"] = args.lr
    if getattr(args, "epochs", None):
        over["train.epochs"] = args.epochs
    if getattr(args, "epoch_pairs", None):
        over["train.epoch_pairs"] = args.epoch_pairs
    if getattr(args, "seed", None) is not None:
        over["train.seed"] = args.seed
    if getattr(args, "compile", False):
        over["train.compile"] = True
    if getattr(args, "rank_data", None):
        over["train.rank_data"] = args.rank_data
    if getattr(args, "init", None):
        over["train.init"] = str(Path(args.init).resolve())
    return over


def _config(args):
    from looklisten.core.config import get_config

    return get_config(args.preset, arch=args.model, **_given_overrides(args))


def _resume_config(args):
    """The checkpoint's config with what the command line sets; the trainer refuses a
    setting that conflicts with the checkpoint (:func:`looklisten.training.trainer.resume_config`)."""
    from looklisten.models.checkpoint import load_config

    over = _given_overrides(args)
    if args.model is not None:
        over["model.arch"] = args.model
    if args.preset is not None:
        over["preset"] = args.preset
    return load_config(args.out).with_overrides(**over)


def _resume_arg(value: str):
    """``--resume`` takes no value, or ``auto``."""
    if value == "auto":
        return value
    raise argparse.ArgumentTypeError(
        f"--resume takes no value or 'auto', got {value!r} (put --resume after DIR)"
    )


def cmd_train(args) -> int:
    import os

    from looklisten.models.checkpoint import load_config, load_state, verify_checkpoint
    from looklisten.training.trainer import resolve_resume, resume_config, train

    resume = resolve_resume(args.resume, args.out)
    if not resume:  # the library's defaults (a resumed run keeps its own)
        args.preset = args.preset or DEFAULT_PRESET
        args.model = args.model or DEFAULT_ARCH
    cfg = _config(args) if not resume else _resume_config(args)
    if resume:  # a damaged checkpoint or a conflicting setting: one line, before the rest
        verify_checkpoint(args.out)
        resume_config(load_config(args.out), cfg)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Under torchrun, outside training (train() handles SIGTERM itself) a rank
        # ignores SIGTERM: torchrun ends the other ranks as soon as one exits with an
        # error or 75, and a rank finishing a moment later (rank 0 writing its line or
        # summary) then exits with its own code instead of being killed half-way.
        import signal

        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.environ.get("RANK", "0") == "0":
        # the trainer's notices (what --init copied) are for the person at the terminal
        logging.getLogger("looklisten.training.trainer").setLevel(logging.INFO)
        if resume:
            step = load_state(args.out).get("step", 0)
            print(f"looklisten train: resuming {args.out} from step {step}", file=sys.stderr)
        elif args.resume == "auto":
            print(f"looklisten train: no checkpoint in {args.out}: a new run", file=sys.stderr)

    summary = train(
        args.data,
        args.out,
        cfg,
        resume=resume,
        device=args.device,
        cache=args.cache,
        max_steps=args.max_steps,
        time_budget=args.time_budget * 60 if args.time_budget else None,
        progress=not args.quiet,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(json.dumps(summary, indent=2))
    return EXIT_PREEMPTED if summary.get("preempted") else EXIT_OK


def cmd_make_demo_data(args) -> int:
    from looklisten.data.demo_data import make_demo_data

    out = call(make_demo_data, args, out_dir=args.out)
    what = f"{args.kind} ({args.split} exemplars)" if args.kind == "digits" else args.kind
    if args.layout == "anywhere":
        what += ", objects anywhere in the frame, small to large,"
    elif args.layout == "mixed":
        what += ", half with large central objects, half with objects anywhere,"
    if args.negatives:
        what += f" {args.negatives:.0%} of them with a sound from nothing on screen,"
    n = sum(1 for line in open(out / "annotations.jsonl", encoding="utf-8") if line.strip())
    print(f"wrote {n} clips of {what} and annotations to {out}")
    return 0


def cmd_demo(args) -> int:
    from looklisten.cli.demo import run_demo

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    summary = call(
        run_demo,
        args,
        models=models,
        time_budget=args.time_budget * 60 if args.time_budget else None,
        overrides=_overrides(args.set),
        progress=not args.quiet,
    )
    out = Path(args.out)
    for arch, s in summary["runs"].items():
        line = f"{arch:5s} held-out AVC accuracy {_f(s['val_avc_accuracy'])} (chance 0.5)"
        if "test_avc" in s:
            t = s["test_avc"]
            lo, hi = t["ci95"]
            line += f"; on the test set {_f(t['accuracy'])} (95% interval {_f(lo)} .. {_f(hi)})"
        print(line)
    if "retrieval" in summary:
        print(f"retrieval nDCG@30 on {summary['test_data']}:")
        for direction, row in summary["retrieval"].items():
            line = f"  {direction}: AVE-Net {_f(row['model'])}, random {_f(row['random'])}"
            if "l3_cca" in row:
                line += f", L3+CCA {_f(row['l3_cca'])}"
            if row.get("minus_l3_cca"):
                d = row["minus_l3_cca"]
                lo, hi = d["ci95"]
                line += f" (AVE - L3+CCA {_f(d['difference'], '+')}, 95% interval "
                line += f"{_f(lo, '+')} .. {_f(hi, '+')})"
            print(line)
    if "localization" in summary:
        loc = summary["localization"]
        avol, base = loc["avol"], loc["baselines"]
        print(f"localisation on {loc['samples']} test samples (AVOL-Net vs the best trivial map):")
        for key in ("pixel_ap", "best_threshold_iou", "ciou@0.5", "pointing"):
            d = loc["avol_minus_best_baseline"][key]
            lo, hi = d["ci95"]
            mine, theirs = avol[key], base[d["baseline"]][key]
            if key == "best_threshold_iou":
                mine, theirs = mine["mean_iou"], theirs["mean_iou"]
            print(
                f"  {key}: {_f(mine)} vs {d['baseline']} {_f(theirs)} "
                f"({_f(d['difference'], '+')}, 95% interval {_f(lo, '+')} .. {_f(hi, '+')})"
            )
        print(f"  two objects, which one sounds: {_f(avol['two_object_accuracy'])} (chance 0.5)")
        neg = loc.get("negative_audio") or {}
        if neg.get("own"):
            own = neg["own"]
            print(
                f"  maps of the clips' own sound: mean peak {_f(own['mean_peak'])}, "
                f"{own['detect@0.5']:.0%} of them reach 0.5"
            )
        parts = [
            f"{k.replace('_', ' ')} {_f(neg[k]['roc_auc'])}"
            for k in ("silence", "noise", "absent_class", "other_clip", "in_video")
            if neg.get(k)
        ]
        if parts:
            print("  own sound vs negative sound, ROC AUC of the map's peak: " + ", ".join(parts))
        det = neg.get("detection")
        if det:
            print(
                f"  a visible object makes the sound? at the checkpoint's threshold "
                f"{_f(det['threshold'])}: precision {_f(det['precision'])}, recall "
                f"{_f(det['recall'])}, F1 {_f(det['f1'])}; average precision "
                f"{_f(det['average_precision'])} (baseline {_f(det['average_precision_baseline'])})"
            )
        print(f"overlays in {summary['overlays']}")
    if "digits" in summary:
        dg = summary["digits"]
        avc, lo_hi = dg["held_out_avc"], dg["held_out_avc"]["ci95"]
        print(
            f"held-out exemplars (digits: writers and voices never trained on, {dg['test_data']}):"
        )
        print(
            f"  AVC accuracy {_f(avc['accuracy'])} (95% interval {_f(lo_hi[0])} .. "
            f"{_f(lo_hi[1])}; chance 0.5), ROC AUC {_f(avc['roc_auc'])}"
        )
        for direction, row in dg["held_out_retrieval"].items():
            print(f"  {direction} nDCG@30: AVE-Net {_f(row['model'])}, random {_f(row['random'])}")
        loc = dg.get("localization")
        if loc:
            print(
                f"  AVOL-Net: which of two digits is spoken {_f(loc['avol']['two_object_accuracy'])} "
                f"(chance 0.5); pixel AP {_f(loc['avol']['pixel_ap'])}, "
                + _versus_best(loc, "pixel_ap")
            )
    seconds = summary.get("seconds") or {}
    if seconds:
        phases = ", ".join(f"{k} {v / 60:.1f}" for k, v in seconds.items())
        print(f"minutes per phase: {phases} (total {sum(seconds.values()) / 60:.1f})")
    print(f"summary: {out / 'metrics.json'}")
    if "report" in summary:
        print(f"report: {summary['report']}")
    return 0


def _versus_best(loc: dict, key: str) -> str:
    """``key`` of the best trivial map and AVOL-Net's margin over it, with its interval."""
    d = loc["avol_minus_best_baseline"][key]
    lo, hi = d["ci95"]
    theirs = loc["baselines"][d["baseline"]][key]
    return (
        f"{d['baseline']} {_f(theirs)} ({_f(d['difference'], '+')}, 95% interval "
        f"{_f(lo, '+')} .. {_f(hi, '+')})"
    )


def _f(v, sign: str = "") -> str:
    """A metric for a person: 3 decimals, or n/a where it could not be measured."""
    return "n/a" if v is None else f"{v:{sign}.3f}"


def cmd_presets(args) -> int:
    from looklisten.core.config import arch_overrides, get_config, list_presets

    for name in list_presets():
        c = get_config(name)
        print(
            f"{name:8s} image {c.vision.image_size}px  audio {c.audio.sample_rate} Hz -> "
            f"{c.audio.n_bins}x{c.audio.n_frames} {c.audio.kind}  widths {c.model.widths}  "
            f"conv1 stride {c.model.conv1_stride}  batch {c.train.batch_size}"
        )
        for arch, over in arch_overrides(name).items():
            sets = ", ".join(f"{k}={v}" for k, v in over.items())
            print(f"{'':8s}   with --model {arch}: {sets}")
    return 0


def cmd_config(args) -> int:
    from looklisten.core.config import flat_fields
    from looklisten.models.checkpoint import load_config

    if args.run is not None:
        if args.preset or args.model:
            raise ValueError("give RUN or --preset / --model, not both")
        cfg = load_config(args.run).with_overrides(**_overrides(args.set))
    else:
        args.preset, args.model = args.preset or DEFAULT_PRESET, args.model or DEFAULT_ARCH
        cfg = _config(args)
    values = flat_fields(cfg)
    if args.json:
        print(json.dumps(values, indent=2))
        return 0
    width = max(map(len, values))
    for key, value in values.items():
        print(f"{key:<{width}}  {json.dumps(value)}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from looklisten.cli.demo import DEMO_MODELS, TEST_VIDEOS
    from looklisten.core.config import ARCHS, RANK_DATA, list_presets

    p = Parser(
        prog="looklisten",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def model_opts(sp, preset_default: str | None, model_default: str | None = "l3"):
        # None: train fills in small / l3, or with --resume the checkpoint's
        sp.add_argument(
            "--model",
            choices=ARCHS,
            default=model_default,
            help="head: l3 (L3-Net), ave (AVE-Net), avol (AVOL-Net)"
            + ("" if model_default else f" (default: {DEFAULT_ARCH})"),
        )
        sp.add_argument(
            "--preset",
            choices=list_presets(),
            default=preset_default,
            help="sizes (see 'looklisten presets')"
            + ("" if preset_default else f" (default: {DEFAULT_PRESET})"),
        )
        sp.add_argument("--epochs", type=int, help="epochs (default: the preset's)")
        sp.add_argument("--epoch-pairs", type=int, help="pairs per epoch (default: the preset's)")
        sp.add_argument("--batch-size", type=int, help="batch size (default: the preset's)")
        sp.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
        sp.add_argument("--seed", type=int, help="seed for pairs, augmentation and initialisation")
        training_options(sp, "stop after this much training time (then validate and checkpoint)")

    sp = add_command(
        sub,
        "train",
        func=cmd_train,
        help="train L3-Net / AVE-Net / AVOL-Net on a folder of videos (or shards)",
        description=TRAIN_HELP,
    )
    sp.add_argument(
        "data",
        metavar="DIR",
        help="folder of videos (searched recursively), or shards from 'looklisten shard' (a folder or an fsspec URL)",
    )
    sp.add_argument("--out", required=True, metavar="RUN", help="run directory")
    model_opts(sp, None, None)
    sp.add_argument(
        "--compile", action="store_true", help="torch.compile the model (train.compile)"
    )
    sp.add_argument(
        "--init",
        metavar="RUN",
        help="warm start: copy the weights of another run whose names and shapes match "
        "(e.g. an AVOL-Net from an AVE-Net's trunks; same audio frontend) (train.init)",
    )
    sp.add_argument(
        "--rank-data",
        choices=RANK_DATA,
        help="under torchrun: 'all' (default) every rank samples from every training video, "
        "exactly like one process; 'own' deals the shards to the ranks, each fetching and "
        "reading only its own (train.rank_data)",
    )
    sp.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        type=_resume_arg,
        metavar="auto",
        help="continue the run in --out exactly where its checkpoint stopped, with its saved "
        "config (--epochs may change; another differing setting is an error). "
        "'--resume auto': continue if --out holds a checkpoint, else start a new run "
        "(for jobs requeued with the same command line)",
    )
    sp.add_argument(
        "--cache",
        choices=["auto", "memory", "files"],
        default="auto",
        help="decode all videos once into memory, or decode each pair from the files (auto: memory if it fits in LOOKLISTEN_CACHE_MB, default 3000, see data.sampler.DEFAULT_CACHE_MB)",
    )
    sp.add_argument(
        "--workers",
        type=int,
        help="DataLoader workers (default: 0 with the memory cache, else the preset's)",
    )
    sp.add_argument(
        "--max-steps",
        type=int,
        help="stop once the run has taken this many steps in all (a total, not extra steps: "
        "a run resumed at step 200 with --max-steps 300 takes 100 more)",
    )
    sp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (without it, training into a folder that "
        "holds a run is refused: --resume continues it)",
    )

    sp = sub.add_parser(
        "make-demo-data",
        help="write short MP4 clips of real photos and recorded sounds, with annotations",
        description=(
            "Write OUT/clip_*.mp4 (H.264 + AAC) and OUT/annotations.jsonl from media shipped "
            "inside the package: Tux Paint stamps (--kind stamps: one photo and one recording "
            "per class) or handwritten digits spoken by many voices (--kind digits: MNIST "
            "writers, synthetic and human voices; --split test draws writers and voices never "
            "used by --split train). --layout anywhere makes evaluation sets: objects "
            "anywhere in the frame (corners and edges too) and small to large, so a centred "
            "prior does not localise them; --layout mixed makes training sets like them."
        ),
    )
    sp.add_argument("out", metavar="OUT")
    sp.add_argument(
        "--videos",
        type=int,
        help="clips (default: 240; digits training sets: many more, shorter ones, as "
        "DIGITS_TRAIN_VIDEOS and DIGITS_TRAIN_DURATION in looklisten.data.demo_data say)",
    )
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--workers", type=int, default=2)
    sp.add_argument("--kind", choices=("stamps", "digits"), default="stamps")
    sp.add_argument(
        "--split",
        choices=("train", "test"),
        default="train",
        help="digits: which writers and voices (test: never used by train)",
    )
    sp.add_argument(
        "--layout",
        choices=("train", "anywhere", "mixed"),
        default="train",
        help="train: large objects, mostly near the centre; anywhere: for evaluation sets, "
        "objects anywhere in the frame and small to large; mixed: half of the clips of each "
        "(training sets like an anywhere test set; the demo's)",
    )
    sp.add_argument(
        "--negatives",
        type=float,
        default=0.0,
        metavar="P",
        help="share of the clips with one segment whose sound no visible object makes "
        "(silence, noise only, or a class not shown), annotated with object null "
        "(default 0)",
    )
    sp.add_argument(
        "--duration",
        type=float,
        help="seconds per clip (default: 6; digits training sets: shorter)",
    )
    sp.add_argument(
        "--no-vary",
        dest="vary",
        action="store_false",
        default=None,
        help="digits training sets: use the shipped handwriting and recordings as they are "
        "(default: every digit drawn and every recording spoken anew, see looklisten.data.augment)",
    )
    sp.add_argument(
        "--voices",
        type=lambda s: [v for v in s.split(",") if v],
        metavar="V1,V2",
        help="digits: speak with these voices of the split only (e.g. the human speakers "
        "tuxpaint-en,tuxpaint-en-gb of --split test)",
    )
    sp.set_defaults(func=cmd_make_demo_data)

    sp = add_command(
        sub,
        "demo",
        func=cmd_demo,
        device=False,
        help="demo data + L3-Net, AVE-Net and AVOL-Net trained on the CPU, evaluations, report",
        description=DEMO_HELP,
    )
    sp.add_argument("--data", default="demo-data", help="demo data folder (built if absent)")
    sp.add_argument("--out", default="demo-out", help="output folder")
    sp.add_argument("--videos", type=int, default=240)
    sp.add_argument(
        "--test-videos",
        type=int,
        default=TEST_VIDEOS,
        help="clips in the test set (default %(default)s; 0: evaluate on DATA's held-out clips)",
    )
    sp.add_argument("--test-data", metavar="DIR", help="the test set's folder (default DATA-test)")
    sp.add_argument("--workers", type=int, default=2)
    sp.add_argument(
        "--models",
        default=",".join(DEMO_MODELS),
        help="comma-separated networks to train, in order (default: %(default)s)",
    )
    sp.add_argument(
        "--preset", choices=list_presets(), default="tiny", help="sizes (default: %(default)s)"
    )
    sp.add_argument("--epochs", type=int, help="epochs per model (default: the demo's plan)")
    sp.add_argument("--seed", type=int, default=0, help="seed for data, pairs and initialisation")
    sp.add_argument(
        "--no-digits",
        dest="digits",
        action="store_false",
        help="skip the held-out-exemplar part (an AVE-Net on handwritten and spoken digits)",
    )
    sp.add_argument(
        "--digits-videos",
        type=int,
        metavar="N",
        help="clips of the digits' training set (default: make-demo-data's for digits)",
    )
    training_options(
        sp,
        "training time limit per model (default: none; the demo's plan trains for about 17 "
        "min in all on 2 cores)",
        " of every model",
    )

    sp = sub.add_parser("presets", help="list the model presets and their input shapes")
    sp.set_defaults(func=cmd_presets)

    sp = add_command(
        sub,
        "config",
        func=cmd_config,
        device=False,
        quiet=None,
        help="print every config field with its value (a preset's, or a run's)",
        description="Print every config field (the names --set takes) with its value: the "
        f"config 'looklisten train' would use (default --preset {DEFAULT_PRESET} --model "
        f"{DEFAULT_ARCH}), or the one saved with RUN's checkpoint.",
    )
    sp.add_argument("run", nargs="?", metavar="RUN", help="a run or checkpoint folder")
    sp.add_argument("--model", choices=ARCHS, help=f"head (default: {DEFAULT_ARCH})")
    sp.add_argument("--preset", choices=list_presets(), help=f"sizes (default: {DEFAULT_PRESET})")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field")
    sp.add_argument("--json", action="store_true", help="one JSON object")

    ev = sub.add_parser(
        "eval",
        help="evaluations printing one JSON object with baselines: retrieval, localization, probe, shortcut, units, avc",
        description="Evaluate a trained checkpoint; each evaluation prints one JSON object with its baselines.",
    )
    ev_sub = ev.add_subparsers(dest="eval_command", metavar="WHAT")
    ev.set_defaults(func=lambda args: (ev.print_help(), 2)[1])
    # Commands and evaluations defined in their own modules register themselves:
    # module.add_cli(sub) / module.add_eval_cli(ev_sub). Their heavy imports stay
    # inside the command functions, so building the parser stays light.
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    for name, fn in EVAL_COMMANDS:
        getattr(importlib.import_module(name), fn)(ev_sub)
    return p


def training_options(sp, time_budget_help: str, whose: str = "") -> None:
    """``--time-budget MINUTES`` and ``--set KEY=VALUE`` (train and demo)."""
    sp.add_argument("--time-budget", type=float, metavar="MINUTES", help=time_budget_help)
    sp.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=f"override any config field{whose}, e.g. --set sampler.max_shift_seconds=1.0",
    )


def add_command(
    subparsers,
    name: str,
    *,
    func,
    help: str,
    description: str,
    checkpoint: str | None = None,
    batch_size: int | None | bool = False,
    hop: float | None = None,
    labels: bool = False,
    device: bool = True,
    quiet: str | None = "no progress bars",
) -> argparse.ArgumentParser:
    """One ``looklisten NAME`` subcommand with the options commands share.

    ``--checkpoint RUN`` (required; its help is ``checkpoint``), ``--batch-size``
    (an int: its default; None: the preset's; False: none), ``--hop`` (with its
    default), ``--labels``, ``--device`` and ``--quiet`` (its help), as asked.
    The caller adds its own options to the returned parser.
    """
    sp = subparsers.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.set_defaults(func=func)
    if checkpoint is not None:
        sp.add_argument("--checkpoint", required=True, metavar="RUN", help=checkpoint)
    if batch_size is None:
        sp.add_argument("--batch-size", type=int, help="items per batch (default: the preset's)")
    elif batch_size is not False:
        sp.add_argument(
            "--batch-size", type=int, default=batch_size, help=f"items per batch ({batch_size})"
        )
    if hop is not None:
        sp.add_argument("--hop", type=float, default=hop, help=f"seconds between items ({hop})")
    if labels:
        sp.add_argument(
            "--labels",
            "--csv",
            metavar="FILE",
            help="labels: annotations.jsonl or a CSV with file,label columns "
            "(default: DATA/annotations.jsonl, DATA/labels.csv or sub-folder names)",
        )
    if device:
        sp.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    if quiet:
        sp.add_argument("--quiet", action="store_true", help=quiet)
    return sp


def add_eval_parser(
    eval_subparsers,
    name: str,
    *,
    data_help: str,
    saves: str,
    checkpoint_help: str | None = "run or checkpoint dir",
    batch_size: int | None = 64,
    **options,
) -> argparse.ArgumentParser:
    """One ``looklisten eval NAME``: DATA, the :func:`add_command` options (``--checkpoint``
    unless ``checkpoint_help`` is None) and how the result is kept: with a checkpoint,
    ``--save`` writes ``saves`` into the run (an evaluation leaves a run it reads alone
    by default: it may be someone else's); without one (an evaluation that trains its
    own runs into OUT) ``--no-save`` skips ``saves``.
    """
    sp = add_command(
        eval_subparsers, name, checkpoint=checkpoint_help, batch_size=batch_size, **options
    )
    sp.add_argument("data", metavar="DATA", help=data_help)
    if checkpoint_help is None:
        sp.add_argument("--no-save", action="store_true", help=f"do not write {saves}")
    else:
        sp.add_argument(
            "--save",
            action="store_true",
            help=f"also write {saves}, where 'looklisten report' shows it (default: "
            "print only; redirect the printed JSON to keep it elsewhere)",
        )
        sp.add_argument("--no-save", action=_NoSave, nargs=0, help=argparse.SUPPRESS)
    return sp


class _NoSave(argparse.Action):
    """``--no-save``, the default since evaluations stopped writing into runs: accepted."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            "looklisten eval: --no-save is the default now (--save writes into the run)",
            file=sys.stderr,
        )


def show_progress(args) -> bool:
    """Progress unless ``--quiet``: a bar on a terminal, plain lines in a log
    (:func:`looklisten.core.progress.progress_bar`)."""
    return not args.quiet


def finish_eval(args, result: dict, name: str | None = None) -> int:
    """Print an evaluation's JSON and, with ``--save``, save it to ``RUN/eval/<name>``.

    Printed first: a run folder that cannot be written (a shared, read-only
    model) costs the saved copy, not the result.
    """
    print(json.dumps(result, indent=2))
    if name is None or not args.save:
        return 0
    from looklisten.models.checkpoint import save_eval

    try:
        save_eval(args.checkpoint, name, result)
    except OSError as e:
        print(
            f"looklisten eval: could not save {name} beside {args.checkpoint} ({e}); "
            "the result is printed above (without --save nothing is written)",
            file=sys.stderr,
        )
        return 1
    return 0


def call(fn, args, **given):
    """Call a library function with the command line's options of the same names.

    Every parameter of ``fn`` that ``args`` has (``args.data``, ``args.checkpoint``,
    ``args.batch_size`` ...) is passed by name; ``given`` adds or overrides.
    """
    import inspect

    names = inspect.signature(fn).parameters
    kwargs = {k: getattr(args, k) for k in names if hasattr(args, k)}
    return fn(**{**kwargs, **given})


# One entry per module; keep one name per line (several people extend these).
COMMAND_MODULES = (
    "looklisten.cli.embed",
    "looklisten.cli.search",
    "looklisten.cli.localize",
    "looklisten.cli.report",
    "looklisten.cli.data",
)
# (module, function) registering one 'looklisten eval' subcommand.
EVAL_COMMANDS = (
    ("looklisten.cli.evaluate", "add_retrieval_cli"),
    ("looklisten.cli.evaluate", "add_localization_cli"),
    ("looklisten.cli.evaluate", "add_probe_cli"),
    ("looklisten.cli.evaluate", "add_shortcut_cli"),
    ("looklisten.cli.evaluate", "add_units_cli"),
    ("looklisten.cli.evaluate", "add_avc_cli"),
)


class _Formatter(logging.Formatter):
    """Notices as ``looklisten: ...``; warnings and errors with their level and source."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO:
            return f"looklisten: {record.getMessage()}"
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def _log_to_stderr(verbose: bool) -> None:
    """looklisten's log records to stderr (this call's stderr: main() may run many times in
    one process, e.g. in tests), formatted by :class:`_Formatter`."""
    log = logging.getLogger("looklisten")
    for h in [h for h in log.handlers if getattr(h, "looklisten_cli", False)]:
        log.removeHandler(h)
    handler = logging.StreamHandler()
    handler.looklisten_cli = True
    handler.setFormatter(_Formatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _log_to_stderr(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from looklisten.core.fileio import WriteError
    from looklisten.media.video import MediaError
    from looklisten.training.preemption import Preempted

    try:
        return args.func(args)
    except Preempted as e:
        print(f"looklisten {args.command}: {e}", file=sys.stderr)
        return EXIT_PREEMPTED
    except WriteError as e:  # before FileNotFoundError: a WriteError is an OSError
        print(f"looklisten {args.command}: error: {e}", file=sys.stderr)
        return EXIT_WRITE
    except (MediaError, FileNotFoundError, NotADirectoryError, ValueError) as e:
        print(f"looklisten {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left ('looklisten config | head'): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
