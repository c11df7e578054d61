"""The store writer thread of `segment_slide`: order, completeness, errors."""

from __future__ import annotations

import threading
import time

import pytest

from razn.inference.job import _BackgroundWriter


class RecordingStore:
    def __init__(self, fail_on=None):
        self.written, self.threads, self.fail_on = [], set(), fail_on

    def write(self, results, grid):
        time.sleep(0.01)  # slower than the caller: writes queue up
        self.threads.add(threading.current_thread().name)
        if results[0] == self.fail_on:
            raise OSError("disk full")
        self.written.append(list(results))


def test_every_write_lands_in_order_off_the_calling_thread():
    store = RecordingStore()
    with _BackgroundWriter(store, grid=None) as writer:
        batch = []
        for tile in range(10):
            batch.append(tile)
            writer.write(batch)  # the caller reuses its list afterwards
            batch.clear()
        writer.write([])  # nothing to write: no write
    assert store.written == [[t] for t in range(10)]
    assert store.threads == {"razn-store_0"}


def test_a_failed_write_is_raised_not_lost():
    store = RecordingStore(fail_on=3)
    with pytest.raises(OSError, match="disk full"), _BackgroundWriter(store, None) as writer:
        for tile in range(4):
            writer.write([tile])
    assert store.written == [[0], [1], [2]]


def test_an_error_in_the_run_still_waits_for_the_writes_before_it():
    store = RecordingStore()
    with pytest.raises(RuntimeError, match="engine"), _BackgroundWriter(store, None) as writer:
        writer.write([0])
        writer.write([1])
        raise RuntimeError("engine failed")
    assert store.written == [[0], [1]]  # on disk for a resume
