"""Small modules: none in src/ or napari_razn/ over 450 lines unless docs/design.md says why."""

from __future__ import annotations

from tests.razn.test_import_graph import ROOT

MAX_LINES = 450


def test_modules_are_short_or_explained():
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    explained = design.split("## File lengths", 1)[-1]
    long = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for folder in (ROOT / "src", ROOT / "napari_razn")
        for path in folder.rglob("*.py")
    }
    long = {name: n for name, n in long.items() if n > MAX_LINES}
    assert {name: n for name, n in long.items() if f"`{name}`" not in explained} == {}
