"""Whole-slide inference: the streaming engine, its tile grid and its store."""

from razn.inference.engine import TileResult, pick_device, segment
from razn.inference.store import SegmentationStore, StoreError
from razn.inference.tiling import TileGrid, label_downsample, tile_grid

__all__ = [
    "SegmentationStore",
    "StoreError",
    "TileGrid",
    "TileResult",
    "label_downsample",
    "pick_device",
    "segment",
    "tile_grid",
]
