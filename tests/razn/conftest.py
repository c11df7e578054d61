"""Fixtures the core's tests share: a tiny synthetic slide and one torch thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One torch thread: small nets only contend for more, and one thread keeps
    the arithmetic in the same order on every run (exact resume tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A 1536-pixel synthetic slide; seed 1 holds all four classes."""
    from razn.synth import generate_slide

    return generate_slide(tmp_path_factory.mktemp("tiny") / "tiny.tif", 1536, 1536, seed=1)


@pytest.fixture(scope="session")
def labelled(tiny):
    from razn.training import open_labelled

    return open_labelled(tiny.image, tiny.labels)
