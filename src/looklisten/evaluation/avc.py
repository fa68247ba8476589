"""Audio-visual correspondence (AVC) accuracy of any checkpoint on any folder of videos.

``looklisten eval avc DATA --checkpoint RUN`` prints one JSON object: does the
model tell whether a frame and 1 s of audio come from the same moment of the
same video? Every usable video of DATA is evaluation data (no split).

The pairs
---------
The shortcut-free sampler of :mod:`looklisten.data.sampler`, with the
checkpoint's saved audio, vision and sampler settings (frame-grid sampling and
misalignment as trained) and half positives. ``pairs`` fixed pairs are drawn
from ``seed`` exactly as a run's validation pairs are (pair ``k`` from
``default_rng([seed, VAL_EPOCH, k])``), decoded by the same
:class:`~looklisten.data.sampler.PairDataset` (centre crop, no augmentation)
and fed to the model in eval mode. The pairs depend on the data, the input
settings and ``seed`` only: two checkpoints with the same input settings are
scored on identical pairs (``sampler.pairs_digest`` says so). Audio sliced from
whole tracks in memory and audio decoded window by window from the files differ
very slightly (enough to flip a logit near 0): compare results of the same
``sampler.decoded_from`` (``--cache``).

What is reported
----------------
Accuracy (logit > 0 means "they correspond"), with a 95 % bootstrap interval
that resamples whole videos (a pair belongs to the video its audio comes
from, drawn first for both labels); ROC AUC of the logit (threshold-free);
accuracy on positives and on negatives; the trivial baselines on the same
pairs (always "yes", always "no", a coin flip seeded by ``seed``) and the
model's margin over the best of them, with its paired bootstrap interval.
Files the scanner rejects or that fail to decode are skipped and listed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import Any

import numpy as np
import torch

from looklisten.core.config import TEMPERATURE_OBJECTIVES

__all__ = ["evaluate_avc"]

log = logging.getLogger(__name__)

#: The share of positives of the evaluation pairs.
POSITIVE_FRACTION = 0.5


class _Watched:
    """A pair source that notes the files it fails to decode (the pair is then redrawn)."""

    def __init__(self, source, videos):
        self.source, self.videos = source, videos
        self.vision_cfg, self.audio_cfg = source.vision_cfg, source.audio_cfg
        self.failed: list[str] = []

    def _call(self, fn, vid: int, *args):
        from looklisten.media.video import MediaError

        try:
            return fn(vid, *args)
        except MediaError as e:
            self.failed.append(f"{self.videos[vid].path}\t{e.reason}")
            raise

    def frame(self, vid: int, index: int, t: float) -> np.ndarray:
        return self._call(self.source.frame, vid, index, t)

    def audio(self, vid: int, center: float) -> np.ndarray:
        return self._call(self.source.audio, vid, center)


class _Pairs(torch.utils.data.Dataset):
    """The pairs of a :class:`PairDataset`, each with the decoding failures met drawing it."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict:
        try:
            item = self.pairs[k]
        except RuntimeError as e:  # 8 draws in a row failed to decode
            raise ValueError(f"pair {k}: {e}") from None
        item["failed"] = "\n".join(self.pairs.source.failed)
        self.pairs.source.failed.clear()
        return item


def _source(root, videos, cfg, cache: str, progress: bool):
    """Decoded frames and audio as the trainer gets them: every video in memory when it
    fits in ``LOOKLISTEN_CACHE_MB`` (default 3000), else each pair from the files."""
    from looklisten.data.sampler import FileSource, MemorySource, cache_mode
    from looklisten.media.video import MediaError

    if cache_mode(videos, cfg, cache) == "memory":
        try:
            workers = min(len(videos), os.cpu_count() or 1)
            return MemorySource(
                root, videos, cfg, workers=workers, progress=progress, what="test videos"
            ), "memory"
        except MediaError as e:  # a file that does not decode whole: pair by pair
            log.warning("%s; decoding each pair from the files instead", e)
    return FileSource(root, videos, cfg), "files"


def _usable(videos, cfg) -> tuple[list, list[str]]:
    """The videos with a frame whose audio window fits in the clip, and the others."""
    from looklisten.data.sampler import PairSampler

    keep, short = [], []
    for v in videos:
        try:
            PairSampler([v, v], cfg.sampler, cfg.audio)
            keep.append(v)
        except ValueError as e:
            short.append(f"{v.path}: {str(e).removeprefix(f'{v.path}: ')}")
    return keep, short


def _digest(videos, prov: dict[str, np.ndarray], labels: np.ndarray) -> str:
    """A short hash of the pairs (videos, frame and audio times, labels): equal digests,
    identical pairs."""
    h = hashlib.sha1("\n".join(v.path for v in videos).encode())
    for k in sorted(prov):
        h.update(np.round(prov[k].astype(np.float64), 6).tobytes())
    h.update(labels.astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _r(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


def _interval(boot: dict[str, Any]) -> list[float | None]:
    return [_r(v) for v in boot["ci"]]


def evaluate_avc(
    data: str | os.PathLike,
    checkpoint,
    *,
    pairs: int = 2000,
    seed: int = 0,
    batch_size: int = 64,
    cache: str = "auto",
    workers: int | None = None,
    device: str | None = None,
    progress: bool = False,
    per_pair: bool = False,
) -> dict[str, Any]:
    """AVC accuracy of a checkpoint on fixed pairs of a folder's videos, with baselines.

    Pairs, metrics and baselines: see the module docstring.

    Parameters
    ----------
    data : path-like
        Folder of videos (searched recursively); every usable one is evaluated.
    checkpoint : path-like or AVNet
        Run or checkpoint directory of an L3-Net, AVE-Net or AVOL-Net.
    pairs : int
        Number of pairs.
    seed : int
        Seed of the pairs (and of the coin-flip baseline). The same seed, data
        and input settings give the same pairs for every checkpoint.
    batch_size : int
        Pairs per forward pass.
    cache : {"auto", "memory", "files"}
        Decode every video once into memory, or each pair from the files (auto:
        memory if it fits in ``LOOKLISTEN_CACHE_MB``, as in training).
    workers : int, optional
        Data-loader processes (default: 0 with the memory cache, else the
        checkpoint's ``train.num_workers``).
    device : str, optional
        Default: cuda if available.
    progress : bool
        Progress bars.
    per_pair : bool
        Also return ``result["per_pair"]``: numpy arrays ``logit``, ``label``,
        ``correct`` and ``group`` (the audio's video) per pair, e.g. to compare two
        checkpoints on the same pairs with a paired bootstrap (not JSON-able).

    Returns
    -------
    dict
        JSON-able: ``accuracy``, ``ci95``, ``roc_auc``, ``accuracy_positives``,
        ``accuracy_negatives``, ``pairs``, ``videos``, ``baselines``,
        ``minus_best_baseline``, ``model``, ``sampler``, ``skipped`` ...

    Raises
    ------
    ValueError
        DATA has fewer than 2 usable videos, or ``pairs`` / ``batch_size`` < 1.
    """
    from sklearn.metrics import roc_auc_score

    from looklisten.core.progress import progress_bar
    from looklisten.data.demo_data import off_screen
    from looklisten.data.sampler import VAL_EPOCH, PairDataset, PairSampler
    from looklisten.data.scan import scan_folder, video_folder
    from looklisten.data.splits import run_split, same_dir
    from looklisten.evaluation.metrics import paired_bootstrap
    from looklisten.models.checkpoint import get_model
    from looklisten.models.runtime import eval_mode, model_device

    if pairs < 1 or batch_size < 1:
        raise ValueError(f"pairs and batch_size must be >= 1, got {pairs} and {batch_size}")
    data = video_folder(data)
    model = get_model(checkpoint, device)
    cfg = model.cfg
    man = scan_folder(data, min_seconds=cfg.audio.clip_seconds, progress=progress)
    videos, short = _usable(man.videos, cfg)
    skipped = [f"{p}: {r}" for p, r in man.rejected] + short
    if len(videos) < 2:
        raise ValueError(
            f"{data}: AVC needs at least 2 usable videos (a negative's frame comes from "
            f"another video), found {len(videos)}"
            + (f" ({len(skipped)} skipped)" if skipped else "")
        )
    sampler_cfg = dataclasses.replace(cfg.sampler, positive_fraction=POSITIVE_FRACTION)
    source, decoded_from = _source(man.root, videos, cfg, cache, progress)
    watched = _Watched(source, videos)
    # annotated segments whose sound comes from nothing on screen: their pairs are negatives
    sampler = PairSampler(videos, sampler_cfg, cfg.audio, off_screen=off_screen(man.root, videos))
    dataset = PairDataset(sampler, watched, pairs, seed, False)
    if workers is None:
        workers = 0 if decoded_from == "memory" else cfg.train.num_workers
    loader = torch.utils.data.DataLoader(
        _Pairs(dataset), batch_size=batch_size, num_workers=workers
    )

    dev = model_device(model)
    transform = model.inputs.transform
    logits, labels, failed = [], [], {}
    keys = ("frame_video", "frame_time", "audio_video", "audio_center")
    provenance: dict[str, list] = {k: [] for k in keys}
    with eval_mode(model):
        for batch in progress_bar(loader, desc="AVC pairs", unit="batch", disable=not progress):
            image = transform(batch["frame"].to(dev), train=False)
            if cfg.train.channels_last:
                fmt = torch.channels_last if image.ndim == 4 else torch.channels_last_3d
                image = image.contiguous(memory_format=fmt)
            logits.append(model(image, batch["audio"].to(dev))["logit"].float().cpu().numpy())
            labels.append(batch["label"].numpy())
            for k in keys:
                provenance[k].append(batch[k].numpy())
            for line in "\n".join(batch["failed"]).split("\n"):  # "path\treason"
                if line:
                    failed.setdefault(*line.split("\t", 1))
    logit, y = np.concatenate(logits), np.concatenate(labels)
    prov = {k: np.concatenate(v) for k, v in provenance.items()}
    groups = prov["audio_video"]
    used = set(groups.tolist()) | set(prov["frame_video"].tolist())
    skipped += [f"{p}: {r}" for p, r in sorted(failed.items())]
    if skipped:
        log.warning("%d file(s) skipped: %s", len(skipped), skipped[:3])

    correct = {
        "model": ((logit > 0).astype(np.int64) == y).astype(np.float64),
        "always_yes": (y == 1).astype(np.float64),
        "always_no": (y == 0).astype(np.float64),
        "coin_flip": ((np.random.default_rng([seed, 1]).random(len(y)) < 0.5) == y).astype(
            np.float64
        ),
    }
    zero = np.zeros(len(y))
    acc = paired_bootstrap(correct["model"], zero, groups, seed=seed)
    baselines = {k: _r(v.mean()) for k, v in correct.items() if k != "model"}
    best = max(baselines, key=lambda k: correct[k].mean())
    margin = paired_bootstrap(correct["model"], correct[best], groups, seed=seed)
    pos, neg = y == 1, y == 0
    objective = getattr(cfg.train, "objective", "avc")
    result: dict[str, Any] = {
        "evaluation": "avc",
        "data": str(data),
        "checkpoint": str(getattr(model, "checkpoint_path", checkpoint)),
        "model": {"arch": cfg.model.arch, "preset": cfg.preset, "objective": objective},
        "protocol": (
            f"{len(y)} fixed pairs of the shortcut-free sampler (the checkpoint's audio, vision "
            "and sampler settings, half positives) drawn from seed "
            f"{seed} like a run's validation pairs, decoded like them (centre crop); "
            "correspond = logit > 0; ci95: bootstrap over the pairs' audio videos "
            f"({acc['groups']} videos, {acc['resamples']} resamples)"
        ),
        "accuracy": _r(acc["difference"]),
        "ci95": _interval(acc),
        "roc_auc": _r(roc_auc_score(y, logit)) if pos.any() and neg.any() else None,
        "accuracy_positives": _r(correct["model"][pos].mean()) if pos.any() else None,
        "accuracy_negatives": _r(correct["model"][neg].mean()) if neg.any() else None,
        "pairs": int(len(y)),
        "positives": int(pos.sum()),
        "negatives": int(neg.sum()),
        "videos": len(videos),
        "videos_in_pairs": len(used),
        "chance": 0.5,
        "baselines": baselines,
        "minus_best_baseline": {
            "baseline": best,
            "difference": _r(margin["difference"]),
            "ci95": _interval(margin),
            "p_not_better": _r(margin["p_not_better"]),
        },
        "sampler": {
            "seed": seed,
            "pair_key": f"default_rng([{seed}, {VAL_EPOCH}, k])",
            "positive_fraction": POSITIVE_FRACTION,
            "frame_grid": sampler_cfg.frame_grid,
            "max_shift_seconds": sampler_cfg.max_shift_seconds,
            "clip_seconds": cfg.audio.clip_seconds,
            "decoded_from": decoded_from,
            "pairs_digest": _digest(videos, prov, y),
        },
        "skipped": {"count": len(skipped), "files": skipped},
    }
    root, split = (
        run_split(checkpoint) if not isinstance(checkpoint, torch.nn.Module) else (None, None)
    )
    if split is not None and same_dir(root, data):
        seen = set(split.get("train", []))
        n_seen = sum(v.path in seen for v in videos)
        result["note"] = (
            f"DATA is the folder the run trained on: {n_seen} of the {len(videos)} videos are "
            "its training videos; for a held-out accuracy evaluate a folder of its split.json "
            "'val' videos"
        )
    if per_pair:
        result["per_pair"] = {
            "logit": logit,
            "label": y,
            "correct": correct["model"],
            "group": groups,
        }
    if objective in TEMPERATURE_OBJECTIVES:
        result.setdefault("warnings", []).append(
            f"trained with the {objective!r} objective: the logit is the head's calibration, "
            "trained on detached features with in-batch negatives (not the shortcut-free "
            "sampler's); roc_auc does not depend on its threshold"
        )
    return result
