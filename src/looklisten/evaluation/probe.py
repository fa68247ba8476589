"""Linear probes on a trunk's features (L3's transfer experiments), with baselines.

``looklisten eval probe DATA --checkpoint RUN --modality audio|image`` prints one
JSON object (and saves it to ``RUN/eval/probe_<modality>.json``): the accuracy of
a linear classifier (a linear SVM or logistic regression, on standardised
features) predicting each item's label from a named layer's features, over
k-fold cross-validation **grouped by file** (no file has items on both sides),
and, in the same run on the same items and folds:

* ``random_weights``: the same architecture with the random weights its training
  run started from (``create_model`` from the checkpoint's config, seeded with
  its ``train.seed``), same layer;
* ``handmade``: log-mel band mean and std over time (audio) or an 8x8x8 joint RGB
  colour histogram (images), see :mod:`looklisten.tasks.features`;
* ``raw_input``: the input itself, small: the log-mel spectrogram in 16 time bins
  (audio) or the 32x32 RGB pixels of the centre crop (images);
* ``majority``: always predicting the most frequent label of the training folds.

``margin``: the model's item accuracy (pooled over the test folds) minus that of
the best baseline, with a 95 % paired bootstrap interval over files.

Items and labels
----------------
Every file under DATA that can give the modality (videos, and audio files or
pictures) gives items every ``--hop`` seconds: the 1 s audio windows inside the
file (centres 0.5, 0.5 + hop, ...) or the frames shown at those times (a
picture gives one item). Labels: the demo data's ``annotations.jsonl`` (the
object heard at the item's time), a CSV ``file,label`` (``--labels``, or
``labels.csv`` in DATA) or the sub-folder of DATA holding the file
(:class:`looklisten.evaluation.retrieval.Labels`); items without a label are dropped.
Every file is used (the network never saw a label, and the probe's folds keep
files apart).

Published benchmarks (``--dataset``)
------------------------------------
``dataset="esc50"`` (``esc10=True`` for its ESC-10 subset) or ``"urbansound8k"``
runs L3-Net's audio transfer protocol (Arandjelović & Zisserman, "Look, Listen
and Learn", ICCV 2017, §4.2) on a user's copy of the data set as its authors
publish it (:mod:`looklisten.data.audio_benchmarks`, which names each data
set's paper):

* every clip gives its 1 s windows every ``hop`` seconds (default 1 s: not
  overlapping), through the same input rule as above (the model's
  ``cfg.audio`` window, the track resampled to its rate and made mono): the
  windows lying inside the clip, centres 0.5, 0.5 + hop, ...; **a clip shorter
  than one window gives one window, the clip followed by zeros**;
* features: the audio branch's ``layer`` (conv4_2) max-pooled over frequency
  and time, one vector per window;
* **leave one official fold out**: for each official fold k, the classifier is
  trained on the windows of the clips of the other folds (each window labelled
  with its clip's class) and tested on the clips of fold k;
* **clip-level prediction**: the class with the highest per-window score
  (``decision_function`` of the SVM, ``predict_proba`` of logistic regression)
  averaged over the clip's windows (:func:`clip_scores`); accuracy over clips,
  reported per fold and as the mean over the folds;
* baselines on the same clips and folds (random weights, hand-made features,
  the training folds' majority class), and the model's margin over the best of
  them with a paired bootstrap interval over clips.

Folds with no readable clip (a partial copy) are left out and named; the
published figures (``published``) are for the full ESC-50.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CLASSIFIERS",
    "grouped_folds",
    "cross_validate",
    "cross_predict",
    "collect_features",
    "evaluate_probe",
    "evaluate_benchmark",
    "window_scores",
    "clip_scores",
    "official_splits",
    "official_fold_accuracy",
    "majority_clip_accuracy",
    "PUBLISHED",
]

log = logging.getLogger(__name__)

CLASSIFIERS = ("svm", "logreg")


# ---------------------------------------------------------------------------
# Folds and classifiers
# ---------------------------------------------------------------------------


def grouped_folds(
    labels: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold splits that never put items of one group on both sides.

    Parameters
    ----------
    labels : (N,) array
        Class of each item.
    groups : (N,) array
        Group (file) of each item.
    folds : int
        Number of folds; reduced to the number of groups if there are fewer.
    seed : int
        Shuffling seed (:class:`sklearn.model_selection.StratifiedGroupKFold`).

    Returns
    -------
    list of (train indices, test indices)
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    labels, groups = np.asarray(labels), np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"cross-validation needs at least 2 files, got {n_groups}")
    k = max(2, min(int(folds), n_groups))
    _, class_counts = np.unique(labels, return_counts=True)
    if class_counts.max() >= k:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:  # every class is smaller than the number of folds: stratification is impossible
        cv = GroupKFold(n_splits=k)
    with warnings.catch_warnings():  # "the least populated class has only n members"
        warnings.simplefilter("ignore", UserWarning)
        splits = [(tr, te) for tr, te in cv.split(np.zeros(len(labels)), labels, groups)]
    for tr, te in splits:
        if set(groups[tr].tolist()) & set(groups[te].tolist()):  # cannot happen; be loud
            raise RuntimeError("a group is on both sides of a fold")
    return splits


def _classifier(kind: str, seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if kind == "svm":
        clf = LinearSVC(C=1.0, tol=1e-3, max_iter=2000, random_state=seed)
    elif kind == "logreg":
        clf = LogisticRegression(C=1.0, max_iter=2000)
    else:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {kind!r}")
    return make_pipeline(StandardScaler(), clf)


def _summary(accs: list[float], **extra) -> dict[str, Any]:
    a = np.asarray(accs, np.float64)
    return {
        "mean": round(float(a.mean()), 4),
        "std": round(float(a.std()), 4),
        "per_fold": [round(float(x), 4) for x in a],
        **extra,
    }


def cross_validate(
    X: np.ndarray, y: np.ndarray, splits, classifier: str = "svm", seed: int = 0
) -> list[float]:
    """Accuracy of a standardised linear classifier on each split's test items."""
    pred = cross_predict(X, y, splits, classifier, seed)
    return [float(np.mean(pred[te] == y[te])) for _, te in splits]


def cross_predict(
    X: np.ndarray, y: np.ndarray, splits, classifier: str = "svm", seed: int = 0
) -> np.ndarray:
    """Each item's label as predicted by the classifier of the split that tests it.

    Returns an object array (N,); items no split tests are None.
    """
    from sklearn.exceptions import ConvergenceWarning

    pred = np.full(len(y), None, dtype=object)
    for tr, te in splits:
        if len(np.unique(y[tr])) < 2:
            pred[te] = y[tr][0]
            continue
        clf = _classifier(classifier, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X[tr], y[tr])
        pred[te] = clf.predict(X[te])
    return pred


def majority_accuracy(y: np.ndarray, splits) -> list[float]:
    """Accuracy of predicting each training fold's most frequent label."""
    pred = majority_predict(y, splits)
    return [float(np.mean(pred[te] == y[te])) for _, te in splits]


def majority_predict(y: np.ndarray, splits) -> np.ndarray:
    """Each item's prediction by the most frequent label of its split's training items."""
    pred = np.full(len(y), None, dtype=object)
    for tr, te in splits:
        values, counts = np.unique(y[tr], return_counts=True)
        pred[te] = values[np.argmax(counts)]
    return pred


# ---------------------------------------------------------------------------
# Official folds, clip-level scores (published benchmarks)
# ---------------------------------------------------------------------------

#: Published accuracies on ESC-50 (5 official folds), from L3-Net's audio transfer table.
PUBLISHED = {
    "esc50": {
        "l3_net": 0.793,
        "soundnet": 0.742,
        "random_init": 0.625,
        "source": "ESC-50, L3-Net, Arandjelović & Zisserman 2017 (Look, Listen and Learn, "
        "ICCV, audio transfer table): L3-Net, SoundNet and a randomly initialised L3 "
        "audio network",
    }
}


def window_scores(clf, X: np.ndarray) -> np.ndarray:
    """Per-class scores of a fitted classifier, one row per window.

    Parameters
    ----------
    clf : fitted sklearn classifier (or pipeline) with ``classes_``
    X : (W, D) array

    Returns
    -------
    np.ndarray, shape (W, C), float64
        Column ``c`` scores ``clf.classes_[c]``: ``decision_function`` where the
        classifier has one (a binary ``(W,)`` score ``s`` becomes ``[-s, s]``),
        else ``predict_proba``.
    """
    if hasattr(clf, "decision_function"):
        s = np.asarray(clf.decision_function(X), np.float64)
        return np.stack([-s, s], axis=1) if s.ndim == 1 else s
    return np.asarray(clf.predict_proba(X), np.float64)


def clip_scores(scores: np.ndarray, window_clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average the windows' class scores over each clip.

    Parameters
    ----------
    scores : (W, C) array
        Per-window class scores.
    window_clip : (W,) int array
        The clip of each window.

    Returns
    -------
    clips : np.ndarray, shape (K,)
        The clips, sorted.
    mean : np.ndarray, shape (K, C)
        Row k: the mean score of clip ``clips[k]``'s windows.
    """
    scores = np.asarray(scores, np.float64)
    clips, inv = np.unique(np.asarray(window_clip), return_inverse=True)
    sums = np.zeros((len(clips), scores.shape[1]))
    np.add.at(sums, inv, scores)
    return clips, sums / np.bincount(inv, minlength=len(clips))[:, None]


def official_splits(
    window_clip: np.ndarray, clip_folds: np.ndarray, folds
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-one-official-fold-out splits of windows.

    Parameters
    ----------
    window_clip : (W,) int array
        Clip index of each window.
    clip_folds : (N,) int array
        Official fold of each clip.
    folds : sequence of int
        The folds to test, each in turn.

    Returns
    -------
    list of (train window indices, test window indices), one per fold of ``folds``
        Split k tests the windows of the clips of fold k and trains on all others.
    """
    window_fold = np.asarray(clip_folds)[np.asarray(window_clip)]
    return [(np.flatnonzero(window_fold != k), np.flatnonzero(window_fold == k)) for k in folds]


def official_fold_accuracy(
    X: np.ndarray,
    window_clip: np.ndarray,
    clip_labels: np.ndarray,
    clip_folds: np.ndarray,
    folds,
    classifier: str = "svm",
    seed: int = 0,
) -> tuple[list[float], np.ndarray]:
    """Leave-one-official-fold-out clip accuracy of a linear classifier on window features.

    Parameters
    ----------
    X : (W, D) array
        One feature vector per window.
    window_clip : (W,) int array
        Clip index (into ``clip_labels``) of each window.
    clip_labels, clip_folds : (N,) arrays
        Class and official fold of every clip (clips without windows are ignored).
    folds : sequence of int
        The folds to test, each in turn.
    classifier : "svm" or "logreg"

    Returns
    -------
    per_fold : list of float
        Clip accuracy on each fold of ``folds``.
    correct : np.ndarray, shape (N,), float
        1.0 / 0.0 for each tested clip, NaN for clips without windows or outside ``folds``.
    """
    from sklearn.exceptions import ConvergenceWarning

    window_clip = np.asarray(window_clip)
    clip_labels, clip_folds = np.asarray(clip_labels), np.asarray(clip_folds)
    y = clip_labels[window_clip]
    correct = np.full(len(clip_labels), np.nan)
    accs = []
    for train, test in official_splits(window_clip, clip_folds, folds):
        if len(np.unique(y[train])) < 2:
            ids = np.unique(window_clip[test])
            pred = np.full(len(ids), y[train][0], dtype=object)
        else:
            clf = _classifier(classifier, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X[train], y[train])
            ids, mean = clip_scores(window_scores(clf, X[test]), window_clip[test])
            pred = clf.classes_[mean.argmax(axis=1)]
        correct[ids] = pred == clip_labels[ids]
        accs.append(float(correct[ids].mean()))
    return accs, correct


def majority_clip_accuracy(
    clip_labels: np.ndarray, clip_folds: np.ndarray, present: np.ndarray, folds
) -> tuple[list[float], np.ndarray]:
    """Clip accuracy of predicting the most frequent class of the training folds' clips.

    ``present`` (N,) bool marks the clips that gave windows; returns as
    :func:`official_fold_accuracy` (ties: the first class in sorted order).
    """
    clip_labels, clip_folds = np.asarray(clip_labels), np.asarray(clip_folds)
    correct = np.full(len(clip_labels), np.nan)
    accs = []
    for k in folds:
        test = present & (clip_folds == k)
        values, counts = np.unique(clip_labels[present & ~test], return_counts=True)
        correct[test] = clip_labels[test] == values[np.argmax(counts)]
        accs.append(float(correct[test].mean()))
    return accs, correct


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


def collect_features(
    files: list[str],
    labels,
    featurizers: dict[str, Any],
    cfg,
    modality: str,
    hop: float = 1.0,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, Any]:
    """Decode the labelled items of ``files`` once and compute every featurizer on them.

    Parameters
    ----------
    files : list of str
    labels : callable (file, time) -> label or None
    featurizers : dict name -> callable(list of items) -> (B, D) array
    cfg : Config
        Preprocessing (the checkpoint's).
    modality : "audio" or "image"

    Returns
    -------
    dict
        ``features`` {name: (N, D)}, ``labels`` (N,), ``groups`` (N,) file index,
        ``times`` (N,), ``failed`` list of "path: reason".
    """
    from looklisten.core.progress import progress_bar
    from looklisten.tasks.features import batches, iter_items

    failed: list[str] = []
    feats: dict[str, list] = {k: [] for k in featurizers}
    labs, groups, times = [], [], []

    def labelled():
        for i, t, item in iter_items(files, cfg, modality, hop, failed):
            lab = labels(files[i], t)
            if lab is not None:
                yield i, t, lab, item

    bar = progress_bar(desc=f"{modality} items", unit="item", disable=not progress)
    for batch in batches(labelled(), batch_size):
        items = [b[3] for b in batch]
        for name, fn in featurizers.items():
            feats[name].append(np.asarray(fn(items), np.float32))
        labs += [b[2] for b in batch]
        groups += [b[0] for b in batch]
        times += [b[1] for b in batch]
        bar.update(len(batch))
    bar.close()
    return {
        "features": {
            k: (np.concatenate(v) if v else np.zeros((0, 1), np.float32)) for k, v in feats.items()
        },
        "labels": np.asarray(labs, dtype=object),
        "groups": np.asarray(groups, np.int64),
        "times": np.asarray(times, np.float64),
        "failed": failed,
    }


# ---------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------


def evaluate_probe(
    data: str | os.PathLike,
    checkpoint,
    modality: str = "audio",
    *,
    layer: str | None = None,
    classifier: str = "svm",
    folds: int = 5,
    labels: str | os.PathLike | None = None,
    hop: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
    dataset: str | None = None,
    esc10: bool = False,
) -> dict[str, Any]:
    """Linear-probe accuracy of a checkpoint's features and of the baselines.

    The features, folds and classifier are those of the module docstring; the
    baselines are scored on the same items and folds. With ``dataset``, DATA is
    a published benchmark and its official folds are used (``folds`` and
    ``labels`` do not apply; audio only).

    Parameters
    ----------
    data : path-like
        Folder of labelled media (see the module docstring).
    checkpoint : path-like
        Run or checkpoint directory.
    modality : "audio" or "image"
    layer : str, optional
        Layer name (:func:`looklisten.tasks.features.layer_names`; default conv4_2).
    classifier : "svm" or "logreg"
    folds : int
        Cross-validation folds, grouped by file.
    labels : path-like, optional
        Labels (``file,label``) or an annotations.jsonl.
    hop : float
        Seconds between items in a file.
    seed : int
        Fold shuffling seed (and the classifier's).
    dataset : {"esc50", "urbansound8k"}, optional
        Read DATA as this benchmark (:mod:`looklisten.data.audio_benchmarks`) and
        run L3-Net's protocol on its official folds (module docstring).
    esc10 : bool
        With ``dataset="esc50"``: its ESC-10 subset.

    Returns
    -------
    dict
        JSON-able result (see ``looklisten eval probe --help``).
    """
    from looklisten.data.labels import Labels
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.features import (
        check_layer,
        handmade_description,
        handmade_features,
        layer_features,
        media_files,
        random_model,
        raw_input_description,
        raw_input_features,
    )

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    data = Path(data)
    if not data.is_dir():
        raise NotADirectoryError(f"{data}: not a folder")
    if dataset is not None or esc10:
        if modality != "audio":
            raise ValueError(
                f"the benchmarks are sound data sets: modality must be audio, got {modality!r}"
            )
        if labels is not None:
            raise ValueError("a benchmark's labels come from its annotation file: drop --labels")
        return evaluate_benchmark(
            data,
            checkpoint,
            dataset or "esc50",
            esc10=esc10,
            layer=layer,
            classifier=classifier,
            hop=hop,
            seed=seed,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    start = time.time()
    model = get_model(checkpoint, device)
    cfg = model.cfg
    layer = check_layer(model, modality, layer)
    dev = next(model.parameters()).device
    rnd = random_model(cfg, dev)
    lab = Labels(data, labels)
    files = media_files(data, modality)
    if not files:
        raise ValueError(f"{data}: no {modality} media found")
    got = collect_features(
        files,
        lab,
        {
            "model": lambda items: layer_features(model, modality, items, layer),
            "random_weights": lambda items: layer_features(rnd, modality, items, layer),
            "handmade": lambda items: handmade_features(modality, items, cfg),
            "raw_input": lambda items: raw_input_features(modality, items, cfg),
        },
        cfg,
        modality,
        hop,
        batch_size,
        progress,
    )
    y, groups = got["labels"], got["groups"]
    if len(y) == 0:
        raise ValueError(f"{data}: no labelled {modality} items (labels from {lab.kind})")
    classes, counts = np.unique(y.astype(str), return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"{data}: a probe needs at least 2 labels, found {classes.tolist()}")
    if got["failed"]:
        log.warning("%d file(s) could not be used: %s", len(got["failed"]), got["failed"][:3])
    splits = grouped_folds(y.astype(str), groups, folds, seed)
    y = y.astype(str)
    X = got["features"]
    pred = {k: cross_predict(v, y, splits, classifier, seed) for k, v in X.items()}
    pred["majority"] = majority_predict(y, splits)
    tested = np.zeros(len(y), bool)
    for _, te in splits:
        tested[te] = True
    correct = {k: (p[tested] == y[tested]).astype(np.float64) for k, p in pred.items()}

    def fold_accuracy(name: str, **extra) -> dict[str, Any]:
        return _summary([float(np.mean(pred[name][te] == y[te])) for _, te in splits], **extra)

    baselines = {
        "random_weights": fold_accuracy(
            "random_weights",
            features=f"{layer} of the architecture with its initial random weights "
            f"(seed {cfg.train.seed})",
        ),
        "handmade": fold_accuracy("handmade", features=handmade_description(modality, cfg)),
        "raw_input": fold_accuracy("raw_input", features=raw_input_description(modality, cfg)),
        "majority": fold_accuracy("majority", features="the training folds' most frequent label"),
    }
    means = {"model": 0.0, **{k: v["mean"] for k, v in baselines.items()}}
    margin = _margin(correct, means, seed, groups=groups[tested], unit="files")
    result = {
        "evaluation": "probe",
        "protocol": (
            f"linear probe ({'linear SVM, C=1' if classifier == 'svm' else 'logistic regression, C=1'}"
            f" on standardised features) predicting each item's label from the {modality} branch's "
            f"{layer} max-pooled over {'frequency and time' if modality == 'audio' else 'space'}; "
            f"{len(splits)}-fold cross-validation stratified and grouped by file (no file on both "
            f"sides); items every {hop:g} s of every file in DATA; baselines on the same items and "
            "folds: random weights (same architecture and seed), hand-made features, majority label"
        ),
        "modality": modality,
        "layer": layer,
        "classifier": classifier,
        "folds": len(splits),
        "items": int(len(y)),
        "files": int(len(np.unique(groups))),
        "classes": int(len(classes)),
        "class_counts": {str(c): int(n) for c, n in zip(classes, counts)},
        "chance": round(1.0 / len(classes), 4),
        "accuracy": fold_accuracy("model"),
        "baselines": baselines,
        "margin": margin,
        "feature_dims": {k: int(v.shape[1]) for k, v in X.items()},
        "labels_from": lab.kind,
        "hop": hop,
        "data": str(data),
        "checkpoint": getattr(model, "checkpoint_path", str(checkpoint)),
        "failed": got["failed"],
        "seconds": round(time.time() - start, 1),
    }
    return result


def _benchmark_features(bench, model, rnd, layer: str, hop: float, batch_size, progress):
    """Window features of every clip: model, random weights, hand-made (collect_features)."""
    from looklisten.tasks.features import handmade_features, layer_features

    label = {c.path: c.label for c in bench.clips}
    return collect_features(
        [c.path for c in bench.clips],
        lambda f, t: label[f],
        {
            "model": lambda items: layer_features(model, "audio", items, layer),
            "random_weights": lambda items: layer_features(rnd, "audio", items, layer),
            "handmade": lambda items: handmade_features("audio", items, model.cfg),
        },
        model.cfg,
        "audio",
        hop,
        batch_size,
        progress,
    )


def _margin(
    correct: dict[str, np.ndarray],
    means: dict[str, float],
    seed: int,
    groups: np.ndarray | None = None,
    unit: str = "clips",
) -> dict:
    """Model minus the best baseline (by mean fold accuracy), paired bootstrap over
    ``groups`` (default: each item its own group; ``unit`` names them)."""
    from looklisten.evaluation.metrics import paired_bootstrap

    best = max((k for k in means if k != "model"), key=lambda k: means[k])
    if groups is None:
        groups = np.arange(len(correct["model"]))
    item = "clip" if unit == "clips" else "item"
    boot = paired_bootstrap(correct["model"], correct[best], groups, seed=seed)
    return {
        "over": best,
        "difference": round(boot["difference"], 4),
        "ci": [round(x, 4) for x in boot["ci"]],
        "level": boot["level"],
        "p_not_better": round(boot["p_not_better"], 4),
        unit: boot["groups"],
        "resamples": boot["resamples"],
        "what": f"{item} accuracy (pooled over the test folds) of the model minus that of the "
        f"best baseline ({best}); a paired bootstrap over {unit}, each resample drawing "
        f"{unit} with replacement",
    }


def evaluate_benchmark(
    data: str | os.PathLike,
    checkpoint,
    dataset: str = "esc50",
    *,
    esc10: bool = False,
    layer: str | None = None,
    classifier: str = "svm",
    hop: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """L3-Net's audio transfer protocol on a published benchmark (module docstring).

    Parameters
    ----------
    data : path-like
        The data set's folder, as published (:mod:`looklisten.data.audio_benchmarks`).
    checkpoint : path-like or AVNet
    dataset : {"esc50", "urbansound8k"}
    esc10 : bool
        ESC-50's ESC-10 subset.
    layer, classifier, hop, seed, batch_size, device, progress
        As :func:`evaluate_probe`.

    Returns
    -------
    dict
        JSON-able: ``dataset``, ``protocol``, ``folds`` (official, tested),
        ``clips``, ``windows``, ``accuracy`` and ``baselines`` (mean, std,
        per_fold, clip_accuracy), ``per_fold`` (clips and every method's
        accuracy per fold), ``margin`` (over the best baseline, with its
        interval), ``margins``, ``chance``, ``published`` (ESC-50 only) ...
    """
    from looklisten.data.audio_benchmarks import read_benchmark
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.features import check_layer, handmade_description, random_model

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    start = time.time()
    bench = read_benchmark(dataset, data, esc10)
    model = get_model(checkpoint, device)
    layer = check_layer(model, "audio", layer)
    rnd = random_model(model.cfg, next(model.parameters()).device)
    got = _benchmark_features(bench, model, rnd, layer, hop, batch_size, progress)
    wclip = got["groups"]
    labels = np.asarray([c.label for c in bench.clips], dtype=object).astype(str)
    clip_folds = np.asarray([c.fold for c in bench.clips], np.int64)
    present = np.zeros(len(bench.clips), bool)
    present[wclip] = True
    folds = [k for k in bench.folds if (present & (clip_folds == k)).any()]
    if len(folds) < 2:
        raise ValueError(
            f"{data}: clips of at least 2 official folds are needed, got folds {folds} "
            f"({len(got['failed'])} file(s) could not be decoded)"
        )
    failed = bench.failed + got["failed"]
    if failed:
        log.warning("%d file(s) could not be used: %s", len(failed), failed[:3])
    X = got["features"]
    per, correct = {}, {}
    for name in ("model", "random_weights", "handmade"):
        per[name], correct[name] = official_fold_accuracy(
            X[name], wclip, labels, clip_folds, folds, classifier, seed
        )
    per["majority"], correct["majority"] = majority_clip_accuracy(
        labels, clip_folds, present, folds
    )
    summary = {
        k: _summary(per[k], clip_accuracy=round(float(np.nanmean(correct[k])), 4)) for k in per
    }
    means = {k: float(np.mean(v)) for k, v in per.items()}
    classes, counts = np.unique(labels[present], return_counts=True)
    n_windows = np.bincount(wclip, minlength=len(bench.clips))[present]
    clf_text = "linear SVM, C=1" if classifier == "svm" else "logistic regression, C=1"
    return {
        "evaluation": "probe",
        "dataset": bench.dataset,
        "protocol": (
            f"{bench.protocol}. Here: the audio branch's {layer} max-pooled over frequency and "
            f"time on every 1 s window every {hop:g} s of each clip (a clip shorter than a "
            f"window: one zero-padded window); a {clf_text} on standardised features, trained "
            "on the windows of the other official folds (each window labelled with its "
            "clip's class), tested on each fold in turn; a clip's class is the highest "
            f"{'decision_function' if classifier == 'svm' else 'predict_proba'} score averaged "
            "over its windows; accuracy over clips, mean over the folds; baselines on the "
            "same clips and folds: random weights (same architecture and seed), hand-made "
            "features, the training folds' majority class"
        ),
        "modality": "audio",
        "layer": layer,
        "classifier": classifier,
        "folds": folds,
        "folds_without_clips": [k for k in bench.folds if k not in folds],
        "clips": int(present.sum()),
        "windows": int(len(wclip)),
        "windows_per_clip": {"min": int(n_windows.min()), "max": int(n_windows.max())},
        "classes": int(len(classes)),
        "class_counts": {str(c): int(n) for c, n in zip(classes, counts)},
        "chance": round(1.0 / len(classes), 4),
        "accuracy": summary["model"],
        "baselines": {
            "random_weights": {
                **summary["random_weights"],
                "features": f"{layer} of the architecture with its initial random weights "
                f"(seed {model.cfg.train.seed})",
            },
            "handmade": {
                **summary["handmade"],
                "features": handmade_description("audio", model.cfg),
            },
            "majority": {
                **summary["majority"],
                "features": "the training folds' most frequent class",
            },
        },
        "per_fold": {
            str(k): {
                "clips": int((present & (clip_folds == k)).sum()),
                **{name: round(per[name][i], 4) for name in per},
            }
            for i, k in enumerate(folds)
        },
        "margin": _margin(correct, means, seed),
        "margins": {k: round(means["model"] - means[k], 4) for k in means if k != "model"},
        "published": PUBLISHED.get(bench.dataset),
        "feature_dims": {k: int(v.shape[1]) for k, v in X.items()},
        "hop": hop,
        "data": str(data),
        "annotations": bench.annotations,
        "listed": bench.listed,
        "checkpoint": getattr(model, "checkpoint_path", str(checkpoint)),
        "failed": failed,
        "seconds": round(time.time() - start, 1),
    }


# ---------------------------------------------------------------------------
# CLI
