"""Does a visible object make this sound? AVOL-Net's answer, calibrated.

AVOL-Net's map is high where a location makes the sound; its peak (the AVC
score, the max of the map's logits) says how sure it is that *something* on
screen makes it. When nothing does (silence, noise, narration, a source off
screen) the peak should stay low. A :class:`SourceDetector` turns the peak into
a probability and a yes / no answer:

* ``probability = sigmoid(a * s + b)`` with ``s`` the peak's logit: Platt
  scaling, fitted on the run's validation pairs at every validation (true
  pairs against other videos' sounds and null sounds, the two sides weighted
  equally: the probability is calibrated for even odds of "a visible object
  sounds" and "nothing visible sounds");
* ``visible = probability >= threshold``, the threshold that maximises
  balanced accuracy on the same pairs.

It is saved with each checkpoint (``state.json``, ``"source_detector"``) and
:func:`looklisten.models.checkpoint.load_model` puts it on ``model.detector``;
a checkpoint without one gets :data:`UNCALIBRATED` (``sigmoid(s)``, threshold
0.5).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["SourceDetector", "UNCALIBRATED", "fit_detector", "logit_of", "peak_logit"]


@dataclass(frozen=True)
class SourceDetector:
    """``probability = sigmoid(a * peak_logit + b)``; ``visible = probability >= threshold``."""

    a: float = 1.0
    b: float = 0.0
    threshold: float = 0.5
    pairs: int = 0  # validation pairs it was fitted on (0: not fitted)
    balanced_accuracy: float = math.nan  # on those pairs, at the threshold

    def probability(self, logit) -> np.ndarray:
        """Probability that a visible object makes the sound, from peak logits (any shape)."""
        z = self.a * np.asarray(logit, np.float64) + self.b
        return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)

    def visible(self, logit) -> np.ndarray:
        return self.probability(logit) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SourceDetector:
        if not d:
            return UNCALIBRATED
        d = {
            k: (math.nan if v is None else v) for k, v in d.items() if k in cls.__dataclass_fields__
        }
        return cls(**d)


#: The detector of a checkpoint that has none: the AVC probability, cut at 0.5.
UNCALIBRATED = SourceDetector()


def logit_of(p) -> np.ndarray:
    """log(p / (1 - p)) of sigmoid values (clipped to [1e-7, 1 - 1e-7])."""
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def peak_logit(heatmap) -> np.ndarray:
    """The logit of a sigmoid map's peak: (..., h, w) maps -> (...) logits."""
    return logit_of(np.asarray(heatmap, np.float64).max(axis=(-2, -1)))


def fit_detector(pos_logits, neg_logits) -> SourceDetector:
    """Platt scaling and a balanced-accuracy threshold from peak logits.

    Parameters
    ----------
    pos_logits : array (P,)
        Peaks for sounds a visible object makes (true pairs).
    neg_logits : array (Q,)
        Peaks for sounds nothing visible makes (other videos', null sounds).

    Returns
    -------
    SourceDetector
        :data:`UNCALIBRATED` if either side is empty or the scores are constant.
    """
    pos = np.asarray(pos_logits, np.float64).ravel()
    neg = np.asarray(neg_logits, np.float64).ravel()
    if not len(pos) or not len(neg):
        return UNCALIBRATED
    s = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    w = np.where(y == 1, 0.5 / len(pos), 0.5 / len(neg))  # even odds
    scale = float(s.std())
    if not scale > 1e-9:
        return UNCALIBRATED
    # Newton's method on the weighted logistic loss of (a, b) (2 parameters, convex),
    # with a tiny ridge so that separable data stay finite
    x = np.stack([s / scale, np.ones_like(s)], axis=1)
    theta = np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ theta, -60, 60)))
        grad = x.T @ (w * (p - y)) + 1e-4 * theta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + 1e-4 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    a, b = float(theta[0] / scale), float(theta[1])
    prob = 1.0 / (1.0 + np.exp(-np.clip(a * s + b, -60, 60)))
    # the threshold between two neighbouring probabilities that maximises TPR - FPR
    cands = np.unique(np.concatenate([[0.5], prob]))
    tpr = (prob[y == 1][None, :] >= cands[:, None]).mean(1)
    fpr = (prob[y == 0][None, :] >= cands[:, None]).mean(1)
    best = int(np.argmax(tpr - fpr))
    lower = cands[best - 1] if best > 0 else 0.0
    threshold = float(0.5 * (cands[best] + lower)) if best > 0 else float(cands[best])
    bal = 0.5 * (tpr[best] + 1 - fpr[best])
    return SourceDetector(a, b, threshold, int(len(s)), float(bal))
