"""Audio-visual correspondence (AVC) pairs: what is sampled, and how it is decoded.

The sampling rule (Look, Listen and Learn; Objects that Sound §3.3)
------------------------------------------------------------------
A pair is (frame, 1 s of audio, label). Half are positives (frame and audio
from the same video), half negatives (audio from a *different* video).

The audio window is drawn **first and in the same way for both labels**: a
video uniformly at random, then one of its frame times uniformly among those
whose 1 s window fits in the clip; the window is centred on that frame time.
So the audio of a negative sits on its own video's frame grid exactly as the
audio of a positive does: nothing in the audio (its content, its position in
the file, its phase relative to the frame grid, its encoder artefacts) says
which label it carries. This closes the shortcut of Objects that Sound
(positives' audio always frame-aligned, negatives' anywhere) by construction.

The frame is then drawn by the same procedure for both labels too, in the
audio's video (positive) or in another video chosen uniformly (negative): the
frame at a grid point, shifted by a random whole number of frames up to
``max_shift_seconds`` (L3's +-1 s misalignment; 0 = none). So neither
modality alone carries the label; only their agreement does.

``frame_grid=False`` reproduces the naive sampler with the shortcut
(negatives' audio centred anywhere), for the shortcut audit.

Sounds that nothing on screen makes
-----------------------------------
With ``null_fraction`` (``sampler.null_fraction`` for training; AVOL-Net's
default is :data:`looklisten.core.config.AVOL_NULL_FRACTION`) a pair is, with
that probability, a **null pair** (label 0): a frame drawn as above from any
video, and instead of a recording a null sound (:func:`null_sound`): digital
silence, or noise only (white, pink or brown, at a random level). They teach
AVOL-Net that silence and noise light up nothing: its map, and the probability
that a visible object makes the sound (:mod:`looklisten.tasks.localize`), stay
low. Off-screen sounds are the ordinary negatives (another video's sound), and
in generated data the segments whose sound comes from nothing on screen
(``annotations.jsonl``, :mod:`looklisten.data.demo_data`): a positive whose
window lies mostly in such a segment is a negative (``off_screen``).

Reproducibility
---------------
Pair ``k`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, k])``:
the same pairs, in the same order, whatever the number of DataLoader workers,
and a resumed run continues with exactly the pairs it would have seen.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from looklisten.core.config import AudioConfig, Config, SamplerConfig
from looklisten.data.demo_data import coloured_noise
from looklisten.data.scan import VideoEntry
from looklisten.inputs.prepare import (
    audio_window,
    frame_time,
    item_from_clip,
    item_from_reader,
    read_audio_window,
    square_crop,
)

VAL_EPOCH = 1_000_003  # the epoch number that seeds the fixed validation pairs


@dataclass(frozen=True)
class PairSpec:
    """What one AVC example is made of (times in seconds)."""

    frame_video: int
    frame_index: int
    frame_time: float
    audio_video: int  # -1: a null sound (see ``null``)
    audio_center: float
    label: int  # 1 = correspond
    null: str = ""  # a null pair's sound: "silence" or "noise" ("": a recording)


#: What a null sound is (:func:`null_sound`).
NULL_KINDS = ("silence", "noise")
#: Noise-only sounds: colours and the range of their RMS level.
NOISE_COLOURS = ("white", "pink", "brown")
NOISE_RMS = (0.003, 0.3)


def null_sound(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A sound no visible object makes: float32 (n,).

    ``"silence"``: zeros. ``"noise"``: white, pink or brown noise (uniformly),
    its RMS log-uniform in :data:`NOISE_RMS` (hiss, rumble, wind, hum-free room
    tone at any level), clipped to [-1, 1].
    """
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind != "noise":
        raise ValueError(f"null sound kind must be one of {NULL_KINDS}, got {kind!r}")
    colour = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
    x = coloured_noise(rng, n, colour)
    lo, hi = np.log(NOISE_RMS)
    rms = float(np.exp(rng.uniform(lo, hi)))
    x *= rms / max(float(np.sqrt(np.mean(x**2))), 1e-12)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def _grid(v: VideoEntry, half: float) -> tuple[int, int]:
    """First and last frame index whose time allows a centred window of +-half seconds."""
    lo = math.ceil((half - v.video_start) * v.fps - 1e-9)
    hi = math.floor((v.duration - half - v.video_start) * v.fps + 1e-9)
    lo = max(lo, 0)
    hi = min(hi, v.num_frames - 1)
    if hi < lo:
        raise ValueError(f"{v.path}: too short for a {2 * half:.2f} s window")
    return lo, hi


class PairSampler:
    """Draw :class:`PairSpec` s from a list of videos (see the module docstring).

    ``positive_fraction`` (default ``sampler.positive_fraction``): the share of
    positives. 1.0 for the training pairs of a contrastive objective
    (``train.objective``), whose negatives are the batch's other pairs.
    """

    def __init__(
        self,
        videos: list[VideoEntry],
        sampler: SamplerConfig,
        audio: AudioConfig,
        positive_fraction: float | None = None,
        null_fraction: float = 0.0,
        off_screen: list[list[tuple[float, float]]] | None = None,
    ):
        if len(videos) < 2:
            raise ValueError(
                "AVC needs at least two usable videos (negatives come from another one)"
            )
        self.videos = videos
        self.cfg = sampler
        self.positive_fraction = (
            sampler.positive_fraction if positive_fraction is None else positive_fraction
        )
        if not 0 < self.positive_fraction <= 1:
            raise ValueError(f"positive_fraction must be in (0, 1], got {self.positive_fraction}")
        if not 0 <= null_fraction < 1:
            raise ValueError(f"null_fraction must be in [0, 1), got {null_fraction}")
        self.null_fraction = float(null_fraction)
        # per video: the intervals (s) whose sound comes from nothing on screen
        self.off_screen = off_screen or [[] for _ in videos]
        self.half = audio.clip_seconds / 2
        self.grids = [_grid(v, self.half) for v in videos]

    def frame_time(self, vid: int, index: int) -> float:
        v = self.videos[vid]
        return frame_time(v.video_start, v.fps, index)

    def _shift(self, vid: int, j: int, rng: np.random.Generator) -> int:
        """Frame index j moved by a random whole number of frames within +-max_shift_seconds."""
        k = int(math.floor(self.cfg.max_shift_seconds * self.videos[vid].fps + 1e-9))
        if k <= 0:
            return j
        last = self.videos[vid].num_frames - 1
        return int(rng.integers(max(0, j - k), min(last, j + k) + 1))

    def _grid_point(self, vid: int, rng: np.random.Generator) -> int:
        lo, hi = self.grids[vid]
        return int(rng.integers(lo, hi + 1))

    def off_screen_share(self, vid: int, center: float) -> float:
        """Share of the window centred at ``center`` whose sound comes from nothing on screen."""
        lo, hi = center - self.half, center + self.half
        cut = sum(max(0.0, min(hi, b) - max(lo, a)) for a, b in self.off_screen[vid])
        return cut / (hi - lo)

    def sample(self, rng: np.random.Generator) -> PairSpec:
        n = len(self.videos)
        if self.null_fraction > 0 and rng.random() < self.null_fraction:
            f = int(rng.integers(n))
            fi = self._grid_point(f, rng)
            return PairSpec(
                frame_video=f,
                frame_index=fi,
                frame_time=self.frame_time(f, fi),
                audio_video=-1,
                audio_center=0.0,
                label=0,
                null=NULL_KINDS[int(rng.integers(len(NULL_KINDS)))],
            )
        label = int(rng.random() < self.positive_fraction)
        a = int(rng.integers(n))
        j = self._grid_point(a, rng)
        center = self.frame_time(a, j)
        if label == 1:
            f, fi = a, self._shift(a, j, rng)
        else:
            if not self.cfg.frame_grid:  # the naive sampler: anywhere (the shortcut)
                lo, hi = self.grids[a]
                center = float(rng.uniform(self.frame_time(a, lo), self.frame_time(a, hi)))
            f = int(rng.integers(n - 1))
            f += f >= a  # uniform over the other videos
            fi = self._shift(f, self._grid_point(f, rng), rng)
        if label == 1 and self.off_screen[a] and self.off_screen_share(a, center) > 0.5:
            label = 0  # its own video's sound, made by nothing on screen
        return PairSpec(
            frame_video=f,
            frame_index=fi,
            frame_time=self.frame_time(f, fi),
            audio_video=a,
            audio_center=center,
            label=label,
        )


# ---------------------------------------------------------------------------
# Decoding the pairs
# ---------------------------------------------------------------------------


class FileSource:
    """Decodes each pair's frame and audio window from the files, on demand.

    Keeps a few readers open per process (DataLoader worker). Frames come out
    of the decoder scaled so the shorter side is ``vision.resize``. With motion
    (looklisten.models.motion) a pair's K frames / flow window is read with one seek;
    its flow is then computed per pair (slow: the memory cache and shards
    compute it once per clip).
    """

    def __init__(
        self, root: str | os.PathLike, videos: list[VideoEntry], cfg: Config, max_open: int = 16
    ):
        self.root = Path(root)
        self.videos = videos
        self.audio_cfg = cfg.audio
        self.vision_cfg = cfg.vision
        self.max_open = max_open
        self._readers: OrderedDict[int, object] = OrderedDict()

    def _reader(self, vid: int):
        from looklisten.media.video import MediaReader

        r = self._readers.pop(vid, None)
        if r is None:
            r = MediaReader(self.root / self.videos[vid].path)
            while len(self._readers) >= self.max_open:
                self._readers.popitem(last=False)[1].close()
        self._readers[vid] = r
        return r

    def frame(self, vid: int, index: int, t: float) -> np.ndarray:
        """The pair's vision item: (H, W, 3), or with motion (K, H, W, 3) / (H, W, 3 + 2L)."""
        return item_from_reader(self._reader(vid), t, self.vision_cfg, threads=1)

    def audio(self, vid: int, center: float) -> np.ndarray:
        return read_audio_window(self._reader(vid), center, self.audio_cfg)

    def __getstate__(self):  # readers do not cross process boundaries
        d = dict(self.__dict__)
        d["_readers"] = OrderedDict()
        return d


class MemorySource:
    """Every frame (at the preset's size) and the whole audio track in memory.

    For small data sets (the demo, a laptop try): each video is decoded once,
    in parallel, and pairs are then sliced out with no decoding at all.
    Produces the same frames as :class:`FileSource` for the same pairs.
    With ``vision.flow_frames`` (AVE+OF) each clip's optical flow is computed
    once here (:func:`looklisten.inputs.flow.clip_flow`, in the same worker pool) and
    kept as uint8; ``flow_seconds`` is the CPU time it took (all workers).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        videos: list[VideoEntry],
        cfg: Config,
        workers: int = 2,
        progress: bool = True,
        what: str = "videos",
    ):
        from looklisten.core.progress import progress_bar

        self.videos = videos
        self.audio_cfg = cfg.audio
        self.vision_cfg = cfg.vision
        jobs = [
            (
                str(Path(root) / v.path),
                v.video_start,
                v.num_frames,
                cfg.vision.resize,
                cfg.audio.sample_rate,
                cfg.vision if cfg.vision.flow_frames > 0 else None,
            )
            for v in videos
        ]
        self.frames: list[np.ndarray] = [None] * len(jobs)  # type: ignore[list-item]
        self.tracks: list[np.ndarray] = [None] * len(jobs)  # type: ignore[list-item]
        self.flows: list[np.ndarray | None] = [None] * len(jobs)
        self.flow_seconds = 0.0
        bar = progress_bar(
            total=len(jobs), desc=f"decode {what}", unit="video", disable=not progress
        )
        from looklisten.core.pool import process_pool

        with process_pool(workers) as ex:  # spawned (see looklisten.core.pool)
            for i, (fr, tr, fl, sec) in enumerate(ex.map(_decode_all, jobs, chunksize=2)):
                self.frames[i], self.tracks[i], self.flows[i] = fr, tr, fl
                self.flow_seconds += sec
                bar.update()
        bar.close()

    @staticmethod
    def estimate_bytes(videos: list[VideoEntry], cfg: Config) -> int:
        total = 0
        r = cfg.vision.resize
        for v in videos:
            w, h = (
                (max(r, round(v.width * r / v.height)), r)
                if v.width >= v.height
                else (r, max(r, round(v.height * r / v.width)))
            )
            channels = 3 + (2 if cfg.vision.flow_frames > 0 else 0)  # + one flow field a frame
            total += v.num_frames * w * h * channels + int(v.duration * cfg.audio.sample_rate) * 4
        return total

    def frame(self, vid: int, index: int, t: float) -> np.ndarray:
        """The pair's vision item: (H, W, 3), or with motion (K, H, W, 3) / (H, W, 3 + 2L)."""
        return item_from_clip(self.frames[vid], self.flows[vid], index, self.vision_cfg)

    def audio(self, vid: int, center: float) -> np.ndarray:
        return audio_window(self.tracks[vid], center, self.audio_cfg)


def _decode_all(job):
    path, start, num_frames, resize, sr, flow_cfg = job
    import time

    from looklisten.media.video import read_audio, read_frames

    frames = read_frames(path, start, num_frames, size=resize)
    track = read_audio(path, 0.0, None, sr)
    flows, seconds = None, 0.0
    if flow_cfg is not None:
        from looklisten.inputs.flow import clip_flow

        tick = time.perf_counter()
        flows = clip_flow(frames, flow_cfg, threads=1)
        seconds = time.perf_counter() - tick
    return frames, track, flows, seconds


#: Decode a folder whole into memory ("auto") when it needs at most this many MiB
#: (the ``LOOKLISTEN_CACHE_MB`` environment variable overrides it).
DEFAULT_CACHE_MB = 3000


def cache_mode(videos: list[VideoEntry], cfg: Config, cache: str = "auto") -> str:
    """``"memory"`` or ``"files"``: ``cache`` itself, or for ``"auto"`` memory when the
    decoded videos fit in ``LOOKLISTEN_CACHE_MB`` (default :data:`DEFAULT_CACHE_MB`)."""
    if cache not in ("auto", "memory", "files"):
        raise ValueError(f"unknown cache mode {cache!r} (auto, memory, files)")
    if cache == "auto":
        budget = float(os.environ.get("LOOKLISTEN_CACHE_MB", DEFAULT_CACHE_MB)) * 2**20
        cache = "memory" if MemorySource.estimate_bytes(videos, cfg) <= budget else "files"
    return cache


class PairDataset(torch.utils.data.Dataset):
    """Map-style dataset of AVC pairs; item ``k`` is a pure function of (seed, epoch, k).

    Each item: ``frame`` uint8 (R, R, 3) with R = vision.resize (a random square
    crop when training, the centre one otherwise; with motion (K, R, R, 3) or
    (R, R, 3 + 2L), one crop for all, see looklisten.models.motion), ``audio`` float32 (N,),
    ``label`` int64, and the pair's provenance: ``frame_video`` and ``audio_video``
    (indices into the sampler's videos; a contrastive objective masks pairs of
    one video out of each other's negatives), ``frame_time``, ``audio_center``.
    A pair whose decoding fails is replaced by the next draw of the same
    generator, and counted in ``skipped``.
    """

    def __init__(
        self,
        sampler: PairSampler,
        source,
        length: int,
        seed: int,
        train: bool,
        epoch: int = 0,
        stream: int | None = None,
    ):
        self.sampler = sampler
        # an independent stream of pairs per rank (train.rank_data="own"): [seed, e, k, stream]
        self.stream = stream
        self.source = source
        self.length = length
        self.seed = seed
        self.train = train
        self.epoch = epoch if train else VAL_EPOCH
        self.side = source.vision_cfg.resize
        self.clip_samples = source.audio_cfg.clip_samples

    def set_epoch(self, epoch: int) -> None:
        if self.train:
            self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> dict:
        from looklisten.media.video import MediaError

        key = [self.seed, self.epoch, int(k)]
        rng = np.random.default_rng(key if self.stream is None else [*key, self.stream])
        last_error = None
        for _ in range(8):
            spec = self.sampler.sample(rng)
            try:
                frame = self.source.frame(spec.frame_video, spec.frame_index, spec.frame_time)
                if spec.null:
                    audio = null_sound(spec.null, self.clip_samples, rng)
                else:
                    audio = self.source.audio(spec.audio_video, spec.audio_center)
            except MediaError as e:
                last_error = e
                continue
            frame = square_crop(frame, self.side, rng if self.train else None)
            return {
                "frame": torch.from_numpy(np.ascontiguousarray(frame)),
                "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
                "label": torch.tensor(spec.label, dtype=torch.int64),
                "frame_video": spec.frame_video,
                "audio_video": spec.audio_video,
                "frame_time": spec.frame_time,
                "audio_center": spec.audio_center,
            }
        raise RuntimeError(f"8 pairs in a row failed to decode; last: {last_error}")
