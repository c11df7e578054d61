"""Annotation files land on the slide open in napari, whatever mpp they state.

A known square, in level-0 pixels, written as QuPath GeoJSON (no mpp) and
as ImageScope XML (MicronsPerPixel 0 and a wrong 0.5), opened over a slide
at 0.25 um/px with no slide file beside them: the square must cover the
same microns of the slide, within one label pixel, in the slide's units.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

# The square's corners in level-0 pixels (x, y).
X0, Y0, X1, Y1 = 512, 256, 1024, 768
MPP = 0.25  # the small slide's


def write_geojson(path):
    ring = [[X0, Y0], [X1, Y0], [X1, Y1], [X0, Y1], [X0, Y0]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"objectType": "annotation",
                       "classification": {"name": "Invasive carcinoma", "color": [211, 47, 47]}},
    }  # fmt: skip
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))


def write_imagescope(path, mpp: str):
    vertices = "".join(
        f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in ((X0, Y0), (X1, Y0), (X1, Y1), (X0, Y1))
    )
    path.write_text(
        f'<Annotations MicronsPerPixel="{mpp}"><Annotation Id="1" LineColor="65535">'
        f'<Regions><Region Id="1" Type="0"><Vertices>{vertices}</Vertices></Region>'
        "</Regions></Annotation></Annotations>"
    )


def test_geojson_lands_on_the_open_slide(make_napari_viewer, small_slide, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(str(small_slide), plugin="napari-razn")
    path = tmp_path / "elsewhere.geojson"
    write_geojson(path)
    (layer,) = viewer.open(str(path), plugin="napari-razn")
    report = layer.metadata["import_report"]
    assert report["placed_on"] == viewer.layers[0].name
    assert any("placed on the open slide" in line for line in report["lines"])
    assert tuple(layer.units) == tuple(viewer.layers[0].units)
    d = layer.metadata["razn_labels"]["downsample"]
    rows, cols = np.nonzero(np.asarray(layer.data) == 4)
    # The label pixels' outer edges, in microns, against the square's.
    top_left = layer.data_to_world((rows.min() - 0.5, cols.min() - 0.5))
    bottom_right = layer.data_to_world((rows.max() + 0.5, cols.max() + 0.5))
    one = d * MPP  # one label pixel in microns
    np.testing.assert_allclose(top_left, (Y0 * MPP, X0 * MPP), atol=one)
    np.testing.assert_allclose(bottom_right, (Y1 * MPP, X1 * MPP), atol=one)
    # And against the slide itself: the same microns are the same slide pixels.
    slide = viewer.layers[0]
    np.testing.assert_allclose(slide.world_to_data(top_left)[-2:], (Y0, X0), atol=d)


@pytest.mark.parametrize("file_mpp", ["0", "0.5"])
def test_imagescope_lands_on_the_open_slide_whatever_its_mpp(
    make_napari_viewer, small_slide, tmp_path, file_mpp
):
    viewer = make_napari_viewer()
    viewer.open(str(small_slide), plugin="napari-razn")
    path = tmp_path / "regions.xml"
    write_imagescope(path, file_mpp)
    (layer,) = viewer.open(str(path), plugin="napari-razn")
    assert tuple(layer.units) == tuple(viewer.layers[0].units)
    (outline,) = layer.data
    world = np.array([layer.data_to_world(v) for v in outline])
    # Vertices on pixel corners: half a level-0 pixel from the centres.
    np.testing.assert_allclose(world.min(axis=0), (Y0 * MPP, X0 * MPP), atol=MPP)
    np.testing.assert_allclose(world.max(axis=0), (Y1 * MPP, X1 * MPP), atol=MPP)
