"""npe2 finds and validates the manifest, from this install and from a wheel."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_manifest_validates_and_names_our_commands():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(ROOT / "napari_razn" / "napari.yaml")
    ids = {command.id for command in manifest.contributions.commands}
    assert {"napari-razn.get_reader", "napari-razn.slide_widget"} <= ids
    # Every command's python_name imports.
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr), command.python_name


def test_top_level_manifest_is_the_package_one():
    top = ROOT / "napari.yaml"
    assert top.is_symlink() and top.resolve() == (ROOT / "napari_razn" / "napari.yaml").resolve()


def test_installed_plugin_is_discovered():
    from npe2 import PluginManager

    manager = PluginManager()
    manager.discover()
    assert "napari-razn" in manager._manifests


@pytest.mark.slow
def test_wheel_carries_the_manifest_and_entry_point(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("napari_razn-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "napari_razn/napari.yaml" in names
        assert "razn/slide/__init__.py" in names
        (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
        entry = configparser.ConfigParser()
        entry.read_string(archive.read(entry_points).decode())
    assert entry["napari.manifest"]["napari-razn"] == "napari_razn:napari.yaml"
    assert entry["console_scripts"]["razn"] == "razn.cli:main"
    # npe2 validates the manifest as the wheel ships it.
    from npe2 import PluginManifest

    with zipfile.ZipFile(wheel) as archive:
        archive.extract("napari_razn/napari.yaml", tmp_path / "unpacked")
    PluginManifest.from_file(tmp_path / "unpacked" / "napari_razn" / "napari.yaml")
