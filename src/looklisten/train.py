"""The training loop for the audio-visual correspondence task (L3 / AVE / AVOL).

Library code builds models and preprocessing; this module only trains them.
``looklisten train DIR --model l3 --preset small --out RUN`` calls :func:`train`.

What a run writes::

    RUN/manifest.jsonl, RUN/rejected.tsv   the usable videos and the rejected files (with reasons)
    RUN/split.json                          which videos are held out for validation
    RUN/metrics.jsonl                       one JSON line per log step / validation (plot it)
    RUN/metrics.json                        the final summary (val_avc_accuracy, ...)
    RUN/checkpoint/                         the last checkpoint (atomic; see looklisten.checkpoint)

Determinism: pair k of epoch e is a pure function of (seed, e, k) (see
looklisten.sampler) and the augmentation of step s of (seed, s), so
``--resume`` continues with exactly the batches an uninterrupted run would see.
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
import torch

from .audio import random_gain
from .checkpoint import (
    load_config,
    load_optimizer,
    load_state,
    load_weights,
    resolve,
    save_checkpoint,
)
from .config import Config
from .dataset import Manifest, VideoEntry, scan_folder
from .fileio import atomic_write_json, atomic_write_text
from .losses import AVCLoss
from .models import create_model
from .sampler import FileSource, MemorySource, PairDataset, PairSampler
from .vision import VisionTransform

log = logging.getLogger("looklisten.train")


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _StartAt(torch.utils.data.Sampler):
    """Indices start, start+1, ..., length-1 (resume in the middle of an epoch)."""

    def __init__(self, start: int, length: int):
        self.start, self.length = start, length

    def __iter__(self):
        return iter(range(self.start, self.length))

    def __len__(self) -> int:
        return max(0, self.length - self.start)


def _make_source(root: Path, videos: list[VideoEntry], cfg: Config, cache: str, progress: bool):
    """'memory' | 'files' | 'auto' (memory when it fits in ``LOOKLISTEN_CACHE_MB``, default 3000)."""
    if cache == "auto":
        budget = float(os.environ.get("LOOKLISTEN_CACHE_MB", "3000")) * 2**20
        cache = "memory" if MemorySource.estimate_bytes(videos, cfg) <= budget else "files"
    if cache == "memory":
        return MemorySource(
            root, videos, cfg, workers=max(1, os.cpu_count() or 1), progress=progress
        )
    if cache == "files":
        return FileSource(root, videos, cfg)
    raise ValueError(f"unknown cache mode {cache!r} (auto, memory, files)")


def _loader(
    dataset: PairDataset, batch_size: int, start: int, workers: int, device
) -> torch.utils.data.DataLoader:
    kw: dict[str, Any] = {}
    if workers > 0:
        kw = {"num_workers": workers, "persistent_workers": False, "prefetch_factor": 4}
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=_StartAt(start, len(dataset)),
        drop_last=True,
        pin_memory=device.type == "cuda",
        **kw,
    )


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
    ):
        self.cfg = cfg
        self.out = Path(out)
        self.train_set = train_set
        self.val_set = val_set
        self.device = device
        self.progress = progress
        self.workers = workers
        self.log_every = max(1, cfg.train.log_every_steps)
        t = cfg.train
        torch.manual_seed(t.seed)
        self.model = create_model(cfg).to(device)
        self.transform = VisionTransform(cfg.vision)
        self.loss_fn = AVCLoss()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay
        )
        self.steps_per_epoch = t.epoch_pairs // t.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"epoch_pairs ({t.epoch_pairs}) < batch_size ({t.batch_size})")
        self.step = 0
        self.stopped_early = False
        self.history: list[dict] = []
        self.amp = t.amp and device.type == "cuda"

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
    ) -> Trainer:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            cfg = load_config(out)  # the run's own config wins
        manifest: Manifest = scan_folder(
            data, min_seconds=cfg.audio.clip_seconds, progress=progress
        )
        manifest.write(out)
        if manifest.rejected:
            log.warning("%d file(s) rejected, see %s", len(manifest.rejected), out / "rejected.tsv")
        train_v, val_v = manifest.split(cfg.sampler.val_fraction, cfg.sampler.split_seed)
        if len(train_v) < 2 or len(val_v) < 2:
            raise ValueError(
                f"{data}: need at least 2 training and 2 validation videos, got "
                f"{len(train_v)} and {len(val_v)} usable of {len(manifest.videos) + len(manifest.rejected)}"
            )
        atomic_write_json(
            out / "split.json", {"train": [v.path for v in train_v], "val": [v.path for v in val_v]}
        )
        dev = pick_device(device)
        t = cfg.train
        src_train = _make_source(manifest.root, train_v, cfg, cache, progress)
        src_val = _make_source(manifest.root, val_v, cfg, cache, progress)
        if workers is None:
            workers = 0 if isinstance(src_train, MemorySource) else t.num_workers
        train_set = PairDataset(
            PairSampler(train_v, cfg.sampler, cfg.audio),
            src_train,
            t.epoch_pairs,
            t.seed,
            train=True,
        )
        val_pairs = max(t.batch_size, t.val_pairs // t.batch_size * t.batch_size)
        val_set = PairDataset(
            PairSampler(val_v, cfg.sampler, cfg.audio), src_val, val_pairs, t.seed, train=False
        )
        trainer = cls(cfg, out, train_set, val_set, dev, progress=progress, workers=workers)
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
        # metrics.jsonl continues from the checkpoint: drop what was logged after it
        lines = [json.dumps(r) + "\n" for r in self.history]
        atomic_write_text(self.out / "metrics.jsonl", "".join(lines))

    def save(self) -> Path:
        state = {
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "history": self.history,
        }
        return save_checkpoint(self.out, self.model, self.cfg, self.optimizer, state)

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
        g = torch.Generator().manual_seed(int(self.cfg.train.seed) * 1_000_003 + step)
        frames = batch["frame"].to(self.device, non_blocking=True)
        wave = batch["audio"].to(self.device, non_blocking=True)
        image = self.transform(frames, train=train, generator=g if train else None)
        if train and self.cfg.audio.gain_jitter > 0:
            wave = random_gain(wave, self.cfg.audio.gain_jitter, g)
        if self.cfg.train.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return image, wave, batch["label"].to(self.device, non_blocking=True)

    def _forward(self, image, wave):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(image, wave)

    def train_step(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.train()
        image, wave, label = self._inputs(batch, True, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        out = self._forward(image, wave)
        loss = self.loss_fn(out, label)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        correct = ((out["logit"].detach() > 0).long() == label).sum()
        return loss.detach(), correct

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        for batch in _loader(self.val_set, self.cfg.train.batch_size, 0, self.workers, self.device):
            image, wave, label = self._inputs(batch, False, 0)
            out = self._forward(image, wave)
            loss_sum += self.loss_fn(out, label) * len(label)
            correct += ((out["logit"] > 0).long() == label).sum()
            n += len(label)
        return {
            "val_loss": float(loss_sum) / n,
            "val_avc_accuracy": float(correct) / n,
            "val_pairs": n,
        }

    # -- the loop ------------------------------------------------------------
    def _log(self, record: dict) -> None:
        self.history.append(record)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def fit(
        self,
        epochs: int | None = None,
        max_steps: int | None = None,
        time_budget: float | None = None,
    ) -> dict[str, Any]:
        """Train to ``epochs`` (default cfg.train.epochs), validating and checkpointing each epoch.

        ``time_budget`` (seconds): stop early once this much training time has
        passed, after a last validation and checkpoint (the summary says so).
        """
        from tqdm.auto import tqdm

        t = self.cfg.train
        epochs = t.epochs if epochs is None else epochs
        total = epochs * self.steps_per_epoch
        if max_steps is not None:
            total = min(total, max_steps)
        start_time = time.time()
        bar = tqdm(
            total=total, initial=self.step, desc="train", unit="step", disable=not self.progress
        )
        while self.step < total:
            epoch, offset = divmod(self.step, self.steps_per_epoch)
            self.train_set.set_epoch(epoch)
            loader = _loader(
                self.train_set, t.batch_size, offset * t.batch_size, self.workers, self.device
            )
            loss_acc = torch.zeros((), device=self.device)
            correct_acc = torch.zeros((), device=self.device, dtype=torch.long)
            seen, tick = 0, time.time()
            for batch in loader:
                loss, correct = self.train_step(batch)
                loss_acc += loss
                correct_acc += correct
                seen += 1
                bar.update()
                end_of_epoch = self.step % self.steps_per_epoch == 0
                if self.step % self.log_every == 0 or end_of_epoch or self.step >= total:
                    dt = time.time() - tick
                    rec = {
                        "split": "train",
                        "step": self.step,
                        "epoch": self.step / self.steps_per_epoch,
                        "lr": self.lr_at(self.step - 1),
                        "loss": float(loss_acc) / seen,
                        "avc_accuracy": float(correct_acc) / (seen * t.batch_size),
                        "pairs_per_s": seen * t.batch_size / max(dt, 1e-9),
                        "time": time.time() - start_time,
                    }
                    self._log(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['avc_accuracy']:.3f}")
                    loss_acc.zero_()
                    correct_acc.zero_()
                    seen, tick = 0, time.time()
                out_of_time = time_budget is not None and time.time() - start_time > time_budget
                if end_of_epoch or self.step >= total or out_of_time:
                    break
                if t.save_every_steps and self.step % t.save_every_steps == 0:
                    self.save()
            val = self.validate()
            self._log(
                {
                    "split": "val",
                    "step": self.step,
                    "epoch": self.step / self.steps_per_epoch,
                    **val,
                }
            )
            bar.write(
                f"step {self.step}: val AVC accuracy {val['val_avc_accuracy']:.3f} (loss {val['val_loss']:.3f})"
            )
            self.save()
            if time_budget is not None and time.time() - start_time > time_budget:
                self.stopped_early = True
                break
        bar.close()
        vals = [r for r in self.history if r.get("split") == "val"]
        summary = {
            "preset": self.cfg.preset,
            "model": self.cfg.model.arch,
            "steps": self.step,
            "pairs": self.step * t.batch_size,
            "train_seconds": time.time() - start_time,
            "val_avc_accuracy": vals[-1]["val_avc_accuracy"] if vals else math.nan,
            "best_val_avc_accuracy": max((r["val_avc_accuracy"] for r in vals), default=math.nan),
            "stopped_by_time_budget": self.stopped_early,
            "train_videos": len(self.train_set.sampler.videos),
            "val_videos": len(self.val_set.sampler.videos),
        }
        atomic_write_json(self.out / "metrics.json", summary)
        return summary


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    cfg: Config,
    *,
    resume: bool = False,
    device: str | None = None,
    cache: str = "auto",
    epochs: int | None = None,
    max_steps: int | None = None,
    time_budget: float | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Train on a folder of videos; return the summary written to RUN/metrics.json."""
    trainer = Trainer.from_folder(
        data,
        out,
        cfg,
        device=device,
        cache=cache,
        progress=progress,
        workers=workers,
        resume=resume,
    )
    if not resume:
        (Path(out) / "metrics.jsonl").unlink(missing_ok=True)
    np.seterr(all="ignore")
    return trainer.fit(epochs=epochs, max_steps=max_steps, time_budget=time_budget)
