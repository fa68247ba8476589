"""The training loop for the audio-visual correspondence task (L3 / AVE / AVOL).

Library code builds models and preprocessing; this module only trains them.
``looklisten train DIR --model l3 --preset small --out RUN`` calls :func:`train`.

What a run writes::

    RUN/manifest.jsonl, RUN/rejected.tsv   the usable videos and the rejected files (with reasons)
    RUN/split.json                          which videos are held out for validation
    RUN/metrics.jsonl                       one JSON line per log step / validation (plot it)
    RUN/metrics.json                        the final summary (val_avc_accuracy, ...)
    RUN/checkpoint/                         the last checkpoint (atomic; see looklisten.models.checkpoint)

DATA is a folder of videos or a shard folder / URL (see looklisten.data.shards).

Objective (``train.objective``, see looklisten.models.losses): "avc" trains on
balanced positive / negative pairs with the papers' loss; "avc-all" with the
same loss on every pair of a batch of positive pairs (the batch's other pairs
being the negatives); "infonce" (AVE-Net) and "mil" (AVOL-Net) on positive pairs
only, likewise, plus the head's AVC calibration on detached features. Null pairs
(``sampler.null_fraction``: a frame with silence or noise only; AVOL-Net's
default) are label-0 pairs for every objective (see looklisten.data.sampler). Validation
pairs are the balanced AVC pairs for every objective, so ``val_avc_accuracy``
means the same whatever the run minimised. An InfoNCE or MIL run's train records
add ``contrastive_loss`` and ``calibration_loss`` (``loss`` is their sum) and
``temperature``; its ``avc_accuracy`` is the calibration's, on the batch's
positives and in-batch negatives (``avc-all``: the balanced accuracy over all
the batch's pairs).

Determinism: pair k of epoch e is a pure function of (seed, e, k) (see
looklisten.data.sampler) and its augmentation of (seed, step, position in the global
batch), so ``--resume`` continues with exactly the batches an uninterrupted run
would see.

Preemption (see looklisten.training.preemption): SIGTERM or SIGUSR1 ends the
run after the current step (every rank at the same step) with a checkpoint;
the summary's ``preempted`` names the signal, and ``resume="auto"`` (``--resume
auto``) continues it. A checkpoint or metrics file that cannot be written raises
:class:`~looklisten.core.fileio.WriteError` on every rank; the last checkpoint stays.

Several processes (``torchrun``, see looklisten.training.distributed): rank r of W
computes the contiguous slice r of every global batch of ``train.batch_size``
pairs, with batch norm statistics and gradients over the whole global batch,
so W processes train like one (up to float summation order). Rank 0 alone
writes files; the others wait for its checkpoints at a barrier. With
``train.rank_data = "own"`` the shards (or a raw folder's videos) are dealt to
ranks instead and each rank draws its slice of every global batch from its own
videos only (:func:`own_part`): each machine then needs only its ranks' shards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from looklisten.core.config import Config
from looklisten.core.fileio import (
    WriteError,
    atomic_write_json,
    atomic_write_text,
    clean_leftovers,
)
from looklisten.core.pool import ignore_stop_signals
from looklisten.data.demo_data import off_screen
from looklisten.data.sampler import (
    NULL_KINDS,
    VAL_EPOCH,
    FileSource,
    MemorySource,
    PairDataset,
    PairSampler,
    cache_mode,
    null_sound,
)
from looklisten.data.scan import VideoEntry, scan_folder, too_few_videos, video_folder
from looklisten.inputs.prepare import VisionTransform, random_channel_order
from looklisten.models.audio import VOICE_DRAWS, random_gain, random_voice
from looklisten.models.checkpoint import (
    has_checkpoint,
    init_weights,
    load_config,
    load_optimizer,
    load_state,
    load_weights,
    resolve,
    save_checkpoint,
    verify_checkpoint,
)
from looklisten.models.detector import SourceDetector, fit_detector
from looklisten.models.losses import AVCLoss, create_loss, temperature
from looklisten.models.network import create_model
from looklisten.models.runtime import default_device
from looklisten.training.distributed import (
    SINGLE,
    DistEnv,
    all_gather_cat,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_flag,
    init_from_env,
    pick_local_device,
    shutdown,
    sync_batchnorm,
    wrap_ddp,
)
from looklisten.training.preemption import StopAgreement, StopSignals, signal_name
from looklisten.training.run_folder import check_new_run, run_lock, snapshot

log = logging.getLogger("looklisten.training.trainer")


#: Settings a resumed run may change: more epochs continue the same run.
RESUMABLE = ("train.epochs",)


def _parts(names: list[str]) -> str:
    """Parameter names as counts per part: ``48 vision.features, 4 head.vision``."""
    from collections import Counter

    parts = Counter(".".join(n.split(".")[:2]) for n in names)
    return ", ".join(f"{n} {part}" for part, n in parts.items())


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def resume_config(saved: Config, cfg: Config | None) -> Config:
    """The config a resumed run continues with: the checkpoint's own.

    ``cfg`` (what the caller asked for) may differ from it only in
    :data:`RESUMABLE` fields, which are honoured; any other difference (batch
    size, learning rate, seed, model, preset, ...) would break the exact
    resume and raises ValueError naming the fields. ``None``: the saved config.
    """
    if cfg is None:
        return saved
    old, new = _flat(json.loads(saved.to_json())), _flat(json.loads(cfg.to_json()))
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    conflicts = [k for k in changed if k not in RESUMABLE]
    if conflicts:
        what = ", ".join(f"{k}={changed[k]!r} (checkpoint: {old.get(k)!r})" for k in conflicts)
        raise ValueError(
            f"resume continues the run with its saved config; {what} conflicts with it "
            "(drop the setting, or train a new run in another folder)"
        )
    return saved.with_overrides(**changed)


class _GlobalBatches(torch.utils.data.Sampler):
    """This rank's (epoch, pair index) items for global steps ``start .. stop - 1``.

    Step s covers the pairs ``(s % steps_per_epoch) * B + [0, B)`` of epoch
    ``s // steps_per_epoch``; rank r of W takes the contiguous slice
    ``[r B / W, (r + 1) B / W)`` of them, so the ranks' union is the global batch.
    With ``own`` (train.rank_data="own") each rank indexes its own pairs:
    step s is its pairs ``(s % steps_per_epoch) * B / W + [0, B / W)``.
    """

    def __init__(
        self,
        start: int,
        stop: int,
        steps_per_epoch: int,
        batch: int,
        env: DistEnv,
        own: bool = False,
    ):
        self.start, self.stop, self.spe = start, stop, steps_per_epoch
        self.local = batch // env.world_size
        self.first = 0 if own else env.rank * self.local
        self.batch = self.local if own else batch

    def __iter__(self):
        for step in range(self.start, self.stop):
            epoch, offset = divmod(step, self.spe)
            base = offset * self.batch + self.first
            for i in range(self.local):
                yield epoch, base + i

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.local


class _EpochPairs(torch.utils.data.Dataset):
    """Items addressed by (epoch, k): one loader (and its workers) can span epochs."""

    def __init__(self, pairs: PairDataset):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, k = item
        self.pairs.set_epoch(epoch)
        return self.pairs[k]


def own_part(
    train_v: list[VideoEntry],
    val_v: list[VideoEntry],
    env: DistEnv,
    shard_of: dict[str, int] | None = None,
) -> tuple[list[VideoEntry], list[VideoEntry], list[int]]:
    """This rank's training and validation videos when ``train.rank_data = "own"``.

    With shards (``shard_of``: video path -> shard number) the shards are
    dealt to ranks: the i-th shard of the sorted list goes to rank i mod W,
    with its videos on both sides of the split. A raw folder deals videos the
    same way (the i-th training video to rank i mod W; likewise validation).

    Returns
    -------
    train, val, shards
        The rank's videos and (with shards) its shard numbers.
    """
    W, r = env.world_size, env.rank
    if shard_of is not None:
        ids = sorted({shard_of[v.path] for v in train_v + val_v})
        mine = set(ids[r::W])
        train_v = [v for v in train_v if shard_of[v.path] in mine]
        val_v = [v for v in val_v if shard_of[v.path] in mine]
        shards, unit = sorted(mine), f"{len(ids)} shards"
    else:
        train_v, val_v, shards = train_v[r::W], val_v[r::W], []
        unit = "the videos"
    if len(train_v) < 2 or len(val_v) < 2:
        raise ValueError(
            f"train.rank_data=own: rank {r} of {W} got {len(train_v)} training and "
            f"{len(val_v)} validation videos from {unit} (each rank needs 2 of each): "
            "make more, smaller shards (looklisten shard --shard-size) or use train.rank_data=all"
        )
    return train_v, val_v, shards


def _make_source(
    root: Path,
    videos: list[VideoEntry],
    cfg: Config,
    cache: str,
    progress: bool,
    env: DistEnv = SINGLE,
    what: str = "videos",
):
    """'memory' | 'files' | 'auto' (memory when it fits in ``LOOKLISTEN_CACHE_MB``, default 3000)."""
    if cache_mode(videos, cfg, cache) == "memory":
        procs = max(1, (os.cpu_count() or 1) // env.local_world_size)
        return MemorySource(root, videos, cfg, workers=procs, progress=progress, what=what)
    return FileSource(root, videos, cfg)


def _loader_worker_init(worker_id: int) -> None:
    """A DataLoader worker leaves SIGTERM / SIGUSR1 to a training parent that handles them."""
    ignore_stop_signals()


def _loader(
    pairs: PairDataset, sampler: _GlobalBatches, workers: int, device: torch.device
) -> torch.utils.data.DataLoader:
    kw: dict[str, Any] = {}
    if workers > 0:
        kw = {"num_workers": workers, "persistent_workers": True, "prefetch_factor": 4}
        kw["worker_init_fn"] = _loader_worker_init
    return torch.utils.data.DataLoader(
        _EpochPairs(pairs),
        batch_size=sampler.local,
        sampler=sampler,
        drop_last=True,
        pin_memory=device.type == "cuda",
        **kw,
    )


def augmentation_generator(seed: int, step: int, skip: int = 0) -> torch.Generator:
    """The augmentation stream of a training step, advanced by ``skip`` float64 draws.

    In one process, a step's vision transform draws 5 numbers per example
    (B x 5), then the audio gain one per example (B), then the voice
    (``audio.speed_jitter``, ``eq_jitter_db``, ``noise_snr_db``) ``VOICE_DRAWS`` per example.
    CPU draws are sequential, so the rank computing the examples ``[first, first
    + b)`` of the global batch skips ``5 * first`` draws for its vision rows,
    ``5 * B + first`` for its gains, ``6 * B + VOICE_DRAWS * first`` for its
    voices and ``(6 + VOICE_DRAWS) * B + first`` for its channel orders
    (``vision.channel_shuffle``, drawn first but placed last): every pair gets the augmentation of its position in the global batch,
    whatever rank computes it.
    """
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + step)
    if skip:
        torch.rand(skip, generator=g, dtype=torch.float64)
    return g


#: Parameters trained without weight decay (the contrastive log-temperature).
NO_DECAY = ("log_temperature",)


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """``train.optimizer``: "adam" (the papers) or "sgd" (momentum 0.9).

    Frozen parameters (a fixed temperature) are left out; :data:`NO_DECAY` ones
    form a second group without weight decay.
    """
    t = cfg.train
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params: list[dict[str, Any]] = [{"params": [p for n, p in named if n not in NO_DECAY]}]
    if any(n in NO_DECAY for n, _ in named):
        params.append({"params": [p for n, p in named if n in NO_DECAY], "weight_decay": 0.0})
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay)
    raise ValueError(f"unknown train.optimizer {t.optimizer!r} (adam, sgd)")


class Trainer:
    """One training run. Build with :meth:`from_folder`, call :meth:`fit`."""

    def __init__(
        self,
        cfg: Config,
        out: str | os.PathLike,
        train_set: PairDataset,
        val_set: PairDataset,
        device: torch.device,
        progress: bool = True,
        workers: int = 0,
        env: DistEnv = SINGLE,
        warm_start: bool = True,
    ):
        """``warm_start`` False: leave ``train.init`` alone (a resumed run loads its own
        checkpoint, so the run it was initialised from may be gone or moved)."""
        self.cfg = cfg
        self.out = Path(out)
        self.train_set = train_set
        self.val_set = val_set
        self.device = device
        self.env = env
        self.progress = progress and env.is_main
        self.workers = workers
        self.log_every = max(1, cfg.train.log_every_steps)
        t = cfg.train
        if t.batch_size % env.world_size:
            raise ValueError(
                f"train.batch_size ({t.batch_size}) must be a multiple of the number of "
                f"processes ({env.world_size})"
            )
        self.local_batch = t.batch_size // env.world_size
        torch.manual_seed(t.seed)
        self.dtype = getattr(torch, t.dtype)
        self.model = create_model(cfg).to(device=device, dtype=self.dtype)
        if self.dtype != torch.float32:  # the spectrogram frontend computes in float32
            self.model.audio.register_forward_pre_hook(
                lambda module, args: tuple(a.to(self.dtype) for a in args)
            )
        self.init_info = None
        if t.init and warm_start:  # before wrapping
            self.init_info = init_weights(self.model, t.init, cfg)
            if env.is_main:
                log.info(
                    "--init: copied %s from %s; %s at their initial values",
                    _parts(self.init_info["copied"]),
                    self.init_info["from"],
                    _parts(self.init_info["kept"]) or "nothing",
                )
        if env.distributed:
            self.model = sync_batchnorm(self.model, device)
        self.net: torch.nn.Module = self.model  # what the step calls: DDP, compiled, or the model
        if env.distributed:
            self.net = wrap_ddp(self.model, env, device)
        if t.compile:
            self.net = torch.compile(self.net)
        self.transform = VisionTransform(cfg.vision)
        self.loss_fn = create_loss(cfg)  # what training minimises (train.objective)
        self.avc_loss = AVCLoss()  # what validation reports, for every objective
        self.optimizer = make_optimizer(self.model, cfg)
        self.steps_per_epoch = t.epoch_pairs // t.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"epoch_pairs ({t.epoch_pairs}) < batch_size ({t.batch_size})")
        self.step = 0
        self.stopped_early = False
        # graceful preemption (see looklisten.training.preemption): train() sets the signals
        self.stop_signals: StopSignals | None = None
        self.stop_agreement = StopAgreement(env, device)
        self.preempted: str | None = None  # the signal that stopped the run
        self.history: list[dict] = []
        # AVOL-Net: does a visible object make the sound? (fitted at every validation)
        self.detector: SourceDetector | None = None
        # training time of the sessions before this one (a resumed run), and this one's start
        self.earlier_seconds = 0.0
        self._fit_start: float | None = None
        self.amp = t.amp and device.type == "cuda"
        self._val_loader: torch.utils.data.DataLoader | None = None
        # set by from_folder: train.rank_data="own" in effect; all training / validation videos
        self.own = False
        self.total_videos = (len(train_set.sampler.videos), len(val_set.sampler.videos))

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_folder(
        cls,
        data: str | os.PathLike,
        out: str | os.PathLike,
        cfg: Config,
        device: str | None = None,
        cache: str = "auto",
        progress: bool = True,
        workers: int | None = None,
        resume: bool = False,
        env: DistEnv = SINGLE,
    ) -> Trainer:
        """Scan ``data`` (a folder of videos, or shards: see looklisten.data.shards) and set up the run."""
        from looklisten.data.shards import ShardSet, is_shard_location, is_url

        out = Path(out)
        if resume:
            cfg = resume_config(load_config(out), cfg)
            verify_checkpoint(out)  # a damaged checkpoint fails here, not after the scan
        if not is_url(data):  # before anything is written
            video_folder(data)
        main = env.is_main
        out.mkdir(parents=True, exist_ok=True)
        if main:
            clean_leftovers(out)  # temporary files of a run that was killed
        shards = None
        if is_shard_location(data):
            shards = ShardSet.open(data)
            shards.check(cfg)
            manifest = shards.manifest()
        else:
            # rank 0 scans first; the others then find the scan in the cache
            if not main:
                barrier(env)
            manifest = scan_folder(
                data, min_seconds=cfg.audio.clip_seconds, progress=progress and main
            )
            if main:
                barrier(env)
        train_v, val_v = manifest.split(cfg.sampler.val_fraction, cfg.sampler.split_seed)
        if len(train_v) < 2 or len(val_v) < 2:  # the reasons in the message: no folder is left
            what = (
                "training needs 2 training and 2 validation videos (it got "
                f"{len(train_v)} and {len(val_v)})"
            )
            raise ValueError(too_few_videos(data, manifest, what))
        if main:
            manifest.write(out)
            if manifest.rejected:
                log.warning(
                    "%d file(s) rejected, see %s", len(manifest.rejected), out / "rejected.tsv"
                )
            atomic_write_json(
                out / "split.json",
                {"train": [v.path for v in train_v], "val": [v.path for v in val_v]},
            )
        dev = default_device(device)
        t = cfg.train
        own = t.rank_data == "own" and env.distributed
        total_videos = (len(train_v), len(val_v))
        if own:
            shard_of = shards.shard_of() if shards is not None else None
            train_v, val_v, mine = own_part(train_v, val_v, env, shard_of)
            parts = all_gather_objects(
                {"shards": mine, "train_videos": len(train_v), "val_videos": len(val_v)}, env
            )
            if main:
                ranks = [{"rank": i, **p} for i, p in enumerate(parts)]
                atomic_write_json(out / "ranks.json", {"rank_data": "own", "ranks": ranks})
        if shards is not None:
            if own:  # each rank copies only its own shards
                shards.fetch(mine, progress=progress and main)
            elif shards.remote:  # one download per machine: local rank 0 first
                if env.local_rank:
                    barrier(env)
                shards.fetch(progress=progress and main)
                if not env.local_rank:
                    barrier(env)
            src_train = shards.source(train_v, cfg)
            src_val = shards.source(val_v, cfg)
        else:
            show = progress and main
            src_train = _make_source(
                manifest.root, train_v, cfg, cache, show, env, "training videos"
            )
            src_val = _make_source(manifest.root, val_v, cfg, cache, show, env, "validation videos")
        if workers is None:
            workers = 0 if isinstance(src_train, MemorySource) else t.num_workers
        share = env.world_size if own else 1  # "own": each rank's own pairs
        stream = env.rank if own else None
        # contrastive objectives: positive training pairs (the batch's others are the
        # negatives); the validation pairs stay the balanced AVC ones
        train_set = PairDataset(
            PairSampler(
                train_v,
                cfg.sampler,
                cfg.audio,
                1.0 if t.contrastive else None,
                null_fraction=cfg.sampler.null_fraction,
                off_screen=None if shards is not None else off_screen(manifest.root, train_v),
            ),
            src_train,
            t.epoch_pairs // share,
            t.seed,
            train=True,
            stream=stream,
        )
        val_pairs = max(t.batch_size, t.val_pairs // t.batch_size * t.batch_size)
        val_set = PairDataset(
            PairSampler(val_v, cfg.sampler, cfg.audio),
            src_val,
            val_pairs // share,
            t.seed,
            train=False,
            stream=stream,
        )
        trainer = cls(
            cfg,
            out,
            train_set,
            val_set,
            dev,
            progress=progress,
            workers=workers,
            env=env,
            warm_start=not resume,
        )
        trainer.own = own
        trainer.total_videos = total_videos
        if resume:
            trainer.load(out)
        return trainer

    # -- state ---------------------------------------------------------------
    def load(self, path: str | os.PathLike) -> None:
        ckpt = resolve(path)
        load_weights(self.model, ckpt)
        load_optimizer(self.optimizer, ckpt)
        state = load_state(ckpt)
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.earlier_seconds = float(state.get("train_seconds", 0.0))
        if state.get("source_detector"):
            self.detector = SourceDetector.from_dict(state["source_detector"])
        if self.env.is_main:
            # metrics.jsonl continues from the checkpoint: drop what was logged after it
            lines = [json.dumps(r) + "\n" for r in self.history]
            atomic_write_text(self.out / "metrics.jsonl", "".join(lines))

    def save(self) -> Path:
        """Checkpoint (rank 0 writes; every rank returns once it is on disk).

        A checkpoint that cannot be written (a full or read-only disk) raises
        :class:`~looklisten.core.fileio.WriteError` on every rank (rank 0 tells
        the others, so none waits for it); the previous checkpoint stays.
        """
        state = {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "history": self.history,
            "train_seconds": self.train_seconds(),
        }
        if self.detector is not None:
            state["source_detector"] = self.detector.to_dict()
        path = self.out / "checkpoint"
        error: Exception | None = None
        if self.env.is_main:
            try:
                path = save_checkpoint(self.out, self.model, self.cfg, self.optimizer, state)
            except Exception as e:
                error = e
        if self.env.distributed:
            failed = broadcast_flag(error is not None, self.env, self.device)
            if failed and error is None:
                error = WriteError(path, "rank 0 could not write it (its log says why)")
        if error is not None:
            raise error
        return path

    def train_seconds(self) -> float:
        """Training time of the whole run: earlier sessions (to their checkpoint) and this one."""
        now = time.time() - self._fit_start if self._fit_start is not None else 0.0
        return self.earlier_seconds + now

    def lr_at(self, step: int) -> float:
        """The learning rate of a step: the papers' step decay, or cosine to zero over the run."""
        t = self.cfg.train
        if t.schedule == "cosine":
            total = max(1, t.epochs * self.steps_per_epoch)
            return t.lr * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        if t.schedule != "step":
            raise ValueError(f"unknown train.schedule {t.schedule!r} (step, cosine)")
        epoch = step // self.steps_per_epoch
        return t.lr * t.lr_decay ** (epoch // max(1, t.lr_decay_epochs))

    # -- one step ------------------------------------------------------------
    def _inputs(self, batch: dict, train: bool, step: int):
        """Move a batch to the device and augment it (see :func:`augmentation_generator`)."""
        frames = batch["frame"].to(self.device, non_blocking=True)
        wave = batch["audio"].to(self.device, non_blocking=True)
        if train:
            first, seed = self.env.rank * self.local_batch, self.cfg.train.seed
            a, B = self.cfg.audio, self.cfg.train.batch_size
            if self.cfg.vision.channel_shuffle:
                skip = (6 + VOICE_DRAWS) * B + first
                frames = random_channel_order(frames, augmentation_generator(seed, step, skip))
            image = self.transform(
                frames, train=True, generator=augmentation_generator(seed, step, 5 * first)
            )
            if a.gain_jitter > 0:
                g = augmentation_generator(seed, step, 5 * B + first)
                wave = random_gain(wave, a.gain_jitter, g)
            if a.speed_jitter > 0 or a.eq_jitter_db > 0 or a.noise_snr_db > 0:
                g = augmentation_generator(seed, step, 6 * B + VOICE_DRAWS * first)
                wave = random_voice(
                    wave, a.sample_rate, a.speed_jitter, a.eq_jitter_db, g, a.noise_snr_db
                )
        else:
            image = self.transform(frames, train=False)
        image = image.to(self.dtype)
        if self.cfg.train.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return image, wave, batch["label"].to(self.device, non_blocking=True)

    def _forward(self, net, image, wave):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return net(image, wave)

    def _video_ids(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's image and audio video, unique over ranks, gathered over ranks: (B,) each."""
        ids = []
        for key in ("frame_video", "audio_video"):
            v = batch[key].to(self.device, non_blocking=True)
            if self.own:  # each rank numbers its own videos
                v = torch.where(v >= 0, v * self.env.world_size + self.env.rank, v)
            ids.append(all_gather_cat(v, self.env))
        # a null sound (-1) is of no video: a number of its own, never "the same video"
        audio = ids[1]
        audio = torch.where(audio >= 0, audio, -1 - torch.arange(len(audio), device=audio.device))
        return ids[0], audio

    def train_step(self, batch: dict) -> torch.Tensor:
        """One optimiser step on this rank's slice of a global batch.

        Returns float64 sums on the device (no host synchronisation): the loss,
        correct AVC decisions, pairs decided, and (contrastive objectives) the
        contrastive and calibration terms. The loss is the rank-local mean
        (avc) or the loss of the global batch (contrastive; every rank's is the
        same, as are its AVC counts, which then count the global batch).
        """
        self.net.train()
        image, wave, label = self._inputs(batch, True, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        out = self._forward(self.net, image, wave)
        if self.cfg.train.contrastive:
            feats = {k: all_gather_cat(out[k], self.env) for k in self.loss_fn.keys}
            image_video, audio_video = self._video_ids(batch)
            positive = all_gather_cat(label, self.env) > 0  # null pairs are label 0
            terms = self.loss_fn(
                feats,
                self.model.head,
                image_video,
                audio_video,
                getattr(self.model, "log_temperature", None),  # avc-all: none
                positive,
            )
            loss, correct, pairs = terms["loss"], terms["correct"], terms["pairs"]
            parts = [terms["contrastive"].detach(), terms["calibration"].detach()]
        else:
            loss = self.loss_fn(out, label)
            correct = ((out["logit"].detach() > 0).long() == label).sum()
            pairs, parts = torch.full((), len(label), device=self.device), []
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        stats = [loss.detach(), correct, pairs, *parts]
        return torch.stack([x.double() for x in stats])

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """AVC loss and accuracy on the fixed validation pairs (all ranks' slices together)."""
        self.model.eval()
        if self._val_loader is None:
            t = self.cfg.train
            steps = len(self.val_set) * (self.env.world_size if self.own else 1) // t.batch_size
            sampler = _GlobalBatches(0, steps, steps, t.batch_size, self.env, self.own)
            self._val_loader = _loader(self.val_set, sampler, self.workers, self.device)
        sums = torch.zeros(3, device=self.device, dtype=torch.float64)
        detect = self.cfg.model.arch == "avol"
        logits, labels, nulls = [], [], []
        for k, batch in enumerate(self._val_loader):
            image, wave, label = self._inputs(batch, False, 0)
            out = self._forward(self.model, image, wave)
            sums[0] += self.avc_loss(out, label).double() * len(label)
            sums[1] += ((out["logit"] > 0).long() == label).sum()
            sums[2] += len(label)
            if detect:  # the same frames with null sounds, for the source detector
                null = self._null_waves(len(label), k).to(self.device)
                logits.append(out["logit"].float())
                labels.append(label)
                nulls.append(self._forward(self.model, image, null)["logit"].float())
        loss_sum, correct, n = all_reduce_sum(sums, self.env).tolist()
        result = {
            "val_loss": loss_sum / n,
            "val_avc_accuracy": correct / n,
            "val_pairs": int(n),
        }
        if detect and logits:
            lg = all_gather_cat(torch.cat(logits), self.env).cpu().numpy()
            lb = all_gather_cat(torch.cat(labels), self.env).cpu().numpy()
            nl = all_gather_cat(torch.cat(nulls), self.env).cpu().numpy()
            self.detector = fit_detector(lg[lb == 1], np.concatenate([lg[lb == 0], nl]))
            result["val_source_balanced_accuracy"] = self.detector.balanced_accuracy
        return result

    def _null_waves(self, n: int, batch: int) -> torch.Tensor:
        """Null sounds (silence, noise) for validation batch ``batch``: (n, N), reproducible."""
        rng = np.random.default_rng([self.cfg.train.seed, VAL_EPOCH, 7, batch, self.env.rank])
        size = self.cfg.audio.clip_samples
        waves = [null_sound(NULL_KINDS[i % len(NULL_KINDS)], size, rng) for i in range(n)]
        return torch.from_numpy(np.stack(waves))

    def _temperature(self) -> float:
        return float(temperature(self.model.log_temperature.detach()))

    # -- the loop ------------------------------------------------------------
    def _log(self, record: dict) -> None:
        self.history.append(record)
        if self.env.is_main:
            path = self.out / "metrics.jsonl"
            try:
                with open(path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as e:
                raise WriteError.of(path, e) from None

    def _stop_code(self) -> int:
        """This rank's stop signal number (0: none)."""
        return self.stop_signals.code if self.stop_signals is not None else 0

    def fit(
        self,
        epochs: int | None = None,
        max_steps: int | None = None,
        time_budget: float | None = None,
    ) -> dict[str, Any]:
        """Train to ``epochs`` (default cfg.train.epochs), validating and checkpointing each epoch.

        ``time_budget`` (seconds): stop early once this much training time has
        passed, after a last validation and checkpoint (the summary says so).
        With several processes, rank 0's clock decides, at log steps.

        A stop signal (``self.stop_signals``, set by :func:`train`) ends the
        loop after the step in progress (one step later with several ranks, so
        that all agree), with a checkpoint and no validation; the summary's
        ``preempted`` is the signal's name.
        """
        from looklisten.core.progress import progress_bar

        t = self.cfg.train
        env = self.env
        if t.contrastive and self.train_set.sampler.positive_fraction != 1.0:
            raise ValueError(
                f"train.objective={t.objective!r} trains on positive pairs only; build the "
                "training PairSampler with positive_fraction=1.0 (Trainer.from_folder does)"
            )
        epochs = t.epochs if epochs is None else epochs
        total = epochs * self.steps_per_epoch
        if max_steps is not None:
            total = min(total, max_steps)
        start_time = self._fit_start = time.time()
        bar = progress_bar(
            total=total, initial=self.step, desc="train", unit="step", disable=not self.progress
        )
        sampler = _GlobalBatches(
            self.step, total, self.steps_per_epoch, t.batch_size, env, self.own
        )
        loader = _loader(self.train_set, sampler, self.workers, self.device)
        # loss, correct, pairs (+ contrastive, calibration)
        sums = torch.zeros(5 if t.contrastive else 3, device=self.device, dtype=torch.float64)
        seen, tick = 0, time.time()
        agree = self.stop_agreement
        stop = agree.now(self._stop_code()) if self.step < total else 0  # before any step
        first_step = self.step
        for batch in loader if not stop else ():
            sums += self.train_step(batch)
            stop = agree.poll(self._stop_code())  # the same answer on every rank
            seen += 1
            bar.update()
            end_of_epoch = self.step % self.steps_per_epoch == 0
            log_step = self.step % self.log_every == 0 or end_of_epoch or self.step >= total
            out_of_time = False
            if log_step:  # the only host synchronisation of the loop
                dt = time.time() - tick
                loss_sum, correct_sum, pairs_sum, *parts = all_reduce_sum(sums, env).tolist()
                n = seen * env.world_size
                rec = {
                    "split": "train",
                    "step": self.step,
                    "epoch": self.step / self.steps_per_epoch,
                    "lr": self.lr_at(self.step - 1),
                    "loss": loss_sum / n,
                    "avc_accuracy": correct_sum / pairs_sum,
                    "pairs_per_s": seen * t.batch_size / max(dt, 1e-9),
                    "time": time.time() - start_time,
                }
                if t.has_temperature:  # the loss is their sum
                    rec["contrastive_loss"], rec["calibration_loss"] = parts[0] / n, parts[1] / n
                    rec["temperature"] = self._temperature()
                self._log(rec)
                bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['avc_accuracy']:.3f}")
                sums.zero_()
                seen, tick = 0, time.time()
            if time_budget is not None and (log_step or not env.distributed):
                out_of_time = time.time() - start_time > time_budget
                if env.distributed:
                    out_of_time = broadcast_flag(out_of_time, env, self.device)
            if end_of_epoch or self.step >= total or out_of_time:
                val = self.validate()
                self._log(
                    {
                        "split": "val",
                        "step": self.step,
                        "epoch": self.step / self.steps_per_epoch,
                        **val,
                    }
                )
                if self.progress:
                    bar.write(
                        f"step {self.step}: val AVC accuracy {val['val_avc_accuracy']:.3f} "
                        f"(loss {val['val_loss']:.3f})"
                    )
                self.save()
                if out_of_time:
                    self.stopped_early = True
                    break
            elif stop or (t.save_every_steps and self.step % t.save_every_steps == 0):
                self.save()
            if stop:
                break
        agree.close()
        bar.close()
        if stop and self.step < total:  # a signal during the last step: the run is done
            self.preempted = signal_name(stop)
            if env.is_main:
                what = (
                    f"wrote {self.out / 'checkpoint'}"
                    if self.step > first_step
                    else "took no step (nothing new to save)"
                )
                log.warning(
                    "%s: stopped after step %d of %d and %s; the same command with "
                    "--resume auto continues it",
                    self.preempted,
                    self.step,
                    total,
                    what,
                )
        vals = [r for r in self.history if r.get("split") == "val"]
        summary = {
            "preset": self.cfg.preset,
            "model": self.cfg.model.arch,
            "steps": self.step,
            "pairs": self.step * t.batch_size,
            "train_seconds": self.train_seconds(),  # all sessions of the run
            "session_seconds": time.time() - start_time,
            "val_avc_accuracy": vals[-1]["val_avc_accuracy"] if vals else math.nan,
            "best_val_avc_accuracy": max((r["val_avc_accuracy"] for r in vals), default=math.nan),
            "stopped_by_time_budget": self.stopped_early,
            "preempted": self.preempted,
            "train_videos": self.total_videos[0],
            "val_videos": self.total_videos[1],
            "processes": env.world_size,
            "rank_data": "own" if self.own else "all",
            "init": self.cfg.train.init or None,
        }
        if env.is_main:
            atomic_write_json(self.out / "metrics.json", summary)
        return summary


def resolve_resume(resume: bool | str, out: str | os.PathLike) -> bool:
    """Whether a run continues: ``resume`` True / False, or ``"auto"``.

    ``"auto"`` (for jobs requeued with the same command line) resumes when
    ``out`` holds a checkpoint (or what is left of one: a damaged checkpoint is
    then reported, never overwritten) and starts a new run otherwise.
    """
    if resume == "auto":
        return has_checkpoint(out)
    if isinstance(resume, bool):
        return resume
    raise ValueError(f"resume must be True, False or 'auto', got {resume!r}")


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    cfg: Config,
    *,
    resume: bool | str = False,
    device: str | None = None,
    cache: str = "auto",
    epochs: int | None = None,
    max_steps: int | None = None,
    time_budget: float | None = None,
    progress: bool = True,
    workers: int | None = None,
    handle_signals: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train on a folder of videos or on shards; return the summary written to RUN/metrics.json.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this with the
    same arguments; it joins the process group (NCCL on CUDA, gloo on the CPU)
    and leaves it at the end if it created it.

    ``resume``: True continues the run in ``out`` from its checkpoint, "auto"
    does when there is one (see :func:`resolve_resume`). A new run into a folder
    holding one is refused (:class:`looklisten.training.run_folder.RunExistsError`)
    unless ``overwrite`` (which clears it first) or ``resume="auto"``; a folder
    another process trains into is refused always (``RunBusyError``). A run that
    fails before its first step leaves ``out`` as it found it. ``max_steps``
    is the total step count (a resumed run counts its earlier steps).
    ``handle_signals``
    (main thread only): SIGTERM or SIGUSR1 ends the run after the current step
    with a checkpoint; the summary's ``preempted`` names the signal (see
    looklisten.training.preemption).
    """
    overwrite = overwrite or resume == "auto"  # "auto" without a checkpoint: start anew
    resume = resolve_resume(resume, out)
    dev = pick_local_device(device)
    env = init_from_env(dev)
    signals = StopSignals() if handle_signals else StopSignals(())
    try:
        with signals, contextlib.ExitStack() as lock:
            undo = snapshot(out)
            try:
                if env.is_main:  # one trainer per folder; a new run never replaces one silently
                    Path(out).mkdir(parents=True, exist_ok=True)
                    lock.enter_context(run_lock(out))
                    if not resume:
                        check_new_run(out, overwrite)
                trainer = Trainer.from_folder(
                    data,
                    out,
                    cfg,
                    device=str(dev),
                    cache=cache,
                    progress=progress,
                    workers=workers,
                    resume=resume,
                    env=env,
                )
            except BaseException:
                if env.is_main:
                    undo()
                raise
            trainer.stop_signals = signals
            if not resume and env.is_main:
                (Path(out) / "metrics.jsonl").unlink(missing_ok=True)
            barrier(env)
            np.seterr(all="ignore")
            summary = trainer.fit(epochs=epochs, max_steps=max_steps, time_budget=time_budget)
        # A finished run: every rank leaves the group at the same moment, so none tears
        # its connections down while another still finishes a collective on them (a
        # gloo rank that did was seen, rarely, to abort at exit: "terminate called
        # without an active exception"). Not after an error (the other ranks may never
        # get here), nor after a stop signal: torchrun ends the other ranks as soon as
        # one exits with 75, and rank 0, still finishing inside the signal handlers
        # when the others exit, must not be caught outside them.
        if not summary.get("preempted"):
            barrier(env)
        return summary
    finally:
        shutdown(env)
