"""``looklisten eval WHAT``: each evaluation prints one JSON object with its baselines."""

from __future__ import annotations

import json
from pathlib import Path

from looklisten.cli.main import add_eval_parser, call, finish_eval, show_progress
from looklisten.core.config import MAP_MODES
from looklisten.evaluation.probe import CLASSIFIERS

# ---------------------------------------------------------------------------

RETRIEVAL_HELP = """\
Cross-modal retrieval (Objects that Sound): nDCG@30 and recall@1/5/10 for im2im,
im2aud, aud2im, aud2aud, for the model and, measured in the same run on the same
items, a random-embedding baseline and (with --baseline-checkpoint) L3-Net features
with and without CCA. Prints one JSON object.

Items: every --hop seconds of each evaluation video (centres of the 1 s windows
inside the clip), the frame shown then and the 1 s of audio around it; labelled by
the demo annotations (the object heard at that time), a CSV (file,label) or the
sub-folder name. Queries never retrieve items of their own video. If DATA is the
folder the run was trained on, the run's held-out videos (RUN/split.json) are
evaluated and CCA is fitted on its training videos.

cross_modal_ndcg sums up im2aud and aud2im; its minus_l3_cca is the model's nDCG
minus L3+CCA's with a 95% paired bootstrap interval over videos (an interval
that spans 0 is a tie).

Graded relevance (--ontology ontology.json, AudioSet's class graph): each item's
label is a set of AudioSet classes (--labels: an AudioSet segment CSV such as
eval_segments.csv, matched by the YouTube id the file name starts with, or a
file,labels CSV of class ids or names separated by ';'), and relevance between
classes is max(0, C - d) / C with d their tree distance in the ontology and C = 20
(--relevance-c); an
item's relevance to a query is the mean over the query's classes of the best
match among the item's; recall@k counts items of relevance 1. Every score, the
random and L3 baselines and the bootstrap use it; the JSON's 'relevance' says
which rule was used and 'published' gives Objects that Sound's figures (on
AudioSet-Instruments). Without --ontology: flat relevance (the same label).
"""


def cmd_eval_retrieval(args) -> int:
    from looklisten.evaluation.retrieval import evaluate_retrieval

    result = call(evaluate_retrieval, args, progress=show_progress(args))
    if args.out:
        from looklisten.core.fileio import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    return finish_eval(args, result, "retrieval.json")


def add_retrieval_cli(eval_subparsers) -> None:
    """Register ``retrieval`` under the ``looklisten eval`` command's subparsers."""

    sp = add_eval_parser(
        eval_subparsers,
        "retrieval",
        func=cmd_eval_retrieval,
        help="cross-modal retrieval nDCG@30 / recall@k with baselines (JSON)",
        description=RETRIEVAL_HELP,
        data_help="folder of videos (demo data or labelled)",
        checkpoint_help="the model (AVE-Net)",
        saves="RUN/eval/retrieval.json (the report's)",
        hop=1.0,
        labels=True,
    )
    sp.add_argument(
        "--baseline-checkpoint", metavar="L3RUN", help="an L3-Net run for the L3 / L3+CCA rows"
    )
    sp.add_argument("--k", type=int, default=30, help="nDCG cut-off (30)")
    sp.add_argument("--cca-dim", type=int, help="CCA dimension (default: the model's)")
    sp.add_argument(
        "--ontology",
        metavar="FILE",
        help="AudioSet ontology.json: grade relevance between label sets by the ontology "
        "(default: flat, the same label)",
    )
    sp.add_argument(
        "--relevance-c",
        type=float,
        default=20.0,
        metavar="C",
        help="with --ontology: relevance between classes is max(0, C - d) / C for tree "
        "distance d (default 20)",
    )
    sp.add_argument("--out", metavar="FILE.json", help="also write the JSON here")


LOCALIZATION_HELP = """\
Evaluate an AVOL-Net checkpoint on annotated clips (make-demo-data): pixel
average precision and the IoU at the best threshold (both with a ceiling of 1),
cIoU@0.5, AUC, mean cIoU, pointing accuracy and which-of-two-objects accuracy,
with the centre-prior, whole-image and random-map baselines on the same samples,
AVOL-Net minus the best baseline with 95 % intervals, results by object size and
by distance from the frame centre, and negative audio (silence, a class not on
screen, another clip's sound: how well the map's peak tells them from the
frame's own sound; --compare adds L3 / AVE correspondence scores). Uses the
run's held-out clips when DATA is its training folder, else all clips. Prints
one JSON object (its 'protocol' field says how each metric is computed).

Benchmarks (--dataset flickr or vggss): DATA is a copy of Flickr-SoundNet or
VGG-SS laid out as the LVS / EZ-VSL code expects (DATA/frames/<id>.jpg,
DATA/audio/<id>.wav, and DATA/Annotations/<id>.xml for Flickr or
DATA/vggss.json for VGG-SS; --gt-path points elsewhere; --test-list takes
flickr_test.csv / vggss_test.csv). cIoU@0.5, AUC and mean cIoU are computed as
EZ-VSL's test code does (224x224 frame, soft consensus ground truth on Flickr,
map >= its median), beside the whole-image, centre-prior and random-map
baselines, pixel AP, best-threshold IoU, pointing, AVOL-Net minus the best
baseline with 95 % intervals over images, and the published EZ-VSL figures.
Unreadable items are listed under 'failed'. --save keeps it as
RUN/eval/localization_<dataset>.json. The demo-clip options (--split, --times,
--mode, --threshold, --max-clips, --no-negatives, --compare, --png-*) do not
apply to it.
"""

#: Options of the demo-clip evaluation that --dataset refuses (dest: flag).
DEMO_ONLY_OPTIONS = {
    "split": "--split",
    "times_per_clip": "--times",
    "mode": "--mode",
    "threshold": "--threshold",
    "max_clips": "--max-clips",
    "negatives": "--no-negatives",
    "compare": "--compare",
    "png_dir": "--png-dir",
    "png_count": "--png-count",
}


def cmd_eval_benchmark_localization(args) -> int:
    """``looklisten eval localization --dataset``: print :func:`evaluate_benchmark_localization`."""
    from looklisten.evaluation.benchmark_localization import evaluate_benchmark_localization

    given = [
        flag
        for dest, flag in DEMO_ONLY_OPTIONS.items()
        if getattr(args, dest) != args.demo_defaults[dest]
    ]
    if given:
        verb = "does" if len(given) == 1 else "do"
        raise ValueError(f"{', '.join(given)} {verb} not apply with --dataset {args.dataset}")
    result = call(evaluate_benchmark_localization, args, progress=show_progress(args))
    return finish_eval(args, result, f"localization_{args.dataset}.json")


def cmd_eval_localization(args) -> int:
    """``looklisten eval localization``: print the JSON of :func:`evaluate_localization`."""
    from looklisten.evaluation.localization import evaluate_localization

    if args.dataset:
        return cmd_eval_benchmark_localization(args)
    if args.gt_path or args.test_list:
        raise ValueError("--gt-path and --test-list need --dataset flickr or vggss")
    threshold: str | float = args.threshold
    if threshold not in ("median", "lvs"):
        try:
            threshold = float(threshold)
        except ValueError:
            raise ValueError(
                f"--threshold must be median, lvs or a number in [0, 1], got {threshold!r}"
            ) from None
    result = call(evaluate_localization, args, threshold=threshold, progress=show_progress(args))
    return finish_eval(args, result, "localization.json")


def add_localization_cli(eval_subparsers) -> None:
    """Register ``localization`` on the ``looklisten eval`` subparsers object."""

    sp = add_eval_parser(
        eval_subparsers,
        "localization",
        func=cmd_eval_localization,
        help="AVOL-Net localisation on annotated demo clips, or on Flickr-SoundNet / VGG-SS "
        "(--dataset), vs trivial baselines (JSON)",
        description=LOCALIZATION_HELP,
        data_help="folder with clips and annotations.jsonl (with --dataset: the benchmark's "
        "folder, frames/ and audio/)",
        checkpoint_help="AVOL-Net run or checkpoint",
        saves="RUN/eval/localization.json (the report's; --dataset: localization_<dataset>.json)",
        batch_size=32,
    )
    sp.add_argument(
        "--split",
        choices=["auto", "val", "all"],
        default="auto",
        help="auto (default): the run's held-out clips if DATA is its training folder, else all",
    )
    sp.add_argument(
        "--times", dest="times_per_clip", type=int, default=5, help="sample times per clip (5)"
    )
    sp.add_argument(
        "--mode", choices=MAP_MODES, default="full", help="whole frame (default) or centre crop"
    )
    sp.add_argument(
        "--threshold",
        default="median",
        help="cIoU binarisation: median (default, top half), lvs, or a number in [0, 1] "
        "(on the min-max normalised map); fixed 0.5 is always reported too",
    )
    sp.add_argument("--max-clips", type=int, help="only the first N clips")
    sp.add_argument("--seed", type=int, default=0, help="seed of the random-map baseline")
    sp.add_argument(
        "--no-negatives",
        dest="negatives",
        action="store_false",
        help="skip the negative-audio maps (silence, absent class, other clip)",
    )
    sp.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="RUN",
        help="an L3-Net or AVE-Net run whose correspondence score is also tested on the "
        "negative sounds (repeatable)",
    )
    sp.add_argument(
        "--png-dir",
        metavar="DIR",
        help="write overlays of some samples here, and strips of the map for the true "
        "sound beside the maps for the negative sounds",
    )
    sp.add_argument("--png-count", type=int, default=12, help="how many overlays (default 12)")
    sp.add_argument(
        "--dataset",
        choices=["flickr", "vggss"],
        help="evaluate on a copy of the Flickr-SoundNet or VGG-SS benchmark in DATA, "
        "as the LVS / EZ-VSL code does (see above)",
    )
    sp.add_argument(
        "--gt-path",
        metavar="PATH",
        help="with --dataset: the Flickr XML folder (default DATA/Annotations) or the VGG-SS "
        "JSON (default DATA/vggss.json)",
    )
    sp.add_argument(
        "--test-list",
        metavar="CSV",
        help="with --dataset: the test ids (first column), e.g. flickr_test.csv; default: "
        "every annotated item with a frame and a sound",
    )
    sp.set_defaults(demo_defaults={d: sp.get_default(d) for d in DEMO_ONLY_OPTIONS})


# ---------------------------------------------------------------------------

PROBE_HELP = """\
Linear probe (L3's transfer experiments): features of a named layer (default conv4_2,
the last conv layer, max-pooled over space / frequency-time), standardised, and a
linear SVM or logistic regression, scored by k-fold cross-validation grouped by
file (pieces of one file never on both sides). Prints one JSON object with mean +-
std accuracy, per-fold accuracy, item/file/class counts, chance, and baselines on
the same items and folds: the same architecture with random weights, hand-made
features (audio: log-mel band mean and std; images: 8x8x8 RGB histogram) and the
majority label. --save keeps it in RUN/eval/probe_<modality>.json.

Layers (each branch): conv1_1 conv1_2 pool1 conv2_1 conv2_2 pool2 conv3_1 conv3_2
pool3 conv4_1 conv4_2.

Labels: DATA/annotations.jsonl (demo data: the object heard at the item's time),
--labels FILE (file,label), DATA/labels.csv, or the sub-folder name.

Published benchmarks: --dataset esc50 (DATA/meta/esc50.csv, DATA/audio/; --esc10 for
its ESC-10 subset) or urbansound8k (DATA/metadata/UrbanSound8K.csv,
DATA/audio/fold<k>/) reads DATA as the data set's authors publish it and runs
L3-Net's audio transfer protocol (Arandjelovic & Zisserman 2017): conv4_2 features of
every 1 s window every --hop s of each clip (a clip shorter than 1 s: one
zero-padded window), the classifier trained on the windows of the other official
folds, each clip's class from its windows' scores averaged, leave one official fold
out (5 for ESC-50, 10 for UrbanSound8K; --folds and --labels do not apply). The JSON
adds per-fold accuracies of the model and every baseline, the margin over the best
baseline with a 95% paired bootstrap interval over clips, and (ESC-50) the published
figures. --save keeps it in RUN/eval/probe_<dataset>.json (probe_esc10.json with --esc10).
"""


def cmd_eval_probe(args) -> int:
    from looklisten.evaluation.probe import evaluate_probe

    if args.esc10 and args.dataset not in (None, "esc50"):
        raise ValueError("--esc10 is a subset of ESC-50: use it with --dataset esc50")
    if args.esc10 and args.dataset is None:
        args.dataset = "esc50"
    if args.dataset is not None:
        if args.modality not in (None, "audio"):
            raise ValueError(f"--dataset {args.dataset} is a sound data set: --modality audio")
        args.modality = "audio"
        result = call(evaluate_probe, args, progress=show_progress(args))
        name = "esc10" if args.esc10 else args.dataset
        return finish_eval(args, result, f"probe_{name}.json")
    if args.modality is None:
        raise ValueError("--modality audio|image is required (unless --dataset is given)")
    result = call(evaluate_probe, args, progress=show_progress(args))
    return finish_eval(args, result, f"probe_{args.modality}.json")


def add_probe_cli(eval_subparsers) -> None:
    """Register ``probe`` under the ``looklisten eval`` command's subparsers."""

    sp = add_eval_parser(
        eval_subparsers,
        "probe",
        func=cmd_eval_probe,
        help="linear probe (SVM / logistic regression) on a layer's features, with baselines (JSON)",
        description=PROBE_HELP,
        data_help="folder of labelled media",
        saves="RUN/eval/probe_MODALITY.json (probe_DATASET.json)",
        hop=1.0,
        labels=True,
    )
    from looklisten.data.audio_benchmarks import DATASETS

    sp.add_argument(
        "--modality", choices=("audio", "image"), help="required unless --dataset (audio)"
    )
    sp.add_argument(
        "--dataset",
        choices=DATASETS,
        help="DATA is this published benchmark: its official folds, L3-Net's protocol",
    )
    sp.add_argument("--esc10", action="store_true", help="ESC-50's ESC-10 subset (esc10 True)")
    sp.add_argument("--layer", metavar="NAME", help="layer name (default conv4_2; see above)")
    sp.add_argument("--classifier", choices=CLASSIFIERS, default="svm", help="(svm)")
    sp.add_argument("--folds", type=int, default=5, help="cross-validation folds (5)")
    sp.add_argument("--seed", type=int, default=0, help="fold shuffling seed (0)")


# ---------------------------------------------------------------------------

AVC_HELP = """\
Audio-visual correspondence accuracy of any checkpoint (L3-Net, AVE-Net, AVOL-Net) on
every usable video of DATA (no split): --pairs fixed pairs of the shortcut-free
sampler with the checkpoint's saved audio, vision and sampler settings and half
positives, drawn from --seed like a run's validation pairs (the same pairs for every
checkpoint with the same input settings) and decoded like them. Prints one JSON
object: accuracy with a 95% bootstrap interval over videos, ROC AUC of the logit,
accuracy on positives and on negatives, the trivial baselines on the same pairs
(always yes, always no, a coin flip) and the margin over the best of them with its
interval. Files that cannot be decoded are skipped and listed.
"""


def cmd_eval_avc(args) -> int:
    from looklisten.evaluation.avc import evaluate_avc

    result = call(evaluate_avc, args, progress=show_progress(args))
    return finish_eval(args, result, "avc.json")


def add_avc_cli(eval_subparsers) -> None:
    """Register ``avc`` under the ``looklisten eval`` command's subparsers."""

    sp = add_eval_parser(
        eval_subparsers,
        "avc",
        func=cmd_eval_avc,
        help="audio-visual correspondence accuracy on fixed pairs, with baselines (JSON)",
        description=AVC_HELP,
        data_help="folder of videos (all of them are evaluated)",
        checkpoint_help="run or checkpoint dir (L3-Net, AVE-Net or AVOL-Net)",
        saves="RUN/eval/avc.json",
    )
    sp.add_argument("--pairs", type=int, default=2000, help="pairs to score (2000)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the pairs (0)")
    sp.add_argument(
        "--cache",
        choices=["auto", "memory", "files"],
        default="auto",
        help="decode the videos once into memory, or each pair from the files (auto: as train)",
    )
    sp.add_argument("--workers", type=int, help="data-loader processes (default: as train)")


# ---------------------------------------------------------------------------

SHORTCUT_HELP = """\
The shortcut audit (Objects that Sound, section 3.3). (a) An audio-only probe on the
pair sampler's own pairs (a random forest on the decoded window's spectrum, its
position in the video and its phase on the frame grid) predicting the AVC label: at
chance with the fix (sampler.frame_grid=true), above chance without. (b) Two short
L3-Net runs with and without the fix (OUT/frame_grid_true, OUT/frame_grid_false), each
scored on its own sampler's validation pairs and on the fixed sampler's (honest) ones.
Prints one JSON object and saves it to OUT/shortcut.json.
"""


def cmd_eval_shortcut(args) -> int:
    from looklisten.core.fileio import atomic_write_text
    from looklisten.evaluation.shortcut import evaluate_shortcut

    result = call(
        evaluate_shortcut, args, train_runs=not args.probe_only, progress=show_progress(args)
    )
    if not args.no_save:  # beside its runs, not in a RUN/eval: the audit trains its own
        atomic_write_text(Path(args.out) / "shortcut.json", json.dumps(result, indent=2) + "\n")
    return finish_eval(args, result)


def add_shortcut_cli(eval_subparsers) -> None:
    """Register ``shortcut`` under the ``looklisten eval`` command's subparsers."""
    from looklisten.core.config import list_presets

    sp = add_eval_parser(
        eval_subparsers,
        "shortcut",
        func=cmd_eval_shortcut,
        help="audit the frame-grid shortcut: audio-only probe and AVC runs with/without the fix (JSON)",
        description=SHORTCUT_HELP,
        data_help="folder of videos",
        checkpoint_help=None,
        saves="OUT/shortcut.json",
        batch_size=None,
    )
    sp.add_argument(
        "--out", required=True, metavar="DIR", help="where the runs and shortcut.json go"
    )
    sp.add_argument("--preset", choices=list_presets(), default="tiny", help="(tiny)")
    sp.add_argument("--steps", type=int, default=300, help="training steps per run (300)")
    sp.add_argument(
        "--pairs", type=int, default=3000, help="pairs per sampler for the probe (3000)"
    )
    sp.add_argument(
        "--val-pairs", type=int, help="validation pairs per run (default: the preset's)"
    )
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--probe-only", action="store_true", help="part (a) only: no training runs")


# ---------------------------------------------------------------------------

UNITS_HELP = """\
What the units learned: for every unit (channel) of each branch's last conv layer
(conv4_2, or --layer), the frames and 1 s sounds (every --hop s of the held-out videos
of RUN/split.json when DATA is the run's training folder, else of every file in DATA)
that excite it most (maximum of its map), and, where labels exist, its label
selectivity. Writes galleries for the --units most selective units per branch (image
units: PNG thumbnails with the unit's map overlaid; audio units: spectrogram PNGs with
the map and WAV snippets) into a temporary folder, or with --save under RUN/eval/units/,
and prints one JSON object (with --save also RUN/eval/units.json) listing the units,
most selective first.
"""


def cmd_eval_units(args) -> int:
    from looklisten.evaluation.units import evaluate_units

    out_dir = None
    if not args.save:  # the galleries go beside the run only with --save
        import tempfile

        out_dir = Path(tempfile.mkdtemp(prefix="looklisten-units-")) / "units"
    result = call(evaluate_units, args, out_dir=out_dir, progress=show_progress(args))
    if out_dir is not None:
        result["gallery_dir"] = str(out_dir)
    return finish_eval(args, result, "units.json")


def add_units_cli(eval_subparsers) -> None:
    """Register ``units`` under the ``looklisten eval`` command's subparsers."""

    sp = add_eval_parser(
        eval_subparsers,
        "units",
        func=cmd_eval_units,
        help="the frames and sounds that excite each unit most, label selectivity, galleries (JSON)",
        description=UNITS_HELP,
        data_help="folder of videos",
        saves="RUN/eval/units.json and the galleries in RUN/eval/units (without it the "
        "galleries go to a temporary folder, named in the JSON)",
        hop=1.0,
        labels=True,
    )
    sp.add_argument("--layer", metavar="NAME", help="layer of both branches (default conv4_2)")
    sp.add_argument("--top", type=int, default=8, help="items per unit (8)")
    sp.add_argument("--units", type=int, default=16, help="units per branch with a gallery (16)")
