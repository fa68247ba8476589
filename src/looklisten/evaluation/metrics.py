"""Retrieval metrics (nDCG, recall@k), cross-modal evaluation and baselines.

This follows the cross-modal retrieval evaluation of *Objects that Sound*
(Arandjelović & Zisserman, 2018): every item (one frame and its 1 s of audio)
queries a database of items of the same or the other modality; an item is
relevant if it has the query's (flat) label, or graded (``relevance``: a
label-by-label matrix of relevances in [0, 1], e.g. from the AudioSet
ontology); items from the query's own video are removed from its database; the
score is nDCG@30, alongside the recall@k usual in retrieval papers. Random embeddings give the "random" row, and an
L3-Net + CCA baseline is fitted with :func:`cca_align`.

Also here: generic classification accuracy (:func:`accuracy`,
:func:`top_k_accuracy`). Audio-visual-correspondence and localisation metrics
live elsewhere.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "dcg_discounts",
    "ndcg_at_k",
    "retrieval_scores",
    "cross_modal_eval",
    "random_baseline",
    "paired_bootstrap",
    "CCAAlign",
    "cca_align",
    "accuracy",
    "top_k_accuracy",
]

log = logging.getLogger(__name__)

DIRECTIONS = ("im2im", "im2aud", "aud2im", "aud2aud")


def _to_numpy(x: Any) -> np.ndarray:
    """Array-likes and (CPU or GPU) torch tensors -> numpy."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------------- nDCG


def dcg_discounts(k: int) -> np.ndarray:
    """The DCG position discounts ``1 / log2(i + 1)`` for ranks ``i = 1..k``.

    Returns
    -------
    np.ndarray, shape (k,), float64
    """
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def ndcg_at_k(
    relevance_ranked: np.ndarray,
    n_relevant: np.ndarray | None = None,
    k: int = 30,
    *,
    ideal: np.ndarray | None = None,
) -> np.ndarray:
    """Normalised discounted cumulative gain at rank ``k``, per query.

    ``DCG@k = sum_{i=1..k} rel_i / log2(i + 1)`` over the ranked list, and
    ``nDCG@k = DCG@k / IDCG@k`` with ``IDCG@k`` the DCG of the best possible
    ranking of the whole database:

    * binary relevance (default): the best ranking puts the query's
      ``n_relevant`` relevant items first, so
      ``IDCG@k = sum_{i=1..min(n_relevant, k)} 1 / log2(i + 1)``;
    * graded relevance: pass ``ideal``, the relevances of the query's whole
      database (any order; sorted here in decreasing order and cut at ``k``).

    Queries without any relevant item (``n_relevant == 0``, or an all-zero
    ``ideal`` row) have no defined nDCG: they get NaN and are thereby
    excluded from averages taken with ``np.nanmean`` (as all aggregators in
    this module do).

    Parameters
    ----------
    relevance_ranked : np.ndarray, shape (Q, >=k) or (>=k,)
        Relevance of the retrieved items in rank order (1/0, or graded >= 0).
        Only the first ``k`` columns are used.
    n_relevant : np.ndarray, shape (Q,) or scalar, optional
        Number of relevant items in each query's database (binary relevance).
        Required unless ``ideal`` is given.
    k : int
        Cut-off rank.
    ideal : np.ndarray, shape (Q, M), optional
        Graded relevance of each query's entire database (M items; rows may be
        padded with zeros). Takes precedence over ``n_relevant``.

    Returns
    -------
    np.ndarray, shape (Q,), float64
        nDCG@k in [0, 1] (NaN for queries with nothing relevant); a 0-d array
        for a 1-D input.
    """
    rel = np.asarray(relevance_ranked, dtype=np.float64)
    squeeze = rel.ndim == 1
    if squeeze:
        rel = rel[None, :]
    if rel.ndim != 2:
        raise ValueError(f"relevance_ranked must be (Q, >=k), got shape {rel.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if rel.shape[1] < k:
        raise ValueError(
            f"relevance_ranked has {rel.shape[1]} columns, fewer than k={k} "
            "(pad with zeros if the database is smaller than k)"
        )
    if (rel < 0).any():
        raise ValueError("relevance must be non-negative")
    disc = dcg_discounts(k)
    dcg = rel[:, :k] @ disc
    if ideal is not None:
        ideal = np.asarray(ideal, dtype=np.float64)
        if ideal.ndim == 1:
            ideal = ideal[None, :]
        if ideal.shape[0] != rel.shape[0]:
            raise ValueError(f"ideal has {ideal.shape[0]} rows for {rel.shape[0]} queries")
        top = -np.sort(-ideal, axis=1)[:, :k]
        idcg = top @ disc[: top.shape[1]]
    else:
        if n_relevant is None:
            raise ValueError("give n_relevant (binary relevance) or ideal (graded)")
        n_rel = np.broadcast_to(np.asarray(n_relevant), (rel.shape[0],)).astype(np.int64)
        if (n_rel < 0).any():
            raise ValueError("n_relevant must be non-negative")
        cum = np.concatenate([[0.0], np.cumsum(disc)])
        idcg = cum[np.minimum(n_rel, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)
    return out[0] if squeeze else out


# ---------------------------------------------------------------------- retrieval


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _codes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map two label/group arrays to shared integer codes."""
    _, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    inv = inv.reshape(-1)
    return inv[: len(a)], inv[len(a) :]


def _check_relevance(relevance, q_lab: np.ndarray, db_lab: np.ndarray) -> np.ndarray:
    """Validate a graded relevance matrix and the integer labels that index it."""
    rel = np.asarray(_to_numpy(relevance), dtype=np.float64)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be a (Lq, Ld) matrix, got shape {rel.shape}")
    if not np.isfinite(rel).all() or (rel < 0).any() or (rel > 1).any():
        raise ValueError("relevance values must lie in [0, 1]")
    for what, lab, n in (("query", q_lab, rel.shape[0]), ("database", db_lab, rel.shape[1])):
        if len(lab) and (
            not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= n
        ):
            raise ValueError(f"with relevance, {what} labels must be integers in [0, {n})")
    return rel


def _rank_top(sims: np.ndarray, k_eff: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k_eff`` best database items per row, best first.

    Partial selection then sort; ties are broken by database index.

    Returns
    -------
    tuple of np.ndarray, shapes (b, k_eff) and (b, k_eff)
    """
    b, n_db = sims.shape
    if k_eff < n_db:
        part = np.argpartition(-sims, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.broadcast_to(np.arange(n_db), (b, n_db))
    part_s = np.take_along_axis(sims, part, axis=1)
    order = np.lexsort((part, -part_s), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_s, order, axis=1)


def _graded_block(
    relevance: np.ndarray,
    q_lab: np.ndarray,
    db_lab: np.ndarray,
    excluded: np.ndarray | None,
    top: np.ndarray,
    top_s: np.ndarray,
    ks: tuple[int, int, tuple[int, ...]],
    ndcg_out: np.ndarray,
    hits_out: dict[int, np.ndarray],
) -> None:
    """nDCG and recall hits of one block of queries under graded relevance (in place).

    ``relevance`` (Lq, Ld); ``q_lab`` (b,); ``db_lab`` (N,); ``excluded`` (b, N)
    bool or None; ``top`` / ``top_s`` (b, k_eff) ranked indices and scores;
    ``ks`` = (k_ndcg, k_max, recall_ks); ``ndcg_out`` (b,) and each
    ``hits_out[r]`` (b,) are written.
    """
    k_ndcg, k_max, recall_ks = ks
    gains = relevance[q_lab][:, db_lab]  # (b, N): the whole database's relevances
    if excluded is not None:
        gains[excluded] = 0.0
    rel = np.take_along_axis(gains, top, axis=1) * np.isfinite(top_s)
    if rel.shape[1] < k_max:  # database smaller than k: pad the ranking with nothing
        rel = np.concatenate([rel, np.zeros((len(rel), k_max - rel.shape[1]))], axis=1)
    # the ideal ranking: the k largest relevances of the database (partial selection)
    k_i = min(k_ndcg, gains.shape[1])
    ideal = -np.partition(-gains, k_i - 1, axis=1)[:, :k_i] if k_i else gains[:, :0]
    ndcg_out[:] = ndcg_at_k(rel, k=k_ndcg, ideal=ideal)
    full = gains >= 1.0  # full matches (relevance 1)
    has_full = full.any(axis=1)
    for r in recall_ks:
        hits_out[r][:] = np.where(has_full, (rel[:, :r] >= 1.0).any(axis=1), np.nan)


def retrieval_scores(
    query_emb: np.ndarray,
    query_labels: np.ndarray,
    db_emb: np.ndarray,
    db_labels: np.ndarray,
    k_ndcg: int = 30,
    recall_ks: Sequence[int] = (1, 5, 10),
    exclude_self: bool | np.ndarray = False,
    query_groups: np.ndarray | None = None,
    db_groups: np.ndarray | None = None,
    *,
    block_size: int = 1024,
    return_per_query: bool = False,
    relevance: np.ndarray | None = None,
) -> dict[str, Any]:
    """nDCG@k and recall@k of label-based retrieval.

    Each query ranks the database by the dot product of L2-normalised vectors
    (cosine similarity; normalised here). A database item is relevant to a
    query if it has the same (flat) label. Excluded items (see below) are
    removed from that query's database: they can neither be retrieved nor
    count as relevant.

    ``recall@k`` is the share of queries with at least one relevant item among
    their top ``k`` (the "R@k" of retrieval papers, also called hit rate or
    success@k), not the share of all relevant items retrieved.

    Queries with no relevant item left in their database have no defined
    nDCG or recall: they are excluded from the averages (per-query values are
    NaN) and counted in ``n_queries - n_evaluated``.

    **Graded relevance** (``relevance`` given): the labels are integer indices
    (e.g. of label sets) and ``relevance[query_label, db_label]`` in [0, 1] is
    the gain of a database item. nDCG@k divides the DCG of the ranking by the
    DCG of the best ranking of the query's whole database (its graded
    relevances sorted in decreasing order, excluded items removed); a query
    whose database is all 0 has no nDCG. recall@k then counts a hit when an
    item of relevance 1 (a full match: for label sets graded by
    :func:`looklisten.evaluation.retrieval.ontology_relevance`, an item that
    has every label of the query) is in the top ``k``; queries with no such
    item in their database have no recall (NaN; their number is
    ``n_queries - n_evaluated_recall``). The identity matrix gives the flat
    scores.

    Parameters
    ----------
    query_emb : np.ndarray, shape (Q, D)
    query_labels : np.ndarray, shape (Q,)
        Any hashable/sortable labels (ints, strings).
    db_emb : np.ndarray, shape (N, D)
    db_labels : np.ndarray, shape (N,)
    k_ndcg : int
        Cut-off of nDCG (the paper: 30).
    recall_ks : sequence of int
        Cut-offs of recall@k.
    exclude_self : bool or np.ndarray of shape (Q,), int
        True: the queries are the database (Q == N) and query ``i`` must not
        retrieve database item ``i``. An int array: the database index to
        remove for each query (-1 for none).
    query_groups, db_groups : np.ndarray, shape (Q,) and (N,), optional
        Group ids (e.g. the source video). Database items of the query's group
        are removed for that query (the paper removes the query's own video).
        Give both or neither.
    block_size : int
        Queries scored at a time (memory ~ ``block_size * N`` floats; three
        times that with ``relevance``).
    return_per_query : bool
        Also return ``"per_query"``: ``{"ndcg": (Q,), "recall@k": (Q,), ...}``.
    relevance : np.ndarray, shape (Lq, Ld), optional
        Graded relevance of database label ``j`` to query label ``i`` (values
        in [0, 1]); the labels must then be integers in ``[0, Lq)`` and
        ``[0, Ld)``.

    Returns
    -------
    dict
        ``"ndcg@{k_ndcg}"`` and ``"recall@{k}"`` (floats, means over evaluated
        queries), ``"n_queries"``, ``"n_evaluated"``, with ``relevance`` also
        ``"n_evaluated_recall"``, and optionally ``"per_query"``.
    """
    q = _l2_normalise(_to_numpy(query_emb))
    db = _l2_normalise(_to_numpy(db_emb))
    q_lab, db_lab = np.asarray(_to_numpy(query_labels)), np.asarray(_to_numpy(db_labels))
    if q.ndim != 2 or db.ndim != 2 or q.shape[1] != db.shape[1]:
        raise ValueError(f"embeddings must be (Q, D) and (N, D), got {q.shape} and {db.shape}")
    n_q, n_db = len(q), len(db)
    if q_lab.shape != (n_q,) or db_lab.shape != (n_db,):
        raise ValueError(
            f"labels must be (Q,)=({n_q},) and (N,)=({n_db},), got {q_lab.shape} and {db_lab.shape}"
        )
    recall_ks = tuple(int(r) for r in recall_ks)
    if k_ndcg < 1 or any(r < 1 for r in recall_ks):
        raise ValueError("k_ndcg and recall_ks must be >= 1")
    if relevance is not None:
        relevance = _check_relevance(relevance, q_lab, db_lab)
        q_lab, db_lab = q_lab.astype(np.int64), db_lab.astype(np.int64)
    else:
        q_lab, db_lab = _codes(q_lab, db_lab)

    if (query_groups is None) != (db_groups is None):
        raise ValueError("give both query_groups and db_groups, or neither")
    if query_groups is not None:
        q_grp, db_grp = np.asarray(_to_numpy(query_groups)), np.asarray(_to_numpy(db_groups))
        if q_grp.shape != (n_q,) or db_grp.shape != (n_db,):
            raise ValueError("groups must have shapes (Q,) and (N,)")
        q_grp, db_grp = _codes(q_grp, db_grp)
    else:
        q_grp = db_grp = None

    if isinstance(exclude_self, (bool, np.bool_)):
        if exclude_self and n_q != n_db:
            raise ValueError("exclude_self=True needs the queries to be the database (Q == N)")
        self_idx = np.arange(n_q) if exclude_self else None
    else:
        self_idx = np.asarray(_to_numpy(exclude_self)).astype(np.int64)
        if self_idx.shape != (n_q,):
            raise ValueError(f"exclude_self array must have shape ({n_q},)")
        if (self_idx >= n_db).any():
            raise ValueError("exclude_self index out of range")

    k_max = max((k_ndcg, *recall_ks))
    k_eff = min(k_max, n_db)
    label_count = np.bincount(
        db_lab, minlength=int(max(q_lab.max(initial=0), db_lab.max(initial=0))) + 1
    )

    ndcg = np.full(n_q, np.nan)
    hits_at = {r: np.full(n_q, np.nan) for r in recall_ks}
    for start in range(0, n_q, block_size):
        stop = min(start + block_size, n_q)
        b = stop - start
        sims = q[start:stop] @ db.T  # (b, N) float32
        n_rel = label_count[q_lab[start:stop]].astype(np.int64)
        excluded = None
        if db_grp is not None:
            excluded = q_grp[start:stop, None] == db_grp[None, :]
        if self_idx is not None:
            rows = np.nonzero(self_idx[start:stop] >= 0)[0]
            if excluded is None:
                excluded = np.zeros((b, n_db), dtype=bool)
            excluded[rows, self_idx[start:stop][rows]] = True
        if excluded is not None:
            sims[excluded] = -np.inf
            if relevance is None:
                same = db_lab[None, :] == q_lab[start:stop, None]
                n_rel -= (excluded & same).sum(axis=1)
        top, top_s = _rank_top(sims, k_eff)
        if relevance is not None:
            _graded_block(
                relevance,
                q_lab[start:stop],
                db_lab,
                excluded,
                top,
                top_s,
                (k_ndcg, k_max, recall_ks),
                ndcg[start:stop],
                {r: h[start:stop] for r, h in hits_at.items()},
            )
            continue
        rel = (db_lab[top] == q_lab[start:stop, None]) & np.isfinite(top_s)
        if k_eff < k_max:  # database smaller than k: pad the ranking with nothing
            rel = np.concatenate([rel, np.zeros((b, k_max - k_eff), dtype=bool)], axis=1)
        valid = n_rel > 0
        ndcg[start:stop] = ndcg_at_k(rel, n_rel, k=k_ndcg)
        for r in recall_ks:
            hits_at[r][start:stop] = np.where(valid, rel[:, :r].any(axis=1), np.nan)

    n_eval = int(np.isfinite(ndcg).sum())
    if n_eval < n_q:
        log.info("%d of %d queries have no relevant item and are excluded", n_q - n_eval, n_q)
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN -> NaN
        out[f"ndcg@{k_ndcg}"] = float(np.nanmean(ndcg)) if n_q else float("nan")
        for r in recall_ks:
            out[f"recall@{r}"] = float(np.nanmean(hits_at[r])) if n_q else float("nan")
    out["n_queries"] = n_q
    out["n_evaluated"] = n_eval
    if relevance is not None:
        out["n_evaluated_recall"] = int(np.isfinite(hits_at[recall_ks[0]]).sum())
    if return_per_query:
        out["per_query"] = {"ndcg": ndcg, **{f"recall@{r}": hits_at[r] for r in recall_ks}}
    return out


def cross_modal_eval(
    image_emb: np.ndarray,
    audio_emb: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    k: int = 30,
    recall_ks: Sequence[int] = (1, 5, 10),
    *,
    block_size: int = 1024,
    return_per_query: bool = False,
    relevance: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Within- and cross-modal retrieval in the four directions of the paper.

    Item ``i`` is an image embedding ``image_emb[i]`` and the embedding of its
    audio ``audio_emb[i]``, with label ``labels[i]`` and group ``groups[i]``
    (its video). Every item queries the database of all items of the target
    modality, minus the items of its own group.

    Parameters
    ----------
    image_emb : np.ndarray, shape (N, D)
    audio_emb : np.ndarray, shape (N, D)
    labels : np.ndarray, shape (N,)
    groups : np.ndarray, shape (N,), optional
        Video ids. If None, every item is its own group (only the query item
        itself, and its paired item in the other modality, are removed).
    k : int
        nDCG cut-off (30 in the paper).
    recall_ks : sequence of int
    return_per_query : bool
        Also return each direction's per-query values (see :func:`retrieval_scores`).
    relevance : np.ndarray, shape (L, L), optional
        Graded relevance between labels, which are then integers in ``[0, L)``
        (see :func:`retrieval_scores`).

    Returns
    -------
    dict
        Keys ``"im2im"``, ``"im2aud"``, ``"aud2im"``, ``"aud2aud"`` (query to
        database modality), each the dict of :func:`retrieval_scores`
        (``"ndcg@{k}"``, ``"recall@1"``, ``"recall@5"``, ``"recall@10"``, ...).
    """
    img, aud = _to_numpy(image_emb), _to_numpy(audio_emb)
    labels = np.asarray(_to_numpy(labels))
    n = len(labels)
    if len(img) != n or len(aud) != n:
        raise ValueError(f"image_emb ({len(img)}), audio_emb ({len(aud)}) and labels ({n}) differ")
    groups = np.arange(n) if groups is None else np.asarray(_to_numpy(groups))
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
    emb = {"im": img, "aud": aud}
    out = {}
    for name in DIRECTIONS:
        src, dst = name.split("2")
        out[name] = retrieval_scores(
            emb[src],
            labels,
            emb[dst],
            labels,
            k_ndcg=k,
            recall_ks=recall_ks,
            query_groups=groups,
            db_groups=groups,
            block_size=block_size,
            return_per_query=return_per_query,
            relevance=relevance,
        )
    return out


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """How sure is ``mean(a) > mean(b)``? A paired bootstrap over groups (videos).

    ``a`` and ``b`` are two methods' per-query values (e.g. nDCG@30) on the same
    queries; NaN marks a query without a value (dropped from both). Queries of
    one video are not independent, so whole groups are resampled with
    replacement, ``n_boot`` times, and the mean difference ``a - b`` of the
    queries drawn gives a percentile interval.

    Parameters
    ----------
    a, b : np.ndarray, shape (Q,)
    groups : np.ndarray, shape (Q,)
        The query's group (its video).
    n_boot : int
    seed : int
    level : float
        Coverage of the interval (0.95).

    Returns
    -------
    dict
        ``"difference"`` (mean of ``a - b``), ``"ci"`` ([low, high]), ``"level"``,
        ``"p_not_better"`` (share of resamples with a difference <= 0),
        ``"groups"``, ``"queries"`` and ``"resamples"``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    groups = np.asarray(groups)
    if a.shape != b.shape or a.shape != groups.shape or a.ndim != 1:
        raise ValueError(
            f"a, b and groups must be (Q,) alike, got {a.shape}, {b.shape}, {groups.shape}"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    d, g = (a - b)[keep], groups[keep]
    if not len(d):
        raise ValueError("no query has a value in both a and b")
    _, g = np.unique(g, return_inverse=True)
    n_g = int(g.max()) + 1
    sums = np.bincount(g, weights=d, minlength=n_g)  # per group: sum of differences
    counts = np.bincount(g, minlength=n_g).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_boot))
    step = max(1, 2**22 // n_g)  # resamples per chunk: ~32 MB of indices at most
    for start in range(0, len(means), step):
        draws = rng.integers(0, n_g, size=(min(step, len(means) - start), n_g))
        means[start : start + len(draws)] = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return {
        "difference": float(d.mean()),
        "ci": [float(lo), float(hi)],
        "level": level,
        "p_not_better": float((means <= 0).mean()),
        "groups": n_g,
        "queries": int(len(d)),
        "resamples": int(n_boot),
    }


def random_baseline(
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    dim: int = 128,
    k: int = 30,
    recall_ks: Sequence[int] = (1, 5, 10),
    *,
    seed: int = 0,
    n_repeats: int = 1,
    relevance: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`cross_modal_eval` of random unit vectors: the "random" row.

    Parameters
    ----------
    labels : np.ndarray, shape (N,)
    groups : np.ndarray, shape (N,), optional
    dim : int
        Dimension of the random embeddings.
    k, recall_ks
        As in :func:`cross_modal_eval`.
    seed : int
        Seed of the random embeddings.
    n_repeats : int
        Average the scores over this many independent draws.
    relevance : np.ndarray, shape (L, L), optional
        Graded relevance between labels (as in :func:`cross_modal_eval`): the
        baseline is then measured with the same grading as the model.

    Returns
    -------
    dict
        As :func:`cross_modal_eval`; scores are averaged over the repeats.
    """
    labels = np.asarray(_to_numpy(labels))
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(max(1, int(n_repeats))):
        img = rng.standard_normal((len(labels), dim)).astype(np.float32)
        aud = rng.standard_normal((len(labels), dim)).astype(np.float32)
        runs.append(
            cross_modal_eval(
                img, aud, labels, groups, k=k, recall_ks=recall_ks, relevance=relevance
            )
        )
    out = {}
    for name in DIRECTIONS:
        out[name] = {key: float(np.mean([r[name][key] for r in runs])) for key in runs[0][name]}
        for key in ("n_queries", "n_evaluated", "n_evaluated_recall"):
            if key in runs[0][name]:
                out[name][key] = runs[0][name][key]
    return out


# ---------------------------------------------------------------------- CCA baseline


class CCAAlign:
    """Two linear maps into a shared space fitted by CCA (the L3 + CCA baseline).

    Fitted by :func:`cca_align`. Apply with :meth:`transform_image`,
    :meth:`transform_audio`, or call it: ``img_z, aud_z = align(img, aud)``
    (either may be None).

    Attributes
    ----------
    cca : sklearn.cross_decomposition.CCA
        The fitted estimator (image features are its X, audio features its Y).
    dim : int
        Dimension of the shared space (after clamping).
    normalize : bool
        L2-normalise the projections (default True).
    """

    def __init__(self, cca: Any, x_mean, x_std, y_mean, y_std, normalize: bool = True) -> None:
        self.cca = cca
        self._x_mean, self._x_std = x_mean, x_std
        self._y_mean, self._y_std = y_mean, y_std
        self.dim = int(cca.x_rotations_.shape[1])
        self.normalize = normalize

    def _project(self, x, mean, std, rot, what: str) -> np.ndarray:
        x = np.asarray(_to_numpy(x), dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(mean):
            raise ValueError(f"{what} must have shape (N, {len(mean)}), got {x.shape}")
        z = ((x - mean) / std) @ rot
        if self.normalize:
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return z.astype(np.float32)

    def transform_image(self, img_feat: np.ndarray) -> np.ndarray:
        """Project image features, shape (N, P) -> (N, dim) float32."""
        return self._project(img_feat, self._x_mean, self._x_std, self.cca.x_rotations_, "img_feat")

    def transform_audio(self, aud_feat: np.ndarray) -> np.ndarray:
        """Project audio features, shape (N, R) -> (N, dim) float32."""
        return self._project(aud_feat, self._y_mean, self._y_std, self.cca.y_rotations_, "aud_feat")

    def __call__(
        self, img_feat: np.ndarray | None = None, aud_feat: np.ndarray | None = None
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (
            None if img_feat is None else self.transform_image(img_feat),
            None if aud_feat is None else self.transform_audio(aud_feat),
        )


def _center_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # as sklearn's PLS: mean, and std with ddof=1 (1 where constant)
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    std[std == 0.0] = 1.0
    return mean, std


def cca_align(
    img_feat_train: np.ndarray,
    aud_feat_train: np.ndarray,
    dim: int = 128,
    *,
    max_iter: int = 5000,
    tol: float = 1e-6,
    normalize: bool = True,
) -> CCAAlign:
    """Fit CCA on paired image/audio features (the paper's L3-Net + CCA baseline).

    L3-Net's image and audio features are not in a shared space; CCA on
    training pairs (the frame and the audio of the same moment) finds linear
    projections of each side that are maximally correlated, which makes
    cross-modal retrieval possible.

    Parameters
    ----------
    img_feat_train : np.ndarray, shape (N, P)
        Image features of the training pairs.
    aud_feat_train : np.ndarray, shape (N, R)
        Audio features of the same pairs.
    dim : int
        Shared dimension; clamped (with a warning) to ``min(N - 1, P, R)``.
    max_iter, tol
        Passed to :class:`sklearn.cross_decomposition.CCA` (its NIPALS stopped
        at 500 iterations before converging on some components of the demo's
        L3-Net features, a handicap for the baseline; 5000 lets them converge).
    normalize : bool
        L2-normalise the projections.

    Returns
    -------
    CCAAlign
        With ``transform_image``, ``transform_audio`` and ``__call__``.

    Notes
    -----
    sklearn's CCA extracts one component at a time (NIPALS with a
    pseudo-inverse per component), so ``dim=128`` on 512-d features takes
    seconds to minutes depending on N.
    """
    from sklearn.cross_decomposition import CCA

    x = np.asarray(_to_numpy(img_feat_train), dtype=np.float64)
    y = np.asarray(_to_numpy(aud_feat_train), dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"need paired (N, P) and (N, R) features, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError("CCA needs at least 2 training pairs")
    max_dim = min(len(x) - 1, x.shape[1], y.shape[1])
    if dim > max_dim:
        log.warning("cca_align: dim=%d clamped to %d = min(N - 1, P, R)", dim, max_dim)
        dim = max_dim
    cca = CCA(n_components=int(dim), max_iter=max_iter, tol=tol, scale=True)
    cca.fit(x, y)
    x_mean, x_std = _center_scale(x)
    y_mean, y_std = _center_scale(y)
    return CCAAlign(cca, x_mean, x_std, y_mean, y_std, normalize=normalize)


# ---------------------------------------------------------------------- classification


def accuracy(pred_or_scores: np.ndarray, target: np.ndarray) -> float:
    """Classification accuracy.

    Parameters
    ----------
    pred_or_scores : np.ndarray, shape (N,) or (N, C)
        Predicted class ids, or class scores/logits (argmax is taken). A
        torch tensor is accepted. A single column (N, 1) is read as
        probabilities of the positive class of a binary problem, thresholded
        at 0.5.
    target : np.ndarray, shape (N,)
        True class ids.

    Returns
    -------
    float
        Share of correct predictions (NaN for N = 0).
    """
    p = _to_numpy(pred_or_scores)
    t = _to_numpy(target).reshape(-1)
    if p.ndim == 2:
        p = (p[:, 0] >= 0.5).astype(np.int64) if p.shape[1] == 1 else p.argmax(axis=1)
    p = p.reshape(-1)
    if len(p) != len(t):
        raise ValueError(f"{len(p)} predictions for {len(t)} targets")
    return float(np.mean(p == t)) if len(t) else float("nan")


def top_k_accuracy(scores: np.ndarray, target: np.ndarray, k: int = 5) -> float:
    """Share of samples whose true class is among the ``k`` highest scores.

    Parameters
    ----------
    scores : np.ndarray, shape (N, C)
    target : np.ndarray, shape (N,)
    k : int

    Returns
    -------
    float
    """
    s = _to_numpy(scores)
    t = _to_numpy(target).reshape(-1)
    if s.ndim != 2 or len(s) != len(t):
        raise ValueError(f"scores must be (N, C) with N = {len(t)}, got {s.shape}")
    if not len(t):
        return float("nan")
    k = min(int(k), s.shape[1])
    true_score = s[np.arange(len(t)), t]
    # rank of the true class = number of classes scoring strictly higher
    return float(np.mean((s > true_score[:, None]).sum(axis=1) < k))
