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
* ``majority``: always predicting the most frequent label of the training folds.

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
    "collect_features",
    "evaluate_probe",
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
    from sklearn.exceptions import ConvergenceWarning

    accs = []
    for tr, te in splits:
        if len(np.unique(y[tr])) < 2:
            accs.append(float(np.mean(y[te] == y[tr][0])))
            continue
        clf = _classifier(classifier, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X[tr], y[tr])
        accs.append(float(np.mean(clf.predict(X[te]) == y[te])))
    return accs


def majority_accuracy(y: np.ndarray, splits) -> list[float]:
    """Accuracy of predicting each training fold's most frequent label."""
    accs = []
    for tr, te in splits:
        values, counts = np.unique(y[tr], return_counts=True)
        accs.append(float(np.mean(y[te] == values[np.argmax(counts)])))
    return accs


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
    from tqdm.auto import tqdm

    from looklisten.tasks.features import batches, iter_items

    failed: list[str] = []
    feats: dict[str, list] = {k: [] for k in featurizers}
    labs, groups, times = [], [], []

    def labelled():
        for i, t, item in iter_items(files, cfg, modality, hop, failed):
            lab = labels(files[i], t)
            if lab is not None:
                yield i, t, lab, item

    bar = tqdm(desc=f"{modality} items", unit="item", disable=not progress)
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
) -> dict[str, Any]:
    """Linear-probe accuracy of a checkpoint's features and of the baselines.

    The features, folds and classifier are those of the module docstring; the
    baselines are scored on the same items and folds.

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
        Fold shuffling seed.

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
    )

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    data = Path(data)
    if not data.is_dir():
        raise NotADirectoryError(f"{data}: not a folder")
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
        "accuracy": _summary(cross_validate(X["model"], y, splits, classifier, seed)),
        "baselines": {
            "random_weights": _summary(
                cross_validate(X["random_weights"], y, splits, classifier, seed),
                features=f"{layer} of the architecture with its initial random weights "
                f"(seed {cfg.train.seed})",
            ),
            "handmade": _summary(
                cross_validate(X["handmade"], y, splits, classifier, seed),
                features=handmade_description(modality, cfg),
            ),
            "majority": _summary(
                majority_accuracy(y, splits), features="the training folds' most frequent label"
            ),
        },
        "feature_dims": {k: int(v.shape[1]) for k, v in X.items()},
        "labels_from": lab.kind,
        "hop": hop,
        "data": str(data),
        "checkpoint": getattr(model, "checkpoint_path", str(checkpoint)),
        "failed": got["failed"],
        "seconds": round(time.time() - start, 1),
    }
    return result


# ---------------------------------------------------------------------------
# CLI
