"""A small slide with tissue and glass, and small untrained models, for the engine."""

from __future__ import annotations

import pytest
import torch

from razn.models import build_model, get_config, save_checkpoint
from tests.razn.slide_files import tissue_image, write_ome_pyramid


@pytest.fixture(scope="package")
def slide_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "ellipse.ome.tif"
    # 2048 x 1536 at 0.25 um/px: an ellipse of tissue on glass.
    write_ome_pyramid(path, tissue_image(1536, 2048, seed=4), mpp=0.25)
    return path


def small_model(name: str = "razn-small", seed: int = 0):
    torch.manual_seed(seed)
    # 64-pixel patches: a tile is 256 level-0 pixels, 48 tiles on the slide.
    return build_model(get_config(name).with_(patch_size=64)).eval()


@pytest.fixture(scope="package")
def model():
    return small_model()


@pytest.fixture(scope="package")
def checkpoint(tmp_path_factory, model):
    return save_checkpoint(model, tmp_path_factory.mktemp("models") / "small.safetensors")
