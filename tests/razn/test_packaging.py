"""setup.cfg is the one metadata file: its package list and dependencies match the code.

setup.cfg lists the packages (the core in src/ and the plugin beside it are
two roots, which its `find:` cannot search together), so a new subpackage
must be added there; and every third-party module the core imports must come
from a distribution in install_requires, or a core-only install (no napari,
which brings many packages with it) fails at the first call that needs it.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import re
import sys

import pytest

from tests.razn.test_import_graph import ROOT, import_graph


def _options() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser["options"]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_no_setup_py():
    assert not (ROOT / "setup.py").exists()


def test_setup_cfg_lists_every_package():
    on_disk = {
        ".".join(path.parent.relative_to(base).parts)
        for base, top in ((ROOT / "src", "razn"), (ROOT, "napari_razn"))
        for path in (base / top).rglob("__init__.py")
    }
    assert set(_lines(_options()["packages"])) == on_disk


def _requirement_name(line: str) -> str:
    return re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0].lower().replace("_", "-")


def test_install_requires_covers_the_cores_imports():
    required = {_requirement_name(line) for line in _lines(_options()["install_requires"])}
    _, external = import_graph(ROOT / "src", "razn")
    third_party = set().union(*external.values()) - set(sys.stdlib_module_names) - {"razn"}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(third_party):
        if module not in providers:
            pytest.fail(f"razn imports {module}, which no installed distribution provides")
        names = {d.lower().replace("_", "-") for d in providers[module]}
        if not names & required:
            missing[module] = sorted(names)
    assert missing == {}, "imported by razn but not in setup.cfg's install_requires"
