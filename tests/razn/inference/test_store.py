"""The segmentation store: OME-NGFF 0.5 metadata, ome-zarr's reader, races, repair, old stores."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zarr

from razn.classes import DEFAULT_CLASSES
from razn.inference.job import remove_litter, segment_slide
from razn.inference.store import SegmentationStore, StoreBusy, StoreError
from razn.inference.tiling import TileGrid
from razn.label_grid import read_label_grid
from razn.label_grid._ngff import create_layout, update_pyramid

SCHEMAS = Path(__file__).parent / "ngff_0_5"


@pytest.fixture(scope="module")
def store_path(slide_path, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    return Path(segment_slide(slide_path, model, out, device="cpu")["outputs"]["store"])


def _validator(name: str):
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values()
    )
    return jsonschema.Draft202012Validator(schemas[name], registry=registry)


def _attrs(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


def test_metadata_validates_against_the_ngff_0_5_schemas(store_path):
    image, label = _validator("image.schema"), _validator("label.schema")
    image.validate(_attrs(store_path))  # the root: the zoom-probability image
    for name in ("classes", "zoomed"):
        attrs = _attrs(store_path / "labels" / name)
        image.validate(attrs)
        label.validate(attrs)
    assert _attrs(store_path / "labels")["ome"]["labels"] == ["classes", "zoomed"]
    # The schemas can fail: a label image without its version is refused.
    broken = _attrs(store_path / "labels" / "classes")
    del broken["ome"]["version"]
    assert not label.is_valid(broken)


def test_classes_carry_the_class_table_and_micrometre_scale(store_path):
    ome = _attrs(store_path / "labels" / "classes")["ome"]
    colors = {c["label-value"]: c["rgba"] for c in ome["image-label"]["colors"]}
    assert colors[0][3] == 0  # not segmented / glass: transparent
    for c in DEFAULT_CLASSES:
        assert colors[c.value] == [*c.color, 255]
    names = {p["label-value"]: p["name"] for p in ome["image-label"]["properties"]}
    assert names[4] == "Invasive carcinoma" and names[3] == "In situ carcinoma"
    scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [8 * 0.25, 8 * 0.25]  # downsample x mpp, micrometres
    assert ome["multiscales"][0]["axes"][0]["unit"] == "micrometer"
    razn = _attrs(store_path / "razn")
    assert razn["format"] == "razn-segmentation/2" and razn["model"]["sha256"]
    assert {"threshold", "mpp", "mpp_source", "code_version"} <= set(razn)


def test_ome_zarr_reader_finds_the_labels_with_their_colours(store_path):
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(store_path)))())
    labels = {n.metadata.get("name"): n for n in nodes if n.metadata.get("color")}
    assert set(labels) == {"classes", "zoomed"}
    colour = labels["classes"].metadata["color"]
    assert colour[4] == pytest.approx([c / 255 for c in (0xD3, 0x2F, 0x2F, 255)])
    data = np.asarray(labels["classes"].data[0])
    np.testing.assert_array_equal(data, read_label_grid(store_path).labels)
    assert set(np.unique(data)) <= {0, 1, 2, 3, 4}


def test_the_pyramid_follows_level_0(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    create_layout(
        group, label_shape=(1300, 1100), tiles=(10, 9), downsample=8, tile_size=128,
        mpp=0.25, classes=DEFAULT_CLASSES, chunk=256,
    )  # fmt: skip
    image = group["labels/classes"]
    assert [image[str(i)].shape for i in range(3)] == [(1300, 1100), (650, 550), (325, 275)]
    labels = np.random.default_rng(0).integers(0, 5, (1300, 1100), dtype=np.uint8)
    image["0"][...] = labels
    update_pyramid(image, band_rows=300)
    np.testing.assert_array_equal(image["1"][...], labels[::2, ::2])
    np.testing.assert_array_equal(image["2"][...], labels[::4, ::4])


# -- creation races, broken stores, litter ------------------------------------------------


def _fake(tmp_path):
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"weights")
    config = SimpleNamespace(classes=DEFAULT_CLASSES, to_dict=lambda: {"name": "fake"})
    model = SimpleNamespace(config=config, checkpoint_path=weights)
    slide = SimpleNamespace(path=tmp_path / "s.svs", shape=(1024, 2048), mpp=0.25)
    return slide, model, TileGrid((1024, 2048), 256, 8, 64)


def test_thirty_simultaneous_starts_leave_thirty_usable_stores(tmp_path):
    slide, model, grid = _fake(tmp_path)
    usable = 0
    for race in range(30):
        path = tmp_path / f"r{race}.razn.zarr"
        start, outcomes = threading.Barrier(6), []

        def run(path=path, start=start, outcomes=outcomes):
            start.wait()
            try:
                with SegmentationStore.create_or_resume(path, slide, model, grid, 0.5):
                    outcomes.append("wrote")
            except StoreBusy as error:
                outcomes.append(str(error))

        threads = [threading.Thread(target=run) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert "wrote" in outcomes
        busy = [o for o in outcomes if o != "wrote"]
        assert all("another run is writing it" in o and "\n" not in o for o in busy)
        with SegmentationStore.create_or_resume(path, slide, model, grid, 0.5) as store:
            usable += store.settings["format"] == "razn-segmentation/2"
    assert usable == 30
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp, no lock


def test_a_second_writer_is_refused_in_one_line(tmp_path):
    slide, model, grid = _fake(tmp_path)
    path = tmp_path / "s.razn.zarr"
    busy = r"s\.razn\.zarr.*another run is writing it \(pid"
    with (
        SegmentationStore.create_or_resume(path, slide, model, grid, 0.5),
        pytest.raises(StoreBusy, match=busy),
    ):
        SegmentationStore.create_or_resume(path, slide, model, grid, 0.5)
    SegmentationStore.create_or_resume(path, slide, model, grid, 0.5).close()  # free again


def test_a_store_without_attributes_is_rebuilt_or_named(tmp_path):
    slide, model, grid = _fake(tmp_path)
    path = tmp_path / "s.razn.zarr"
    # What an old race left: a group with arrays but no attributes.
    broken = zarr.open_group(str(path), mode="w")
    broken.create_array("done", shape=(4, 8), dtype="bool", fill_value=False)
    with SegmentationStore.create_or_resume(path, slide, model, grid, 0.5) as store:
        assert store.settings["format"] == "razn-segmentation/2"
    # With finished tiles in it, nothing is thrown away: it is named instead.
    path2 = tmp_path / "t.razn.zarr"
    broken = zarr.open_group(str(path2), mode="w")
    broken.create_array("done", shape=(4, 8), dtype="bool", fill_value=False)[0, 0] = True
    with pytest.raises(StoreError, match="holds finished tiles; move it aside"):
        SegmentationStore.create_or_resume(path2, slide, model, grid, 0.5)
    assert path2.is_dir()


def test_killed_png_writes_leave_no_litter(tmp_path):
    paths = {"geojson": tmp_path / "s.geojson", "overview": tmp_path / "s.overview.png"}
    litter = [
        tmp_path / ".s.overview.png.k2j3h4_x.overview.png",
        tmp_path / ".s.geojson.ab12.geojson",
    ]
    for p in litter:
        p.write_bytes(b"half")
    keep = tmp_path / ".s.overview.png.notes.txt"
    keep.write_text("mine")
    assert sorted(remove_litter(paths)) == sorted(litter)
    assert keep.exists() and not any(p.exists() for p in litter)


def test_an_old_format_store_is_converted_on_resume_and_read_by_export(tmp_path):
    from razn.label_grid import label_grid_metadata

    slide, model, grid = _fake(tmp_path)
    path = tmp_path / "s.razn.zarr"
    old = zarr.open_group(str(path), mode="w")
    old.attrs.update({
        "format": "razn-segmentation/1", "slide": "s.svs", "slide_shape": [1024, 2048],
        "mpp": 0.25, "threshold": 0.5, "tile_size": 256, "downsample": 8, "patch_size": 64,
        "model": {"config": {"name": "fake"}, "checkpoint": str(model.checkpoint_path),
                  "sha256": "x"},
    })  # fmt: skip
    labels = old.create_array("labels", shape=(128, 256), dtype="uint8", fill_value=0)
    labels.attrs.update(label_grid_metadata(8, (1024, 2048), 0.25))
    labels[10:20, 30:40] = 4
    for name, dtype in (("zoom_p", "float32"), ("zoomed", "uint8"), ("tissue", "bool"),
                        ("done", "bool")):  # fmt: skip
        old.create_array(name, shape=(4, 8), dtype=dtype, fill_value=0)
    old["done"][0, 1] = True
    assert read_label_grid(path).labels[15, 35] == 4  # export reads it as it is
    with pytest.raises(StoreError, match="old-format store.*converts it"):
        SegmentationStore.open(path)
    model_identity = {"config": {"name": "fake"}, "checkpoint": str(model.checkpoint_path)}
    model._razn_identity = (model.checkpoint_path, {**model_identity, "sha256": "x"})
    with SegmentationStore.create_or_resume(path, slide, model, grid, 0.5) as store:
        assert store.done_tiles() == {(0, 1)}
        assert store.labels[15, 35] == 4
        assert store.settings["migrated_from"] == "razn-segmentation/1"
