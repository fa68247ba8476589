"""Losses as modules (open_clip style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
