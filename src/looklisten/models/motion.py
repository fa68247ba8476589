"""More visual context: multi-frame (AVE+MF) and optical-flow (AVE+OF) vision trunks.

Objects that Sound tried giving the vision network motion: several
consecutive frames through convolutions inflated from 2D to 3D (I3D-style),
or an RGB frame plus a stack of 10 TV-L1 optical-flow fields in a second
stream fused at the 14x14 stage. Both raised AVC accuracy but not retrieval.
The presets ``ave-mf`` / ``ave-of`` (and ``small-`` / ``tiny-`` versions, see
:mod:`looklisten.core.config`) select them; :func:`create_vision_trunk` builds the
right trunk from a config and every trunk returns the same conv4_2 map
(B, C, h, w), so every head works on top.

Inputs (after :class:`looklisten.inputs.prepare.VisionTransform`)
---------------------------------------------------------
* single frame: (B, 3, S, S)
* AVE+MF, ``vision.num_frames = K > 1``: (B, 3, K, S, S)
* AVE+OF, ``vision.flow_frames = L > 0``: (B, 3 + 2L, S, S): the normalised
  RGB frame, then (dx, dy) / bound of each flow field.

Which frames (the "window" of the example of frame ``i``)
--------------------------------------------------------
MF: frames ``i - K // 2 ... i + K - K // 2 - 1``. OF: frames
``i - L // 2 ... i + L - L // 2`` (L + 1 frames, L fields), the RGB frame being
``i``. Indices are clamped to the clip (edge frames repeat, so a field between
two copies of a frame is zero). The same rule holds for the in-memory cache
and every other path (:mod:`looklisten.inputs.prepare`).

The uint8 "item" of an example, before cropping: (H, W, 3), (K, H, W, 3) or
(H, W, 3 + 2L) (RGB, then quantised flow, see :mod:`looklisten.inputs.flow`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from looklisten.core.config import Config
from looklisten.models.trunks import VGGTrunk

__all__ = [
    "InflatedTrunk",
    "TimeConv3d",
    "TwoStreamTrunk",
    "create_vision_trunk",
    "inflate",
]


# ---------------------------------------------------------------------------
# Trunks
# ---------------------------------------------------------------------------


class TimeConv3d(nn.Conv3d):
    """A (t, k, k) Conv3d that pads time by repeating the edge frames (space: zeros).

    With replicate padding in time, a kernel inflated from 2D (the 2D weights
    repeated over t and divided by t) gives on a static clip exactly the 2D
    convolution of its frame, at every time step, ends included.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        p = self.kernel_size[0] // 2
        if p:
            x = F.pad(x, (0, 0, 0, 0, p, p), mode="replicate")
        return super().forward(x)


class InflatedTrunk(nn.Module):
    """A VGG trunk whose layers are inflated to 3D; max-pools over time at the end.

    Built by :func:`inflate`. Input (B, C, K, H, W); output the conv4_2 map
    (B, C4, h, w) (max over the K time steps, which no layer subsamples). A
    (B, C, H, W) image is a one-frame clip: the same output as any static clip
    of it (replicate padding in time).
    """

    def __init__(self, features: nn.Sequential, out_channels: int):
        super().__init__()
        self.features = features
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)  # a still image: a one-frame clip
        if x.ndim != 5:
            raise ValueError(f"expected (B, C, K, H, W) clips, got {tuple(x.shape)}")
        return torch.amax(self.features(x), dim=2)  # (B, C4, h, w)


def inflate(trunk: VGGTrunk, temporal_kernel: int = 3) -> InflatedTrunk:
    """Inflate a 2D VGG trunk to 3D (I3D): every k x k conv becomes t x k x k.

    Conv weights are repeated over time and divided by ``t``; batch norms are
    copied; 2x2 max-pools become 1x2x2 (time is kept, and max-pooled at the
    end). A static clip of K copies of a frame gives the 2D trunk's output on
    that frame (the inflation property; replicate padding in time).

    Parameters
    ----------
    trunk : VGGTrunk
        Trained or freshly initialised.
    temporal_kernel : int
        ``t``, odd.
    """
    t = int(temporal_kernel)
    if t < 1 or t % 2 == 0:
        raise ValueError(f"temporal_kernel must be odd and >= 1, got {temporal_kernel}")
    layers: list[nn.Module] = []
    for m in trunk.features:
        if isinstance(m, nn.Conv2d):
            c = TimeConv3d(
                m.in_channels,
                m.out_channels,
                (t, *m.kernel_size),
                stride=(1, *m.stride),
                padding=(0, *m.padding),
                bias=m.bias is not None,
            )
            with torch.no_grad():
                c.weight.copy_(m.weight.unsqueeze(2).repeat(1, 1, t, 1, 1) / t)
                if m.bias is not None:
                    c.bias.copy_(m.bias)
            layers.append(c)
        elif isinstance(m, nn.BatchNorm2d):
            bn = nn.BatchNorm3d(m.num_features, eps=m.eps, momentum=m.momentum)
            bn.load_state_dict(m.state_dict())
            layers.append(bn)
        elif isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            k = k if isinstance(k, tuple) else (k, k)
            s = s if isinstance(s, tuple) else (s, s)
            layers.append(nn.MaxPool3d((1, *k), (1, *s)))
        elif isinstance(m, nn.ReLU):
            layers.append(nn.ReLU(inplace=True))
        else:
            raise TypeError(f"cannot inflate {type(m).__name__}")
    return InflatedTrunk(nn.Sequential(*layers), trunk.out_channels)


def _cut_after_pools(features: nn.Sequential, pools: int) -> int:
    """Index just after the ``pools``-th MaxPool2d of a trunk's layers."""
    seen = 0
    for i, m in enumerate(features):
        if isinstance(m, nn.MaxPool2d):
            seen += 1
            if seen == pools:
                return i + 1
    raise ValueError(f"the trunk has fewer than {pools} pooled blocks")


class TwoStreamTrunk(nn.Module):
    """RGB stream + optical-flow stream, concatenated and fused by the last blocks.

    Each stream has the first ``fuse_after`` blocks of a VGG trunk (3 in the
    paper: conv1 to conv3 and their pools); their maps are concatenated (2 x
    C3 channels) and go through the remaining blocks, whose first conv takes
    the concatenation. With ``ots`` sizes the fusion happens at 14x14; with a
    smaller input it happens at the same block (``tiny``: 4x4).

    Input (B, 3 + F, S, S): RGB channels first, then the F flow channels.
    Output the conv4_2 map (B, C4, h, w).
    """

    def __init__(
        self, flow_channels: int, widths=(64, 128, 256, 512), conv1_stride: int = 1, fuse_after=3
    ):
        super().__init__()
        if not 1 <= fuse_after <= 3:
            raise ValueError(f"fuse_after must be 1, 2 or 3 pooled blocks, got {fuse_after}")
        rgb = VGGTrunk(3, widths, conv1_stride).features
        flow = VGGTrunk(flow_channels, widths, conv1_stride).features
        cut = _cut_after_pools(rgb, fuse_after)
        tail = list(VGGTrunk(3, widths, conv1_stride).features[cut:])
        first = tail[0]
        assert isinstance(first, nn.Conv2d)
        tail[0] = nn.Conv2d(
            2 * first.in_channels,
            first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            bias=False,
        )
        nn.init.kaiming_normal_(tail[0].weight, mode="fan_out", nonlinearity="relu")
        self.rgb = rgb[:cut]
        self.flow = flow[:cut]
        self.fused = nn.Sequential(*tail)
        self.flow_channels = flow_channels
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 + self.flow_channels:
            raise ValueError(
                f"expected (B, {3 + self.flow_channels}, S, S) frame + flow, got {tuple(x.shape)}"
            )
        fused = torch.cat([self.rgb(x[:, :3]), self.flow(x[:, 3:])], dim=1)
        return self.fused(fused)


def create_vision_trunk(cfg: Config) -> nn.Module:
    """The vision trunk a config asks for: VGG, inflated VGG (MF) or two-stream (OF).

    ``model.atrous`` (a stride-halved last stage, :class:`VGGTrunk`) is for the
    single-frame VGG trunk only; :meth:`Config.check` refuses it with motion.
    """
    v, m = cfg.vision, cfg.model
    if v.num_frames > 1 and v.flow_frames > 0:
        raise ValueError("vision.num_frames > 1 and vision.flow_frames > 0 cannot be combined")
    if m.atrous and (v.num_frames > 1 or v.flow_frames > 0):
        raise ValueError("model.atrous is for the single-frame vision trunk, not AVE+MF / AVE+OF")
    if v.num_frames > 1:
        return inflate(VGGTrunk(3, m.widths, m.conv1_stride), m.temporal_kernel)
    if v.flow_frames > 0:
        return TwoStreamTrunk(2 * v.flow_frames, m.widths, m.conv1_stride, m.flow_fusion_block)
    return VGGTrunk(3, m.widths, m.conv1_stride, atrous=m.atrous)
