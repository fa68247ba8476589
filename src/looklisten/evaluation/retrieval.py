"""Cross-modal retrieval evaluation (Objects that Sound, section 4.2), with baselines.

``looklisten eval retrieval DATA --checkpoint RUN [--baseline-checkpoint L3RUN]``
prints one JSON object: nDCG@30 and recall@1/5/10 for image->image,
image->audio, audio->image and audio->audio retrieval of the model, and, in
the same run and on the same items, the baselines of the paper:

* ``random``: random unit vectors for the same items (same labels, same groups);
* ``l3``: an L3-Net's features (conv4_2 max-pooled) used as embeddings as they
  are (``raw``), and projected into a shared space by CCA fitted on training
  pairs (``cca``: the paper's "L3-Net + CCA"). Without ``--baseline-checkpoint``
  it is ``null`` (with a note).

Items and labels
----------------
For each evaluation video, items are taken at the centres of the 1 s windows
lying inside the clip, every ``--hop`` seconds (default 1 s:
0.5, 1.5, 2.5, ... s): the frame shown at that time and the 1 s of audio centred
there (see :mod:`looklisten.tasks.embed`). Labels (:class:`Labels`):

* demo data (``annotations.jsonl`` in DATA): the label of the object *heard* at
  that time (:func:`looklisten.data.demo_data.label_at`), for the image and the audio
  alike;
* a CSV ``file,label`` (``--labels FILE.csv``, or ``labels.csv`` in DATA);
* otherwise the name of the sub-folder of DATA that holds the file.

A query never retrieves items of its own video (the group), as in the paper;
relevance is 1 for the same label, 0 otherwise ("flat", the default).

Graded relevance with the AudioSet ontology
-------------------------------------------
With ``--ontology ontology.json`` (AudioSet's class graph, see
:mod:`looklisten.data.ontology`) an item's label is a *set* of ontology classes
(from ``--labels``: an AudioSet segment CSV matched by YouTube id, or a
``file,labels`` CSV of ids or names; demo annotations and folder names are
mapped to classes by name), and relevance is graded (:func:`ontology_relevance`):

* two classes ``a``, ``b``: ``r(a, b) = max(0, C - d(a, b)) / C`` with ``d``
  the tree distance in the ontology (edges from ``a`` up to a common ancestor
  and down to ``b``, the best path through the graph; a virtual root joins the
  top-level classes) and ``C = 20``: 1 for the same class, 0.95 for parent and
  child, 0.9 for siblings;
* an item ``x`` for a query ``q``: the mean, over the query's classes, of the
  best ``r`` to any of the item's classes (1 when the item has all of them).

*Objects that Sound* grades relevance with the ontology for its nDCG@30, but
its exact formula could not be retrieved here: two secondary sources (a
summary of the paper and a third-party reproduction) describe it as ``C - d``
with ``d`` the ontology tree distance (the summary gives ``C = 20``); how label
*sets* are combined is this package's choice. The published numbers
(``published`` in the JSON) are on AudioSet-Instruments, not on your data.
nDCG is unchanged by scaling every relevance by ``1 / C``. recall@k counts a
hit when an item of relevance 1 is in the top ``k``.

Which videos
------------
If DATA is the folder the run was trained on (``RUN/manifest.jsonl``), the
held-out videos of ``RUN/split.json`` are evaluated and CCA is fitted on the
training videos; otherwise every video in DATA is evaluated and CCA is fitted on
the training videos of the baseline run (from its own data folder), or, when
those cannot be found, DATA is split in two halves by video (CCA on one, every
model evaluated on the other) and the JSON says so.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from looklisten.data.labels import Labels
from looklisten.data.ontology import LabelSets, Ontology, load_ontology
from looklisten.data.splits import list_videos, run_split, same_dir

__all__ = [
    "Labels",
    "evaluate_retrieval",
    "collect_items",
    "ontology_relevance",
    "OntologyLabels",
    "PUBLISHED",
]

log = logging.getLogger(__name__)

#: The ``C`` of the graded relevance ``max(0, C - d) / C``.
RELEVANCE_C = 20

RELEVANCE_RULE = (
    "class to class: max(0, C - d) / C with d the tree distance in the ontology (edges up to "
    "a common ancestor and down, best path through the graph, a virtual root above the "
    "top-level classes) and C = {c}; item to query: mean over the query's classes of the best "
    "match among the item's classes (1 = the item has every class of the query). recall@k: a "
    "hit is an item of relevance 1. The paper's exact formula could not be retrieved here: "
    "secondary sources describe it as C - d with the ontology tree distance (C = 20); the "
    "combination of label sets is this package's choice"
)

#: Objects that Sound (Arandjelovic & Zisserman, ECCV 2018), Table 1: nDCG@30.
PUBLISHED = {
    "source": "Objects that Sound (Arandjelovic & Zisserman, ECCV 2018), Table 1, nDCG@30",
    "note": "measured on the AudioSet-Instruments test set (110 classes, 10 s clips) with "
    "the paper's ontology relevance: for orientation, not comparable with other data",
    "ave_net": {"im2im": 0.604, "im2aud": 0.561, "aud2im": 0.587, "aud2aud": 0.665},
    "l3_cca": {"im2im": 0.578, "im2aud": 0.531, "aud2im": 0.560, "aud2aud": 0.649},
    "random": {"im2im": 0.407, "im2aud": 0.407, "aud2im": 0.407, "aud2aud": 0.407},
}


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


class OntologyLabels:
    """Label sets of media files as ontology classes, as one string per item.

    A CSV ``source`` (default: ``root/labels.csv`` when there is no
    ``root/annotations.jsonl``) is read by
    :class:`looklisten.data.ontology.LabelSets` (AudioSet segments or
    ``file,labels``); anything else (demo annotations, sub-folder names) by
    :class:`Labels`, each label mapped to the class of that id or name. A label set is returned as its sorted ids joined by ``;``
    (``None`` for an unlabelled file).
    """

    def __init__(self, root, source, onto: Ontology):
        self.onto = onto
        src = Path(source) if source is not None else None
        root = Path(root)
        if src is None and not (root / "annotations.jsonl").is_file():
            src = root / "labels.csv" if (root / "labels.csv").is_file() else None
        if src is not None and src.suffix.lower() == ".csv":
            self._sets: LabelSets | None = LabelSets(root, src, onto)
            self._flat = None
            self.kind = self._sets.kind
        else:
            self._sets, self._flat = None, Labels(root, source)
            self.kind = f"{self._flat.kind} (names mapped to ontology classes)"

    def __call__(self, file, t: float = 0.0) -> str | None:
        if self._sets is not None:
            ids = self._sets(file, t)
        else:
            name = self._flat(file, t)
            if name is None:
                return None
            cid = self.onto.resolve(name)
            if cid is None:
                raise ValueError(
                    f"{file}: label {name!r} is not a class id or name of {self.onto.path}"
                )
            ids = (cid,)
        return ";".join(sorted(ids)) if ids else None


def ontology_relevance(
    onto: Ontology, label_sets: list[list[str]], c: float = RELEVANCE_C
) -> np.ndarray:
    """Graded relevance between label sets, from the ontology's tree distance.

    ``r(a, b) = max(0, c - d(a, b)) / c`` between classes (``d``:
    :meth:`Ontology.distance`), and between sets ``R[i, j]`` = the mean over
    the classes ``a`` of set ``i`` of ``max_{b in set j} r(a, b)``.

    Parameters
    ----------
    onto : Ontology
    label_sets : list of list of str, length U
        Non-empty sets of class ids.
    c : float
        The constant ``C``.

    Returns
    -------
    np.ndarray, shape (U, U), float64
        ``R[i, j]``: relevance of an item with set ``j`` to a query with set
        ``i``, in [0, 1]; 1 when set ``j`` holds every class of set ``i``.
    """
    if not c > 0:
        raise ValueError(f"the relevance constant C must be > 0, got {c}")
    classes = sorted({a for s in label_sets for a in s})
    index = {a: i for i, a in enumerate(classes)}
    n = len(classes)
    if not n:
        return np.zeros((len(label_sets), len(label_sets)))
    r = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            d = onto.distance(classes[i], classes[j])
            r[i, j] = r[j, i] = max(0.0, c - d) / c
    member = np.zeros((len(label_sets), n))
    for u, s in enumerate(label_sets):
        if not s:
            raise ValueError("empty label set")
        member[u, [index[a] for a in s]] = 1.0
    # best[a, j] = max over the classes b of set j of r(a, b)   (r >= 0)
    best = np.stack([(member * r[a][None, :]).max(axis=1) for a in range(n)])
    return (member @ best) / member.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# Which videos
# ---------------------------------------------------------------------------


def choose_videos(data: str | os.PathLike, checkpoint, baseline_checkpoint=None) -> dict[str, Any]:
    """Evaluation videos and CCA training videos (absolute paths), and how they were chosen."""
    data = Path(data)
    root, split = run_split(checkpoint)
    if split is not None and same_dir(root, data):
        ev = [str(data / p) for p in split["val"]]
        tr = [str(data / p) for p in split["train"]]
        how = "held-out videos of RUN/split.json ('val'); CCA fitted on its 'train' videos"
        if baseline_checkpoint is not None:
            b_root, b_split = run_split(baseline_checkpoint)
            if b_split is not None and same_dir(b_root, data):
                evset = set(split["val"])
                tr_b = [str(data / p) for p in b_split["train"] if p not in evset]
                if tr_b:
                    tr = tr_b
                    how = (
                        "held-out videos of RUN/split.json ('val'); CCA fitted on the baseline "
                        "run's training videos (minus the evaluation videos)"
                    )
        return {"eval": ev, "cca_train": tr, "selection": how}
    videos = [str(data / p) for p in list_videos(data)]
    if not videos:
        raise ValueError(f"{data}: no videos found")
    if baseline_checkpoint is None:  # nothing to fit: evaluate everything
        return {"eval": videos, "cca_train": [], "selection": "every video in DATA"}
    b_root, b_split = run_split(baseline_checkpoint)
    if b_split is not None and b_root is not None and b_root.is_dir():
        evset = {Path(v).resolve() for v in videos}
        tr = [str(b_root / p) for p in b_split["train"]]
        tr = [p for p in tr if Path(p).resolve() not in evset]
        if tr:
            return {
                "eval": videos,
                "cca_train": tr,
                "selection": "every video in DATA; CCA fitted on the baseline run's "
                "training videos (its own data folder)",
            }
    rng = np.random.default_rng(0)
    order = rng.permutation(len(videos))
    half = len(videos) // 2
    return {
        "eval": [videos[i] for i in sorted(order[half:])],
        "cca_train": [videos[i] for i in sorted(order[:half])],
        "selection": "DATA is not the run's training folder and no baseline training split "
        "was found: videos split in two halves (seed 0); CCA fitted on one, every model "
        "evaluated on the other",
    }


# ---------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------


def collect_items(
    videos: list[str],
    model,
    labels: Labels | None,
    hop: float = 1.0,
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "embed",
) -> dict[str, Any]:
    """Embed items (frame + 1 s of audio) every ``hop`` s of each video.

    Items are the centres of the full 1 s windows inside each clip
    (``center=False``). Items without a label are dropped (when ``labels``).

    Returns
    -------
    dict
        ``image`` (N, D), ``audio`` (N, D), ``labels`` (N,) object,
        ``groups`` (N,) int (video index), ``times`` (N,), ``files`` (N,),
        ``failed``: list of "path: reason" of unusable videos.
    """
    from looklisten.core.progress import progress_bar
    from looklisten.tasks.embed import embed_many

    img, aud, labs, groups, times, files, failed = [], [], [], [], [], [], []
    results: dict[int, dict] = {}
    bar = progress_bar(total=len(videos), desc=desc, unit="video", disable=not progress)
    for key, res, err in embed_many(videos, model, hop=hop, center=False, batch_size=batch_size):
        bar.update()
        if err is not None:
            failed.append(str(err))
        elif res["modality"] != "video" or res["audio_embedding"] is None:
            failed.append(f"{videos[key]}: not a video with audio ({res['modality']})")
        else:
            results[key] = res
    bar.close()
    for key in sorted(results):
        res = results[key]
        for i, t in enumerate(res["timestamps"]):
            lab = labels(videos[key], float(t)) if labels is not None else None
            if labels is not None and lab is None:
                continue
            img.append(res["image_embedding"][i])
            aud.append(res["audio_embedding"][i])
            labs.append(lab)
            groups.append(key)
            times.append(float(t))
            files.append(videos[key])
    dim = model.cfg.model.embed_dim if model.cfg.model.arch == "ave" else model.cfg.model.widths[-1]
    return {
        "image": np.asarray(img, np.float32).reshape(-1, dim),
        "audio": np.asarray(aud, np.float32).reshape(-1, dim),
        "labels": np.asarray(labs, dtype=object),
        "groups": np.asarray(groups, np.int64),
        "times": np.asarray(times),
        "files": files,
        "failed": failed,
    }


def _num(v: Any, digits: int = 4) -> Any:
    """Round floats; NaN (no query had a relevant item) becomes None (JSON null)."""
    if isinstance(v, float):
        return round(v, digits) if math.isfinite(v) else None
    return v


def _clean(scores: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        direction: {
            k: _num(v)
            for k, v in d.items()
            if k not in ("n_queries", "n_evaluated", "n_evaluated_recall", "per_query")
        }
        for direction, d in scores.items()
    }


def _grading(
    labs: np.ndarray, onto: Ontology | None, path, c: float = RELEVANCE_C
) -> tuple[Any, Any, dict]:
    """Labels to score with, the graded relevance matrix (or None) and the JSON's ``relevance``.

    ``labs`` (N,) str: flat labels, or label sets as ids joined by ``;``.
    """
    if onto is None:
        return labs, None, {"kind": "flat", "rule": "1 for the same label, 0 otherwise"}
    sets, codes = np.unique(labs, return_inverse=True)
    grading = ontology_relevance(onto, [x.split(";") for x in sets.tolist()], c=c)
    info = {
        "kind": "ontology",
        "rule": RELEVANCE_RULE.format(c=c),
        "c": c,
        "ontology": str(path),
        "classes": len(onto),
        "label_sets": int(len(sets)),
        "classes_used": len({a for x in sets.tolist() for a in x.split(";")}),
    }
    return codes.reshape(-1), grading, info


# ---------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------


def evaluate_retrieval(
    data: str | os.PathLike,
    checkpoint,
    baseline_checkpoint=None,
    *,
    hop: float = 1.0,
    labels: str | os.PathLike | None = None,
    k: int = 30,
    cca_dim: int | None = None,
    random_repeats: int = 20,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
    ontology: str | os.PathLike | None = None,
    relevance_c: float = RELEVANCE_C,
) -> dict[str, Any]:
    """Retrieval scores of a model and of the baselines, on the same items.

    Items, relevance and baselines: see the module docstring (no query retrieves its own video).

    Parameters
    ----------
    data : path-like
        Folder of videos (demo data, or a labelled folder).
    checkpoint : path-like
        The model's run or checkpoint directory (AVE-Net for cross-modal).
    baseline_checkpoint : path-like, optional
        An L3-Net run for the ``l3`` baselines (raw features and CCA).
    hop : float
        Seconds between items in a video.
    labels : path-like, optional
        annotations.jsonl / CSV (see :class:`Labels`).
    k : int
        nDCG cut-off (30).
    cca_dim : int, optional
        CCA dimension (default: the model's embedding size).
    random_repeats : int
        Random draws averaged for the random baseline.
    ontology : path-like, optional
        AudioSet ``ontology.json``: relevance graded by the ontology between
        label sets (see the module docstring); every score, the baselines and
        the bootstrap use it. Default: flat relevance (same label).
    relevance_c : float
        The ``C`` of the graded relevance ``max(0, C - d) / C`` (20); used
        with ``ontology`` only.

    Returns
    -------
    dict
        JSON-able; see the module docstring and ``looklisten eval retrieval --help``.
    """
    from looklisten.evaluation.metrics import (
        DIRECTIONS,
        cca_align,
        cross_modal_eval,
        paired_bootstrap,
        random_baseline,
    )
    from looklisten.models.checkpoint import get_model

    if ontology is None and relevance_c != RELEVANCE_C:
        raise ValueError("--relevance-c grades relevance by the ontology: give --ontology too")
    data = Path(data)
    if not data.is_dir():
        raise NotADirectoryError(f"{data}: not a folder")
    onto = load_ontology(ontology) if ontology is not None else None
    model = get_model(checkpoint, device)
    lab = Labels(data, labels) if onto is None else OntologyLabels(data, labels, onto)
    chosen = choose_videos(data, checkpoint, baseline_checkpoint)
    items = collect_items(chosen["eval"], model, lab, hop, batch_size, progress, "eval videos")
    n = len(items["labels"])
    if n == 0:
        raise ValueError(f"{data}: no labelled items to evaluate (labels from {lab.kind})")
    n_classes = len(set(items["labels"].tolist()))
    if n_classes < 2:
        log.warning("only one label among the evaluation items: every item is relevant")
    if len(items["failed"]):
        log.warning("%d video(s) could not be used: %s", len(items["failed"]), items["failed"][:3])
    labs, groups = items["labels"].astype(str), items["groups"]
    dim = items["image"].shape[1]
    # flat: the labels themselves; graded: label-set indices into `grading`
    codes, grading, relevance = _grading(labs, onto, ontology, relevance_c)
    scores = cross_modal_eval(
        items["image"],
        items["audio"],
        codes,
        groups,
        k=k,
        return_per_query=True,
        relevance=grading,
    )
    rnd = random_baseline(
        codes, groups, dim=dim, k=k, n_repeats=random_repeats, seed=0, relevance=grading
    )
    result: dict[str, Any] = {
        "data": str(data),
        "selection": chosen["selection"],
        "labels_from": lab.kind,
        "items": {
            "videos": int(len(set(groups.tolist()))),
            "items": n,
            "classes": n_classes,
            "hop_seconds": hop,
            "times": "centres of the 1 s windows inside each clip",
            # queries with at least one relevant item outside their own video
            "evaluated_queries": int(scores["im2im"]["n_evaluated"]),
            "failed": items["failed"],
        },
        "k": k,
        "model": {
            "checkpoint": str(getattr(model, "checkpoint_path", checkpoint)),
            "arch": model.cfg.model.arch,
            "preset": model.cfg.preset,
            "dim": dim,
        },
        "relevance": relevance,
        "scores": _clean(scores),
        "random": {**_clean(rnd), "repeats": random_repeats},
        "l3": None,
    }
    if grading is not None:
        # queries with at least one item of relevance 1 outside their own video
        result["items"]["evaluated_queries_recall"] = int(scores["im2im"]["n_evaluated_recall"])
        result["published"] = PUBLISHED
    l3_cca = None
    if baseline_checkpoint is None:
        result["note"] = (
            "no --baseline-checkpoint: the L3-Net baselines (raw features, L3 + CCA) need an "
            "L3-Net run (looklisten train DATA --model l3 ...)"
        )
    else:
        l3 = get_model(baseline_checkpoint, device)
        ev = collect_items(chosen["eval"], l3, lab, hop, batch_size, progress, "L3 eval")
        # the same items (same videos and times, labelled the same way)
        if ev["labels"].astype(str).tolist() != labs.tolist() or not np.array_equal(
            ev["groups"], groups
        ):
            raise RuntimeError("the L3 baseline did not see the same items as the model")
        tr = collect_items(chosen["cca_train"], l3, None, hop, batch_size, progress, "CCA train")
        raw = (
            cross_modal_eval(ev["image"], ev["audio"], codes, groups, k=k, relevance=grading)
            if ev["image"].shape[1] == ev["audio"].shape[1]
            else None
        )
        want = int(cca_dim or dim)
        align = cca_align(tr["image"], tr["audio"], dim=want)
        zi, za = align(ev["image"], ev["audio"])
        l3_cca = cross_modal_eval(
            zi, za, codes, groups, k=k, return_per_query=True, relevance=grading
        )
        result["l3"] = {
            "checkpoint": str(getattr(l3, "checkpoint_path", baseline_checkpoint)),
            "arch": l3.cfg.model.arch,
            "dim": int(ev["image"].shape[1]),
            "raw": _clean(raw) if raw is not None else None,
            "cca": _clean(l3_cca),
            "cca_dim": align.dim,
            "cca_train_pairs": int(len(tr["image"])),
            "cca_train_videos": int(len(set(tr["groups"].tolist()))),
        }
        if l3.cfg.model.arch != "l3":
            result["l3"]["warning"] = f"the baseline checkpoint is a {l3.cfg.model.arch} model"
    key = f"ndcg@{k}"
    bar = {}
    for direction in ("im2aud", "aud2im"):
        row = {
            "model": result["scores"][direction][key],
            "random": result["random"][direction][key],
        }
        if l3_cca is not None:
            row["l3_cca"] = result["l3"]["cca"][direction][key]
        values = list(row.values())
        row["beats_baselines"] = all(v is not None for v in values) and all(
            values[0] > v for v in values[1:]
        )
        ours = scores[direction]["per_query"]["ndcg"]
        if l3_cca is not None and np.isfinite(ours).any():
            # is the margin over L3+CCA more than the luck of the videos drawn?
            boot = paired_bootstrap(ours, l3_cca[direction]["per_query"]["ndcg"], groups)
            row["minus_l3_cca"] = {
                "difference": _num(boot["difference"]),
                "ci95": [_num(v) for v in boot["ci"]],
                "p_not_better": _num(boot["p_not_better"]),
                "resampled": f"{boot['groups']} videos, {boot['resamples']} times",
            }
        elif l3_cca is not None:
            row["minus_l3_cca"] = None  # no query had a relevant item in another video
        if grading is not None:  # the paper's figures, on AudioSet-Instruments
            row["published"] = {m: PUBLISHED[m][direction] for m in ("ave_net", "l3_cca", "random")}
        bar[direction] = row
    result["cross_modal_ndcg"] = bar
    assert set(DIRECTIONS) == set(result["scores"])
    return result


# ---------------------------------------------------------------------------
# CLI
