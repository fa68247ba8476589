"""Nearest-neighbour search over audio and image embeddings (FAISS).

An :class:`EmbeddingIndex` holds one FAISS index per modality (``"audio"`` and
``"image"``) plus per-item metadata (source file, time in seconds, optional
label, and any further JSON-serialisable keys such as a thumbnail or clip
reference). Because AVE-Net puts both modalities in one space, a query of either
modality can be searched against either target: image -> audio, audio -> image,
and within a modality.

Search is exact by default (``kind="flat"``). With L2-normalised vectors (the
default, ``normalize=True``) the inner-product metric ``"ip"`` is the cosine
similarity; the ``"l2"`` metric (AVE-Net is trained on Euclidean distances)
ranks unit vectors identically, since ``|a - b|^2 = 2 - 2 a.b``. For millions of
items, ``kind="ivf"`` (an inverted file with a trained k-means quantizer,
optionally product-quantised) or ``kind="hnsw"`` (a graph index) trade a little
recall for a large speed-up; see ``benchmarks/bench_search.py``.

On disk an index is a directory, written atomically (a crash mid-save leaves the
previous directory intact)::

    index/
        meta.json            config: format, version, dim, metric, kind, counts,
                             checkpoint, info, search parameters, sha256 of the files
        audio.faiss          faiss.write_index of the audio index
        audio.items.json     the audio items' metadata (columnar)
        image.faiss
        image.items.json
        model/               save(include_model=True): a copy of the checkpoint
                             (config.json, model.safetensors, state.json)

Nothing is pickled. The folder can be copied, moved or archived: absolute item
files are stored relative to the index folder (and resolved against it at
load, falling back to the path they had when saved if the relative one is
gone), and a copied model is named ``"model"``, relative too. Version-1
indexes (absolute paths throughout) still load.

Example
-------
>>> index = EmbeddingIndex(dim=128)                                  # doctest: +SKIP
>>> index.add("audio", audio_emb, [{"file": "a.mp4", "time": 3.0}])  # doctest: +SKIP
>>> hits = index.search(image_emb[0], target="audio", k=5)[0]        # doctest: +SKIP
>>> index.save("runs/x/index"); EmbeddingIndex.load("runs/x/index")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from looklisten.core.fileio import atomic_dir, file_sha256, fsync_dir

__all__ = ["MODALITIES", "METRICS", "KINDS", "Hit", "EmbeddingIndex"]

log = logging.getLogger(__name__)

MODALITIES = ("audio", "image")
METRICS = ("ip", "l2")
KINDS = ("flat", "ivf", "hnsw")

FORMAT = "looklisten.embedding_index"
# 2: item files relative to the index folder, a copied model ("checkpoint_relative")
VERSION = 2
READ_VERSIONS = (1, 2)
#: The sub-folder of an index holding its copy of the model (see :meth:`EmbeddingIndex.save`).
MODEL_DIR = "model"
#: The files of a checkpoint directory an index copies (the optimizer is not needed).
MODEL_FILES = ("config.json", "model.safetensors", "state.json")

# FAISS's k-means wants at least this many training points per centroid (it
# warns below 39); an IVF index with fewer points per list is not worth having.
MIN_POINTS_PER_LIST = 39
# Below this many lists an inverted file saves too little; search exactly.
MIN_NLIST = 16
# Product-quantiser codebooks have 256 centroids per sub-vector.
PQ_MIN_TRAIN = MIN_POINTS_PER_LIST * 256
# At most this many points per list are used to train the coarse quantizer
# (k-means cost grows with N * nlist; 64 per list is plenty for the centroids).
MAX_TRAIN_PER_LIST = 64
# and at most this many for the product quantiser's codebooks.
PQ_MAX_TRAIN = 256 * 256

_CORE_KEYS = ("file", "time", "modality", "label")


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes
    ----------
    file : str
        Source file (video) of the retrieved item: the path as added; for an
        index loaded from disk, resolved against the index folder.
    time : float
        Time of the item in the source, in seconds.
    modality : str
        ``"audio"`` or ``"image"``: the modality of the retrieved item.
    score : float
        For ``metric="ip"`` the inner product (the cosine similarity for
        normalised vectors; higher is closer); for ``metric="l2"`` the Euclidean
        distance (lower is closer). Hits are sorted closest first.
    index : int
        Position of the item in its modality's index (``index.meta(modality)``).
    label : Any, optional
        The item's label, if it was given one.
    extra : dict
        The item's other metadata keys (e.g. a thumbnail or clip reference).
    """

    file: str
    time: float
    modality: str
    score: float
    index: int
    label: Any = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def _faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _auto_nlist(n: int) -> int:
    return max(1, int(round(4.0 * math.sqrt(max(n, 1)))))


def _auto_nprobe(nlist: int) -> int:
    return min(nlist, max(8, nlist // 32))


def _jsonable(value: Any, i: int, key: str) -> Any:
    """Numpy scalars/arrays -> Python values; reject what JSON cannot hold."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta[{i}][{key!r}] is not JSON-serialisable: {value!r}") from e
    return value


class _Store:
    """One modality: a FAISS index (or pending vectors for an untrained IVF) + items."""

    def __init__(self, modality: str) -> None:
        self.modality = modality
        self.index: faiss.Index | None = None
        self.kind: str | None = None  # the kind actually built ("flat", "ivf", "ivfpq", "hnsw")
        self.pending: list[np.ndarray] = []
        self.items: list[dict[str, Any]] = []
        self.file_counts: Counter[str] = Counter()

    @property
    def n_indexed(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    @property
    def n_pending(self) -> int:
        return sum(len(v) for v in self.pending)


class EmbeddingIndex:
    """FAISS indexes for audio and image embeddings, with per-item metadata.

    Parameters
    ----------
    dim : int, optional
        Embedding size (128 for AVE-Net). If None it is taken from the first
        :meth:`add`.
    metric : {"ip", "l2"}
        ``"ip"``: inner product (cosine for normalised vectors), higher is
        closer. ``"l2"``: Euclidean distance, lower is closer. For unit vectors
        both give the same ranking.
    kind : {"flat", "ivf", "hnsw"}
        ``"flat"`` (default): exact brute-force search. ``"ivf"``: inverted file
        (IndexIVFFlat, or IndexIVFPQ if ``pq_m`` is given) with a k-means coarse
        quantizer trained on the data; training happens at the first
        :meth:`search`, :meth:`save` or :meth:`build` after the vectors were
        added (later additions go straight into the trained index). If there are
        too few vectors to train it (fewer than ``39 * nlist``, or fewer than
        ``39 * 16`` with the automatic ``nlist``), the modality falls back to
        exact search with a logged warning. ``"hnsw"``: IndexHNSWFlat, no
        training.
    normalize : bool
        L2-normalise added vectors and queries (default True). AVE-Net
        embeddings are unit vectors already; normalising again is harmless.
    nlist : int, optional
        IVF: number of inverted lists. Default ``round(4 * sqrt(N))`` (capped at
        ``N // 39``) with N the number of vectors at training time.
    nprobe : int, optional
        IVF: lists visited per query. Default ``max(8, nlist // 32)``. Higher is
        slower and more accurate. Settable later with :meth:`set_search_params`.
    pq_m : int, optional
        IVF: if given, compress vectors with a product quantiser of ``pq_m``
        sub-vectors of 8 bits (``dim`` must be divisible by ``pq_m``; needs
        ``39 * 256`` training points, else IVFFlat is used with a warning).
    hnsw_m : int
        HNSW: neighbours per node (default 32).
    ef_construction : int
        HNSW: candidate-list size while building (default 64).
    ef_search : int
        HNSW: candidate-list size while searching (default 128; higher is slower
        and more accurate).
    checkpoint : str, optional
        The model checkpoint the embeddings came from; stored in ``meta.json``
        (see :meth:`save` for a copy kept inside the index).
    seed : int
        Seed of the k-means used to train IVF quantizers.
    info : dict, optional
        JSON-serialisable notes kept in ``meta.json`` (``build_index``: the
        ``hop`` and ``center`` of its windows and the checkpoint it was built
        from, ``built_from``).
    """

    def __init__(
        self,
        dim: int | None = None,
        metric: str = "ip",
        kind: str = "flat",
        *,
        normalize: bool = True,
        nlist: int | None = None,
        nprobe: int | None = None,
        pq_m: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 64,
        ef_search: int = 128,
        checkpoint: str | os.PathLike | None = None,
        seed: int = 1234,
        info: dict[str, Any] | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if dim is not None and int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if nlist is not None and int(nlist) < 1:
            raise ValueError(f"nlist must be >= 1, got {nlist}")
        if pq_m is not None and dim is not None and int(dim) % int(pq_m):
            raise ValueError(f"dim={dim} is not divisible by pq_m={pq_m}")
        self.dim = None if dim is None else int(dim)
        self.metric = metric
        self.kind = kind
        self.normalize = bool(normalize)
        self.nlist = None if nlist is None else int(nlist)
        self.nprobe = None if nprobe is None else int(nprobe)
        self.pq_m = None if pq_m is None else int(pq_m)
        self.hnsw_m = int(hnsw_m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.seed = int(seed)
        self.info = dict(info or {})
        try:
            json.dumps(self.info)
        except (TypeError, ValueError) as e:
            raise ValueError(f"info is not JSON-serialisable: {e}") from e
        self._stores = {m: _Store(m) for m in MODALITIES}

    # ------------------------------------------------------------------ info

    def __len__(self) -> int:
        return sum(self.count(m) for m in MODALITIES)

    def __repr__(self) -> str:
        counts = ", ".join(f"{m}={self.count(m)}" for m in MODALITIES)
        return (
            f"EmbeddingIndex(dim={self.dim}, metric={self.metric!r}, kind={self.kind!r}, {counts})"
        )

    def count(self, modality: str) -> int:
        """Number of items of ``modality`` (indexed or waiting for IVF training)."""
        s = self._store(modality)
        return s.n_indexed + s.n_pending

    def meta(self, modality: str) -> list[dict[str, Any]]:
        """The items' metadata of ``modality``, in index order (do not mutate)."""
        return self._store(modality).items

    def built_kind(self, modality: str) -> str | None:
        """The index type actually built for ``modality`` (None before it is built).

        One of ``"flat"``, ``"ivf"``, ``"ivfpq"``, ``"hnsw"``: differs from
        :attr:`kind` where an IVF index fell back to exact search or to IVFFlat.
        """
        return self._store(modality).kind

    def faiss_index(self, modality: str) -> faiss.Index | None:
        """The underlying FAISS index of ``modality`` (None before it is built)."""
        return self._store(modality).index

    def _store(self, modality: str) -> _Store:
        if modality not in self._stores:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        return self._stores[modality]

    # ------------------------------------------------------------------ add

    def _prepare(self, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ValueError(f"{what} must have shape (N, D) or (D,), got {x.shape}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"{what} has dimension {x.shape[1]}, the index has dim={self.dim}")
        x = np.array(x, dtype=np.float32, order="C", copy=True)
        if not np.isfinite(x).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        if self.normalize and len(x):
            faiss.normalize_L2(x)
        return x

    def _check_items(self, modality: str, meta: Sequence[dict], n: int) -> list[dict]:
        if len(meta) != n:
            raise ValueError(f"got {n} vectors but {len(meta)} metadata entries")
        items = []
        for i, m in enumerate(meta):
            if not isinstance(m, dict):
                raise ValueError(f"meta[{i}] must be a dict, got {type(m).__name__}")
            if "file" not in m or "time" not in m:
                raise ValueError(f"meta[{i}] needs 'file' and 'time' keys, got {sorted(m)}")
            if m.get("modality", modality) != modality:
                raise ValueError(
                    f"meta[{i}] says modality {m['modality']!r} but is added to {modality!r}"
                )
            item = {k: _jsonable(v, i, k) for k, v in m.items()}
            try:
                item["file"] = os.fspath(item["file"])
                item["time"] = float(item["time"])
            except (TypeError, ValueError) as e:
                raise ValueError(f"meta[{i}] has an invalid file or time: {e}") from e
            item["modality"] = modality
            item.setdefault("label", None)
            items.append(item)
        return items

    def add(self, modality: str, vectors: np.ndarray, meta: Sequence[dict]) -> None:
        """Add embeddings of one modality.

        Parameters
        ----------
        modality : {"audio", "image"}
        vectors : np.ndarray, shape (N, D)
            Embeddings (converted to float32; L2-normalised if ``normalize``).
        meta : sequence of N dicts
            Per item: ``file`` (str) and ``time`` (seconds) are required;
            ``label`` is optional; any other JSON-serialisable keys (e.g.
            ``thumbnail``, ``clip``) are kept and returned in :attr:`Hit.extra`.
        """
        store = self._store(modality)
        x = self._prepare(vectors, "vectors")
        items = self._check_items(modality, meta, len(x))
        if len(x) == 0:
            return
        if self.dim is None:
            self.dim = int(x.shape[1])
            if self.pq_m is not None and self.dim % self.pq_m:
                raise ValueError(f"dim={self.dim} is not divisible by pq_m={self.pq_m}")
        if store.index is None and self.kind in ("flat", "hnsw"):
            store.index, store.kind = self._new_untrained(self.kind), self.kind
        if store.index is not None:
            store.index.add(x)
        else:  # IVF before training: keep the vectors until build()
            store.pending.append(x)
        store.items.extend(items)
        store.file_counts.update(it["file"] for it in items)

    # ------------------------------------------------------------------ build

    def _new_untrained(self, kind: str) -> faiss.Index:
        assert self.dim is not None
        if kind == "flat":
            return (
                faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
            )
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, _faiss_metric(self.metric))
            index.hnsw.efConstruction = self.ef_construction
            index.hnsw.efSearch = self.ef_search
            return index
        raise AssertionError(kind)

    def build(self) -> None:
        """Train and fill any IVF index still waiting for its data (else a no-op).

        A modality with no items stays unbuilt, so that vectors added later
        still get the requested kind of index.
        """
        for store in self._stores.values():
            if store.index is None and store.pending:
                self._build_ivf(store)

    def _build_ivf(self, store: _Store) -> None:
        assert self.dim is not None and store.pending
        x = np.concatenate(store.pending) if len(store.pending) > 1 else store.pending[0]
        n = len(x)
        nlist = self.nlist
        if nlist is None:
            nlist = min(_auto_nlist(n), n // MIN_POINTS_PER_LIST)
            too_few = nlist < MIN_NLIST
            need = MIN_POINTS_PER_LIST * MIN_NLIST
        else:
            too_few = n < MIN_POINTS_PER_LIST * nlist
            need = MIN_POINTS_PER_LIST * nlist
        if too_few:
            log.warning(
                "%s: %d vectors are too few to train an IVF index (need >= %d); "
                "using exact search instead",
                store.modality,
                n,
                need,
            )
            store.index, store.kind = self._new_untrained("flat"), "flat"
        else:
            metric = _faiss_metric(self.metric)
            quantizer = (
                faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
            )
            pq_m = self.pq_m
            if pq_m is not None and n < PQ_MIN_TRAIN:
                log.warning(
                    "%s: %d vectors are too few to train a product quantiser (need >= %d); "
                    "using IVFFlat instead",
                    store.modality,
                    n,
                    PQ_MIN_TRAIN,
                )
                pq_m = None
            if pq_m is None:
                index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, metric)
                store.kind = "ivf"
            else:
                index = faiss.IndexIVFPQ(quantizer, self.dim, nlist, pq_m, 8, metric)
                store.kind = "ivfpq"
            index.cp.seed = self.seed
            n_train = min(n, MAX_TRAIN_PER_LIST * nlist)
            if store.kind == "ivfpq":
                n_train = max(n_train, min(n, PQ_MAX_TRAIN))
            if n_train < n:
                rng = np.random.default_rng(self.seed)
                train = x[np.sort(rng.choice(n, n_train, replace=False))]
            else:
                train = x
            index.train(train)
            index.nprobe = self.nprobe if self.nprobe is not None else _auto_nprobe(nlist)
            store.index = index  # (faiss's wrapper keeps a reference to the quantizer)
            log.info(
                "%s: trained %s index, nlist=%d, nprobe=%d on %d vectors",
                store.modality,
                store.kind,
                nlist,
                index.nprobe,
                n_train,
            )
        store.index.add(x)
        store.pending = []

    def set_search_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change IVF ``nprobe`` and/or HNSW ``efSearch`` of the built indexes."""
        if nprobe is not None:
            self.nprobe = int(nprobe)
        if ef_search is not None:
            self.ef_search = int(ef_search)
        for store in self._stores.values():
            self._apply_search_params(store)

    def _apply_search_params(self, store: _Store) -> None:
        if store.index is None:
            return
        if store.kind in ("ivf", "ivfpq") and self.nprobe is not None:
            faiss.extract_index_ivf(store.index).nprobe = self.nprobe
        elif store.kind == "hnsw":
            store.index.hnsw.efSearch = self.ef_search

    # ------------------------------------------------------------------ search

    def search(
        self,
        query: np.ndarray,
        target: str,
        k: int = 10,
        *,
        exclude_files: str | Sequence[str | None] | None = None,
        per_file: int | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` nearest items of modality ``target`` for each query.

        Parameters
        ----------
        query : np.ndarray, shape (Q, D) or (D,)
            Query embeddings of either modality (normalised if ``normalize``).
        target : {"audio", "image"}
            The modality to search.
        k : int
            Number of hits per query.
        exclude_files : str or sequence of Q (str or None), optional
            Drop hits from this file (one for all queries, or one per query),
            e.g. the query's own video as in the Objects-that-Sound evaluation.
        per_file : int, optional
            At most this many hits from one file (None or 0: no limit); ``k``
            stays the total. FAISS is asked for more neighbours, 4x more each
            round, until ``k`` hits pass or the index has no more to give.

        Returns
        -------
        list of Q lists of :class:`Hit`
            Closest first; fewer than ``k`` where the target holds fewer items
            (or fewer files, with ``per_file``).
        """
        store = self._store(target)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if per_file is not None and int(per_file) < 0:
            raise ValueError(f"per_file must be >= 0 (0: no limit), got {per_file}")
        per = int(per_file) if per_file else None
        q = self._prepare(query, "query")
        n_q = len(q)
        if exclude_files is None or isinstance(exclude_files, (str, os.PathLike)):
            excl = [None if exclude_files is None else os.fspath(exclude_files)] * n_q
        else:
            excl = [None if f is None else os.fspath(f) for f in exclude_files]
            if len(excl) != n_q:
                raise ValueError(f"exclude_files has {len(excl)} entries for {n_q} queries")
        if store.index is None and store.pending:
            self._build_ivf(store)
        ntotal = store.n_indexed
        if n_q == 0 or ntotal == 0:
            return [[] for _ in range(n_q)]
        # over-fetch by the largest number of items an excluded file holds
        extra = max((store.file_counts.get(f, 0) for f in excl if f is not None), default=0)
        k_fetch = min((k + extra) * (4 if per else 1), ntotal)
        out: list[list[Hit]] = [[] for _ in range(n_q)]
        todo = list(range(n_q))
        while todo:
            scores, ids = store.index.search(q[todo], k_fetch)
            if self.metric == "l2":
                scores = np.sqrt(np.maximum(scores, 0.0))
            again = []
            for row, qi in enumerate(todo):
                out[qi] = self._hits(store, scores[row], ids[row], k, excl[qi], per)
                exhausted = k_fetch >= ntotal or int((ids[row] >= 0).sum()) < k_fetch
                if len(out[qi]) < k and not exhausted:
                    again.append(qi)
            todo, k_fetch = again, min(k_fetch * 4, ntotal)
        return out

    @staticmethod
    def _hits(store: _Store, scores, ids, k: int, excl: str | None, per: int | None) -> list[Hit]:
        """The first ``k`` hits of one FAISS answer, without ``excl`` and at most ``per`` a file."""
        hits: list[Hit] = []
        taken: Counter[str] = Counter()
        for s, i in zip(scores.tolist(), ids.tolist()):
            if i < 0:
                continue
            it = store.items[i]
            if excl is not None and it["file"] == excl:
                continue
            if per is not None and taken[it["file"]] >= per:
                continue
            taken[it["file"]] += 1
            hits.append(
                Hit(
                    file=it["file"],
                    time=it["time"],
                    modality=store.modality,
                    score=float(s),
                    index=int(i),
                    label=it.get("label"),
                    extra={kk: v for kk, v in it.items() if kk not in _CORE_KEYS},
                )
            )
            if len(hits) == k:
                break
        return hits

    # ------------------------------------------------------------------ save / load

    def config(self) -> dict[str, Any]:
        """The JSON-able configuration written to ``meta.json`` (without file hashes)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "dim": self.dim,
            "metric": self.metric,
            "kind": self.kind,
            "normalize": self.normalize,
            "checkpoint": self.checkpoint,
            "checkpoint_relative": False,
            "info": self.info,
            "params": {
                "nlist": self.nlist,
                "nprobe": self.nprobe,
                "pq_m": self.pq_m,
                "hnsw_m": self.hnsw_m,
                "ef_construction": self.ef_construction,
                "ef_search": self.ef_search,
                "seed": self.seed,
            },
            "counts": {m: self.count(m) for m in MODALITIES},
        }

    def save(self, path: str | os.PathLike, *, include_model: bool = False) -> Path:
        """Write the index to the directory ``path`` atomically.

        The directory is built in a temporary sibling and swapped in only when
        every file is written and fsynced (:func:`looklisten.core.fileio.atomic_dir`):
        after a crash ``path`` holds the previous index, or nothing if there was
        none. Untrained IVF indexes are built first. Absolute item files are
        stored relative to ``path`` (with the absolute path as a fallback), so
        that the folder can be moved together with its media.

        Parameters
        ----------
        path : path-like
            The index directory.
        include_model : bool
            Copy the checkpoint (:attr:`checkpoint`: a run or checkpoint
            directory) into ``path/model`` (its ``config.json``,
            ``model.safetensors`` and ``state.json``; the files are copied, not
            re-saved) and record ``"model"`` as the checkpoint: the index then
            needs no other folder to be searched.

        Returns
        -------
        Path
            ``path``.
        """
        if self.dim is None:
            raise ValueError("cannot save an index with no vectors and no dim")
        model_files = self._model_files() if include_model else []
        self.build()
        path = Path(path)
        base = os.path.abspath(path)
        cfg = self.config()
        cfg["modalities"] = {}
        if include_model:
            cfg["checkpoint"], cfg["checkpoint_relative"] = MODEL_DIR, True
            cfg["info"] = {"built_from": self.checkpoint, **self.info}
        with atomic_dir(path) as tmp:
            if model_files:
                (tmp / MODEL_DIR).mkdir()
                for f in model_files:
                    shutil.copyfile(f, tmp / MODEL_DIR / f.name)
                fsync_dir(tmp / MODEL_DIR)
            for m in MODALITIES:
                store = self._stores[m]
                index_file, items_file = f"{m}.faiss", f"{m}.items.json"
                # an empty modality is written as an empty exact index
                faiss.write_index(
                    store.index if store.index is not None else self._new_untrained("flat"),
                    str(tmp / index_file),
                )
                (tmp / items_file).write_text(
                    json.dumps(_items_to_columns(store.items, base)), encoding="utf-8"
                )
                cfg["modalities"][m] = {
                    "count": store.n_indexed,
                    "built_kind": store.kind,
                    "index_file": index_file,
                    "items_file": items_file,
                    "sha256": {
                        index_file: file_sha256(tmp / index_file),
                        items_file: file_sha256(tmp / items_file),
                    },
                }
            (tmp / "meta.json").write_text(
                json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
        return path

    def _model_files(self) -> list[Path]:
        """The files of :attr:`checkpoint` that :meth:`save` copies (a clear error if none)."""
        from looklisten.models.checkpoint import resolve

        if self.checkpoint is None:
            raise ValueError("include_model: the index names no checkpoint")
        try:
            ckpt = resolve(self.checkpoint)
        except (FileNotFoundError, OSError, ValueError) as e:
            raise ValueError(f"include_model: {e}") from e
        return [ckpt / f for f in MODEL_FILES if (ckpt / f).is_file()]

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = True) -> EmbeddingIndex:
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The index directory.
        verify : bool
            Check the files' sha256 against ``meta.json`` (default True).

        Raises
        ------
        ValueError
            Naming ``path`` and the reason, if the directory is missing, is not an
            index, or any file is missing, truncated or inconsistent.
        """
        path = Path(path)

        def fail(reason: str) -> ValueError:
            return ValueError(f"cannot load embedding index from {path}: {reason}")

        if not path.is_dir():
            raise fail("no such directory")
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise fail("meta.json is missing")
        try:
            cfg = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise fail(f"meta.json is unreadable or corrupt ({e})") from e
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise fail(f"meta.json is not a {FORMAT} file")
        if cfg.get("version") not in READ_VERSIONS:
            raise fail(
                f"unsupported version {cfg.get('version')!r} (this code reads "
                f"{', '.join(map(str, READ_VERSIONS))})"
            )
        base = os.path.abspath(path)
        try:
            params = cfg["params"]
            ckpt = cfg["checkpoint"]
            if ckpt is not None and cfg.get("checkpoint_relative", False):
                ckpt = os.path.join(base, ckpt)
            obj = cls(
                dim=cfg["dim"],
                metric=cfg["metric"],
                kind=cfg["kind"],
                normalize=cfg["normalize"],
                nlist=params["nlist"],
                nprobe=params["nprobe"],
                pq_m=params["pq_m"],
                hnsw_m=params["hnsw_m"],
                ef_construction=params["ef_construction"],
                ef_search=params["ef_search"],
                checkpoint=ckpt,
                seed=params["seed"],
                info=cfg.get("info"),
            )
            mods = cfg["modalities"]
            entries = {m: mods[m] for m in MODALITIES}
        except (KeyError, TypeError, ValueError) as e:
            raise fail(f"meta.json is incomplete or invalid ({e!r})") from e
        for m, entry in entries.items():
            store = obj._stores[m]
            try:
                index_file, items_file = entry["index_file"], entry["items_file"]
                count, built_kind = int(entry["count"]), entry["built_kind"]
                hashes = entry["sha256"]
            except (KeyError, TypeError, ValueError) as e:
                raise fail(f"meta.json entry for {m!r} is invalid ({e!r})") from e
            for fname in (index_file, items_file):
                fpath = path / fname
                if not fpath.is_file():
                    raise fail(f"{fname} is missing")
                if verify and file_sha256(fpath) != hashes.get(fname):
                    raise fail(f"{fname} is corrupt (sha256 does not match meta.json)")
            try:
                index = faiss.read_index(str(path / index_file))
            except Exception as e:  # faiss raises RuntimeError with a C++ message
                raise fail(f"{index_file} is not a readable FAISS index ({e})") from e
            if index.d != obj.dim:
                raise fail(f"{index_file} has dimension {index.d}, meta.json says {obj.dim}")
            if index.ntotal != count:
                raise fail(f"{index_file} holds {index.ntotal} vectors, meta.json says {count}")
            try:
                items = _items_from_columns(
                    json.loads((path / items_file).read_text(encoding="utf-8")), m, base
                )
            except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
                raise fail(f"{items_file} is unreadable or corrupt ({e!r})") from e
            if len(items) != count:
                raise fail(f"{items_file} holds {len(items)} items, meta.json says {count}")
            if count == 0:  # unbuilt: later additions get the configured kind
                continue
            store.index, store.kind, store.items = index, built_kind, items
            store.file_counts = Counter(it["file"] for it in items)
            obj._apply_search_params(store)
        return obj


# ---------------------------------------------------------------------- item columns


def _stored_file(file: str, base: str | None) -> tuple[str, bool]:
    """An absolute ``file`` relative to ``base`` ("/"-separated); others as they are."""
    if base is None or not os.path.isabs(file):
        return file, False
    try:
        rel = os.path.relpath(file, base)
    except ValueError:  # another drive (Windows)
        return file, False
    return rel.replace(os.sep, "/"), True


def _items_to_columns(items: list[dict[str, Any]], base: str | None = None) -> dict[str, Any]:
    """List of item dicts -> a compact columnar dict (file names stored once).

    With ``base`` (the index folder) absolute files are stored relative to it
    (``relative``), with their absolute path in ``origin``.
    """
    files: dict[str, int] = {}
    file_idx = [files.setdefault(it["file"], len(files)) for it in items]
    stored = [_stored_file(f, base) for f in files]
    extra_keys = sorted({k for it in items for k in it if k not in _CORE_KEYS})
    return {
        "n": len(items),
        "files": [f for f, _ in stored],
        "relative": [rel for _, rel in stored],
        "origin": [f if rel else None for f, (_, rel) in zip(files, stored)],
        "file_index": file_idx,
        "time": [it["time"] for it in items],
        "label": [it.get("label") for it in items],
        # a key missing from an item is stored as absent (not as None)
        "extra": {
            k: {"present": [k in it for it in items], "values": [it.get(k) for it in items]}
            for k in extra_keys
        },
    }


def _resolve_files(cols: dict[str, Any], base: str) -> list[str]:
    """The stored files as paths: relative ones joined to ``base``.

    A relative file that is not there falls back to its ``origin`` (the path it
    had when saved) if that one is: an index copied without its media still
    finds them where they were.
    """
    files = list(cols["files"])
    relative = cols.get("relative") or [False] * len(files)
    origin = cols.get("origin") or [None] * len(files)
    if not (len(relative) == len(origin) == len(files)):
        raise TypeError("file columns of different lengths")
    out = []
    for f, rel, orig in zip(files, relative, origin):
        if rel:
            p = os.path.normpath(os.path.join(base, f))
            if orig is not None and not os.path.exists(p) and os.path.exists(orig):
                p = orig
            f = p
        out.append(f)
    return out


def _items_from_columns(
    cols: dict[str, Any], modality: str, base: str | None = None
) -> list[dict[str, Any]]:
    n = int(cols["n"])
    files = cols["files"] if base is None else _resolve_files(cols, base)
    file_idx, times, labels = cols["file_index"], cols["time"], cols["label"]
    if not (len(file_idx) == len(times) == len(labels) == n):
        raise TypeError("columns of different lengths")
    items = [
        {"file": files[fi], "time": float(t), "modality": modality, "label": lab}
        for fi, t, lab in zip(file_idx, times, labels)
    ]
    for key, col in cols["extra"].items():
        if len(col["present"]) != n or len(col["values"]) != n:
            raise TypeError(f"extra column {key!r} has the wrong length")
        for it, present, value in zip(items, col["present"], col["values"]):
            if present:
                it[key] = value
    return items
