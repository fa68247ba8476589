"""Losses as modules (open_clip style), and the training objective of a config.

``train.objective`` (see looklisten.core.config) picks what a run minimises:

``"avc"``      :class:`AVCLoss`, the papers' binary correspondence loss on
               balanced positive / negative pairs.
``"avc-all"``  :class:`AllPairsAVCLoss`, the same loss on every pair of a batch
               of positives: N positives and about N^2 negatives from the
               trunk passes that "avc" spends on N / 2 of each (any head).
``"infonce"``  AVE-Net: :class:`InfoNCELoss`, symmetric InfoNCE over the batch
               (CLIP style) on the unit-norm embeddings of positive pairs.
``"mil"``      AVOL-Net: :class:`MILNCELoss`, the same over the max over
               locations of the cosine similarity map (EZ-VSL, Mo & Morgado 2022).

A contrastive objective (:class:`ContrastiveObjective`) adds
:class:`CalibrationLoss`: the head's own AVC scoring (AVE's distance -> fc,
AVOL's calibrated map + max pool), trained on detached features with the
binary AVC loss, so ``out["logit"]``, the AVC accuracy and AVOL's maps mean
the same for every objective. :func:`create_loss` builds the objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from looklisten.core.config import MIN_TEMPERATURE, Config


class AVCLoss(nn.Module):
    """Cross-entropy on the audio-visual correspondence label.

    For the two-way softmax heads (L3, AVE) this is the papers' cross-entropy
    over (no, yes) logits; for AVOL, binary cross-entropy on the max-pooled
    sigmoid score. Both equal BCE-with-logits on ``out["logit"]``, computed here
    in float32 for stability under autocast.
    """

    def forward(self, out: dict[str, torch.Tensor], label: torch.Tensor) -> torch.Tensor:
        if "logits" in out:
            return F.cross_entropy(out["logits"].float(), label.long())
        return F.binary_cross_entropy_with_logits(out["logit"].float(), label.float())


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float32, or float64 if it is (half-precision features from autocast widened)."""
    return x if x.dtype == torch.float64 else x.float()


def temperature(log_temperature: torch.Tensor) -> torch.Tensor:
    """tau = exp(log tau), kept >= MIN_TEMPERATURE (no gradient below it)."""
    return _wide(log_temperature).exp().clamp_min(MIN_TEMPERATURE)


def symmetric_nce(
    sim: torch.Tensor,
    image_video: torch.Tensor,
    audio_video: torch.Tensor,
    tau: torch.Tensor,
    positive: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE of a similarity matrix whose diagonal holds the positives.

    Parameters
    ----------
    sim : (N, N) similarity of image i and audio j
    image_video, audio_video : (N,) the video of each image / audio
    tau : temperature (scalar)

    With logits ``L = sim / tau`` and ``M`` the off-diagonal pairs of one video
    (masked out: they are no negatives of each other), returns
    ``(CE(L, diag) + CE(L^T, diag)) / 2``: the mean over images of
    ``-log softmax_j(L_i.)_i`` and over audios of ``-log softmax_i(L_.j)_j``.
    ``positive`` (N,) bool: only those rows are pairs; the others (null pairs:
    a sound nothing on screen makes, looklisten.data.sampler) are never a
    target, only negatives (their audio for every image).
    """
    n = sim.shape[0]
    same = image_video[:, None] == audio_video[None, :]  # (N, N)
    same &= ~torch.eye(n, dtype=torch.bool, device=sim.device)
    logits = (sim / tau).masked_fill(same, float("-inf"))
    target = torch.arange(n, device=sim.device)
    if positive is None:
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    # masked means (no host synchronisation): a null row's image still is a
    # negative of the others' sounds, its sound a negative of the others' images
    w = positive.to(logits.dtype)
    i2a = F.cross_entropy(logits, target, reduction="none")
    a2i = F.cross_entropy(logits.T, target, reduction="none")
    return 0.5 * ((i2a + a2i) * w).sum() / w.sum().clamp_min(1)


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE over the batch (AVE-Net, ``train.objective="infonce"``).

    ``sim[i, j] = <x_i, y_j>``: cosine of image embedding i and audio embedding j.
    """

    keys = ("image_embedding", "audio_embedding")

    def similarity(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x = F.normalize(_wide(image), dim=1)  # (N, D)
        y = F.normalize(_wide(audio), dim=1)  # (N, D)
        return x @ y.T  # (N, N)

    def forward(
        self,
        image: torch.Tensor,
        audio: torch.Tensor,
        image_video: torch.Tensor,
        audio_video: torch.Tensor,
        tau: torch.Tensor,
        positive: torch.Tensor | None = None,
    ) -> torch.Tensor:
        sim = self.similarity(image, audio)
        return symmetric_nce(sim, image_video, audio_video, tau, positive)


class MILNCELoss(InfoNCELoss):
    """Multiple-instance InfoNCE (AVOL-Net, ``train.objective="mil"``; EZ-VSL).

    ``sim[i, j] = max_p <x_i(p), y_j>``: the best cosine between audio j and any
    location p of image i's feature map; then :func:`symmetric_nce`. Memory:
    an (N, N, h, w) similarity tensor.
    """

    keys = ("image_features", "audio_features")

    def similarity(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        x = F.normalize(_wide(image), dim=1)  # (N, D, h, w)
        y = F.normalize(_wide(audio), dim=1)  # (N, D)
        return torch.einsum("idhw,jd->ijhw", x, y).amax(dim=(2, 3))  # (N, N)


class CalibrationLoss(nn.Module):
    """The binary AVC loss of a head's own scoring, on detached features.

    The batch's positives (image i, audio i) and in-batch negatives (image i,
    audio i + 1 mod N, unless of the same video) are scored by
    ``head.avc_logit`` (AVE: distance -> fc; AVOL: calibrated map -> max), and
    the loss is ``(mean_pos BCE(s, 1) + mean_neg BCE(s, 0)) / 2``. The
    features are detached: only the head's calibration (the fc / 1x1 conv after
    the distance / similarity) learns from it.

    Returns the loss, the number of correctly classified pairs and of pairs.
    """

    def forward(
        self,
        head: nn.Module,
        image: torch.Tensor,
        audio: torch.Tensor,
        image_video: torch.Tensor,
        audio_video: torch.Tensor,
        positive: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, audio = _wide(image.detach()), _wide(audio.detach())
        if positive is None:
            positive = torch.ones(len(image), dtype=torch.bool, device=image.device)
        valid = image_video != audio_video.roll(-1, 0)  # (N,) negatives of another video
        null = ~positive  # null pairs: negatives as they are
        own = head.avc_logit(image, audio)  # (N,)
        rolled = head.avc_logit(image, audio.roll(-1, 0))  # (N,)
        bce = F.binary_cross_entropy_with_logits
        n_pos, n_neg = positive.sum(), valid.sum() + null.sum()
        loss_pos = (bce(own, torch.ones_like(own), reduction="none") * positive).sum()
        loss_neg = (bce(rolled, torch.zeros_like(rolled), reduction="none") * valid).sum()
        loss_neg = loss_neg + (bce(own, torch.zeros_like(own), reduction="none") * null).sum()
        loss = 0.5 * (loss_pos / n_pos.clamp_min(1) + loss_neg / n_neg.clamp_min(1))
        correct = ((own > 0) & positive).sum() + ((rolled <= 0) & valid).sum()
        correct = correct + ((own <= 0) & null).sum()
        return loss, correct, n_pos + n_neg


class AllPairsAVCLoss(nn.Module):
    """The papers' AVC loss on every pair of a batch of positive pairs (``"avc-all"``).

    A batch of N positive pairs (image i, audio i) gives N positives and the
    N (N - 1) pairs of image i with audio j != i, of another video, as
    negatives; null rows (a sound nothing on screen makes, ``positive`` false)
    are negatives of every image, their own included. Every pair is scored by
    the head itself (``head.all_pairs_logit``: L3's fusion layers, AVE's
    distance -> fc, AVOL's calibrated map -> max), so ``out["logit"]`` is what
    is trained, as with ``"avc"``, and the loss is the balanced binary
    cross-entropy ``(mean_pos BCE(s, 1) + mean_neg BCE(s, 0)) / 2``: its
    decision threshold stays 0 for balanced pairs. Returns the same terms as
    :class:`ContrastiveObjective`; ``correct`` / ``pairs`` give the balanced
    accuracy over the batch's pairs.
    """

    KEYS = {
        "l3": ("image_features", "audio_features"),
        "ave": ("image_embedding", "audio_embedding"),
        "avol": ("image_features", "audio_features"),
    }

    def __init__(self, arch: str):
        super().__init__()
        self.keys = self.KEYS[arch]

    def forward(
        self,
        out: dict[str, torch.Tensor],
        head: nn.Module,
        image_video: torch.Tensor,
        audio_video: torch.Tensor,
        log_temperature: torch.Tensor | None = None,
        positive: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        image, audio = (_wide(out[k]) for k in self.keys)
        n = len(image)
        logit = head.all_pairs_logit(image, audio).float()  # (N, N)
        eye = torch.eye(n, dtype=torch.bool, device=logit.device)
        if positive is None:
            positive = torch.ones(n, dtype=torch.bool, device=logit.device)
        pos = eye & positive[:, None]  # (N, N)
        neg = (image_video[:, None] != audio_video[None, :]) & ~eye  # another video's sound
        neg |= eye & ~positive[:, None]  # a null row: its own pair is a negative
        # null sounds are of no video (ids < 0): negatives of every image
        bce = F.binary_cross_entropy_with_logits
        loss_pos = bce(logit, torch.ones_like(logit), reduction="none")
        loss_neg = bce(logit, torch.zeros_like(logit), reduction="none")
        n_pos, n_neg = pos.sum().clamp_min(1), neg.sum().clamp_min(1)
        loss = 0.5 * ((loss_pos * pos).sum() / n_pos + (loss_neg * neg).sum() / n_neg)
        # balanced accuracy, as counts over the N rows (summed over log steps)
        acc = 0.5 * (((logit > 0) & pos).sum() / n_pos + ((logit <= 0) & neg).sum() / n_neg)
        zero = loss.detach() * 0
        return {
            "loss": loss,
            "contrastive": loss.detach(),
            "calibration": zero,
            "correct": acc * n,
            "pairs": torch.full((), n, device=logit.device),
        }


class ContrastiveObjective(nn.Module):
    """A contrastive loss plus the head's calibration term (see the module docstring).

    ``forward(out, head, image_video, audio_video, log_temperature)``: ``out``
    holds the batch's features (``keys``: the head's output, gathered over
    ranks), ``head`` the model's head, ``*_video`` (N,) the video of each row.
    Returns ``loss`` (contrastive + calibration: what is minimised), the two
    terms, and ``correct`` / ``pairs`` of the calibration's AVC decisions.
    """

    def __init__(self, objective: str):
        super().__init__()
        if objective not in ("infonce", "mil"):
            raise ValueError(f"not a contrastive objective: {objective!r} (infonce, mil)")
        self.contrastive = InfoNCELoss() if objective == "infonce" else MILNCELoss()
        self.calibration = CalibrationLoss()

    @property
    def keys(self) -> tuple[str, str]:
        """The head outputs the objective uses: image and audio features."""
        return self.contrastive.keys

    def forward(
        self,
        out: dict[str, torch.Tensor],
        head: nn.Module,
        image_video: torch.Tensor,
        audio_video: torch.Tensor,
        log_temperature: torch.Tensor,
        positive: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        image, audio = (out[k] for k in self.keys)
        tau = temperature(log_temperature)
        nce = self.contrastive(image, audio, image_video, audio_video, tau, positive)
        cal, correct, pairs = self.calibration(
            head, image, audio, image_video, audio_video, positive
        )
        return {
            "loss": nce + cal,
            "contrastive": nce,
            "calibration": cal,
            "correct": correct,
            "pairs": pairs,
        }


def create_loss(cfg: Config) -> nn.Module:
    """The training objective of ``cfg.train.objective``: :class:`AVCLoss`,
    :class:`AllPairsAVCLoss` or a :class:`ContrastiveObjective`."""
    if cfg.train.objective == "avc":
        return AVCLoss()
    if cfg.train.objective == "avc-all":
        return AllPairsAVCLoss(cfg.model.arch)
    return ContrastiveObjective(cfg.train.objective)
