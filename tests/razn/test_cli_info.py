"""`razn info`: facts for people and scripts, one-line errors for bad files."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from razn.cli import main


def test_info_json_has_the_documented_keys(cmu_svs, capsys):
    assert main(["info", str(cmu_svs), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == "aperio-svs"
    assert facts["levels"][0] == {"shape": [2967, 2220], "downsample": 1.0, "stored": True}
    assert facts["mpp"] == pytest.approx(0.499)
    assert facts["magnification"] == 20
    assert 0.25 < facts["tissue_fraction"] < 0.5


def test_info_text_and_overview(tcga_svs, tmp_path, capsys):
    overview = tmp_path / "tcga.overview.png"
    assert main(["info", str(tcga_svs), "--overview", str(overview)]) == 0
    text = capsys.readouterr().out
    assert "mpp             unknown" in text and "(pass --mpp)" in text
    with Image.open(overview) as image:
        assert max(image.size) == 1024
    assert [p.name for p in tmp_path.iterdir()] == ["tcga.overview.png"]


def test_missing_mpp_is_noted_on_stderr_in_json_mode(tcga_svs, capsys):
    assert main(["info", str(tcga_svs), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["mpp"] is None
    assert "records no pixel size" in captured.err


def test_bad_file_is_one_line_and_exit_1(tmp_path, capsys):
    # Exit 1: the slide could not be read (the same code `segment` gives).
    path = tmp_path / "slide.svs"
    path.write_text("not a slide")
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
