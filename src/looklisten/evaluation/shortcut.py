"""The shortcut audit of Objects that Sound (section 3.3), on a folder of videos.

``looklisten eval shortcut DATA --out DIR`` prints one JSON object (and saves it
to ``DIR/shortcut.json``) with two parts:

(a) ``audio_only_probe``: a classifier that sees only what the audio side of
    an AVC pair carries (the decoded 1 s window's spectral content, the
    window's position in its video, and its phase relative to the video's frame
    grid) tries to predict the pair's label, on the sampler's own pairs, with
    the fix (``sampler.frame_grid=True``) and without it (the naive sampler,
    whose negatives' audio is centred anywhere). With the fix nothing on the
    audio side says which label the pair carries: the probe must be at chance.
    Without it, it is clearly above chance. Chance is 0.5 (balanced pairs); a
    result is called "at chance" when within 3 standard errors of 0.5.

(b) ``avc``: two short training runs of the same L3-Net (``--preset``, default
    tiny, ``--steps`` steps each) with and without the fix, each scored on the
    held-out videos' validation pairs of its own sampler (what its training
    log reports) **and** on the fixed sampler's validation pairs (the honest
    test: neither modality alone gives the label away). A run that learned the
    shortcut looks better on its own pairs than on honest ones.

The helpers that build the audio-only features and run the probe are used by the
sampler's tests too (``tests/test_sampler.py``, ``tests/test_data_pipeline.py``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "spectral_features",
    "timing_features",
    "audio_side_features",
    "probe_accuracy",
    "AudioTrackSource",
    "probe_sampler",
    "avc_accuracy",
    "evaluate_shortcut",
]

log = logging.getLogger(__name__)

#: Frames of the spectral features (20 ms) and how many low bins are kept.
SPECTRAL_FRAME_SECONDS = 0.02
SPECTRAL_BINS = 64


# ---------------------------------------------------------------------------
# What the audio side of a pair carries
# ---------------------------------------------------------------------------


def spectral_features(wave: np.ndarray, sr: int) -> np.ndarray:
    """Log mean power spectrum of a window in 20 ms frames: (64,) float64.

    Parameters
    ----------
    wave : (N,) float
        The decoded audio window.
    sr : int
        Its sample rate.
    """
    n = max(1, int(round(sr * SPECTRAL_FRAME_SECONDS)))
    frames = np.asarray(wave, np.float64)[: len(wave) // n * n].reshape(-1, n)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    out = np.log(spec.mean(axis=0)[:SPECTRAL_BINS] + 1e-8)
    return np.pad(out, (0, SPECTRAL_BINS - len(out)))


def timing_features(center: float, duration: float, fps: float, video_start: float = 0.0):
    """Where an audio window sits: its centre (s), its relative position, and its
    phase on its video's frame grid (fraction of a frame, and its distance to the
    nearest frame time), plus the video's frame rate: (5,) float64."""
    k = (center - video_start) * fps
    phase = k - math.floor(k + 1e-9)
    phase = 0.0 if phase < 1e-6 or phase > 1 - 1e-6 else phase
    return np.array([center, center / max(duration, 1e-9), phase, min(phase, 1 - phase), fps])


def audio_side_features(item: dict, video, sr: int, content: bool = True) -> np.ndarray:
    """Everything an audio-only classifier could use from one decoded pair.

    Parameters
    ----------
    item : dict
        A :class:`looklisten.data.sampler.PairDataset` item (``audio``, ``audio_center``).
    video : looklisten.data.scan.VideoEntry
        The audio's video.
    sr : int
        The audio sample rate.
    content : bool
        Include :func:`spectral_features` of the decoded window.
    """
    timing = timing_features(
        float(item["audio_center"]), video.duration, video.fps, video.video_start
    )
    if not content:
        return timing
    wave = item["audio"].numpy() if hasattr(item["audio"], "numpy") else item["audio"]
    return np.r_[spectral_features(wave, sr), timing]


def probe_accuracy(X: np.ndarray, y: np.ndarray, folds: int = 4, seed: int = 0) -> float:
    """Cross-validated accuracy of a flexible probe (a random forest) predicting ``y`` from ``X``.

    A random forest finds the naive sampler's phase shortcut at once and
    interactions (a video's own frame rate) too; features need no scaling.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    clf = RandomForestClassifier(n_estimators=60, min_samples_leaf=20, n_jobs=1, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, np.asarray(X), np.asarray(y), cv=cv).mean())


class AudioTrackSource:
    """A pair source with the whole audio track of each video in memory and no frames.

    Audio windows are sliced exactly as :class:`looklisten.data.sampler.MemorySource`
    does; ``frame`` gives a black square (the audit never looks at the image).
    """

    def __init__(self, root, videos, cfg, progress: bool = False):
        from looklisten.core.progress import progress_bar
        from looklisten.media.video import read_audio

        self.videos = videos
        self.audio_cfg = cfg.audio
        self.vision_cfg = cfg.vision
        self.tracks = []
        for v in progress_bar(videos, desc="decode audio", unit="video", disable=not progress):
            self.tracks.append(read_audio(Path(root) / v.path, 0.0, None, cfg.audio.sample_rate))
        r = cfg.vision.resize
        self._black = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (r, r, 3))

    def frame(self, vid: int, index: int, t: float) -> np.ndarray:
        return self._black

    def audio(self, vid: int, center: float) -> np.ndarray:
        from looklisten.inputs.prepare import audio_window

        return audio_window(self.tracks[vid], center, self.audio_cfg)


def _chance_verdict(acc: float, n: int, chance: float = 0.5) -> tuple[float, bool]:
    se = math.sqrt(chance * (1 - chance) / max(n, 1))
    return se, abs(acc - chance) <= 3 * se


def probe_sampler(
    root,
    videos,
    cfg,
    pairs: int = 3000,
    seed: int = 0,
    source=None,
) -> dict[str, dict[str, Any]]:
    """The audio-only probe on the sampler's pairs, with the fix and without.

    Parameters
    ----------
    root : path-like
        The folder of the videos.
    videos : list of VideoEntry
    cfg : Config
        Sampler and audio settings (``sampler.frame_grid`` is set both ways).
    pairs : int
        Pairs drawn per sampler (training pairs of epoch 0, seed ``seed``).
    source : optional
        A pair source (default: :class:`AudioTrackSource` over ``videos``).

    Returns
    -------
    dict
        ``{"fixed": {...}, "naive": {...}}``, each with ``accuracy`` (content +
        timing), ``content_only``, ``timing_only``, ``pairs``, ``standard_error``
        and ``at_chance``.
    """
    import dataclasses

    from looklisten.data.sampler import PairDataset, PairSampler

    source = source or AudioTrackSource(root, videos, cfg)
    sr = cfg.audio.sample_rate
    out = {}
    for name, frame_grid in (("fixed", True), ("naive", False)):
        sampler_cfg = dataclasses.replace(cfg.sampler, frame_grid=frame_grid)
        ds = PairDataset(PairSampler(videos, sampler_cfg, cfg.audio), source, pairs, seed, True)
        X, y = [], []
        for k in range(len(ds)):
            item = ds[k]
            X.append(audio_side_features(item, videos[item["audio_video"]], sr))
            y.append(int(item["label"]))
        X, y = np.array(X), np.array(y)
        n_spec = SPECTRAL_BINS
        acc = probe_accuracy(X, y, seed=seed)
        se, at_chance = _chance_verdict(acc, len(y))
        out[name] = {
            "frame_grid": frame_grid,
            "pairs": int(len(y)),
            "positives": int(y.sum()),
            "accuracy": round(acc, 4),
            "content_only": round(probe_accuracy(X[:, :n_spec], y, seed=seed), 4),
            "timing_only": round(probe_accuracy(X[:, n_spec:], y, seed=seed), 4),
            "standard_error": round(se, 4),
            "at_chance": bool(at_chance),
        }
    return out


# ---------------------------------------------------------------------------
# AVC accuracy with and without the fix
# ---------------------------------------------------------------------------


def avc_accuracy(run_dir, dataset, device: str | None = None) -> float:
    """AVC accuracy of a run's checkpoint on a :class:`PairDataset` (as in its validation)."""
    from looklisten.models.checkpoint import load_config, load_weights
    from looklisten.models.runtime import default_device
    from looklisten.training.trainer import Trainer

    cfg = load_config(run_dir)
    trainer = Trainer(cfg, run_dir, dataset, dataset, default_device(device), progress=False)
    load_weights(trainer.model, run_dir)
    return float(trainer.validate()["val_avc_accuracy"])


def _train_pair_of_runs(
    data, out: Path, preset: str, steps: int, batch_size, val_pairs, seed, device, progress
):
    from looklisten.core.config import get_config
    from looklisten.training.trainer import train

    runs = {}
    for name, frame_grid in (("fixed", True), ("naive", False)):
        base = get_config(preset, arch="l3")
        bs = batch_size or base.train.batch_size
        cfg = get_config(
            preset,
            arch="l3",
            **{
                "sampler.frame_grid": frame_grid,
                "train.batch_size": bs,
                "train.epoch_pairs": steps * bs,
                "train.epochs": 1,
                "train.seed": seed,
                **({"train.val_pairs": val_pairs} if val_pairs else {}),
            },
        )
        run = out / f"frame_grid_{str(frame_grid).lower()}"
        summary = train(data, run, cfg, device=device, progress=progress)
        runs[name] = (run, cfg, summary)
    return runs


def evaluate_shortcut(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    preset: str = "tiny",
    steps: int = 300,
    batch_size: int | None = None,
    val_pairs: int | None = None,
    pairs: int = 3000,
    seed: int = 0,
    train_runs: bool = True,
    device: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run both parts of the audit (see the module docstring).

    Part (a) decodes the sampler's pairs only; part (b) trains two short
    L3-Net runs in ``out`` (``train_runs=False`` skips it).

    Parameters
    ----------
    data : path-like
        Folder of videos.
    out : path-like
        Where the two runs go (``OUT/frame_grid_true``, ``OUT/frame_grid_false``).
    preset : str
        Model sizes and preprocessing of the runs and the probe.
    steps : int
        Training steps of each run.
    batch_size : int, optional
        Pairs per step (default: the preset's).
    val_pairs : int, optional
        Validation pairs of each run and of the honest test (default: the preset's).
    pairs : int
        Pairs per sampler for the audio-only probe.
    train_runs : bool
        False: part (a) only (``avc`` is null).

    Returns
    -------
    dict
        JSON-able.
    """
    import dataclasses

    from looklisten.core.config import get_config
    from looklisten.data.sampler import MemorySource, PairDataset, PairSampler
    from looklisten.data.scan import scan_folder

    start = time.time()
    data, out = Path(data), Path(out)
    cfg = get_config(preset, arch="l3", **{"train.seed": seed})
    man = scan_folder(data, min_seconds=cfg.audio.clip_seconds, progress=progress)
    if len(man.videos) < 2:
        raise ValueError(f"{data}: need at least 2 usable videos, found {len(man.videos)}")
    probe = probe_sampler(man.root, man.videos, cfg, pairs=pairs, seed=seed)
    fixed_ok = probe["fixed"]["at_chance"]
    naive_above = probe["naive"]["accuracy"] > 0.5 + 3 * probe["naive"]["standard_error"]
    result: dict[str, Any] = {
        "evaluation": "shortcut",
        "protocol": (
            "(a) audio-only probe: a random forest (4-fold CV) predicts the AVC label of "
            f"{pairs} training pairs per sampler from the audio side alone (the decoded 1 s "
            "window's log power spectrum, its position in its video, its phase on the video's "
            "frame grid), with the fix (sampler.frame_grid=true) and without; 'at chance' = "
            "within 3 standard errors of 0.5. "
            + (
                f"(b) two L3-Net runs ({preset} preset, {steps} steps each, same seed and split) "
                "with and without the fix, each scored on its own sampler's validation pairs "
                "(held-out videos) and on the fixed sampler's validation pairs of the same videos "
                "(honest)"
                if train_runs
                else "(b) not run (--probe-only)"
            )
        ),
        "data": str(data),
        "videos": len(man.videos),
        "chance": 0.5,
        "audio_only_probe": probe,
        "verdict": {
            "probe_at_chance_with_fix": bool(fixed_ok),
            "probe_above_chance_without_fix": bool(naive_above),
        },
    }
    if train_runs:
        runs = _train_pair_of_runs(
            data, out, preset, steps, batch_size, val_pairs, seed, device, progress
        )
        fixed_cfg = runs["fixed"][1]
        split = json.loads((runs["fixed"][0] / "split.json").read_text())
        by_path = {v.path: v for v in man.videos}
        val_v = [by_path[p] for p in split["val"] if p in by_path]
        src = MemorySource(man.root, val_v, fixed_cfg, workers=1, progress=progress)
        t = fixed_cfg.train
        val_pairs = max(t.batch_size, t.val_pairs // t.batch_size * t.batch_size)
        avc = {}
        for name, (run, rcfg, summary) in runs.items():
            honest = PairDataset(
                PairSampler(val_v, dataclasses.replace(rcfg.sampler, frame_grid=True), rcfg.audio),
                src,
                val_pairs,
                rcfg.train.seed,
                train=False,
            )
            avc[name] = {
                "run": str(run),
                "frame_grid": rcfg.sampler.frame_grid,
                "steps": summary["steps"],
                "train_seconds": round(summary["train_seconds"], 1),
                "val_accuracy_own_pairs": round(summary["val_avc_accuracy"], 4),
                "val_accuracy_honest_pairs": round(avc_accuracy(run, honest, device), 4),
                "val_pairs": val_pairs,
            }
        se = math.sqrt(0.25 / val_pairs)
        gap = avc["naive"]["val_accuracy_own_pairs"] - avc["naive"]["val_accuracy_honest_pairs"]
        result["avc"] = avc
        result["verdict"].update(
            {
                "naive_run_own_minus_honest": round(gap, 4),
                "naive_run_looks_better_on_own_pairs": bool(gap > 3 * math.sqrt(2) * se),
                "honest_accuracy_fixed_minus_naive": round(
                    avc["fixed"]["val_accuracy_honest_pairs"]
                    - avc["naive"]["val_accuracy_honest_pairs"],
                    4,
                ),
                "standard_error_per_accuracy": round(se, 4),
            }
        )
    else:
        result["avc"] = None
    result["seconds"] = round(time.time() - start, 1)
    return result


# ---------------------------------------------------------------------------
# CLI
