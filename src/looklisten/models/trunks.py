"""VGG-like subnetworks shared by L3-Net, AVE-Net and AVOL-Net.

Each trunk is 4 blocks of [conv3x3 -> BN -> ReLU] x 2, the first three blocks
followed by 2x2 max-pooling; channels 64, 128, 256, 512 in the papers. Objects
that Sound gives conv1_1 a stride of 2 (4x cheaper, no loss in accuracy).

Shapes for the ``paper`` preset (conv1 stride 1)::

    vision  (B, 3, 224, 224) -> conv4_2 (B, 512, 28, 28)
    audio   (B, 1, 257, 199) -> conv4_2 (B, 512, 32, 24)

and for ``ots`` (conv1 stride 2)::

    vision  (B, 3, 224, 224) -> conv4_2 (B, 512, 14, 14)
    audio   (B, 1, 257, 200) -> conv4_2 (B, 512, 16, 12)

The vision map's stride is ``8 * conv1_stride`` input pixels per cell.
``atrous=True`` (``model.atrous``; the vision trunk only) halves it with
DeepLab's atrous trick: the third max-pool becomes a 3x3 max-pool of stride 1
(padding 1) and block 4's convolutions are dilated by 2 (padding 2). The map
is 2x finer per side (stride ``4 * conv1_stride``) with about the same
receptive field (``4 * conv1_stride`` pixels wider, from the 3x3 pool) and
the same parameters: identical state-dict keys and shapes, so weights load
into either form::

    ots, atrous        (B, 3, 224, 224) -> conv4_2 (B, 512, 28, 28)
    tiny AVOL, atrous  (B, 3, 128, 128) -> conv4_2 (B, 128, 16, 16)
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    """3x3 conv ("same" padding for any dilation) -> BN -> ReLU."""
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class VGGTrunk(nn.Module):
    """Four conv blocks; returns the conv4_2 feature map (after its ReLU).

    Parameters
    ----------
    in_channels : int
        3 for RGB frames, 1 for spectrograms.
    widths : tuple of 4 ints
        Channels of the four blocks.
    conv1_stride : int
        Stride of conv1_1 (1 in L3, 2 in Objects that Sound).
    atrous : bool
        Halve the last stage's stride (see the module docstring): the map
        has stride ``4 * conv1_stride`` instead of ``8 * conv1_stride``. The
        layers and their indices in ``features`` are the same either way.
    """

    def __init__(
        self,
        in_channels: int,
        widths=(64, 128, 256, 512),
        conv1_stride: int = 1,
        *,
        atrous: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            d = 2 if atrous and i == 3 else 1  # block 4 dilated after a stride-1 pool
            layers += conv_bn_relu(cin, w, stride=conv1_stride if i == 0 else 1, dilation=d)
            layers += conv_bn_relu(w, w, dilation=d)
            if i < 2 or (i == 2 and not atrous):
                layers.append(nn.MaxPool2d(2, 2))
            elif i == 2:
                layers.append(nn.MaxPool2d(3, stride=1, padding=1))
            cin = w
        self.features = nn.Sequential(*layers)
        self.out_channels = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C4, h, w)
