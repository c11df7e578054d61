"""The segmentation net f_k: an FCN on a ResNet18 trunk at output stride 8.

One per zoom level in RAZN (same architecture, independent weights: CNNs are
not scale invariant). Class logits come from an FCN head on the trunk's
last features and are upsampled bilinearly to the input size.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from razn.models.config import STRIDE_READINGS
from razn.models.resnet import ResNet18Trunk


class FCNHead(nn.Sequential):
    """3x3 conv to a quarter of the channels, BN, ReLU, dropout, 1x1 to classes."""

    def __init__(self, cin: int, num_classes: int):
        inter = max(cin // 4, 8)
        super().__init__(
            nn.Conv2d(cin, inter, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Conv2d(inter, num_classes, 1),
        )


class SegmentationNet(nn.Module):
    """FCN-ResNet18, output stride 8; logits at the input's size."""

    def __init__(self, num_classes: int, width: int = 64, stride_reading: str = "deeplab"):
        super().__init__()
        self.trunk = ResNet18Trunk(width, STRIDE_READINGS[stride_reading])
        self.head = FCNHead(self.trunk.out_channels, num_classes)

    @property
    def feature_channels(self) -> int:
        return self.trunk.out_channels

    def forward_features(self, x):
        return self.trunk(x)

    def forward_head(self, features, size):
        return F.interpolate(self.head(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, x):
        return self.forward_head(self.forward_features(x), x.shape[-2:])
