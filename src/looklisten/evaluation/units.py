"""What the units learned (L3's analysis): the frames and sounds that excite each unit most.

``looklisten eval units DATA --checkpoint RUN`` ranks, for every unit (channel)
of each branch's last conv layer (``conv4_2``, or ``--layer``), the items that
excite it most (the maximum of the unit's map over space, or over frequency and
time), and writes, for the most selective ``--units`` units of each branch, a
gallery of their ``--top`` items under ``RUN/eval/units/``:

* image units: ``image/<layer>_u<unit>_<rank>.png``, the crop the network saw
  with the unit's activation map over it (:func:`looklisten.media.overlay.overlay`;
  the map is divided by the unit's strongest activation among its top items,
  so brightness is comparable within a gallery);
* audio units: ``audio/<layer>_u<unit>_<rank>.png``, the log-spectrogram the
  network saw (low frequencies at the bottom, time left to right) with the
  unit's map over it, and ``audio/<layer>_u<unit>_<rank>.wav``, the 1 s window
  (16-bit PCM, playable in a browser).

Items
-----
The 1 s audio windows and the frames shown at their centres, every ``--hop``
seconds of each evaluation video (:mod:`looklisten.tasks.features`): the held-out
videos of ``RUN/split.json`` when DATA is the run's training folder, else every
video (and audio file / picture) in DATA.

Selectivity
-----------
Where labels exist (demo annotations: the object heard at the item's time; a
CSV; sub-folders), each unit's ``top_label`` is the most common label among its
top-k items, ``top_share`` the fraction of them with it, ``base_rate`` that
label's share among all items, and ``selectivity`` =
``(top_share - base_rate) / (1 - base_rate)``: 0 when the top items are no
purer than the data, 1 when all have the label. Units are listed most selective
first (ties: the larger top activation); without labels, by top activation.
Units that never fire (all-zero maps) are listed last as ``dead``.
Items of one clip are alike, so ``top_files`` says how many different files a
unit's top items come from (a perfectly "selective" unit whose top items are
all from one clip says little).
"""

from __future__ import annotations

import io
import logging
import os
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TopK",
    "selectivity",
    "wav_bytes",
    "spectrogram_image",
    "evaluate_units",
]

log = logging.getLogger(__name__)

#: Thumbnails are scaled up (nearest) to at least this many pixels on a side.
MIN_THUMB = 128


class TopK:
    """Running top-k items per unit, with their activation maps.

    ``update`` takes a batch of maps; only each unit's ``k`` strongest items
    (and their maps) are kept, so memory does not grow with the data.
    """

    def __init__(self, k: int):
        self.k = int(k)
        self.acts: np.ndarray | None = None  # (C, k') float32
        self.ids: np.ndarray | None = None  # (C, k') int64
        self.maps: np.ndarray | None = None  # (C, k', h, w) float32

    def update(self, maps: np.ndarray, ids: np.ndarray) -> None:
        """maps: (B, C, h, w) float32; ids: (B,) int64 item ids."""
        maps = np.asarray(maps, np.float32).transpose(1, 0, 2, 3)  # (C, B, h, w)
        acts = maps.max(axis=(2, 3))  # (C, B)
        ids = np.broadcast_to(np.asarray(ids, np.int64), acts.shape)
        if self.acts is not None:
            acts = np.concatenate([self.acts, acts], 1)
            ids = np.concatenate([self.ids, ids], 1)
            maps = np.concatenate([self.maps, maps], 1)
        # stable: among equal activations the earlier item wins
        order = np.argsort(-acts, axis=1, kind="stable")[:, : self.k]
        self.acts = np.take_along_axis(acts, order, 1)
        self.ids = np.take_along_axis(ids, order, 1)
        self.maps = np.take_along_axis(maps, order[:, :, None, None], 1)

    def kept_ids(self) -> set[int]:
        return set() if self.ids is None else set(np.unique(self.ids).tolist())


def selectivity(top_labels: list, all_counts: Counter) -> dict[str, Any]:
    """Label selectivity of one unit from the labels of its top items.

    Parameters
    ----------
    top_labels : list
        Labels of the unit's top-k items (None for unlabelled items).
    all_counts : Counter
        Label counts over all items.

    Returns
    -------
    dict
        ``top_label``, ``top_share`` (share of the top items with it),
        ``base_rate`` (its share among all items) and ``selectivity``
        ``(top_share - base_rate) / (1 - base_rate)``; Nones without labels.
    """
    labs = [x for x in top_labels if x is not None]
    total = sum(all_counts.values())
    if not labs or not total:
        return {"top_label": None, "top_share": None, "base_rate": None, "selectivity": None}
    counts = Counter(labs)
    # most common; ties broken by the rarer label overall, then by name (deterministic)
    best = min(counts, key=lambda c: (-counts[c], all_counts[c], str(c)))
    share = counts[best] / len(top_labels)
    base = all_counts[best] / total
    sel = (share - base) / (1 - base) if base < 1 else 0.0
    return {
        "top_label": best,
        "top_share": round(share, 4),
        "base_rate": round(base, 4),
        "selectivity": round(sel, 4),
    }


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM mono WAV of float samples in [-1, 1] (clipped)."""
    x = np.clip(np.asarray(samples, np.float64), -1.0, 1.0)
    pcm = np.round(x * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def spectrogram_image(spec: np.ndarray) -> np.ndarray:
    """A (F, T) log-spectrogram as an RGB image, low frequencies at the bottom: (F, T, 3) uint8.

    Grey levels span the 2nd to the 99.5th percentile of the values.
    """
    s = np.asarray(spec, np.float64)[::-1]
    lo, hi = np.percentile(s, [2, 99.5])
    g = np.clip((s - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    return np.repeat(np.round(g * 255).astype(np.uint8)[..., None], 3, axis=2)


def _upscale(img: np.ndarray, min_side: int = MIN_THUMB) -> np.ndarray:
    f = max(1, int(np.ceil(min_side / min(img.shape[:2]))))
    return np.repeat(np.repeat(img, f, axis=0), f, axis=1) if f > 1 else img


def _heat(m: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(m / scale, 0, 1) if scale > 0 else np.zeros_like(m)


# ---------------------------------------------------------------------------
# The analysis
# ---------------------------------------------------------------------------


def _choose_files(data: Path, checkpoint, modality: str) -> tuple[list[str], str]:
    from looklisten.data.splits import run_split, same_dir
    from looklisten.tasks.features import media_files

    root, split = run_split(checkpoint)
    if split is not None and same_dir(root, data):
        return [str(data / p) for p in split["val"]], "held-out videos of RUN/split.json"
    return media_files(data, modality), "every file in DATA"


def _scan_branch(model, modality, files, labels, layer, top, hop, batch_size, progress):
    """One pass over the items: running top-k, label counts, and the kept items."""
    from looklisten.core.progress import progress_bar
    from looklisten.tasks.features import batches, iter_items, layer_maps

    failed: list[str] = []
    topk = TopK(top)
    meta: list[tuple[int, float, Any]] = []  # item id -> (file index, time, label)
    kept: dict[int, np.ndarray] = {}
    counts: Counter = Counter()
    bar = progress_bar(desc=f"{modality} units", unit="item", disable=not progress)
    for batch in batches(iter_items(files, model.cfg, modality, hop, failed), batch_size):
        ids = np.arange(len(meta), len(meta) + len(batch))
        for i, t, _ in batch:
            lab = labels(files[i], t) if labels is not None else None
            meta.append((i, t, lab))
            if lab is not None:
                counts[lab] += 1
        maps = layer_maps(model, modality, [b[2] for b in batch], layer).numpy()
        topk.update(maps, ids)
        for j, (_, _, item) in zip(ids, batch):
            kept[int(j)] = item
        keep = topk.kept_ids()
        kept = {j: v for j, v in kept.items() if j in keep}
        bar.update(len(batch))
    bar.close()
    return topk, meta, kept, counts, failed


def evaluate_units(
    data: str | os.PathLike,
    checkpoint,
    *,
    layer: str | None = None,
    top: int = 8,
    units: int = 16,
    hop: float = 1.0,
    labels: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Rank the items that excite each unit; write galleries for the most selective units.

    A unit's response to an item is the maximum of its map (see the module docstring).

    Parameters
    ----------
    data : path-like
        Folder of videos (or audio files / pictures).
    checkpoint : path-like
        Run or checkpoint directory.
    layer : str, optional
        Layer of both branches (default conv4_2, the last conv layer).
    top : int
        Items per unit.
    units : int
        Units per branch that get a gallery (the most selective).
    hop : float
        Seconds between items in a video.
    labels : path-like, optional
        annotations.jsonl or a CSV ``file,label`` (default: from DATA).
    out_dir : path-like, optional
        Where the galleries go (default ``RUN/eval/units``); paths in the
        result are relative to its parent (``RUN/eval``).

    Returns
    -------
    dict
        JSON-able (see the module docstring).
    """
    from looklisten.core.fileio import atomic_write_bytes
    from looklisten.data.labels import Labels
    from looklisten.inputs.prepare import square_crop
    from looklisten.media.overlay import encode_png, overlay
    from looklisten.models.checkpoint import EVAL_DIR, get_model, run_dir
    from looklisten.tasks.features import check_layer

    start = time.time()
    data = Path(data)
    if not data.is_dir():
        raise NotADirectoryError(f"{data}: not a folder")
    model = get_model(checkpoint, device)
    cfg = model.cfg
    out_dir = Path(out_dir) if out_dir is not None else run_dir(checkpoint) / EVAL_DIR / "units"
    rel_base = out_dir.parent
    lab = Labels(data, labels)
    result: dict[str, Any] = {
        "evaluation": "units",
        "protocol": "",
        "data": str(data),
        "checkpoint": getattr(model, "checkpoint_path", str(checkpoint)),
        "labels_from": lab.kind,
        "top": top,
        "hop": hop,
        "branches": {},
        "units": [],
        "failed": [],
    }
    for modality, branch in (("image", "vision"), ("audio", "audio")):
        name = check_layer(model, modality, layer)
        files, how = _choose_files(data, checkpoint, modality)
        topk, meta, kept, counts, failed = _scan_branch(
            model, modality, files, lab, name, top, hop, batch_size, progress
        )
        result["failed"] += failed
        if topk.acts is None:
            raise ValueError(f"{data}: no {modality} items to analyse")
        n_units = topk.acts.shape[0]
        rows = []
        for u in range(n_units):
            ids = topk.ids[u].tolist()
            sel = selectivity([meta[j][2] for j in ids], counts)
            rows.append(
                {
                    "branch": modality,
                    "network_branch": branch,
                    "layer": name,
                    "unit": u,
                    "max_activation": round(float(topk.acts[u, 0]), 4),
                    "dead": bool(topk.acts[u, 0] <= 0),
                    **sel,
                    # items of one clip are alike: how many clips the top items come from
                    "top_files": len({meta[j][0] for j in ids}),
                    "top_items": [],
                }
            )
        has_labels = sum(counts.values()) > 0
        rows.sort(
            key=lambda r: (
                r["dead"],
                -(r["selectivity"] if has_labels and r["selectivity"] is not None else 0.0),
                -r["max_activation"],
                r["unit"],
            )
        )
        for r in rows[: max(0, units)]:
            if r["dead"]:
                continue
            u = r["unit"]
            scale = float(topk.acts[u, 0])
            for rank, j in enumerate(topk.ids[u].tolist()):
                fi, t, label = meta[j]
                item = kept[j]
                stem = f"{modality}/{name}_u{u:04d}_{rank:02d}"
                heat = _heat(topk.maps[u, rank], scale)
                entry = {
                    "file": os.path.relpath(files[fi], data),
                    "time": round(t, 3),
                    "label": label,
                    "activation": round(float(topk.acts[u, rank]), 4),
                }
                if modality == "image":
                    crop = _upscale(square_crop(item, cfg.vision.image_size, None))
                    png = out_dir / f"{stem}.png"
                    atomic_write_bytes(png, encode_png(overlay(crop, heat, alpha=0.45)))
                    entry["thumbnail"] = png.relative_to(rel_base).as_posix()
                else:
                    spec = _spectrogram(model, item)
                    img = _upscale(spectrogram_image(spec))
                    png = out_dir / f"{stem}.png"
                    wav = out_dir / f"{stem}.wav"
                    atomic_write_bytes(
                        png, encode_png(overlay(img, np.ascontiguousarray(heat[::-1]), alpha=0.35))
                    )
                    atomic_write_bytes(wav, wav_bytes(item, cfg.audio.sample_rate))
                    entry["spectrogram"] = png.relative_to(rel_base).as_posix()
                    entry["audio"] = wav.relative_to(rel_base).as_posix()
                r["top_items"].append(entry)
        # mean over the live units whose top items have labels (the items of an
        # unlabelled moment, e.g. a sound from nothing on screen, have none)
        scored = [r["selectivity"] for r in rows if not r["dead"] and r["selectivity"] is not None]
        result["branches"][modality] = {
            "layer": name,
            "units": n_units,
            "items": len(meta),
            "files": len({m[0] for m in meta}),
            "items_from": how,
            "label_counts": dict(sorted(counts.items())),
            "dead_units": int(sum(r["dead"] for r in rows)),
            "mean_selectivity": round(float(np.mean(scored)), 4) if has_labels and scored else None,
            "galleries": sum(bool(r["top_items"]) for r in rows),
        }
        result["units"] += rows
    names = {m: b["layer"] for m, b in result["branches"].items()}
    result["protocol"] = (
        f"for each unit of the image branch's {names['image']} and the audio branch's "
        f"{names['audio']}, the {top} items (frames / 1 s audio windows every {hop:g} s of "
        "the evaluation files) with the largest maximum of the unit's map; selectivity = "
        "(share of the top items with the unit's most common label - that label's share of all "
        "items) / (1 - that share); most selective units first per branch; galleries for the "
        f"first {units} units of each branch (paths relative to the folder holding units/)"
    )
    result["gallery_dir"] = out_dir.relative_to(rel_base).as_posix()
    result["paths_relative_to"] = "the folder holding units.json (RUN/eval)"
    result["seconds"] = round(time.time() - start, 1)
    return result


def _spectrogram(model, window: np.ndarray) -> np.ndarray:
    """The (F, T) log-spectrogram the network computes for one window."""
    import torch

    with torch.inference_mode():
        dev = next(model.parameters()).device
        s = model.spectrogram(torch.from_numpy(np.ascontiguousarray(window, np.float32)).to(dev))
    return s[0, 0].float().cpu().numpy()


# ---------------------------------------------------------------------------
# CLI
