"""`razn synth` on the command line: outputs, clear errors, no partial files."""

from __future__ import annotations

import pytest

from razn.cli import main
from razn.synth import generate_slide


def test_writes_three_files(tmp_path, capsys):
    out = tmp_path / "small.tif"
    assert main(["synth", str(out), "--size", "600x400", "--seed", "3", "--label-noise", "8"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "small.geojson",
        "small.labels.tif",
        "small.tif",
    ]
    assert "600x400" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size=-5x100", "--seed", "1"], "width must be"),
        (["--size", "100x0", "--seed", "1"], "height must be"),
        (["--size", "500x500"], "needs --size WxH and --seed"),
        (
            ["--size", "500x500", "--seed", "1", "--tissue-fraction", "0.9"],
            "glass covers at least 30%",
        ),
        (["--size", "500x500", "--seed", "1", "--mpp", "-1"], "mpp must be"),
        (["--size", "500x500", "--seed", "1", "--label-noise", "-2"], "label noise"),
        (["--size", "500x500", "--seed", "1", "--lesion-fraction", "0.9"], "lesion fraction"),
        (["--size", "500x500", "--seed", "1", "--workers", "0"], "--workers"),
        (["--size", "500x500", "--seed", "1", "--invasive", "lobular"], "invasive pattern"),
    ],
)
def test_bad_values_fail_clearly_and_write_nothing(tmp_path, capsys, argv, message):
    assert main(["synth", str(tmp_path / "bad.tif"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("razn synth: error:") and message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--size", "abc", "--seed", "1"], "size must be WxH"),
        (["--size", "500x500", "--seed", "1", "--bogus"], "unrecognized arguments"),
    ],
)
def test_malformed_arguments_are_usage_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["synth", str(tmp_path / "bad.tif"), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destinations(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    cases = {
        tmp_path / "missing" / "a.tif": "does not exist",
        not_a_folder / "a.tif": "not a folder",
        tmp_path / "a.png": "*.tif",
    }
    for out, message in cases.items():
        assert main(["synth", str(out), "--size", "200x200", "--seed", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("razn synth: error:") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_interrupted_generation_leaves_no_files(tmp_path):
    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_slide(tmp_path / "x.tif", 1024, 1024, seed=1, on_progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_the_default_invasive_pattern_is_spill(tmp_path):
    """`razn synth` without --invasive makes spill slides; desmoplastic is asked for by name."""
    made = {}
    for name, extra in (("default", []), ("spill", ["--invasive", "spill"]),
                        ("desmoplastic", ["--invasive", "desmoplastic"])):  # fmt: skip
        out = tmp_path / name / "s.tif"
        out.parent.mkdir()
        argv = [
            "synth",
            str(out),
            "--size",
            "1536x1536",
            "--seed",
            "2",
            "--lesion-fraction",
            "0.6",
        ]
        assert main([*argv, *extra]) == 0
        made[name] = out.read_bytes()
    assert made["default"] == made["spill"]
    assert made["default"] != made["desmoplastic"]
