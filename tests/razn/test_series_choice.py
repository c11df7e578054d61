"""Which series of a multi-image TIFF is the slide (SCN lists the macro first)."""

from __future__ import annotations

from types import SimpleNamespace

from razn.slide._tiff import _main_series


def series(name, shape, axes="YXS"):
    return SimpleNamespace(name=name, shape=shape, axes=axes)


def test_largest_image_wins_over_a_macro_listed_first():
    # Leica SCN: tifffile can list the low-resolution macro overview first.
    macro = series("macro", (1500, 4000, 3))
    main = series("main", (60000, 80000, 3))
    assert _main_series(SimpleNamespace(series=[macro, main])) is main


def test_label_and_thumbnail_are_never_the_slide():
    main = series("Baseline", (3000, 2000, 3))
    label = series("Label", (5000, 5000, 3))  # even if a scanner stored it big
    assert _main_series(SimpleNamespace(series=[label, main])) is main


def test_empty_file_has_no_series():
    assert _main_series(SimpleNamespace(series=[])) is None
