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
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
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
    """

    def __init__(self, in_channels: int, widths=(64, 128, 256, 512), conv1_stride: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            layers += conv_bn_relu(cin, w, stride=conv1_stride if i == 0 else 1)
            layers += conv_bn_relu(w, w)
            if i < 3:
                layers.append(nn.MaxPool2d(2, 2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.out_channels = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, C4, h, w)
