"""Heads on top of the two trunks: L3-Net, AVE-Net and AVOL-Net.

Every head takes the two conv4_2 maps, vision ``v`` (B, C, h, w) and audio
``a`` (B, C, f, t), and returns a dict with ``"logit"``: the log-odds that the
frame and the audio correspond, shape (B,). A two-way softmax over
(no, yes) logits, as in the papers, is the same model as a sigmoid of their
difference, so every head reports that difference and one loss serves all.
``all_pairs_logit(x, y)`` scores every image of a batch with every audio, (N, M),
from the features the head returns (the ``avc-all`` objective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def global_max_pool(x: torch.Tensor) -> torch.Tensor:
    return torch.amax(x, dim=(2, 3))  # (B, C, h, w) -> (B, C)


class L3Head(nn.Module):
    """L3-Net fusion: max-pool both maps, concat, fc 2C->fusion_dim + ReLU, fc ->2.

    ``image_features`` / ``audio_features`` (B, C) are the pooled maps (for the
    ``avc-all`` objective, looklisten.models.losses).
    """

    def __init__(self, channels: int, fusion_dim: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, fusion_dim)
        self.fc2 = nn.Linear(fusion_dim, 2)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        pv, pa = global_max_pool(v), global_max_pool(a)  # (B, C) each
        logits = self.fc2(F.relu(self.fc1(torch.cat([pv, pa], dim=1))))  # (B, 2): (no, yes)
        return {
            "logits": logits,
            "logit": logits[:, 1] - logits[:, 0],
            "image_features": pv,
            "audio_features": pa,
        }

    def all_pairs_logit(self, pv: torch.Tensor, pa: torch.Tensor) -> torch.Tensor:
        """AVC log-odds (N, M) of every image (N, C) with every audio (M, C), pooled."""
        c = pv.shape[1]
        w, b = self.fc1.weight, self.fc1.bias  # (F, 2C): fc1(cat(v, a)) = Wv v + Wa a + b
        h = F.relu((pv @ w[:, :c].T)[:, None] + (pa @ w[:, c:].T)[None] + b)  # (N, M, F)
        logits = self.fc2(h)  # (N, M, 2)
        return logits[..., 1] - logits[..., 0]


class EmbedMLP(nn.Module):
    """max-pool -> fc C->D + ReLU -> fc D->D (the AVE / AVOL audio branch)."""

    def __init__(self, channels: int, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(global_max_pool(x))))  # (B, D)


class AVEHead(nn.Module):
    """AVE-Net: L2-normalised embeddings; Euclidean distance -> fc 1->2.

    The last fc is initialised with the right sign: a small distance means
    "correspond" (otherwise training may settle on anti-aligned embeddings).
    """

    def __init__(self, channels: int, dim: int = 128):
        super().__init__()
        self.vision = EmbedMLP(channels, dim)
        self.audio = EmbedMLP(channels, dim)
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            # logit(yes) - logit(no) = -2 d + 2: positive while d < 1 (unit vectors: d in [0, 2]).
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.copy_(torch.tensor([-1.0, 1.0]))

    def embed_vision(self, v: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.vision(v), dim=1)  # (B, D), unit norm

    def embed_audio(self, a: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(a), dim=1)  # (B, D), unit norm

    def pair_logits(self, ev: torch.Tensor, ea: torch.Tensor) -> torch.Tensor:
        """(no, yes) logits (B, 2) of embedding pairs (B, D), (B, D): distance -> fc."""
        dist = torch.linalg.vector_norm(ev - ea, dim=1, keepdim=True)  # (B, 1)
        return self.fc(dist)

    def avc_logit(self, ev: torch.Tensor, ea: torch.Tensor) -> torch.Tensor:
        """The AVC log-odds (B,) of embedding pairs: ``forward``'s ``logit``."""
        logits = self.pair_logits(ev, ea)
        return logits[:, 1] - logits[:, 0]

    def all_pairs_logit(self, ev: torch.Tensor, ea: torch.Tensor) -> torch.Tensor:
        """AVC log-odds (N, M) of every unit-norm image embedding (N, D) with every audio one (M, D)."""
        # unit vectors: |x - y|^2 = 2 - 2 <x, y> (clamped: no infinite gradient at 0)
        dist = (2 - 2 * ev @ ea.T).clamp_min(1e-12).sqrt()  # (N, M)
        logits = self.fc(dist[..., None])  # (N, M, 2)
        return logits[..., 1] - logits[..., 0]

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        ev, ea = self.embed_vision(v), self.embed_audio(a)
        logits = self.pair_logits(ev, ea)  # (B, 2)
        return {
            "logits": logits,
            "logit": logits[:, 1] - logits[:, 0],
            "image_embedding": ev,
            "audio_embedding": ea,
        }


class AVOLHead(nn.Module):
    """AVOL-Net: a correspondence score at every location of the vision map.

    Vision: 1x1 convs C->D + ReLU -> D->D on the unpooled map (no normalisation).
    Audio: max-pool -> fc C->D + ReLU -> fc D->D (no normalisation).
    Scalar product at each location -> 1x1 calibration conv -> sigmoid gives the
    localisation map; its maximum over locations is the AVC score (multiple
    instance learning). Since sigmoid is monotonic, max(sigmoid(s)) ==
    sigmoid(max(s)), so ``logit`` is the max of the calibrated map.
    ``image_features`` (B, D, h, w) and ``audio_features`` (B, D) are the two
    branches' outputs (for the contrastive objective, looklisten.models.losses).
    """

    def __init__(self, channels: int, dim: int = 128):
        super().__init__()
        self.vision = nn.Sequential(
            nn.Conv2d(channels, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1)
        )
        self.audio = EmbedMLP(channels, dim)
        self.calibration = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            # Start with small scores: dot products of two 128-d vectors are large.
            self.calibration.weight.fill_(1.0 / dim)
            self.calibration.bias.zero_()

    def map_logits(self, fv: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        """Calibrated logits (B, h, w) of feature pairs: maps (B, D, h, w), audio (B, D)."""
        sim = torch.einsum("bdhw,bd->bhw", fv, fa).unsqueeze(1)  # (B, 1, h, w)
        return self.calibration(sim).squeeze(1)

    def avc_logit(self, fv: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        """The AVC log-odds (B,) of feature pairs: ``forward``'s ``logit``."""
        return torch.amax(self.map_logits(fv, fa), dim=(1, 2))

    def all_pairs_logit(self, fv: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        """AVC log-odds (N, M) of every map (N, D, h, w) with every audio (M, D)."""
        sim = torch.einsum("idhw,jd->ijhw", fv, fa)  # (N, M, h, w)
        w, b = self.calibration.weight.view(()), self.calibration.bias.view(())
        return (w * sim + b).amax(dim=(2, 3))  # the 1x1 calibration conv, then max

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        fv = self.vision(v)  # (B, D, h, w)
        fa = self.audio(a)  # (B, D)
        smap = self.map_logits(fv, fa)  # (B, h, w) calibrated logits
        logit = torch.amax(smap, dim=(1, 2))  # (B,)
        return {
            "logit": logit,
            "map_logits": smap,
            "heatmap": torch.sigmoid(smap),
            "image_features": fv,
            "audio_features": fa,
        }
