"""Build a searchable index of media and query it: ``looklisten index`` / ``looklisten search``.

``looklisten index SOURCE --checkpoint RUN --out INDEX`` embeds every video,
audio file and image under SOURCE (or reads the ``.npz`` files written by
``looklisten embed``) into an :class:`looklisten.tasks.index.EmbeddingIndex`:
both modalities, one item every ``--hop`` seconds (the centres of the 1 s
windows inside each file; videos give an image *and* an audio item at each
time), with metadata ``file`` (absolute path), ``time`` (s), ``modality``,
``kind`` (what the source file is: video, audio or image) and ``label`` when it
is known (demo annotations: the object heard at that time; ``labels.csv``; or
the sub-folder name). The index records the checkpoint that built it, so
``search`` embeds queries with the same model.

``looklisten search INDEX --image F | --audio F [--at T] | --video F --at T``
embeds the query exactly like the indexed items and prints the ranked hits
(file, time, score); ``--html OUT.html`` writes a self-contained page with
thumbnails (JPEG data URIs) and the 1 s audio clips (WAV data URIs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_index", "embed_query", "search"]

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


def build_index(
    sources: list[str | os.PathLike],
    checkpoint: str | os.PathLike | None,
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

    Parameters
    ----------
    sources : list of path-like
        Folders (searched recursively) and files: media files are embedded,
        ``.npz`` files from ``looklisten embed`` are read (their checkpoint
        must be the index's).
    checkpoint : path-like or None
        The model; None takes the checkpoint recorded in the ``.npz`` files.
    out : path-like
        Index directory (written atomically).
    kind : {"flat", "ivf", "hnsw"}
        FAISS index type (see :class:`looklisten.tasks.index.EmbeddingIndex`).
    hop : float
        Seconds between items.
    center : bool
        Window placement (see :mod:`looklisten.tasks.embed`); False: the centres of
        the 1 s windows inside each file.
    labels : path-like, optional
        annotations.jsonl or CSV (see :class:`looklisten.evaluation.retrieval.Labels`);
        default: what the (first) source folder holds.

    Returns
    -------
    index : EmbeddingIndex
    failures : list of str
        ``"path: reason"`` for each input that could not be used.
    """
    from tqdm.auto import tqdm

    from looklisten.core.fileio import check_writable
    from looklisten.data.labels import Labels
    from looklisten.inputs.prepare import MEDIA_EXTENSIONS, find_media
    from looklisten.media.video import MediaError
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.embed import embed_many
    from looklisten.tasks.index import EmbeddingIndex

    files = find_media(sources, MEDIA_EXTENSIONS | {".npz"})
    if not files:
        raise ValueError(f"no media or .npz files in {', '.join(map(str, sources))}")
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
    if checkpoint is None:
        ckpts = {d["checkpoint"] for _, _, d in loaded}
        if len(ckpts) != 1:
            raise ValueError(
                "give --checkpoint (the .npz files name "
                + (", ".join(sorted(ckpts)) if ckpts else "no checkpoint")
                + ")"
            )
        checkpoint = ckpts.pop()
    model = get_model(checkpoint, device)
    ckpt = getattr(model, "checkpoint_path", os.path.abspath(checkpoint))
    index = EmbeddingIndex(kind=kind, checkpoint=ckpt)
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

    bar = tqdm(total=len(media), desc="index", unit="file", disable=not progress)
    paths = [str(p) for p, _ in media]
    for key, res, err in embed_many(paths, model, hop=hop, center=center, batch_size=batch_size):
        bar.update()
        if err is not None:
            failures.append(str(err))
            continue
        p, r = media[key]
        add(res, os.path.abspath(p), r)
    bar.close()
    if len(index) == 0:
        raise ValueError("nothing was indexed: " + "; ".join(failures[:5]))
    index.save(out)
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
) -> dict[str, Any]:
    """Embed a query exactly as the index's items were embedded.

    Parameters
    ----------
    model : AVNet
    image : path-like
        An image file (a video: its frame at ``at``, default its first frame).
    audio : path-like
        An audio (or video) file: the 1 s window centred at ``at`` (default:
        the middle of the file).
    video : path-like
        A video: its frame (``modality="image"``) or its 1 s of audio
        (``modality="audio"``) at ``at`` (required).
    modality : {"image", "audio"}
        For ``video``: which stream is the query.

    Returns
    -------
    dict
        ``vector`` (D,) float32, ``modality``, ``file``, ``time`` (None for an
        image file).
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
        if at is None:
            raise ValueError("--video needs --at T (seconds)")
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
            vec = embed_image(pixels, model)[0]
        else:  # as the index embedded it: motion models see the frame window / flow at t
            t = float(at) if at is not None else info.video_start
            with MediaReader(path, info=info) as r:
                pixels = read_frame_at(r, t, size=cfg.vision.resize)
                vec = embed_frame_at(r, t, model)
        return {"vector": vec, "modality": "image", "file": path, "time": t, "pixels": pixels}
    # audio: decode the whole track once and slice, exactly as the index did
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    sr = cfg.audio.sample_rate
    signal = load_audio(path, sr)
    if len(signal) == 0:
        raise MediaError(path, "empty: no audio samples")
    t = float(at) if at is not None else len(signal) / sr / 2
    window = audio_window(signal, t, cfg)
    emb, _ = embed_audio(window, sr=sr, model=model, hop=1.0, center=False)
    return {"vector": emb[0], "modality": "audio", "file": path, "time": t, "wave": window}


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
    checkpoint=None,
    exclude_self: bool = False,
    device: str | None = None,
):
    """Query an index built by :func:`build_index`.

    Returns
    -------
    query : dict
        As :func:`embed_query`, plus ``target`` and ``checkpoint``.
    hits : list of :class:`looklisten.tasks.index.Hit`
        Best first (``score``: cosine similarity).
    index : EmbeddingIndex
    """
    from looklisten.models.checkpoint import get_model
    from looklisten.tasks.index import EmbeddingIndex

    index = EmbeddingIndex.load(index_dir)
    ckpt = checkpoint or index.checkpoint
    if ckpt is None:
        raise ValueError(f"{index_dir}: the index names no checkpoint; give --checkpoint")
    model = get_model(ckpt, device)
    query = embed_query(model, image=image, audio=audio, video=video, at=at, modality=modality)
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
    excl = os.path.abspath(query["file"]) if exclude_self else None
    hits = index.search(query["vector"], target=target, k=k, exclude_files=excl)[0]
    query["target"] = target
    query["checkpoint"] = str(ckpt)
    query["label"] = _query_label(index, query)
    return query, hits, index


def _query_label(index, query) -> Any:
    """The label of the indexed item at the query's file and time, if indexed."""
    f = os.path.abspath(query["file"])
    best, best_dt = None, None
    for it in index.meta(query["modality"]):
        if it["file"] == f:
            dt = abs(it["time"] - (query["time"] or 0.0))
            if best_dt is None or dt < best_dt:
                best, best_dt = it.get("label"), dt
    return best if best_dt is not None and best_dt <= 0.5 else None
