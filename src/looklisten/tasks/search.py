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

import base64
import html
import io
import logging
import os
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build_index", "embed_query", "search", "render_html", "add_cli"]

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

    from looklisten.evaluation.retrieval import Labels
    from looklisten.media.video import MediaError
    from looklisten.tasks.embed import MEDIA_EXTENSIONS, embed_many, find_media, get_model
    from looklisten.tasks.index import EmbeddingIndex

    files = find_media(sources, MEDIA_EXTENSIONS | {".npz"})
    if not files:
        raise ValueError(f"no media or .npz files in {', '.join(map(str, sources))}")
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
    from looklisten.media.video import MediaError, MediaReader, probe
    from looklisten.tasks.embed import _decode_image, _media_kind, _slice, embed_audio, embed_image

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
        kind = _media_kind(info)
        if kind == "audio":
            raise MediaError(path, "no video stream or image")
        if kind == "image":
            pixels, t = _decode_image(path), None
        else:
            t = float(at) if at is not None else info.video_start
            with MediaReader(path, info=info) as r:
                pixels = r.read_frame(t, size=cfg.vision.resize)
        vec = embed_image(pixels, model)[0]
        return {"vector": vec, "modality": "image", "file": path, "time": t, "pixels": pixels}
    # audio: decode the whole track once and slice, exactly as the index did
    if not info.has_audio:
        raise MediaError(path, "no audio stream")
    sr, n = cfg.audio.sample_rate, cfg.audio.clip_samples
    with MediaReader(path, info=info) as r:
        signal = r.read_audio(0.0, None, sr)
    if len(signal) == 0:
        raise MediaError(path, "empty: no audio samples")
    t = float(at) if at is not None else len(signal) / sr / 2
    window = _slice(signal, int(round(t * sr)) - n // 2, n)
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
    from looklisten.tasks.embed import get_model
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


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------


def _jpeg_uri(pixels: np.ndarray, short_side: int = 160) -> str:
    from PIL import Image

    from looklisten.inputs.prepare import resize_short_side

    if min(pixels.shape[:2]) > short_side:
        pixels = resize_short_side(pixels, short_side)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _waveform_uri(samples: np.ndarray, width: int = 320, height: int = 160) -> str:
    """A picture of a waveform (min/max per pixel column), as a PNG data URI."""
    from PIL import Image, ImageDraw

    x = np.asarray(samples, np.float32)
    img = Image.new("RGB", (width, height), (230, 233, 240))
    draw = ImageDraw.Draw(img)
    mid = height / 2
    draw.line([(0, mid), (width, mid)], fill=(200, 205, 218))
    if len(x):
        peak = max(float(np.abs(x).max()), 1e-6)
        cols = np.array_split(x / peak, width)
        for i, c in enumerate(cols):
            if len(c):
                lo, hi = float(c.min()), float(c.max())
                draw.line(
                    [(i, mid - hi * (mid - 6)), (i, mid - lo * (mid - 6))], fill=(53, 89, 214)
                )
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _wav_uri(samples: np.ndarray, sr: int) -> str:
    x = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    pcm = np.round(x * 32767.0).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm)
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _media_for(file: str, t: float | None, kind: str, sr: int, want_audio: bool):
    """(thumbnail data URI or None, audio data URI or None, error or None)."""
    from looklisten.media.video import MediaError, MediaReader
    from looklisten.tasks.embed import _decode_image

    thumb = clip = None
    try:
        if kind == "image":
            return _jpeg_uri(_decode_image(file)), None, None
        with MediaReader(file) as r:
            if r.info.has_video:
                thumb = _jpeg_uri(r.read_frame(float(t or 0.0), size=160))
            if want_audio and r.info.has_audio:
                t0 = float(t or 0.0) - 0.5
                samples = r.read_audio(t0, t0 + 1.0, sr)
                clip = _wav_uri(samples, sr)
                if thumb is None:  # a sound without a picture: draw it
                    thumb = _waveform_uri(samples)
    except (MediaError, OSError, ValueError) as exc:
        return thumb, clip, str(exc)
    return thumb, clip, None


_CSS = """
:root { --fg:#1d2330; --muted:#6b7385; --card:#ffffff; --bg:#f2f4f8; --ok:#1f8a4c; --accent:#3559d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 20px 28px; background: #1d2330; color: #fff; }
header h1 { margin: 0 0 4px; font-size: 20px; font-weight: 600; }
header .sub { color: #b9c1d6; font-size: 13px; }
main { padding: 20px 28px 40px; }
.query { display: flex; gap: 18px; align-items: center; background: var(--card); padding: 16px;
         border-radius: 10px; box-shadow: 0 1px 3px rgba(0,0,0,.08); margin-bottom: 22px; }
.query img { border-radius: 6px; max-height: 160px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 16px; }
.card { background: var(--card); border-radius: 10px; overflow: hidden;
        box-shadow: 0 1px 3px rgba(0,0,0,.08); display: flex; flex-direction: column; }
.card .pic { background: #e6e9f0; height: 160px; display: flex; align-items: center;
             justify-content: center; color: var(--muted); position: relative; }
.card .pic img { width: 100%; height: 160px; object-fit: cover; display: block; }
.rank { position: absolute; top: 8px; left: 8px; background: rgba(29,35,48,.85); color: #fff;
        border-radius: 12px; padding: 1px 9px; font-weight: 600; font-size: 12px; }
.body { padding: 10px 12px 12px; display: flex; flex-direction: column; gap: 6px; }
.file { font-weight: 600; word-break: break-all; }
.meta { color: var(--muted); font-size: 12px; }
.label { display: inline-block; border-radius: 10px; padding: 0 8px; background: #e8ecf7;
         color: var(--accent); font-size: 12px; }
.label.same { background: #e3f4ea; color: var(--ok); }
audio { width: 100%; height: 32px; }
.err { color: #b3261e; font-size: 12px; }
.bar { height: 4px; background: #e6e9f0; border-radius: 2px; }
.bar span { display: block; height: 4px; background: var(--accent); border-radius: 2px; }
"""


def render_html(query: dict[str, Any], hits: list, sample_rate: int) -> str:
    """A self-contained HTML page (inline CSS, images and sounds as data URIs)."""
    e = html.escape
    q_label = query.get("label")
    q_thumb = q_audio = None
    if query.get("pixels") is not None:
        q_thumb = _jpeg_uri(query["pixels"])
    if query.get("wave") is not None:
        q_audio = _wav_uri(query["wave"], sample_rate)
        q_thumb = _waveform_uri(query["wave"])
    t = query.get("time")
    when = f" at {t:.2f} s" if t is not None else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>looklisten search: {e(Path(query['file']).name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>looklisten search</h1>",
        f"<div class='sub'>{e(query['modality'])} query &rarr; {e(query['target'])} "
        "(score: cosine similarity) "
        f"&middot; {len(hits)} hits &middot; checkpoint {e(str(query.get('checkpoint', '')))}"
        "</div></header><main>",
        "<section class='query'>",
    ]
    if q_thumb:
        parts.append(f"<img src='{q_thumb}' alt='query image'>")
    parts.append("<div>")
    parts.append(f"<div class='file'>Query: {e(Path(query['file']).name)}{e(when)}</div>")
    parts.append(f"<div class='meta'>{e(str(query['file']))}</div>")
    if q_label is not None:
        parts.append(f"<div><span class='label same'>{e(str(q_label))}</span></div>")
    if q_audio:
        parts.append(f"<audio controls preload='none' src='{q_audio}'></audio>")
    parts.append("</div></section><section class='grid'>")
    for rank, h in enumerate(hits, 1):
        kind = h.extra.get("kind", "video")
        thumb, clip, err = _media_for(h.file, h.time, kind, sample_rate, h.modality == "audio")
        pic = f"<img src='{thumb}' alt='frame'>" if thumb else "<span>no picture</span>"
        same = q_label is not None and h.label == q_label
        label = (
            f"<span class='label{' same' if same else ''}'>{e(str(h.label))}</span>"
            if h.label is not None
            else ""
        )
        width = max(0.0, min(1.0, (h.score + 1.0) / 2.0)) * 100  # cosine in [-1, 1]
        at = f"{h.time:.2f} s" if kind != "image" else "image"
        parts.append(
            "<article class='card'>"
            f"<div class='pic'>{pic}<span class='rank'>#{rank}</span></div>"
            "<div class='body'>"
            f"<div class='file' title='{e(h.file)}'>{e(Path(h.file).name)}</div>"
            f"<div class='meta'>{e(h.modality)} &middot; {e(at)} &middot; score {h.score:.4f}</div>"
            f"<div class='bar'><span style='width:{width:.1f}%'></span></div>"
            f"<div>{label}</div>"
            + (f"<audio controls preload='none' src='{clip}'></audio>" if clip else "")
            + (f"<div class='err'>{e(err)}</div>" if err else "")
            + "</div></article>"
        )
    parts.append("</section></main></body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

INDEX_HELP = """\
Embed every video, audio file and image under SOURCE (folders are searched
recursively), or read the .npz files written by 'looklisten embed', into a FAISS
index of both modalities. Items: every --hop seconds (the centres of the 1 s
windows inside each file; --center puts the first window's centre at 0 s); a
video gives an image and an audio item at each time. Metadata: file, time,
modality, and the label when known (demo annotations.jsonl: the object heard at
that time; labels.csv with file,label; or the sub-folder name). The index
remembers the checkpoint, which 'looklisten search' uses to embed queries.
Bad files are reported (one line each) and skipped; the exit code is then 1.
"""

SEARCH_HELP = """\
Embed a query with the index's checkpoint (or --checkpoint) and print the k
nearest items (rank, score = cosine similarity, time, label, file). Query: an
image (--image), 1 s of audio centred at --at (--audio; default the middle of
the file), or a video's frame / audio at --at (--video, --modality). --target
is the modality searched (default: the other one: cross-modal). --html writes a
self-contained page with thumbnails and audio players.
"""


def _public(path) -> None:
    """Give a written file the usual permissions (temp files are created 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def cmd_index(args) -> int:
    _, failures = build_index(
        args.sources,
        args.checkpoint,
        args.out,
        kind=args.kind,
        hop=args.hop,
        center=args.center,
        labels=args.labels,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
    )
    from looklisten.tasks.index import EmbeddingIndex

    index = EmbeddingIndex.load(args.out, verify=False)
    for f in failures:
        print(f"error: {f}", file=sys.stderr)
    print(
        f"indexed {index.count('image')} image and {index.count('audio')} audio items "
        f"into {args.out} ({len(failures)} file(s) failed)",
        file=sys.stderr,
    )
    return 1 if failures else 0


def cmd_search(args) -> int:
    query, hits, index = search(
        args.index,
        image=args.image,
        audio=args.audio,
        video=args.video,
        at=args.at,
        modality=args.modality,
        target=args.target,
        k=args.k,
        checkpoint=args.checkpoint,
        exclude_self=args.exclude_self,
        device=args.device,
    )
    t = query["time"]
    print(
        f"query: {query['modality']} {query['file']}"
        + (f" @ {t:.2f} s" if t is not None else "")
        + (f" [{query['label']}]" if query.get("label") is not None else "")
        + f" -> {query['target']}, k={args.k}"
    )
    print(f"{'rank':>4}  {'score':>8}  {'time':>8}  {'label':<14}  file")
    for rank, h in enumerate(hits, 1):
        lab = "" if h.label is None else str(h.label)
        print(f"{rank:>4}  {h.score:8.4f}  {h.time:7.2f}s  {lab:<14}  {h.file}")
    if args.html:
        from looklisten.core.fileio import atomic_write_text
        from looklisten.tasks.embed import get_model

        sr = get_model(query["checkpoint"], args.device).cfg.audio.sample_rate
        atomic_write_text(args.html, render_html(query, hits, sr))
        _public(args.html)
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


def add_cli(subparsers) -> None:
    """Register ``looklisten index`` and ``looklisten search`` on argparse subparsers."""
    import argparse

    sp = subparsers.add_parser(
        "index",
        help="embed a folder of media into a searchable index",
        description=INDEX_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.add_argument("sources", nargs="+", metavar="SOURCE", help="folders, media or .npz files")
    sp.add_argument(
        "--checkpoint", metavar="RUN", help="the model (default: the one named in the .npz files)"
    )
    sp.add_argument("--out", required=True, metavar="INDEX", help="index directory")
    sp.add_argument("--kind", choices=["flat", "ivf", "hnsw"], default="flat")
    sp.add_argument("--hop", type=float, default=1.0, help="seconds between items (1.0)")
    sp.add_argument(
        "--center", action="store_true", help="first window centred at 0 s (zero-padded)"
    )
    sp.add_argument("--labels", metavar="FILE", help="annotations.jsonl or CSV (file,label)")
    sp.add_argument("--batch-size", type=int, default=64)
    sp.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_index)

    sp = subparsers.add_parser(
        "search",
        help="query an index with an image, a sound or a video moment",
        description=SEARCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.add_argument("index", metavar="INDEX")
    q = sp.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", metavar="F", help="query image (or a video's frame at --at)")
    q.add_argument("--audio", metavar="F", help="query sound: 1 s centred at --at")
    q.add_argument("--video", metavar="F", help="query video moment (needs --at)")
    sp.add_argument("--at", type=float, metavar="T", help="time in the query file (seconds)")
    sp.add_argument(
        "--modality",
        choices=["image", "audio"],
        default="image",
        help="with --video: query with the frame (default) or the audio",
    )
    sp.add_argument(
        "--target", choices=["audio", "image"], help="modality to search (default: the other)"
    )
    sp.add_argument("--k", type=int, default=10)
    sp.add_argument("--exclude-self", action="store_true", help="drop hits from the query file")
    sp.add_argument("--checkpoint", metavar="RUN", help="override the index's checkpoint")
    sp.add_argument("--html", metavar="OUT.html", help="write a self-contained results page")
    sp.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    sp.set_defaults(func=cmd_search)
