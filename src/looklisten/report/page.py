"""``looklisten report RUN``: one self-contained HTML page about a training run (or several).

The page (``RUN/report.html`` by default, written atomically) holds, for each
run (``--with`` adds more runs, one section each):

* a summary: preset, model, steps, pairs, training time, final and best
  held-out AVC accuracy (``RUN/metrics.json``);
* the training and validation curves of ``RUN/metrics.jsonl`` (loss, AVC
  accuracy, learning rate, pairs/s), drawn with matplotlib;
* retrieval examples on held-out videos (``RUN/split.json``, files from the
  data folder; the test folder of ``RUN/eval/retrieval.json`` instead when it
  evaluated another folder, e.g. writers and voices never met): a few query frames and query sounds with their top hits, each
  with a thumbnail and an audio player. AVE-Net embeds both modalities in one
  space, so its queries are cross-modal (image -> sound, sound -> image);
  L3-Net and AVOL-Net features are not aligned across modalities, so theirs
  are within-modality (image -> image, sound -> sound), and the page says so;
* localisation overlays (AVOL-Net only; the test folder of
  ``RUN/eval/localization.json`` likewise): held-out frames with the heatmap of
  the sound heard then (:mod:`looklisten.tasks.localize`), the sounding object's box
  in green and a silent object's in red when the demo annotations give them;
* the evaluations saved under ``RUN/eval/`` as tables (retrieval, localisation,
  linear probes, the shortcut audit) and the unit galleries of
  ``RUN/eval/units.json``; a missing one is named with the command that
  would produce it;
* the run's whole config (``RUN/checkpoint/config.json``).

Everything is inline: pictures as PNG / JPEG ``data:`` URIs, sounds as WAV
``data:`` URIs, CSS in a ``<style>`` element; no script, no external resource.
A section that cannot be built (no data folder, no checkpoint, a broken file)
is replaced by a note saying why; the report itself never fails for that.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from looklisten.report.search_page import BASE_CSS

__all__ = ["write_report", "render_report", "load_run", "EVAL_FILES"]

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
#: Sounds in the page are resampled to at most this rate (WAV data URIs stay small).
AUDIO_RATE_CAP = 16000
#: Retrieval examples: queries per direction, hits per query, held-out videos embedded.
QUERIES = 3
HITS = 4
EXAMPLE_VIDEOS = 24
#: Localisation overlays per AVOL run.
OVERLAYS = 4
#: Of those, how many are shown again with sounds nothing on screen makes (silence, off screen).
NEGATIVE_OVERLAYS = 2
#: Unit galleries: units shown per branch, items shown per unit.
UNITS_SHOWN = 6
UNIT_ITEMS = 5

#: The evaluation files the report reads from RUN/eval: their title, the command
#: that writes each ({run} and {data} are filled in) and the models it is for
#: (None: any).
EVAL_FILES: dict[str, tuple[str, str, tuple[str, ...] | None]] = {
    "avc": (
        "Correspondence (AVC) accuracy on a folder",
        "looklisten eval avc {data} --checkpoint {run} --save",
        None,
    ),
    "retrieval": (
        "Cross-modal retrieval",
        "looklisten eval retrieval {data} --checkpoint {run} --baseline-checkpoint L3RUN --save",
        ("ave",),
    ),
    "localization": (
        "Localisation",
        "looklisten eval localization {data} --checkpoint {run} --save",
        ("avol",),
    ),
    "probe_audio": (
        "Linear probe: audio",
        "looklisten eval probe {data} --checkpoint {run} --modality audio --save",
        None,
    ),
    "probe_image": (
        "Linear probe: image",
        "looklisten eval probe {data} --checkpoint {run} --modality image --save",
        None,
    ),
    "shortcut": ("Shortcut audit", "looklisten eval shortcut {data} --out {run}/eval", None),
    "units": (
        "What the units learned",
        "looklisten eval units {data} --checkpoint {run} --save",
        None,
    ),
}

ARCH_NAMES = {"l3": "L3-Net", "ave": "AVE-Net", "avol": "AVOL-Net"}

e = html.escape


# ---------------------------------------------------------------------------
# Reading a run
# ---------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written while we read
            log.warning("%s: skipping an unreadable line", path)
    return out


def load_run(run: str | os.PathLike, data: str | os.PathLike | None = None) -> dict[str, Any]:
    """What the report needs to know about a run directory.

    Parameters
    ----------
    run : path-like
        Run directory (``looklisten train --out RUN``).
    data : path-like, optional
        The videos (default: the training folder named in ``RUN/manifest.jsonl``).

    Returns
    -------
    dict
        ``path``, ``name``, ``summary`` (metrics.json or None), ``history``
        (metrics.jsonl records), ``config`` (dict or None), ``arch``,
        ``preset``, ``split`` (split.json or None), ``data`` (Path or None),
        ``checkpoint`` (Path or None), ``problems`` (list of str).
    """
    from looklisten.models.checkpoint import resolve

    path = Path(run)
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: not a run directory")
    info: dict[str, Any] = {"path": path, "problems": []}

    def read(name: str, reader: Callable[[Path], Any]) -> Any:
        p = path / name
        if not p.is_file():
            return None
        try:
            return reader(p)
        except (OSError, ValueError) as exc:
            info["problems"].append(f"{name}: unreadable ({exc})")
            return None

    info["summary"] = read("metrics.json", _read_json)
    info["history"] = read("metrics.jsonl", _read_jsonl) or []
    info["split"] = read("split.json", _read_json)
    try:
        ckpt = resolve(path)
        info["checkpoint"] = ckpt
        info["config"] = _read_json(ckpt / "config.json")
        state = ckpt / "state.json"
        info["state"] = _read_json(state) if state.is_file() else {}
    except (FileNotFoundError, OSError, ValueError) as exc:
        info["checkpoint"], info["config"], info["state"] = None, None, {}
        info["problems"].append(f"no usable checkpoint ({exc})")
    cfg, summary = info["config"] or {}, info["summary"] or {}
    info["arch"] = (cfg.get("model") or {}).get("arch") or summary.get("model")
    info["preset"] = cfg.get("preset") or summary.get("preset")
    root = None
    if data is not None:
        root = Path(data)
    elif (path / "manifest.jsonl").is_file():
        try:
            with open(path / "manifest.jsonl", encoding="utf-8") as f:
                root = Path(json.loads(f.readline() or "{}").get("root") or "") or None
        except (OSError, ValueError):
            root = None
    info["data"] = root if root is not None and str(root) and root.is_dir() else None
    arch = ARCH_NAMES.get(info["arch"], str(info["arch"] or "unknown model"))
    info["name"] = f"{path.name}: {arch}" + (f" ({info['preset']})" if info["preset"] else "")
    return info


# ---------------------------------------------------------------------------
# HTML pieces
# ---------------------------------------------------------------------------


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _png_uri(pixels: np.ndarray) -> str:
    from looklisten.media.overlay import encode_png

    return _data_uri(encode_png(np.ascontiguousarray(pixels)), "image/png")


MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".webm": "audio/webm",
    ".flac": "audio/flac",
}


def _file_uri(path: Path) -> str | None:
    """A file as a data URI (by extension), or None when it is missing or of an unknown type."""
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return None
    return _data_uri(path.read_bytes(), mime)


def _note(text: str, cmd: str | None = None, kind: str = "missing") -> str:
    """A visible note: something is not in the report (and how to get it)."""
    out = f"<p class='note {kind}'>{e(text)}"
    if cmd:
        out += f"<br>Run: <code>{e(cmd)}</code>"
    return out + "</p>"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return "&ndash;"
        if v != 0 and (abs(v) < 10 ** (-digits) or abs(v) >= 1e5):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    if isinstance(v, dict) and "mean" in v and isinstance(v["mean"], (int, float)):
        s = _fmt(v["mean"], digits)
        if isinstance(v.get("std"), (int, float)):
            s += f" &plusmn; {_fmt(v['std'], digits)}"
        return s
    if isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list)) for x in v):
        if len(v) > 12:
            return e(", ".join(str(x) for x in v[:12])) + f", &hellip; ({len(v)} in all)"
        return e(", ".join(str(x) for x in v))
    if isinstance(v, (dict, list)):
        return f"<code>{e(json.dumps(v)[:300])}</code>"
    return e(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """Header cells are text; row cells are values (formatted) or pre-rendered ('<' first)."""
    out = [f"<table class='{cls}'><thead><tr>"]
    out += [f"<th>{e(str(h))}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = v if isinstance(v, str) and v.startswith("<") else _fmt(v)
            cells.append(f"<th>{text}</th>" if i == 0 else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _raw_json(obj: Any, what: str = "the JSON") -> str:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return f"<details><summary>{e(what)}</summary><pre>{e(text)}</pre></details>"


def _generic(obj: Any) -> str:
    """A readable rendering of an evaluation JSON of unknown shape.

    Scalars go in a key/value table; a dict whose values are dicts of scalars
    (e.g. ``{"model": {...}, "random": {...}}``) becomes a table with one row
    per key; ``{"mean", "std"}`` pairs read ``mean +- std``.
    """
    if not isinstance(obj, dict):
        return f"<pre>{e(json.dumps(obj, indent=2, default=str))}</pre>"

    def scalarish(v: Any) -> bool:
        return (
            not isinstance(v, (dict, list))
            or (
                isinstance(v, dict)
                and "mean" in v
                and not any(isinstance(x, dict) for x in v.values())
            )
            or (
                isinstance(v, list)
                and all(not isinstance(x, (dict, list)) for x in v)
                and len(v) <= 12
            )
        )

    flat = [(k, v) for k, v in obj.items() if scalarish(v)]
    nested = [(k, v) for k, v in obj.items() if not scalarish(v)]
    parts = []
    if flat:
        parts.append(_table(["", "value"], [[e(str(k)), v] for k, v in flat], "kv"))
    for k, v in nested:
        if isinstance(v, dict) and v and all(isinstance(x, dict) for x in v.values()):
            inner = [x for x in v.values()]
            cols: list[str] = []
            for x in inner:
                cols += [c for c, y in x.items() if scalarish(y) and c not in cols]
            if cols:
                rows = [[e(str(name)), *[x.get(c) for c in cols]] for name, x in v.items()]
                parts.append(f"<h5>{e(str(k))}</h5>" + _table(["", *cols], rows))
                continue
        if isinstance(v, dict):
            parts.append(f"<h5>{e(str(k))}</h5>" + _generic(v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = []
            for x in v[:50]:
                cols += [c for c, y in x.items() if scalarish(y) and c not in cols]
            rows = [[_fmt(x.get(cols[0])), *[x.get(c) for c in cols[1:]]] for x in v[:50]]
            parts.append(f"<h5>{e(str(k))}</h5>" + _table(cols, rows))
        else:
            parts.append(f"<h5>{e(str(k))}</h5><p>{_fmt(v)}</p>")
    return "".join(parts)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _summary(run: dict[str, Any]) -> str:
    s = run["summary"]
    hist = run["history"]
    vals = [r for r in hist if r.get("split") == "val" and "val_avc_accuracy" in r]
    trains = [r for r in hist if r.get("split") == "train"]
    if s is None and not hist:
        return _note(
            "No RUN/metrics.json and no RUN/metrics.jsonl: this run has not finished an epoch.",
            f"looklisten train DATA --out {run['path']} --resume",
        )
    s = dict(s or {})
    if not s:  # an interrupted run: what metrics.jsonl says so far
        s = {
            "model": run["arch"],
            "preset": run["preset"],
            "steps": (trains or vals)[-1].get("step") if (trains or vals) else None,
            "val_avc_accuracy": vals[-1]["val_avc_accuracy"] if vals else None,
            "best_val_avc_accuracy": max((r["val_avc_accuracy"] for r in vals), default=None),
            "train_seconds": trains[-1].get("time") if trains else None,
        }
    secs = s.get("train_seconds")
    rows = [
        ["model", ARCH_NAMES.get(s.get("model") or run["arch"], s.get("model"))],
        ["preset", s.get("preset") or run["preset"]],
        ["steps", s.get("steps")],
        ["pairs seen", s.get("pairs")],
        ["training time", f"{secs / 60:.1f} min" if isinstance(secs, (int, float)) else None],
        ["held-out AVC accuracy (final)", s.get("val_avc_accuracy")],
        ["held-out AVC accuracy (best)", s.get("best_val_avc_accuracy")],
        ["chance", 0.5],
        ["training / held-out videos", _videos(s, run)],
        ["stopped by the time budget", s.get("stopped_by_time_budget")],
        ["data", str(run["data"]) if run["data"] else None],
    ]
    out = _table(["", ""], [r for r in rows if r[1] is not None], "kv")
    if vals:
        out += (
            f"<p class='meta'>Held-out AVC accuracy on {vals[-1].get('val_pairs', '?')} fixed pairs "
            "of the held-out videos (half of them matching), measured after every epoch.</p>"
        )
    for p in run["problems"]:
        out += _note(p, kind="warn")
    return out


def _videos(s: dict, run: dict) -> str | None:
    tr, va = s.get("train_videos"), s.get("val_videos")
    if tr is None and run["split"]:
        tr, va = len(run["split"].get("train", [])), len(run["split"].get("val", []))
    return None if tr is None else f"{tr} / {va}"


def _curves(run: dict[str, Any]) -> str:
    hist = run["history"]
    if not hist:
        return _note("No training curves: RUN/metrics.jsonl is missing or empty.")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tr = [r for r in hist if r.get("split") == "train"]
    va = [r for r in hist if r.get("split") == "val"]
    # AVC accuracy on a test folder at epoch ends, where a run has it (the demo's digits)
    curve_path = run["path"] / "eval" / "test_curve.json"
    try:
        test_curve = _read_json(curve_path) if curve_path.is_file() else None
        te = [r for r in (test_curve or {}).get("rows", []) if isinstance(r, dict)]
    except (OSError, ValueError, AttributeError):
        test_curve, te = None, []

    def xy(rs, key):
        pts = [(r["step"], r[key]) for r in rs if isinstance(r.get(key), (int, float))]
        return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.2), dpi=80)
    panels = [
        (
            axes[0, 0],
            "loss (cross-entropy)",
            [("train", tr, "loss", "-"), ("held-out", va, "val_loss", "o-")],
        ),
        (
            axes[0, 1],
            "AVC accuracy",
            [
                ("train", tr, "avc_accuracy", "-"),
                ("held-out", va, "val_avc_accuracy", "o-"),
                ("test set (never trained on)", te, "accuracy", "s-"),
            ],
        ),
        (axes[1, 0], "learning rate", [("lr", tr, "lr", "-")]),
        (axes[1, 1], "throughput (pairs/s)", [("train", tr, "pairs_per_s", "-")]),
    ]
    for ax, title, series in panels:
        drawn = False
        for label, rs, key, style in series:
            x, y = xy(rs, key)
            if x:
                few = style == "-" and len(x) < 20  # a line of a few points needs its dots
                ax.plot(x, y, "o-" if few else style, label=label, markersize=4, linewidth=1.4)
                drawn = True
        if title == "AVC accuracy":
            ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("step", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if drawn and len(series) > 1:
            ax.legend(fontsize=8)
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return (
        f"<img class='plot' src='{_data_uri(buf.getvalue(), 'image/png')}' "
        "alt='training and validation curves'>"
        f"<p class='meta'>{len(tr)} training log points (means since the previous point), "
        f"{len(va)} validations"
        + (
            f"; test set: AVC accuracy on {test_curve.get('pairs')} fixed pairs of "
            f"{e(Path(str(test_curve.get('data'))).name)} at each epoch end "
            "(RUN/eval/test_curve.json)"
            if te
            else ""
        )
        + ".</p>"
    )


def _held_out(run: dict[str, Any]) -> tuple[list[str], str]:
    """Held-out videos (absolute paths) and where the list came from."""
    data = run["data"]
    if run["split"] and run["split"].get("val"):
        files = [str(data / p) for p in run["split"]["val"] if (data / p).is_file()]
        return files, "held-out videos (RUN/split.json)"
    from looklisten.data.splits import list_videos

    return [
        str(data / p) for p in list_videos(data)
    ], "every video of the data folder (no RUN/split.json)"


def _shown(run: dict[str, Any], evaluation: str) -> tuple[list[str], str, Path]:
    """The videos a section shows, where they come from and the folder that holds them.

    The clips ``RUN/eval/<evaluation>.json`` was measured on when that is another
    folder than the training data (a test set: never trained on, e.g. writers and
    voices the network never met), else the run's held-out videos.
    """
    path = run["path"] / "eval" / f"{evaluation}.json"
    try:
        test = Path(_read_json(path).get("data") or "") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        test = None
    if test is not None and str(test) and test.is_dir() and run["data"] is not None:
        if test.resolve() != run["data"].resolve():
            from looklisten.data.splits import list_videos

            files = [str(test / p) for p in list_videos(test)]
            if files:
                where = f"{test.name}, the clips of RUN/eval/{evaluation}.json (none trained on)"
                return files, where, test
    files, where = _held_out(run)
    return files, where, run["data"]


def _needs(run: dict[str, Any], what: str) -> str | None:
    """A note when the run lacks a checkpoint or data folder, else None."""
    if run["checkpoint"] is None:
        return _note(f"No {what}: the run has no checkpoint.")
    if run["data"] is None:
        return _note(
            f"No {what}: the videos were not found (RUN/manifest.jsonl names no existing folder).",
            f"looklisten report {run['path']} --data DIR",
        )
    return None


def _audio_rate(cfg_rate: int) -> int:
    return int(min(int(cfg_rate), AUDIO_RATE_CAP))


def _examples(run: dict[str, Any], device: str | None) -> str:
    note = _needs(run, "retrieval examples")
    if note:
        return note
    from looklisten.data.labels import Labels
    from looklisten.evaluation.retrieval import collect_items
    from looklisten.models.checkpoint import get_model
    from looklisten.report.search_page import media_for, waveform_uri
    from looklisten.tasks.index import EmbeddingIndex

    model = get_model(run["checkpoint"], device)
    arch = model.cfg.model.arch
    videos, where, root = _shown(run, "retrieval")
    videos = videos[:EXAMPLE_VIDEOS]
    if not videos:
        return _note("No retrieval examples: no videos to search.")
    labels = Labels(root)
    items = collect_items(videos, model, None, hop=1.0)
    n = len(items["times"])
    if n < 2:
        return _note(
            "No retrieval examples: fewer than two usable items. " + "; ".join(items["failed"][:3])
        )
    labs = [labels(f, t) for f, t in zip(items["files"], items["times"], strict=True)]
    index = EmbeddingIndex(checkpoint=str(run["checkpoint"]))
    meta = [
        {"file": f, "time": float(t), "label": lab, "kind": "video"}
        for f, t, lab in zip(items["files"], items["times"], labs, strict=True)
    ]
    index.add("image", items["image"], meta)
    index.add("audio", items["audio"], meta)
    if arch == "ave":
        directions = [("image", "audio"), ("audio", "image")]
        intro = (
            "AVE-Net embeds frames and sounds in one space: each query frame retrieves "
            "sounds and each query sound retrieves frames"
        )
    else:
        directions = [("image", "image"), ("audio", "audio")]
        intro = (
            f"{ARCH_NAMES.get(arch, arch)} features of frames and sounds (conv4_2, max-pooled) do "
            "not share one space, so cross-modal search needs an AVE-Net: shown here is "
            "within-modality retrieval (frame &rarr; frames, sound &rarr; sounds)"
        )
    sr = _audio_rate(model.cfg.audio.sample_rate)
    order = np.random.default_rng(0).permutation(n)
    parts = [
        f"<p>{intro}. Items: the frame and the 1 s of sound every second of {len(set(items['files']))} "
        f"{e(where)}; hits never come from the query's own video, and each hit is the best of its video. Green label: same as the "
        "query's (the object heard then).</p>"
    ]
    for q_mod, t_mod in directions:
        queries = _pick_queries(order, items["files"], labs, QUERIES)
        parts.append(f"<h4>{e(q_mod)} query &rarr; {e(t_mod)} hits</h4>")
        for qi in queries:
            vec = (items["image"] if q_mod == "image" else items["audio"])[qi]
            f, t = items["files"][qi], float(items["times"][qi])
            hits = _one_per_video(index.search(vec, target=t_mod, k=HITS * 6, exclude_files=f)[0])
            thumb, clip, err = media_for(f, t, "video", sr, True)
            if q_mod == "audio" and clip is not None:
                from looklisten.media.video import MediaReader

                with MediaReader(f) as r:
                    thumb = waveform_uri(r.read_audio(t - 0.5, t + 0.5, sr), 224, 160)
            same = sum(1 for h in hits if labs[qi] is not None and h.label == labs[qi])
            row = [
                "<div class='row'>",
                _card(
                    "query",
                    f,
                    t,
                    labs[qi],
                    thumb,
                    clip,
                    err,
                    extra=f"{q_mod} query &middot; {same}/{len(hits)} hits share its label",
                    same=True,
                    query=True,
                ),
            ]
            for rank, h in enumerate(hits, 1):
                th, cl, er = media_for(h.file, h.time, "video", sr, True)
                row.append(
                    _card(
                        f"#{rank}",
                        h.file,
                        h.time,
                        h.label,
                        th,
                        cl,
                        er,
                        extra=f"{h.modality} &middot; score {h.score:.3f}",
                        same=labs[qi] is not None and h.label == labs[qi],
                    )
                )
            row.append("</div>")
            parts.append("".join(row))
    return "".join(parts)


def _one_per_video(hits: list) -> list:
    """The best hit of each video, best first, at most :data:`HITS`."""
    out, seen = [], set()
    for h in hits:
        if h.file not in seen:
            seen.add(h.file)
            out.append(h)
    return out[:HITS]


def _pick_queries(order: np.ndarray, files: list[str], labs: list, k: int) -> list[int]:
    """Up to ``k`` items from different videos, with different labels where possible."""
    chosen: list[int] = []
    seen_files, seen_labels = set(), set()
    for strict in (True, False):
        for i in order:
            if len(chosen) >= k:
                return chosen
            i = int(i)
            if i in chosen or files[i] in seen_files:
                continue
            if strict and labs[i] in seen_labels:
                continue
            chosen.append(i)
            seen_files.add(files[i])
            seen_labels.add(labs[i])
    return chosen


def _card(
    rank: str,
    file: str,
    t: float | None,
    label: Any,
    thumb: str | None,
    clip: str | None,
    err: str | None,
    *,
    extra: str = "",
    same: bool = False,
    query: bool = False,
) -> str:
    pic = f"<img src='{thumb}' alt='{e(Path(file).name)}'>" if thumb else "<span>no picture</span>"
    lab = (
        f"<span class='label{' same' if same else ''}'>{e(str(label))}</span>"
        if label is not None
        else ""
    )
    when = f" @ {t:.1f} s" if t is not None else ""
    return (
        f"<article class='card{' q' if query else ''}'>"
        f"<div class='pic'>{pic}<span class='rank'>{e(rank)}</span></div>"
        "<div class='body'>"
        f"<div class='file' title='{e(file)}'>{e(Path(file).name)}{e(when)}</div>"
        f"<div class='meta'>{extra}</div><div>{lab}</div>"
        + (f"<audio controls preload='metadata' src='{clip}'></audio>" if clip else "")
        + (f"<div class='err'>{e(err)}</div>" if err else "")
        + "</div></article>"
    )


def _overlays(run: dict[str, Any], device: str | None) -> str:
    if run["arch"] != "avol":
        return _note(
            "No localisation overlays: only AVOL-Net makes a localisation map "
            f"(this run: {ARCH_NAMES.get(run['arch'], run['arch'])}).",
            kind="info",
        )
    note = _needs(run, "localisation overlays")
    if note:
        return note
    from looklisten.data.demo_data import load_annotations, sounding_object, sounding_segment
    from looklisten.evaluation.localization import sample_times, scaled_box
    from looklisten.inputs.prepare import audio_window, read_frame_at
    from looklisten.media.overlay import HIGHLIGHT_FLOOR, draw_box, legend_strip, overlay
    from looklisten.media.video import MediaReader
    from looklisten.models.checkpoint import get_model
    from looklisten.report.search_page import jpeg_uri, wav_uri
    from looklisten.tasks.localize import localize_batch, paint_visible

    model = get_model(run["checkpoint"], device, arch="avol")
    cfg = model.cfg
    videos, where, data = _shown(run, "localization")
    anns = load_annotations(data) if (data / "annotations.jsonl").is_file() else {}

    def rel(f: str) -> str:
        try:
            return Path(f).resolve().relative_to(data.resolve()).as_posix()
        except ValueError:
            return Path(f).name

    # Two-object clips first: they show whether the map picks the object heard.
    videos = sorted(videos, key=lambda f: (len(anns.get(rel(f), {}).get("objects", [])) != 2, f))
    half = cfg.audio.clip_seconds / 2
    sr, sr_page = cfg.audio.sample_rate, _audio_rate(cfg.audio.sample_rate)
    shots = []
    for f in videos:
        if len(shots) >= OVERLAYS:
            break
        ann = anns.get(rel(f))
        with MediaReader(f) as r:
            if not (r.info.has_video and r.info.has_audio):
                continue
            if ann is not None:
                ts = sample_times(ann, 3, cfg.audio.clip_seconds)
                if not ts:
                    continue
                t = ts[len(ts) // 2]
            else:
                t = max(half, (r.info.duration or 2 * half) / 2)
            frame = read_frame_at(r, t)
            wave = audio_window(r.read_audio(0.0, None, sr), t, cfg)
            page_wave = r.read_audio(t - half, t + half, sr_page)  # for the page's player
        shots.append(
            {"file": f, "t": t, "frame": frame, "wave": wave, "page_wave": page_wave, "ann": ann}
        )
    if not shots:
        return _note("No localisation overlays: no held-out clip with a picture and a sound.")
    # The same frames with sounds that nothing on screen makes: silence, and another
    # clip's sound (an off-screen source); AVOL-Net should answer "no" and paint nothing.
    negatives = []
    for i, s in enumerate(shots[:NEGATIVE_OVERLAYS]):
        other = shots[(i + 1) % len(shots)]
        negatives.append(
            {
                **s,
                "wave": np.zeros_like(s["wave"]),
                "page_wave": np.zeros_like(s["page_wave"]),
                "sound": "silence",
            }
        )
        if other["file"] != s["file"]:
            negatives.append(
                {
                    **s,
                    "wave": other["wave"],
                    "page_wave": other["page_wave"],
                    "sound": f"another clip's sound ({Path(other['file']).name})",
                }
            )
    every = shots + negatives
    heat, prob = localize_batch(
        model, [s["frame"] for s in every], [s["wave"] for s in every], sr, with_probability=True
    )
    # one map at a time: held-out videos may differ in size
    painted = [paint_visible(model, np.asarray(h)[None], [p])[0] for h, p in zip(heat, prob)]
    threshold = model.detector.threshold
    # The legend of the default look, once, at the card's width (the cards are 204 px).
    legend = (
        f"<img src='{_png_uri(legend_strip(200))}' alt='legend: magenta, more opaque where "
        "the probability that the spot makes the sound is higher' style='display:block;"
        "width:100%;margin:4px 0'>"
    )
    cards = []
    for s, hm, p in zip(every, painted, prob, strict=True):
        img = overlay(s["frame"], hm)
        label = None
        answer = "yes" if p >= threshold else "no: nothing painted"
        caption = f"p(visible source) {p:.2f} &middot; {answer}"
        if "sound" in s:
            caption = f"sound: {e(s['sound'])} &middot; " + caption
        ann = s["ann"]
        if ann is not None:
            H, W = s["frame"].shape[:2]
            obj = sounding_object(ann, s["t"]) if "sound" not in s else None
            fi = min(
                int(math.floor(s["t"] * float(ann["fps"]) + 1e-6)),
                len(ann["objects"][0]["boxes"]) - 1,
            )
            for k, o in enumerate(ann["objects"]):
                if k != obj:
                    draw_box(img, scaled_box(o["boxes"][fi], ann, H, W), (255, 0, 0), 2)
            if obj is not None:
                box = scaled_box(ann["objects"][obj]["boxes"][fi], ann, H, W)
                draw_box(img, box, (0, 255, 0), 2)
                label = ann["objects"][obj]["label"]
                if len(ann["objects"]) == 2:
                    caption += f" &middot; silent: {e(ann['objects'][1 - obj]['label'])}"
            elif "sound" not in s:
                seg = sounding_segment(ann, s["t"])
                caption += f" &middot; its own sound, from nothing on screen ({e(seg['source'])})"
        cards.append(
            _card(
                "",
                s["file"],
                s["t"],
                label,
                jpeg_uri(img, short_side=192),
                wav_uri(s["page_wave"], sr_page),
                None,
                extra=legend + caption,
                same=True,
            )
        )
    return (
        "<p>Frames of "
        f"{e(where)} with the AVOL-Net heatmap of the 1 s of sound centred on them, computed "
        "over the whole frame: magenta, more opaque where the map's probability that the spot "
        "makes the sound is higher (the legend under each picture; nothing below "
        f"{HIGHLIGHT_FLOOR:g}). Green "
        "box: the object heard; red box: the "
        "silent one (demo annotations). Each map comes with the probability that a visible "
        f"object makes the sound; below the checkpoint's threshold ({threshold:.2f}) nothing is "
        "painted. The last cards are the first frames again with sounds that nothing on "
        "screen makes: silence, and another clip's sound.</p><div class='row'>"
        + "".join(cards)
        + "</div>"
    )


# -- evaluations ---------------------------------------------------------------


def _eval_retrieval(res: dict[str, Any]) -> str:
    from looklisten.evaluation.metrics import DIRECTIONS

    k = res.get("k", 30)
    key = f"ndcg@{k}"
    methods: list[tuple[str, dict | None]] = [
        (
            f"model ({ARCH_NAMES.get((res.get('model') or {}).get('arch'), 'model')})",
            res.get("scores"),
        ),
        ("random embeddings", res.get("random")),
    ]
    l3 = res.get("l3") or {}
    if l3:
        methods += [("L3-Net features", l3.get("raw")), ("L3-Net + CCA", l3.get("cca"))]
    rows = [
        [e(name), *[(sc or {}).get(d, {}).get(key) for d in DIRECTIONS]]
        for name, sc in methods
        if sc
    ]
    out = f"<h5>nDCG@{k} (higher is better)</h5>" + _table(["", *DIRECTIONS], rows)
    rk = ["recall@1", "recall@5", "recall@10"]
    rows = []
    for name, sc in methods:
        if sc:
            rows.append(
                [e(name), *[sc.get(d, {}).get(r) for d in ("im2aud", "aud2im") for r in rk]]
            )
    out += "<h5>Recall@k, cross-modal</h5>" + _table(
        ["", *[f"{d} {r}" for d in ("im2aud", "aud2im") for r in rk]], rows
    )
    margins = [
        (d, row["minus_l3_cca"])
        for d, row in (res.get("cross_modal_ndcg") or {}).items()
        if row.get("minus_l3_cca")
    ]
    if margins:
        out += f"<h5>nDCG@{k}: model minus L3-Net + CCA</h5>" + _margin_table(margins)
    it = res.get("items") or {}
    out += (
        f"<p class='meta'>{_fmt(it.get('items'))} items from {_fmt(it.get('videos'))} videos, "
        f"{_fmt(it.get('classes'))} classes; {e(str(res.get('selection', '')))}.</p>"
    )
    if res.get("note"):
        out += _note(str(res["note"]), kind="info")
    return out


def _margin_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Differences with their 95 % bootstrap intervals; an interval spanning 0 is a tie."""

    def verdict(lo, hi) -> str:
        if lo is None or hi is None:
            return ""
        return "ahead" if lo > 0 else "behind" if hi < 0 else "tie (interval spans 0)"

    def interval(lo, hi) -> str:
        return "" if lo is None or hi is None else f"{lo:+.3f} .. {hi:+.3f}"

    body = [
        [
            name,
            d.get("difference"),
            interval(*d["ci95"]),
            d.get("p_not_better"),
            verdict(*d["ci95"]),
        ]
        for name, d in rows
    ]
    return _table(["", "difference", "95 % interval", "P(not ahead)", "reading"], body)


def _btiou(m: dict[str, Any]) -> Any:
    b = m.get("best_threshold_iou")
    return b.get("mean_iou") if isinstance(b, dict) else b


def _eval_localization(res: dict[str, Any]) -> str:
    methods = [("AVOL-Net", res.get("avol"))] + [
        (name.replace("_", " "), v) for name, v in (res.get("baselines") or {}).items()
    ]
    cols = ["pixel_ap", "ciou@0.5", "auc", "mean_ciou", "pointing", "two_object_accuracy"]
    rows = []
    for name, m in methods:
        if m:
            fixed = m.get("fixed_0.5") or {}
            rows.append(
                [e(name), m.get("pixel_ap"), _btiou(m), *[m.get(c) for c in cols[1:]]]
                + [fixed.get("ciou@0.5")]
            )
    out = _table(["", "pixel AP", "IoU, best threshold", *cols[1:], "cIoU@0.5 (fixed 0.5)"], rows)
    out += (
        f"<p class='meta'>{_fmt(res.get('samples'))} samples from {_fmt(res.get('clips'))} clips "
        f"({e(str(res.get('split', '')))}), mode {e(str(res.get('mode', '')))}. Pixel AP and "
        "the IoU at the data set's best threshold reach 1 for a perfect map whatever the box; "
        "cIoU's median rule cannot (its ceiling is below). Chance of the two-object choice: "
        "0.5.</p>"
    )
    vs = res.get("avol_minus_best_baseline")
    if vs:
        rows = [
            (f"{key} (vs {vs[key].get('baseline', '?').replace('_', ' ')})", vs[key])
            for key in ("pixel_ap", "best_threshold_iou", "ciou@0.5", "mean_ciou", "pointing")
            if key in vs
        ]
        out += "<h5>AVOL-Net minus the best trivial baseline</h5>" + _margin_table(rows)
    c = res.get("ceiling")
    if c:
        out += _note(
            f"Median binarisation ceiling on these boxes: cIoU@0.5 {_fmt(c.get('ciou@0.5'))}, "
            f"mean cIoU {_fmt(c.get('mean_ciou'))} for any map: {c.get('what', '')}.",
            kind="info",
        )
    for key, title in (
        ("by_size", "By object size"),
        ("by_distance", "By distance from the centre"),
    ):
        parts = res.get(key) or {}
        body = []
        for b, part in parts.items():
            if not part:
                continue
            for name in ("avol", *(res.get("baselines") or {})):
                m = part.get(name) or {}
                body.append(
                    [
                        e(f"{b} ({part.get('samples')})") if name == "avol" else "",
                        e("AVOL-Net" if name == "avol" else name.replace("_", " ")),
                        m.get("pixel_ap"),
                        m.get("best_threshold_iou"),
                        m.get("ciou@0.5"),
                        m.get("pointing"),
                    ]
                )
        if body:
            out += f"<h5>{e(title)}</h5>" + _table(
                ["bin (samples)", "", "pixel AP", "IoU, best threshold", "cIoU@0.5", "pointing"],
                body,
            )
            out += f"<p class='meta'>{e(str((res.get('protocol') or {}).get(key, '')))}</p>"
    neg = res.get("negative_audio")
    if neg:
        kinds = ("silence", "absent_class", "other_clip")
        body = [
            [
                e("AVOL-Net map peak"),
                *[(neg.get(k) or {}).get("roc_auc") for k in kinds],
            ]
        ]
        for c in neg.get("compare") or []:
            body.append(
                [
                    e(f"{ARCH_NAMES.get(c.get('arch'), c.get('arch'))} correspondence score"),
                    *[(c.get(k) or {}).get("roc_auc") for k in kinds],
                ]
            )
        out += "<h5>Negative audio: own sound vs ... (ROC AUC)</h5>" + _table(
            ["", "silence", "a class not on screen", "another clip's sound"], body
        )
        out += f"<p class='meta'>{e(str(neg.get('what', '')))}</p>"
    strips = res.get("negative_overlays") or []
    if strips:
        out += (
            "<h5>Maps for the true sound and for negative sounds</h5><p class='meta'>Left to "
            "right: the frame's own sound, silence, a class not on screen, another clip's "
            "sound; the overlay's opacity is the map's calibrated value (it fades where the "
            "map says nothing sounds); green box: the object heard.</p>"
        )
        for st in strips:
            uri = _file_uri(Path(st.get("png", "")))
            peaks = ", ".join(
                f"{p.get('sound')}: peak {_fmt(p.get('peak'))}" for p in st.get("panels", [])
            )
            if uri:
                out += (
                    f"<figure><img src='{uri}' alt='negative sounds' style='max-width:100%'>"
                    f"<figcaption class='meta'>{e(str(st.get('label', '')))} &middot; "
                    f"{e(peaks)}</figcaption></figure>"
                )
            else:
                out += _note(f"missing: {st.get('png')}", kind="warn")
    return out


def _eval_units(res: Any, base: Path, run_path: Path) -> str:
    units = res.get("units") if isinstance(res, dict) else res
    if not isinstance(units, list) or not units:
        return _note("units.json lists no units.", kind="warn")

    def path_of(p: str | None) -> Path | None:
        if not p:
            return None
        for root in (base, base / "units", run_path):
            q = (root / p) if not os.path.isabs(p) else Path(p)
            if q.is_file():
                return q
        return None

    out = []
    for branch in ("image", "audio"):
        mine = [
            u
            for u in units
            if isinstance(u, dict)
            and u.get("branch") == branch
            and not u.get("dead")
            and (u.get("top_items") or u.get("items"))
        ]
        if not mine:
            out.append(_note(f"units.json has no {branch} unit gallery.", kind="info"))
            continue
        mine.sort(
            key=lambda u: (
                -(u.get("selectivity") if isinstance(u.get("selectivity"), (int, float)) else -1)
            )
        )
        out.append(
            f"<h5>{e(branch)} branch: the {min(UNITS_SHOWN, len(mine))} most selective units "
            "(of those with a gallery)</h5>"
        )
        for u in mine[:UNITS_SHOWN]:
            cards = []
            for it in (u.get("top_items") or u.get("items") or [])[:UNIT_ITEMS]:
                pic_path = path_of(it.get("thumbnail")) or path_of(it.get("spectrogram"))
                pic = _file_uri(pic_path) if pic_path else None
                aud_path = path_of(it.get("audio"))
                aud = _file_uri(aud_path) if aud_path else None
                missing = [
                    it.get(k)
                    for k in ("thumbnail", "spectrogram", "audio")
                    if it.get(k) and not path_of(it.get(k))
                ]
                cards.append(
                    _card(
                        "",
                        str(it.get("file", "?")),
                        it.get("time") if isinstance(it.get("time"), (int, float)) else None,
                        it.get("label"),
                        pic,
                        aud,
                        ("missing: " + ", ".join(map(str, missing))) if missing else None,
                        extra=f"activation {_fmt(it.get('activation'))}",
                        same=it.get("label") is not None and it.get("label") == u.get("top_label"),
                    )
                )
            head = (
                f"<div class='unit'><b>{e(str(u.get('layer', '')))} unit {e(str(u.get('unit', '?')))}</b>"
                f" &middot; selectivity {_fmt(u.get('selectivity'))}"
                + (
                    f" &middot; {_fmt(u.get('top_share'))} of its top items vs "
                    f"{_fmt(u.get('base_rate'))} of all"
                    if u.get("top_share") is not None
                    else ""
                )
                + (
                    f" &middot; top label <span class='label same'>{e(str(u['top_label']))}</span>"
                    if u.get("top_label") is not None
                    else ""
                )
                + "</div>"
            )
            out.append(head + "<div class='row'>" + "".join(cards) + "</div>")
    return "".join(out)


def _eval_probe(res: dict[str, Any]) -> str:
    rows = [[e("this network"), res.get("accuracy"), (res.get("accuracy") or {}).get("per_fold")]]
    for name, b in (res.get("baselines") or {}).items():
        if isinstance(b, dict):
            rows.append([e(name.replace("_", " ")), b, b.get("per_fold")])
    rows.append([e("chance (1 / classes)"), res.get("chance"), None])
    out = _table(["", "accuracy (mean ± std over folds)", "per fold"], rows)
    out += (
        f"<p class='meta'>{_fmt(res.get('items'))} items from {_fmt(res.get('files'))} files, "
        f"{_fmt(res.get('classes'))} classes, {_fmt(res.get('folds'))} folds grouped by file; "
        f"layer {e(str(res.get('layer', '?')))}, {e(str(res.get('classifier', '?')))}.</p>"
    )
    if res.get("protocol"):
        out += f"<p class='meta'>{e(str(res['protocol']))}</p>"
    return out


def _evals(run: dict[str, Any]) -> str:
    """The evaluations in RUN/eval; the missing ones listed with their commands."""
    from looklisten.models.checkpoint import EVAL_DIR

    base = run["path"] / EVAL_DIR
    parts, missing = [], []
    for stem, (title, cmd, archs) in EVAL_FILES.items():
        path = base / f"{stem}.json"
        if not path.is_file():
            if archs is None or run["arch"] in archs:
                missing.append((title, path.name, cmd))
            continue
        parts.append(f"<h4 id='{_anchor(run, stem)}'>{e(title)}</h4>")
        try:
            res = _read_json(path)
            if stem == "units":
                parts.append(_eval_units(res, base, run["path"]))
                continue
            render = {
                "retrieval": _eval_retrieval,
                "localization": _eval_localization,
                "probe_audio": _eval_probe,
                "probe_image": _eval_probe,
            }.get(stem, _generic)
            parts.append(render(res) + _raw_json(res, f"{EVAL_DIR}/{path.name}"))
        except Exception as exc:  # a broken file must not break the page
            log.warning("%s: %s", path, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            parts.append(_note(f"{EVAL_DIR}/{path.name} could not be shown: {exc}", kind="warn"))
    if missing:
        data = str(run["data"]) if run["data"] else "DATA"
        items = "".join(
            f"<li>{e(title)} ({EVAL_DIR}/{e(name)}): "
            f"<code>{e(cmd.format(run=run['path'], data=data))}</code></li>"
            for title, name, cmd in missing
        )
        parts.append(
            "<div class='note missing'>Not measured for this run (no file in "
            f"{e(str(base))}); the commands that would measure them:<ul>{items}</ul></div>"
        )
    return "".join(parts)


def _config(run: dict[str, Any]) -> str:
    if run["config"] is None:
        return _note("No config: the run has no readable checkpoint/config.json.")
    text = json.dumps(run["config"], indent=2, sort_keys=True)
    state = {k: v for k, v in (run.get("state") or {}).items() if k != "optimizer"}
    out = f"<p class='meta'>{e(str(run['checkpoint']))}/config.json</p><pre class='config'>{e(text)}</pre>"
    if state:
        out += _raw_json(state, "checkpoint state.json (without the optimizer)")
    return out


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------

_CSS = (
    BASE_CSS
    + """
nav a { margin-right: 14px; }
main { padding: 8px 28px 40px; max-width: 1400px; }
section.run { background: var(--card); border-radius: 10px; padding: 6px 22px 18px; margin: 18px 0;
              box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 19px; border-bottom: 2px solid #e6e9f0; padding-bottom: 6px; }
h3 { font-size: 16px; margin: 22px 0 8px; }
h4 { font-size: 15px; margin: 16px 0 6px; color: #39425a; }
h5 { font-size: 13px; margin: 10px 0 4px; color: #39425a; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border-bottom: 1px solid #e6e9f0; padding: 4px 12px 4px 0; text-align: left; }
thead th { color: var(--muted); font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
table.kv th { font-weight: 500; color: #39425a; }
img.plot { max-width: 100%; border: 1px solid #e6e9f0; border-radius: 6px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 16px; }
.card { background: #fafbfd; border: 1px solid #e6e9f0; border-radius: 8px; width: 204px;
        overflow: hidden; display: flex; flex-direction: column; }
.card.q { border: 2px solid var(--accent); }
.card .pic { background: #e6e9f0; height: 140px; display: flex; align-items: center;
             justify-content: center; color: var(--muted); position: relative; }
.card .pic img { width: 100%; height: 140px; object-fit: cover; display: block; }
.rank { position: absolute; top: 6px; left: 6px; background: rgba(29,35,48,.85); color: #fff;
        border-radius: 10px; padding: 0 8px; font-weight: 600; font-size: 12px; }
.rank:empty { display: none; }
.body { padding: 6px 8px 8px; display: flex; flex-direction: column; gap: 4px; }
.file { font-weight: 600; font-size: 12px; word-break: break-all; }
audio { width: 100%; height: 30px; }
.note { border-left: 4px solid #c9a227; background: #fff8e1; padding: 6px 10px; margin: 8px 0;
        font-size: 13px; }
.note.info { border-color: #8a94ab; background: #f3f5f9; }
.note.warn { border-color: #b3261e; background: #fdecea; }
.unit { margin-top: 10px; }
pre { background: #f6f7fa; padding: 10px; border-radius: 6px; font-size: 12px; overflow: auto; }
pre.config { max-height: 420px; }
code { font-size: 12px; background: #f0f2f7; padding: 1px 4px; border-radius: 4px; }
"""
)

SECTIONS = (
    ("summary", "Summary"),
    ("curves", "Training and validation curves"),
    ("examples", "Retrieval examples"),
    ("overlays", "Localisation overlays"),
    ("evals", "Evaluations"),
    ("config", "Config"),
)


def _anchor(run: dict[str, Any], what: str) -> str:
    return f"{run['slug']}-{what}"


def _guard(title: str, fn: Callable[[], str]) -> str:
    """Run a section builder; a failure becomes a visible note, never a failed report."""
    try:
        return fn()
    except Exception as exc:
        log.warning("report section %r failed: %s", title, exc, exc_info=True)
        return _note(f"This section could not be built: {type(exc).__name__}: {exc}", kind="warn")


def render_report(
    runs: Sequence[dict[str, Any]], *, device: str | None = None, progress: bool = False
) -> str:
    """The HTML page for runs loaded with :func:`load_run` (one section per run)."""
    slugs: set[str] = set()
    for i, run in enumerate(runs):
        slug = "".join(c if c.isalnum() else "-" for c in run["path"].name) or f"run{i}"
        run["slug"] = slug if slug not in slugs else f"{slug}-{i}"
        slugs.add(run["slug"])
    builders: dict[str, Callable[[dict], str]] = {
        "summary": _summary,
        "curves": _curves,
        "examples": lambda r: _examples(r, device),
        "overlays": lambda r: _overlays(r, device),
        "evals": _evals,
        "config": _config,
    }
    title = "looklisten report: " + ", ".join(r["path"].name for r in runs)
    nav = " ".join(f"<a href='#{r['slug']}'>{e(r['name'])}</a>" for r in runs)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{e(title)}</h1><div class='sub'>written {time.strftime('%Y-%m-%d %H:%M')} "
        f"&middot; {len(runs)} run(s)</div><nav>{nav}</nav></header><main>",
    ]
    for run in runs:
        t0 = time.time()
        parts.append(f"<section class='run' id='{run['slug']}'><h2>{e(run['name'])}</h2>")
        parts.append(
            "<p class='meta'>"
            + " &middot; ".join(f"<a href='#{_anchor(run, k)}'>{e(t)}</a>" for k, t in SECTIONS)
            + f" &middot; {e(str(run['path']))}</p>"
        )
        for key, heading in SECTIONS:
            body = _guard(f"{run['path'].name}/{key}", lambda k=key, r=run: builders[k](r))
            parts.append(
                f"<div class='sec sec-{key}'><h3 id='{_anchor(run, key)}'>{e(heading)}</h3>{body}</div>"
            )
        parts.append("</section>")
        if progress:
            log.info("report: %s in %.1f s", run["path"], time.time() - t0)
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(
    run: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    others: Sequence[str | os.PathLike] = (),
    device: str | None = None,
    progress: bool = False,
) -> Path:
    """Write the report of ``run`` (and ``others``) as one self-contained HTML page.

    Parameters
    ----------
    run : path-like
        The run directory.
    data : path-like, optional
        The videos the runs were trained on (default: each run's
        ``manifest.jsonl``); needed for retrieval examples and overlays.
    out : path-like, optional
        The page (default ``RUN/report.html``); written atomically.
    others : sequence of path-like
        More runs, one section each after ``run``'s.
    device : str, optional
        Where to run the models (default: CUDA if available).

    Returns
    -------
    Path
        The written page.
    """
    from looklisten.core.fileio import atomic_write_text

    runs = [load_run(r, data) for r in [run, *others]]
    out = Path(out) if out is not None else Path(run) / REPORT_NAME
    return atomic_write_text(out, render_report(runs, device=device, progress=progress))


# ---------------------------------------------------------------------------
# CLI
