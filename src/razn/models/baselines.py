"""The paper's baselines, under the same interface as RAZN (`predict(views)`).

- Scale 1 / Scale 2 (`SingleScale`): one segmentation net at one zoom
  level; Scale 2 segments the r*r fine patches of every field of view.
- MS (`MultiScale`): one net trained on every scale, its score maps fused
  by their maximum, as DeepLab's multi-scale inputs do.
- Attention (`AttentionToScale`, Chen et al. 2016): one shared net on every
  scale and a small head that weighs the scales per pixel (softmax over
  scales) before summing their score maps.
Fields of view are read from the slide at each scale's resolution, not
downsampled and resized as the paper did (docs/models.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from razn.models.config import ModelConfig
from razn.models.razn import Prediction, _upsample
from razn.models.segmentation import SegmentationNet
from razn.models.views import merge_levels, split_levels


def _net(config: ModelConfig) -> SegmentationNet:
    return SegmentationNet(config.num_classes, config.width, config.stride_reading)


class SingleScale(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = _net(config)

    def logits(self, views):
        s, r = self.config.scale, self.config.zoom_rate
        patches = split_levels(views[s], r, s)
        return merge_levels(self.net(patches), r, s), patches.shape[0]

    def predict(self, views, threshold: float = 0.5) -> Prediction:
        logits, patches = self.logits(views)
        return Prediction(torch.softmax(logits, dim=1), patches=patches)


class MultiScale(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = _net(config)

    def scale_logits(self, views):
        """Each scale's logits at the finest resolution, and the patch count."""
        m, r = self.config.zoom_levels, self.config.zoom_rate
        out, count = [], 0
        for s in range(m + 1):
            patches = split_levels(views[s], r, s)
            count += patches.shape[0]
            out.append(_upsample(merge_levels(self.net(patches), r, s), r ** (m - s)))
        return out, count

    def logits(self, views):
        per_scale, count = self.scale_logits(views)
        return torch.stack(per_scale).amax(dim=0), count

    def predict(self, views, threshold: float = 0.5) -> Prediction:
        logits, patches = self.logits(views)
        return Prediction(torch.softmax(logits, dim=1), patches=patches)


class AttentionToScale(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = _net(config)
        scales = config.zoom_levels + 1
        channels = self.net.feature_channels
        self.attention = nn.Sequential(
            nn.Conv2d(channels * scales, channels // 2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, scales, 1),
        )

    def scale_outputs(self, views):
        m, r = self.config.zoom_levels, self.config.zoom_rate
        logits, features, count = [], [], 0
        for s in range(m + 1):
            patches = split_levels(views[s], r, s)
            count += patches.shape[0]
            f = self.net.forward_features(patches)
            logit = self.net.forward_head(f, patches.shape[-2:])
            logits.append(_upsample(merge_levels(logit, r, s), r ** (m - s)))
            features.append(merge_levels(f, r, s))
        # Attention works at the coarsest feature grid; weights are upsampled.
        size = features[0].shape[-2:]
        pooled = [F.adaptive_avg_pool2d(f, size) if f.shape[-2:] != size else f for f in features]
        weights = torch.softmax(self.attention(torch.cat(pooled, dim=1)), dim=1)
        weights = F.interpolate(
            weights, size=logits[0].shape[-2:], mode="bilinear", align_corners=False
        )
        return logits, weights, count

    def logits(self, views):
        per_scale, weights, count = self.scale_outputs(views)
        fused = sum(weights[:, s : s + 1] * logit for s, logit in enumerate(per_scale))
        return fused, count

    def predict(self, views, threshold: float = 0.5) -> Prediction:
        logits, patches = self.logits(views)
        return Prediction(torch.softmax(logits, dim=1), patches=patches)
