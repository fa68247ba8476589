"""The search results page and the data URIs (thumbnails, sound clips) the HTML pages embed.

``looklisten search --html`` writes :func:`render_html` of a
:class:`looklisten.tasks.search.SearchResult`; the report
(:mod:`looklisten.report.page`) uses the same thumbnails and players.
"""

from __future__ import annotations

import base64
import html
import io
import wave
from pathlib import Path

import numpy as np

from looklisten.inputs.prepare import load_image, read_frame_at

__all__ = ["render_html", "jpeg_uri", "waveform_uri", "wav_uri", "media_for"]

#: The longest query sound the page plays, in seconds (a pooled query may be a long file).
MAX_PLAYER_SECONDS = 30.0


def jpeg_uri(pixels: np.ndarray, short_side: int = 160) -> str:
    from PIL import Image

    from looklisten.inputs.prepare import resize_short_side

    if min(pixels.shape[:2]) > short_side:
        pixels = resize_short_side(pixels, short_side)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def waveform_uri(
    samples: np.ndarray,
    width: int = 320,
    height: int = 160,
    *,
    shade: tuple[int, int] | None = None,
) -> str:
    """A picture of a waveform (min/max per pixel column), as a PNG data URI.

    ``shade`` (start, end) sample indices: a band drawn behind those samples
    (the seconds a query used).
    """
    from PIL import Image, ImageDraw

    x = np.asarray(samples, np.float32)
    img = Image.new("RGB", (width, height), (230, 233, 240))
    draw = ImageDraw.Draw(img)
    mid = height / 2
    if shade is not None and len(x):
        a = max(0.0, min(1.0, shade[0] / len(x))) * width
        b = max(0.0, min(1.0, shade[1] / len(x))) * width
        draw.rectangle([(int(a), 0), (max(int(a), int(np.ceil(b)) - 1), height)], fill=SHADE)
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


def wav_uri(samples: np.ndarray, sr: int) -> str:
    x = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    pcm = np.round(x * 32767.0).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm)
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def media_for(file: str, t: float | None, kind: str, sr: int, want_audio: bool):
    """(thumbnail data URI or None, audio data URI or None, error or None)."""
    from looklisten.media.video import MediaError, MediaReader

    thumb = clip = None
    try:
        if kind == "image":
            return jpeg_uri(load_image(file)), None, None
        with MediaReader(file) as r:
            if r.info.has_video:
                thumb = jpeg_uri(read_frame_at(r, float(t or 0.0), size=160))
            if want_audio and r.info.has_audio:
                t0 = float(t or 0.0) - 0.5
                samples = r.read_audio(t0, t0 + 1.0, sr)
                clip = wav_uri(samples, sr)
                if thumb is None:  # a sound without a picture: draw it
                    thumb = waveform_uri(samples)
    except (MediaError, OSError, ValueError) as exc:
        return thumb, clip, str(exc)
    return thumb, clip, None


#: What every looklisten page shares (the search page, the run report).
BASE_CSS = """
:root { --fg:#1d2330; --muted:#6b7385; --card:#fff; --bg:#f2f4f8; --ok:#1f8a4c; --accent:#3559d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 20px 28px; background: #1d2330; color: #fff; }
header h1 { margin: 0 0 4px; font-size: 20px; font-weight: 600; }
header .sub, header a { color: #b9c1d6; font-size: 13px; }
.meta { color: var(--muted); font-size: 12px; }
.label { display: inline-block; border-radius: 10px; padding: 0 8px; background: #e8ecf7;
         color: var(--accent); font-size: 12px; }
.label.same { background: #e3f4ea; color: var(--ok); }
.err { color: #b3261e; font-size: 12px; }
"""

_CSS = (
    BASE_CSS
    + """
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
audio { width: 100%; height: 32px; }
.bar { height: 4px; background: #e6e9f0; border-radius: 2px; }
.bar span { display: block; height: 4px; background: var(--accent); border-radius: 2px; }
.when { font-size: 13px; }
h3.group { margin: 22px 0 10px; font-size: 15px; word-break: break-all; }
h3.group:first-child { margin-top: 0; }
"""
)

#: The band behind the seconds a query used, on its waveform (RGB).
SHADE = (255, 226, 160)


def render_html(result, sample_rate: int | None = None) -> str:
    """A self-contained HTML page of a search (inline CSS, images and sounds as data URIs).

    Parameters
    ----------
    result : looklisten.tasks.search.SearchResult
        The query and its hits. With ``per_video`` above 1 a file's hits are
        shown together under its name (files by their best score).
    sample_rate : int, optional
        Of the sound clips; default the model's (``result.query["sample_rate"]``).

    Returns
    -------
    str
        The page. A sound query shows the waveform of its file with the
        seconds used shaded, and plays them (at most ``MAX_PLAYER_SECONDS``).
    """
    from looklisten.tasks.search import query_when

    e = html.escape
    query = result.query
    sr = int(sample_rate if sample_rate is not None else query["sample_rate"])
    q_label = query.get("label")
    q_thumb = q_audio = None
    if query.get("pixels") is not None:
        q_thumb = jpeg_uri(query["pixels"])
    if query.get("wave") is not None:
        q_audio = wav_uri(query["wave"][: int(MAX_PLAYER_SECONDS * sr)], sr)
        signal, span = query.get("signal"), query.get("span")
        if signal is not None and span is not None:
            shade = (int(round(span[0] * sr)), int(round(span[1] * sr)))
            q_thumb = waveform_uri(signal, shade=shade)
        else:
            q_thumb = waveform_uri(query["wave"])
    when = query_when(query)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>looklisten search: {e(Path(query['file']).name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>looklisten search</h1>",
        f"<div class='sub'>{e(query['modality'])} query &rarr; {e(query['target'])} "
        "(score: cosine similarity) "
        f"&middot; {len(result)} hits"
        + (f", at most {result.per_video} per file" if result.per_video else "")
        + f" &middot; checkpoint {e(str(query.get('checkpoint', '')))}"
        "</div></header><main>",
        "<section class='query'>",
    ]
    if q_thumb:
        parts.append(f"<img src='{q_thumb}' alt='query'>")
    parts.append("<div>")
    parts.append(f"<div class='file'>Query: {e(Path(query['file']).name)}</div>")
    if when:
        parts.append(f"<div class='when'>{e(when)}</div>")
    parts.append(f"<div class='meta'>{e(str(query['file']))}</div>")
    if q_label is not None:
        parts.append(f"<div><span class='label same'>{e(str(q_label))}</span></div>")
    if q_audio:
        parts.append(f"<audio controls preload='none' src='{q_audio}'></audio>")
    parts.append("</div></section>")
    rows = result.rows()
    grouped = result.per_video > 1
    groups = result.by_video()
    if not grouped:
        parts.append("<section class='grid'>")
    for i, (rank, h) in enumerate(rows):
        if grouped and (i == 0 or rows[i - 1][1].file != h.file):
            if i:
                parts.append("</section>")
            n = len(groups[h.file])
            parts.append(
                f"<h3 class='group' title='{e(h.file)}'>{e(Path(h.file).name)} "
                f"<span class='meta'>{n} hit{'s' if n != 1 else ''}</span></h3>"
                "<section class='grid'>"
            )
        parts.append(_card(rank, h, q_label, sr))
    parts.append("</section></main></body></html>")
    return "\n".join(parts)


def _card(rank: int, h, q_label, sample_rate: int) -> str:
    """One hit: its picture (or waveform), file, time, score, label and sound."""
    e = html.escape
    kind = h.extra.get("kind", "video")
    thumb, clip, err = media_for(h.file, h.time, kind, sample_rate, h.modality == "audio")
    pic = f"<img src='{thumb}' alt='frame'>" if thumb else "<span>no picture</span>"
    same = q_label is not None and h.label == q_label
    label = (
        f"<span class='label{' same' if same else ''}'>{e(str(h.label))}</span>"
        if h.label is not None
        else ""
    )
    width = max(0.0, min(1.0, (h.score + 1.0) / 2.0)) * 100  # cosine in [-1, 1]
    at = f"{h.time:.2f} s" if kind != "image" else "image"
    return (
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


# ---------------------------------------------------------------------------
# CLI
