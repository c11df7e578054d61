"""Whole-slide inference: the streaming engine, its tile grid and its store.

Names load on first use (PEP 562), so `razn.inference.tiling`, which the
session files use, does not pull in torch with it.
"""

import importlib

_NAMES = {
    "TileResult": "razn.inference.engine",
    "available_devices": "razn.devices",
    "pick_device": "razn.devices",
    "segment": "razn.inference.engine",
    "SegmentationStore": "razn.inference.store",
    "StoreError": "razn.inference.store",
    "TileGrid": "razn.inference.tiling",
    "label_downsample": "razn.inference.tiling",
    "tile_grid": "razn.inference.tiling",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'razn.inference' has no attribute {name!r}")
