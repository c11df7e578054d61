"""ImageScope (BACH) and ASAP (CAMELYON) XML import, and XML that must be refused."""

from __future__ import annotations

import math

import pytest

from razn.annotations import read_annotations
from razn.classes import BENIGN, IN_SITU, INVASIVE
from razn.errors import AnnotationError


def imagescope(regions: str, mpp: str = "0.25") -> str:
    return (
        f'<Annotations MicronsPerPixel="{mpp}"><Annotation Id="1"><Regions>'
        f"{regions}</Regions></Annotation></Annotations>"
    )


def region(vertices, kind=0, text="", value="", negative=0) -> str:
    attribute = f'<Attributes><Attribute Name="Description" Value="{value}"/></Attributes>'
    points = "".join(f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in vertices)
    return (
        f'<Region Id="1" Type="{kind}" Text="{text}" NegativeROA="{negative}">'
        f"{attribute}<Vertices>{points}</Vertices></Region>"
    )


SQUARE = [(0, 0), (100, 0), (100, 100), (0, 100)]


def read_text(tmp_path, text, **kwargs):
    path = tmp_path / "annotations.xml"
    path.write_text(text)
    return read_annotations(path, **kwargs)


def test_imagescope_classes_follow_the_bach_rules(tmp_path):
    annotations = read_text(
        tmp_path,
        imagescope(
            region(SQUARE, value="Carcinoma in situ", text="benign")  # attribute first
            + region(SQUARE, text="Invasive")  # then the region text
            + region(SQUARE, text="BENIGN region")
            + region(SQUARE, text="non-invasive")  # not a BACH keyword as a word
            + region(SQUARE, text="benign or invasive?")  # ambiguous: not guessed
        ),
    )
    assert [a.class_value for a in annotations.annotations] == [
        IN_SITU,
        INVASIVE,
        BENIGN,
        None,
        None,
    ]
    assert annotations.report.unmatched == {"non-invasive": 1, "benign or invasive?": 1}
    assert annotations.report.mpp == 0.25


def test_imagescope_shapes_and_negative_regions(tmp_path):
    annotations = read_text(
        tmp_path,
        imagescope(
            region(SQUARE, text="invasive")
            + region([(40, 40), (60, 60)], kind=1, negative=1)  # a hole, as two corners
            + region([(200, 0), (300, 50)], kind=2, text="benign")  # ellipse in its box
            + region([(0, 0), (50, 50)], kind=3, text="benign")  # arrow
            + region([], kind=0, text="benign")
        ),
    )
    shapes = dict(annotations.shapes)
    square, ellipse = shapes[INVASIVE], shapes[BENIGN]
    assert len(square.interiors) == 1 and square.area == 100 * 100 - 20 * 20
    assert ellipse.area == pytest.approx(math.pi * 50 * 25, rel=0.01)
    assert ellipse.bounds == pytest.approx((200, 0, 300, 50))
    assert annotations.report.skipped == {"arrow": 1, "empty": 1}


def test_imagescope_without_regions_is_an_error(tmp_path):
    with pytest.raises(AnnotationError, match="without any <Region>"):
        read_text(tmp_path, imagescope(""))


def test_real_imagescope_files_import(annotations_dir):
    freehand = read_annotations(annotations_dir / "imagescope-freehand.xml")
    assert freehand.report.mpp == pytest.approx(0.499)
    # Three freehand regions; one crosses itself and is repaired into two.
    assert freehand.report.repaired == 2 and len(freehand.annotations) == 4
    assert freehand.report.unmatched == {"": 4}  # no class text in this file
    every_type = read_annotations(annotations_dir / "imagescope-all-region-types.xml")
    assert every_type.report.mpp is None  # MicronsPerPixel="0" means unknown
    assert len(every_type.annotations) == 4  # freehand, 2 rectangles, ellipse
    assert every_type.report.skipped == {"arrow": 3}
    mapped = read_annotations(
        annotations_dir / "imagescope-all-region-types.xml", class_map={"": "benign"}
    )
    assert len(mapped.shapes) == 4 and all(g.is_valid for _, g in mapped.shapes)


def test_asap_groups_order_and_exclusions(tmp_path):
    def annotation(group, coordinates, kind="Polygon"):
        rows = "".join(f'<Coordinate Order="{i}" X="{x}" Y="{y}"/>' for i, (x, y) in coordinates)
        return (
            f'<Annotation Name="a" Type="{kind}" PartOfGroup="{group}">'
            f"<Coordinates>{rows}</Coordinates></Annotation>"
        )

    # Coordinates out of file order: Order decides.
    shuffled = [(2, (100, 100)), (0, (0, 0)), (3, (0, 100)), (1, (100, 0))]
    text = (
        "<ASAP_Annotations><Annotations>"
        + annotation("Tumor", shuffled)
        + annotation("_2", [(0, (40, 40)), (1, (60, 40)), (2, (60, 60)), (3, (40, 60))])
        + annotation("Tumor", [(0, (5, 5))], kind="Dot")
        + "</Annotations></ASAP_Annotations>"
    )
    annotations = read_text(tmp_path, text, class_map={"Tumor": "invasive"})
    ((value, polygon),) = annotations.shapes
    assert value == INVASIVE and polygon.is_valid and polygon.area == 100 * 100 - 20 * 20
    assert annotations.report.skipped == {"point": 1}


def test_real_camelyon16_asap_file_imports(annotations_dir):
    path = annotations_dir / "camelyon16-tumor031-tissue.asap.xml"
    annotations = read_annotations(path)
    assert len(annotations.annotations) == 10
    assert annotations.report.unmatched == {"tissue": 6, "negative": 4}
    assert all(a.geometry.is_valid and a.geometry.area > 0 for a in annotations.annotations)
    assert annotations.annotations[0].geometry.bounds[0] > 50_000  # level-0 pixels


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Annotations><Annotation><Regions><Region Text="&lol3;"/></Regions></Annotation></Annotations>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<ASAP_Annotations><Annotations><Annotation PartOfGroup="&secret;"/></Annotations>
</ASAP_Annotations>"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, "refused: the XML declares entities"),
        (EXTERNAL, "refused: the XML declares entities"),
        ("<Annotations><Annotation>", "not well-formed XML"),
        ("<svg/>", "neither ImageScope"),
        (imagescope(region([("a", 0), (1, 1), (0, 1)])), "numeric X and Y"),
        ("plain text", "not an annotation file"),
    ],
)
def test_hostile_or_malformed_xml_is_refused(tmp_path, text, message):
    with pytest.raises(AnnotationError, match=message):
        read_text(tmp_path, text)
