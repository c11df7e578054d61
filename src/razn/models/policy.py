"""The zoom policy g_k: should this patch be read again at higher magnification?

ResNet18-shaped but cheap: the stem, then each stage of two residual blocks
replaced by one 3x3 conv + BN + ReLU, global average pooling and one scalar.
p = sigmoid(g(x)) is the probability of zooming in.
"""

from __future__ import annotations

import torch
from torch import nn

from razn.models.resnet import Stem


class ZoomPolicy(nn.Module):
    def __init__(self, width: int = 64):
        super().__init__()
        self.stem = Stem(width)
        layers, cin = [], width
        for index, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if index == 0 else 2
            layers += [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 1)

    def forward(self, x) -> torch.Tensor:
        """The zoom logit g(x), shape (batch,)."""
        features = self.stages(self.stem(x))
        return self.fc(features.mean(dim=(2, 3))).squeeze(1)

    def zoom_probability(self, x) -> torch.Tensor:
        return torch.sigmoid(self(x))
