"""Build a searchable index of media and query it: ``looklisten index`` / ``looklisten search``.

``looklisten index SOURCE --checkpoint RUN --out INDEX`` embeds every video,
audio file and image under SOURCE (or reads the ``.npz`` files written by
``looklisten embed``) into an :class:`looklisten.tasks.index.EmbeddingIndex`:
both modalities, an item every ``--hop`` seconds (1.0; ``embed``'s default is
0.1 s because it makes features, an index keeps one item a second to stay
small). Windows lie inside the file: 1 s long, centred at 0.5 s, 1.5 s, ...
(``--center``: at 0 s, 1 s, ..., half a window of zeros at the ends); a video
gives an image *and* an audio item at each centre. Each item has ``file``,
``time`` (s), ``modality``, ``kind`` (what the file holds, by content: video,
audio or image) and ``label`` when known (demo annotations: the object heard
at that time; ``labels.csv``; or the sub-folder name).

The index folder is self-contained: it holds a copy of the model
(``INDEX/model``) and names its files relative to itself, so it can be copied,
moved (with its media) or archived and still be searched.

``looklisten search INDEX --image F | --audio F [--at T] | --video F [--at T]``
embeds the query exactly like the indexed items and prints the ranked hits, at
most ``--per-video`` (1) from one file. A sound without ``--at`` is the whole
file: every window (the index's windows) embedded and pooled. ``--html
OUT.html`` writes a self-contained page with thumbnails (JPEG data URIs) and
the sound clips (WAV data URIs).

Example
-------
>>> result = search("videos.index", image="dog.jpg")  # doctest: +SKIP
>>> print(result)                                     # the ranked hits, a table
>>> for hit in result:                                # doctest: +SKIP
...     print(hit.file, hit.time, hit.score)
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from looklisten.models.checkpoint import model_first

if TYPE_CHECKING:
    from looklisten.tasks.index import EmbeddingIndex, Hit

__all__ = ["SearchResult", "build_index", "embed_query", "pool", "query_when", "search"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def _load_npz(path: Path) -> dict[str, Any]:
    from looklisten.media.video import MediaError

    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile / numpy errors of all kinds
        raise MediaError(path, f"not a readable embed .npz file ({exc})") from None
    for key in ("modality", "timestamps", "checkpoint"):
        if key not in d:
            raise MediaError(path, f"not an embed .npz file (no '{key}')")
    out: dict[str, Any] = {
        "modality": str(d["modality"]),
        "timestamps": np.asarray(d["timestamps"], np.float64),
        "checkpoint": str(d["checkpoint"]),
        "source": str(d["source"]) if "source" in d else None,
        "windows": (float(d["hop"]), bool(d["center"])) if "hop" in d and "center" in d else None,
    }
    if out["modality"] == "video":
        out["image_embedding"] = d.get("image_embedding")
        out["audio_embedding"] = d.get("audio_embedding")
    else:
        out["embedding"] = d.get("embedding")
    return out


def _same_checkpoint(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _items_of(result: dict[str, Any], file: str, label_fn) -> dict[str, tuple[np.ndarray, list]]:
    """A result (embed_file / npz) -> {modality: (vectors, metadata)}."""
    kind = result["modality"]
    ts = np.asarray(result["timestamps"], np.float64)

    def meta(times):
        return [
            {"file": file, "time": float(t), "kind": kind, "label": label_fn(file, float(t))}
            for t in times
        ]

    out = {}
    if kind == "video":
        out["image"] = (result["image_embedding"], meta(ts))
        if result.get("audio_embedding") is not None:
            out["audio"] = (result["audio_embedding"], meta(ts))
    elif kind == "image":
        emb = np.asarray(result["embedding"])
        out["image"] = (emb, meta(np.zeros(len(emb))))
    else:
        out["audio"] = (result["embedding"], meta(ts))
    return out


@model_first
def build_index(
    model,
    sources: str | os.PathLike | list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    kind: str = "flat",
    hop: float = 1.0,
    center: bool = False,
    labels: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
):
    """Embed (or read) every media / ``.npz`` file under ``sources`` into an index at ``out``.

    The index folder holds a copy of the model (``out/model``: the
    checkpoint's ``config.json``, ``model.safetensors`` and ``state.json``)
    and names its files relative to itself: copy, move (with the media) or
    archive it and :func:`search` still works, without the original run.

    Parameters
    ----------
    model : AVNet, path-like or None
        The model (first, as in every entry point; the older
        ``build_index(sources, checkpoint, out)`` still works, with a warning),
        or a run / checkpoint directory; None takes the checkpoint recorded in
        the ``.npz`` files.
    sources : path-like or list of path-like
        Folders (searched recursively) and files: media files are embedded,
        ``.npz`` files from ``looklisten embed`` are read (their checkpoint
        must be the index's). Files are classified by content: a video stream
        in an ``.ogg`` / ``.m4a`` file is indexed as a video.
    out : path-like
        Index directory (written atomically).
    kind : {"flat", "ivf", "hnsw"}
        FAISS index type (see :class:`looklisten.tasks.index.EmbeddingIndex`).
    hop : float
        Seconds between items: an item every 1.0 s (embed's default is 0.1 s:
        features; an index keeps one item a second to stay small).
    center : bool
        Window placement (see :mod:`looklisten.tasks.embed`). False (default):
        the 1 s windows lie inside the file, centred at 0.5 s, 1.5 s, ...
        (``hop`` 1.0); True: centred at 0 s, 1 s, ..., zero-padded at the ends.
        Recorded in the index (with ``hop``): a whole-file sound query is
        windowed the same way.
    labels : path-like, optional
        annotations.jsonl or CSV (see :class:`looklisten.evaluation.retrieval.Labels`);
        default: what the (first) source folder holds.

    Returns
    -------
    index : EmbeddingIndex
    failures : list of str
        ``"path: reason"`` for each input that could not be used.
    """
    from looklisten.core.fileio import check_writable
    from looklisten.core.progress import progress_bar
    from looklisten.data.labels import Labels
    from looklisten.inputs.prepare import MEDIA_EXTENSIONS, find_media, searched_for
    from looklisten.media.video import MediaError
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.embed import embed_many
    from looklisten.tasks.index import EmbeddingIndex

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files = find_media(sources, MEDIA_EXTENSIONS | {".npz"})
    if not files:
        exts = MEDIA_EXTENSIONS | {".npz"}
        where = ", ".join(map(str, sources))
        raise ValueError(f"no media or .npz files in {where} ({searched_for(exts)})")
    # the index is written once, at the end: a disk that takes no writes is refused now
    check_writable(Path(os.path.abspath(out)).parent)
    roots = [Path(s) for s in sources if Path(s).is_dir()]
    label_root = roots[0] if roots else Path(files[0][0]).parent
    label_src = Labels(label_root, labels)

    npz = [(p, r) for p, r in files if p.suffix.lower() == ".npz"]
    media = [(p, r) for p, r in files if p.suffix.lower() != ".npz"]
    failures: list[str] = []
    loaded: list[tuple[Path, Path, dict]] = []
    for p, r in npz:
        try:
            loaded.append((p, r, _load_npz(p)))
        except MediaError as e:
            failures.append(str(e))
    if model is None:
        ckpts = {d["checkpoint"] for _, _, d in loaded}
        if len(ckpts) != 1:
            raise ValueError(
                "give --checkpoint (the .npz files name "
                + (", ".join(sorted(ckpts)) if ckpts else "no checkpoint")
                + ")"
            )
        model = ckpts.pop()
    given, model = model, get_model(model, device)
    ckpt = getattr(model, "checkpoint_path", None) or os.path.abspath(given)
    windows = {d["windows"] for _, _, d in loaded if d["windows"] is not None}
    if not media and len(windows) == 1:  # the .npz files' windows
        hop, center = windows.pop()
    index = EmbeddingIndex(
        kind=kind, checkpoint=ckpt, info={"hop": float(hop), "center": bool(center)}
    )
    counts = {"files": 0}

    beside: dict[Path, Labels | None] = {}

    def labels_beside(file: str) -> Labels | None:
        """Labels of the folder holding ``file`` (annotations.jsonl / labels.csv), if any."""
        d = Path(file).parent
        if d not in beside:
            has = (d / "annotations.jsonl").is_file() or (d / "labels.csv").is_file()
            beside[d] = Labels(d) if has and labels is None else None
        return beside[d]

    def add(result, file: str, rel: Path):
        def label_fn(f, t):
            lab = label_src(rel, t)
            if lab is None and label_src.kind == "folders":
                # .npz files: the labels may sit beside the original media
                other = labels_beside(f)
                lab = other(f, t) if other is not None else None
            return lab

        for modality, (vecs, meta) in _items_of(result, file, label_fn).items():
            index.add(modality, np.asarray(vecs, np.float32), meta)
        counts["files"] += 1

    for p, r, d in loaded:
        if not _same_checkpoint(d["checkpoint"], ckpt):
            failures.append(f"{p}: embedded with {d['checkpoint']}, not {ckpt}")
            continue
        rel = Path(str(r)[: -len(".npz")]) if str(r).endswith(".npz") else r
        source = d["source"] or str(p)[: -len(".npz")]
        add(d, os.path.abspath(source), rel)

    bar = progress_bar(total=len(media), desc="index", unit="file", disable=not progress)
    paths = [str(p) for p, _ in media]
    results = embed_many(inputs=paths, model=model, hop=hop, center=center, batch_size=batch_size)
    for key, res, err in results:
        bar.update()
        if err is not None:
            failures.append(str(err))
            continue
        p, r = media[key]
        add(res, os.path.abspath(p), r)
    bar.close()
    if len(index) == 0:
        raise ValueError("nothing was indexed: " + "; ".join(failures[:5]))
    index.save(out, include_model=True)
    return index, failures


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------


def embed_query(
    model,
    *,
    image: str | os.PathLike | None = None,
    audio: str | os.PathLike | None = None,
    video: str | os.PathLike | None = None,
    at: float | None = None,
    modality: str = "image",
    hop: float = 1.0,
    center: bool = False,
) -> dict[str, Any]:
    """Embed a query exactly as the index's items were embedded.

    Parameters
    ----------
    model : AVNet
    image : path-like
        An image file (a video: its frame at ``at``, default its first frame).
    audio : path-like
        An audio (or video) file. With ``at``: the 1 s window centred there.
        Without: the whole file, every window of ``hop`` / ``center`` (the
        index's windows) embedded and pooled (the mean of the L2-normalised
        window embeddings, normalised again).
    video : path-like
        A video: its frame at ``at`` (``modality="image"``; default its first
        frame) or its sound (``modality="audio"``, as ``audio``).
    modality : {"image", "audio"}
        For ``video``: which stream is the query.
    hop, center : float, bool
        The windows of a whole-file sound (see :mod:`looklisten.tasks.embed`).

    Returns
    -------
    dict
        ``vector`` (D,) float32, ``modality``, ``file``, ``time`` (the frame's
        or the window's centre; None for an image file and a pooled sound).
        Images: ``pixels``. Sounds: ``span`` (start, end), the seconds of the
        file heard, ``windows`` (how many were pooled, 1 with ``at``),
        ``duration``, ``wave`` (the samples heard) and ``signal`` (the whole
        track), at the model's sample rate.
    """
    from looklisten.inputs.prepare import (
        audio_window,
        load_audio,
        load_image,
        media_kind,
        read_frame_at,
    )
    from looklisten.media.video import MediaError, MediaReader, probe
    from looklisten.tasks.embed import embed_audio, embed_frame_at, embed_image

    given = [x for x in (image, audio, video) if x is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --image, --audio, --video")
    cfg = model.cfg
    path = os.fspath(given[0])
    info = probe(path)
    if video is not None:
        if modality not in ("image", "audio"):
            raise ValueError(f"modality must be image or audio, got {modality!r}")
        if not info.has_video:
            raise MediaError(path, "no video stream")
        if modality == "audio":
            audio = path
        else:
            image = path
    if image is not None:
        kind = media_kind(info)
        if kind == "audio":
            raise MediaError(path, "no video stream or image")
        if kind == "image":
            pixels, t = load_image(path), None
            vec = embed_image(images=pixels, model=model)[0]
        else:  # as the index embedded it: motion models see the frame window / flow at t
            t = float(at) if at is not None else info.video_start
            with MediaReader(path, info=info) as r:
                pixels = read_frame_at(r, t, size=cfg.vision.resize)
                vec = embed_frame_at(reader=r, t=t, model=model)
        return {"vector": vec, "modality": "image", "file": path, "time": t, "pixels": pixels}
    # audio: decode the whole track once and slice, exactly as the index did
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    sr = cfg.audio.sample_rate
    signal = load_audio(path, sr)
    if len(signal) == 0:
        raise MediaError(path, "empty: no audio samples")
    duration = len(signal) / sr
    half = cfg.audio.clip_seconds / 2
    if at is not None:
        t = float(at)
        wave = audio_window(signal, t, cfg)
        emb, _ = embed_audio(audio=wave, sr=sr, model=model, hop=1.0, center=False)
        vec, first, last, n = emb[0], t, t, 1
    else:
        t = None
        emb, times = embed_audio(audio=signal, sr=sr, model=model, hop=hop, center=center)
        vec = pool(emb)
        first, last, n = float(times[0]), float(times[-1]), len(times)
    span = (max(0.0, first - half), min(duration, last + half))
    if t is None:
        wave = signal[int(round(span[0] * sr)) : int(round(span[1] * sr))]
    return {
        "vector": vec,
        "modality": "audio",
        "file": path,
        "time": t,
        "span": span,
        "windows": n,
        "duration": duration,
        "wave": wave,
        "signal": signal,
    }


def pool(embeddings: np.ndarray) -> np.ndarray:
    """One vector for many: the mean of the L2-normalised rows, normalised again.

    Parameters
    ----------
    embeddings : np.ndarray, shape (T, D)

    Returns
    -------
    np.ndarray, shape (D,), float32
    """
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    m = x.mean(axis=0)
    return (m / max(float(np.linalg.norm(m)), 1e-12)).astype(np.float32)


def search(
    index_dir: str | os.PathLike,
    *,
    image=None,
    audio=None,
    video=None,
    at: float | None = None,
    modality: str = "image",
    target: str | None = None,
    k: int = 10,
    per_video: int = 1,
    checkpoint=None,
    exclude_self: bool = False,
    device: str | None = None,
) -> SearchResult:
    """Query an index built by :func:`build_index`.

    Parameters
    ----------
    index_dir : path-like
        The index folder.
    image, audio, video, at, modality
        The query (see :func:`embed_query`): an image or a video's frame at
        ``at``; a sound, the 1 s at ``at`` or, without ``at``, the whole file
        pooled over the index's windows.
    target : {"audio", "image"}, optional
        The modality searched (default: the other one: cross-modal).
    k : int
        Number of hits in all.
    per_video : int
        At most this many hits from one file (0: no limit).
    checkpoint : path-like, optional
        Overrides the index's model (its copy in ``index_dir/model``).
    exclude_self : bool
        Drop hits from the query's own file.
    device : str, optional

    Returns
    -------
    SearchResult
        The :class:`looklisten.tasks.index.Hit` objects, best first (score:
        cosine similarity); ``print(result)`` shows them as a table,
        ``result.query`` is the query (:func:`embed_query`'s dict plus
        ``target``, ``label``, ``checkpoint`` and ``sample_rate``),
        ``result.index`` the index.
    """
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.index import EmbeddingIndex

    if int(per_video) < 0:
        raise ValueError(f"per_video must be >= 0 (0: no limit), got {per_video}")
    index = EmbeddingIndex.load(index_dir)
    ckpt = checkpoint or index.checkpoint
    if ckpt is None:
        raise ValueError(f"{index_dir}: the index names no checkpoint; give --checkpoint")
    model = get_model(ckpt, device)
    query = embed_query(
        model,
        image=image,
        audio=audio,
        video=video,
        at=at,
        modality=modality,
        hop=float(index.info.get("hop", 1.0)),
        center=bool(index.info.get("center", False)),
    )
    if target is None:
        target = "audio" if query["modality"] == "image" else "image"
    if target != query["modality"] and model.cfg.model.arch != "ave":
        log.warning(
            "%s features of images and sounds do not share one space: cross-modal search "
            "needs an AVE-Net checkpoint",
            model.cfg.model.arch.upper(),
        )
    if query["vector"].shape[0] != index.dim:
        raise ValueError(
            f"the query has dimension {query['vector'].shape[0]}, the index {index.dim}: "
            "was it built with another checkpoint?"
        )
    excl = _indexed_name(index, target, query["file"]) if exclude_self else None
    hits = index.search(
        query["vector"], target=target, k=k, exclude_files=excl, per_file=int(per_video)
    )[0]
    query["target"] = target
    query["checkpoint"] = str(ckpt)
    query["sample_rate"] = model.cfg.audio.sample_rate
    query["label"] = _query_label(index, query)
    return SearchResult(hits, query, index, per_video=int(per_video))


def _indexed_name(index, modality: str, file: str | os.PathLike) -> str:
    """How the index names ``file`` among its ``modality`` items (its absolute path if absent).

    The same path, else a file of the same name that is the same file on disk
    (another spelling of the path: a link, a mount).
    """
    f = os.path.abspath(file)
    files = {it["file"] for it in index.meta(modality)}
    if f in files:
        return f
    name = os.path.basename(f)
    for g in sorted(g for g in files if os.path.basename(g) == name):
        try:
            if os.path.samefile(f, g):
                return g
        except OSError:
            continue
    return f


def _query_label(index, query) -> Any:
    """The label of the indexed items at the query's file and time, if indexed.

    One time: the item nearest it (within 0.5 s). A pooled sound: the most
    common label of the items in its span.
    """
    f = _indexed_name(index, query["modality"], query["file"])
    items = [it for it in index.meta(query["modality"]) if it["file"] == f]
    if query.get("time") is None and query.get("span") is not None:
        lo, hi = query["span"]
        labels = Counter(
            it.get("label")
            for it in items
            if lo - 1e-6 <= it["time"] <= hi + 1e-6 and it.get("label") is not None
        )
        return labels.most_common(1)[0][0] if labels else None
    best, best_dt = None, None
    for it in items:
        dt = abs(it["time"] - (query["time"] or 0.0))
        if best_dt is None or dt < best_dt:
            best, best_dt = it.get("label"), dt
    return best if best_dt is not None and best_dt <= 0.5 else None


# ---------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------


class _Query(dict):
    """The query dict; its repr shows arrays by shape, not by value."""

    def __repr__(self) -> str:
        def short(v):
            if isinstance(v, np.ndarray):
                return f"<array {v.shape} {v.dtype}>"
            return repr(v)

        return "{" + ", ".join(f"{k!r}: {short(v)}" for k, v in self.items()) + "}"

    __str__ = __repr__


def query_when(query: dict[str, Any]) -> str:
    """The moment(s) of the query file used, in words ("" for an image file).

    ``"frame at 1.00 s"``, ``"seconds 1.50–2.50 (the 1 s at 2.00 s)"`` or
    ``"seconds 0.00–7.00, 7 windows pooled"``.
    """
    span, t = query.get("span"), query.get("time")
    if query.get("modality") == "image":
        return "" if t is None else f"frame at {t:.2f} s"
    if span is None:
        return "" if t is None else f"at {t:.2f} s"
    seconds = f"seconds {span[0]:.2f}–{span[1]:.2f}"
    if t is not None:
        return f"{seconds} (the 1 s at {t:.2f} s)"
    n = query.get("windows", 1)
    return f"{seconds}, {n} window{'s' if n != 1 else ''} pooled"


class SearchResult(Sequence):
    """The hits of one query, best first: a sequence of :class:`~looklisten.tasks.index.Hit`.

    Iterate, index or slice it like a list (a slice is a SearchResult);
    ``print(result)`` shows the query and a table of the hits (rank, score,
    time, label, file). ``result.index`` is the index searched, not the
    position of a hit (``list(result).index(hit)``).

    Attributes
    ----------
    query : dict
        What :func:`embed_query` returns plus ``target``, ``label``,
        ``checkpoint`` and ``sample_rate`` (the model's); its arrays
        (``vector``, ``pixels``, ``wave``, ``signal``) print as their shapes.
    index : EmbeddingIndex
        The index searched.
    per_video : int
        The most hits one file may give (0: no limit). Above 1 the table
        groups a file's hits together (files by their best score).
    """

    def __init__(
        self, hits: Sequence[Hit], query: dict[str, Any], index: EmbeddingIndex, per_video: int = 1
    ) -> None:
        self._hits = tuple(hits)
        self.query = _Query(query)
        self.index = index
        self.per_video = int(per_video)

    def __len__(self) -> int:
        return len(self._hits)

    @overload
    def __getitem__(self, i: int) -> Hit: ...
    @overload
    def __getitem__(self, i: slice) -> SearchResult: ...
    def __getitem__(self, i):
        if isinstance(i, slice):
            return SearchResult(self._hits[i], self.query, self.index, self.per_video)
        return self._hits[i]

    def by_video(self) -> dict[str, list[Hit]]:
        """The hits grouped by file: ``{file: [hits, best first]}``, files by their best score."""
        groups: dict[str, list[Hit]] = {}
        for h in self._hits:
            groups.setdefault(h.file, []).append(h)
        return groups

    def rows(self) -> list[tuple[int, Hit]]:
        """``(rank, hit)`` in the order shown: by rank, or by file when ``per_video > 1``."""
        ranked = list(enumerate(self._hits, 1))
        if self.per_video <= 1:
            return ranked
        order = {f: i for i, f in enumerate(self.by_video())}
        return sorted(ranked, key=lambda r: (order[r[1].file], r[0]))

    def describe_query(self) -> str:
        """One line: the query's modality, file, moment and label, and what was searched."""
        q = self.query
        when = query_when(q)
        label = q.get("label")
        per = f"at most {self.per_video} per file" if self.per_video else "any number per file"
        return (
            f"{q['modality']} {q['file']}"
            + (f", {when}" if when else "")
            + (f" [{label}]" if label is not None else "")
            + f" -> {q.get('target', '?')}: {len(self)} hits, {per}"
        )

    def table(self) -> str:
        """The hits as a text table: rank, score, time, label, file."""
        lines = [f"{'rank':>4}  {'score':>8}  {'time':>8}  {'label':<14}  file"]
        for rank, h in self.rows():
            lab = "" if h.label is None else str(h.label)
            when = f"{'-':>8}" if h.extra.get("kind") == "image" else f"{h.time:7.2f}s"
            lines.append(f"{rank:>4}  {h.score:8.4f}  {when}  {lab:<14}  {h.file}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"query: {self.describe_query()}\n{self.table()}"

    __repr__ = __str__
