"""RAZN: segmentation nets f_0..f_m and zoom policies g_1..g_m (Dong et al. 2018).

For a coarse patch x0 the policy g_1 says break (f_0 segments x0) or zoom
in: the same field of view read at r times the magnification is cut into
r*r patches, each segmented by f_1, or, for m > 1, each put to g_2 in turn.
The paper studies m = 1; m > 1 repeats the same decision on every zoomed
patch (its "future work"), which this class does recursively.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from razn.models.config import ModelConfig
from razn.models.policy import ZoomPolicy
from razn.models.segmentation import SegmentationNet
from razn.models.views import merge_patches, split_patches


@dataclass
class Prediction:
    """What any model returns for a batch of fields of view.

    probs : (B, classes, S, S) class probabilities at the model's finest
        zoom level (S = patch_size * r**finest_level).
    zoom_p : (B,) the first policy's zoom probability (RAZN), else None.
    zoomed : (B,) bool, whether the field of view was zoomed into (RAZN).
    patches : how many patches the segmentation nets processed (the cost).
    """

    probs: torch.Tensor
    zoom_p: torch.Tensor | None = None
    zoomed: torch.Tensor | None = None
    patches: int = 0


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class RAZN(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.segmenters = nn.ModuleList(
            SegmentationNet(c.num_classes, c.width, c.stride_reading)
            for _ in range(c.zoom_levels + 1)
        )
        self.policies = nn.ModuleList(ZoomPolicy(c.policy_width) for _ in range(c.zoom_levels))

    def predict(self, views: list[torch.Tensor], threshold: float = 0.5) -> Prediction:
        """Segment fields of view, zooming in where the policy says so.

        views[k] is the field of view at zoom level k, (B, 3, P r^k, P r^k),
        for k = 0..m. p > threshold zooms: 1.0 never zooms (f_0 alone, the
        paper's Scale 1 path), 0.0 always does.
        """
        return self.predict_lazy(views[0], _take_from(views[1:]), threshold)

    def predict_lazy(self, x0, read_finer, threshold: float = 0.5, p=None) -> Prediction:
        """`predict`, reading the finer views only for the fields it zooms into.

        read_finer(index) returns views[1..m] for the fields of view at
        `index` (a 1-D tensor into the batch); the engine reads them from the
        slide then, so tiles the policy leaves alone are never read finer.
        `p`, if given, is the first policy's output for x0, already computed.
        """
        return self._predict(x0, read_finer, 0, threshold, p)

    def _predict(self, x, read_finer, level: int, threshold: float, p=None) -> Prediction:
        m, r = self.config.zoom_levels, self.config.zoom_rate
        if level == m:
            probs = torch.softmax(self.segmenters[level](x).float(), dim=1)
            return Prediction(_upsample(probs, r ** (m - level)), patches=x.shape[0])
        if p is None:
            p = torch.sigmoid(self.policies[level](x).float())
        zoomed = p > threshold
        kept, index = (~zoomed).nonzero().squeeze(1), zoomed.nonzero().squeeze(1)
        # The paper's inference: a field is segmented by f_level or by the
        # finer nets, never both, so zooming costs r*r fine patches instead of
        # adding them to the coarse one.
        coarse = fine = None
        if kept.numel():
            part = x if not index.numel() else x[kept]
            probs = torch.softmax(self.segmenters[level](part).float(), dim=1)
            coarse = _upsample(probs, r ** (m - level))
        if index.numel():
            finer = [split_patches(v, r) for v in read_finer(index)]
            sub = self._predict(finer[0], _take_from(finer[1:]), level + 1, threshold)
            fine = merge_patches(sub.probs, r).float()
        if fine is None or coarse is None:  # one kind only: no mixing copy
            out = coarse if fine is None else fine
        else:
            out = coarse.new_empty((x.shape[0], *coarse.shape[1:]))
            out[kept], out[index] = coarse, fine
        patches = kept.numel() + (sub.patches if fine is not None else 0)
        return Prediction(out, p, zoomed, patches)


def _take_from(views: list[torch.Tensor]):
    """read_finer for views already in memory."""
    return lambda index: [v[index] for v in views]
