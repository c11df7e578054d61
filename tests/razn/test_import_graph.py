"""The core's import graph: no cycles, and layers that only import downwards.

The graph is built from the source with `ast` (no import runs), counting
every import: module level, inside functions and under TYPE_CHECKING, since
a lazy import is still a dependency. ``from a import b`` is an edge to
``a.b`` when that is a module, else to ``a``; a module does not depend on
its parent packages by being inside them.

Layers, lowest first (docs/design.md explains them):

    base  -> slide -> grid -> models -> fields -> inference | training |
    evaluation | synth -> cli | session

A module may import its own layer and those below; the members of a layer
written with ``|`` may not import each other. `napari_razn` sits above all
of them, and nothing in `razn` imports napari, Qt or magicgui.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Highest layer first; a tuple of groups is a layer of independent siblings.
LAYERS: list[tuple[tuple[str, ...], ...]] = [
    (("razn.cli",), ("razn.session", "razn.session_store")),
    (("razn.inference",), ("razn.training",), ("razn.evaluation",), ("razn.synth",)),
    (("razn.fields",),),
    (("razn.models",),),
    (
        ("razn.annotations", "razn.label_grid", "razn.label_tiff"),
    ),  # the label grid and its formats
    (("razn.slide",),),
    (
        (
            "razn._version",
            "razn.areas",
            "razn.atomic",
            "razn.classes",
            "razn.devices",
            "razn.errors",
            "razn.overview",
            "razn.tissue",
        ),
    ),
]
#: The package's own __init__ is its public face: it may import any layer.
FACADE = "razn"
#: What the core must never import (the GUI lives in napari_razn).
GUI_PACKAGES = {"napari", "napari_razn", "qtpy", "magicgui", "superqt"}
GUI_PACKAGES |= {"PyQt5", "PyQt6", "PySide2", "PySide6", "vispy"}


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every module of `package` under `root`."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path, known: set[str]) -> set[str]:
    """Absolute names `name` imports (modules where `known`, else as written)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                names.add(sub if sub in known else module)
    return names


def import_graph(root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(internal graph: module -> modules of `package` it imports, external imports)."""
    modules = find_modules(root, package)
    known = set(modules)
    internal, external = {}, {}
    for name, path in modules.items():
        internal[name], external[name] = set(), set()
        for target in imported_names(name, path, known):
            owner = target
            while owner and owner not in known:
                owner = owner.rpartition(".")[0]
            if owner:
                if owner != name:
                    internal[name].add(owner)
            else:
                external[name].add(target.partition(".")[0])
    return internal, external


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def collapse(graph: dict[str, set[str]], depth: int) -> dict[str, set[str]]:
    """The graph between packages: names cut to `depth` parts, self-edges dropped."""
    out: dict[str, set[str]] = {}
    for source, targets in graph.items():
        a = ".".join(source.split(".")[:depth])
        out.setdefault(a, set())
        for target in targets:
            b = ".".join(target.split(".")[:depth])
            if a != b:
                out[a].add(b)
    return out


def layer_of(name: str) -> tuple[int, int] | None:
    """(layer index, sibling group index) of a module, None if in no layer."""
    for i, layer in enumerate(LAYERS):
        for j, group in enumerate(layer):
            if any(name == p or name.startswith(p + ".") for p in group):
                return i, j
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up a layer or across siblings, and modules in no layer."""
    problems = []
    for source, targets in sorted(graph.items()):
        if source == FACADE:
            continue
        here = layer_of(source)
        if here is None:
            problems.append(f"{source} is in no layer (add it to LAYERS)")
            continue
        for target in sorted(targets):
            there = layer_of(target)
            if target == FACADE or there is None:
                continue
            if there[0] < here[0]:
                problems.append(f"{source} imports {target}, a higher layer")
            elif there[0] == here[0] and there[1] != here[1]:
                problems.append(f"{source} imports {target}, an independent sibling")
    return problems


@pytest.fixture(scope="module")
def razn_graph():
    return import_graph(ROOT / "src", "razn")


def test_razn_modules_have_no_import_cycle(razn_graph):
    internal, _ = razn_graph
    assert len(internal) > 50, "the graph should hold every module of razn"
    assert cycles(internal) == []


def test_razn_subpackages_have_no_import_cycle(razn_graph):
    # razn.annotations.export -> razn.inference.tiling and razn.inference.job
    # -> razn.annotations is no module cycle, but a cycle between packages.
    internal, _ = razn_graph
    assert cycles(collapse(internal, 2)) == []


def test_razn_imports_only_downwards(razn_graph):
    internal, _ = razn_graph
    assert layer_violations(internal) == []


def test_razn_never_imports_the_gui(razn_graph):
    _, external = razn_graph
    gui = {
        m: sorted(names & GUI_PACKAGES) for m, names in external.items() if names & GUI_PACKAGES
    }
    assert gui == {}


def test_napari_plugin_has_no_import_cycle():
    internal, _ = import_graph(ROOT, "napari_razn")
    assert cycles(internal) == []


def _package(tmp_path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    """The checks above can fail: a lazy cycle and an upward import are found."""
    root = _package(
        tmp_path,
        {
            "razn/__init__.py": "",
            "razn/slide/__init__.py": "from razn.slide import _pyramid\n",
            "razn/slide/_pyramid.py": "def f():\n    from razn.slide import _tiff\n",
            "razn/slide/_tiff.py": "from razn.slide._pyramid import f\n",
            "razn/errors.py": "from . import slide\nimport napari.qt\n",
        },
    )
    internal, external = import_graph(root, "razn")
    assert cycles(internal) == [["razn.slide._pyramid", "razn.slide._tiff"]]
    assert layer_violations(internal) == ["razn.errors imports razn.slide, a higher layer"]
    assert external["razn.errors"] == {"napari"}
