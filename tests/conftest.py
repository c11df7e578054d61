"""Shared fixtures: where the real data lives (../shared/data, never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cmu_svs(shared_data) -> Path:
    return shared_data / "slides" / "CMU-1-Small-Region.svs"


@pytest.fixture(scope="session")
def tcga_svs(shared_data) -> Path:
    return shared_data / "slides" / "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(scope="session")
def annotations_dir(shared_data) -> Path:
    return shared_data / "annotations"


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA; without it they are skipped, not failed."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
