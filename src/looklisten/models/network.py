"""The audio-visual correspondence network: two trunks and a head, built from a Config.

``create_model(cfg)`` is the one factory. The model takes what the data path
delivers, normalised image crops and raw mono waveforms, and computes the
spectrogram itself (from ``cfg.audio``), so preprocessing travels with the
model and its checkpoint.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from looklisten.core.config import Config
from looklisten.models.audio import Spectrogram
from looklisten.models.heads import AVEHead, AVOLHead, L3Head, global_max_pool
from looklisten.models.motion import create_vision_trunk
from looklisten.models.trunks import VGGTrunk


class AVNet(nn.Module):
    """Vision trunk + audio trunk + an L3 / AVE / AVOL head.

    Inputs
    ------
    image : (B, 3, S, S) float, normalised (see looklisten.inputs.prepare); with
            motion (looklisten.models.motion): (B, 3, K, S, S) frames (AVE+MF) or
            (B, 3 + 2L, S, S) frame + flow (AVE+OF)
    wave  : (B, N) float mono waveform, N = cfg.audio.clip_samples

    ``forward`` returns the head's dict; ``out["logit"]`` (B,) is the log-odds
    that frame and audio correspond. With InfoNCE or MIL (``train.objective``) the
    model also holds ``log_temperature`` (a scalar parameter: log tau).
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        self.spectrogram = Spectrogram(cfg.audio)
        self.vision = create_vision_trunk(cfg)
        self.audio = VGGTrunk(1, m.widths, m.conv1_stride)
        c = m.widths[-1]
        if m.arch == "l3":
            self.head = L3Head(c, m.fusion_dim)
        elif m.arch == "ave":
            self.head = AVEHead(c, m.embed_dim)
        elif m.arch == "avol":
            self.head = AVOLHead(c, m.embed_dim)
        else:
            raise ValueError(f"unknown model {m.arch!r}")
        from looklisten.models.detector import UNCALIBRATED

        # AVOL-Net: is a sound made by a visible object? (looklisten.models.detector;
        # a trained checkpoint's is fitted on its validation pairs)
        self.detector = UNCALIBRATED
        t = cfg.train
        if t.has_temperature:
            # log tau of the contrastive objective (looklisten.models.losses): in the
            # model, so that it is checkpointed; frozen unless learn_temperature.
            init = torch.tensor(math.log(t.temperature))
            self.log_temperature = nn.Parameter(init, requires_grad=t.learn_temperature)

    @property
    def arch(self) -> str:
        return self.cfg.model.arch

    @property
    def inputs(self):
        """What the network is fed, from its config (:class:`looklisten.inputs.prepare.Inputs`)."""
        from looklisten.inputs.prepare import Inputs

        return Inputs(self.cfg)

    # -- timm-style split ----------------------------------------------------
    def forward_features(self, image: torch.Tensor, wave: torch.Tensor):
        """Return the conv4_2 maps: vision (B, C, h, w), audio (B, C, f, t)."""
        return self.vision(image), self.audio_features(wave)

    def audio_features(self, wave: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(wave)  # (B, 1, F, T)
        if self.cfg.train.channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        return self.audio(spec)

    def forward_head(self, v: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(v, a)

    def forward(self, image: torch.Tensor, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        v, a = self.forward_features(image, wave)
        return self.forward_head(v, a)

    # -- embeddings ------------------------------------------------------------
    def embed_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, D). AVE: the unit-norm embedding; L3 / AVOL:
        conv4_2 max-pooled (the papers' transfer features)."""
        v = self.vision(image)
        if self.arch == "ave":
            return self.head.embed_vision(v)
        return global_max_pool(v)

    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, D). AVE: the unit-norm embedding; L3 / AVOL: conv4_2 max-pooled."""
        a = self.audio_features(wave)
        if self.arch == "ave":
            return self.head.embed_audio(a)
        return global_max_pool(a)


def create_model(cfg: Config) -> AVNet:
    model = AVNet(cfg)
    if cfg.train.channels_last:
        # channels-last for 2D weights, its 3D form for inflated (AVE+MF) ones
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() in (4, 5):
                    fmt = torch.channels_last if p.dim() == 4 else torch.channels_last_3d
                    p.data = p.data.contiguous(memory_format=fmt)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
