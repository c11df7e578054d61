"""Reading any supported annotation file: format detection and safe XML parsing.

`read_annotations` looks at a file's content, not its name (ImageScope and
ASAP both write ``.xml``; QuPath writes ``.geojson`` or ``.json``): JSON goes
to the GeoJSON reader, XML with an ``Annotations`` root to the ImageScope
reader and one with an ``ASAP_Annotations`` root to the ASAP reader.

XML is parsed with defusedxml (`razn.annotations.safe_xml`): annotation
files come from other people's machines, and a file that declares entities
(the billion-laughs bomb, an external entity reading local files) is
refused before anything expands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from razn.annotations.asap import parse_asap
from razn.annotations.geojson import parse_geojson
from razn.annotations.imagescope import parse_imagescope
from razn.annotations.model import AnnotationSet, ClassMatcher
from razn.annotations.safe_xml import parse_xml
from razn.classes import DEFAULT_CLASSES, TissueClass
from razn.errors import AnnotationError

__all__ = ["read_annotations", "parse_xml"]


def read_annotations(
    path: str | os.PathLike,
    *,
    class_map: Mapping[str, int | str] | None = None,
    classes: tuple[TissueClass, ...] = DEFAULT_CLASSES,
) -> AnnotationSet:
    """Read QuPath GeoJSON, Aperio ImageScope XML or ASAP XML, detected by content.

    Parameters
    ----------
    path
        The annotation file.
    class_map
        Class text in the file -> class value or class name, tried before
        the built-in rules (see `razn.annotations.model`). The key ``""``
        maps regions that have no class.
    classes
        The class table to match against.

    Returns
    -------
    AnnotationSet
        Regions in level-0 pixels with their class, and the import report.

    Raises
    ------
    AnnotationError
        The file is missing, unreadable, of no supported format, or
        malformed; the message names the file and the problem.
    """
    matcher = ClassMatcher(classes, class_map)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise AnnotationError(error.strerror or str(error), path) from None
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise AnnotationError(f"not UTF-8 text: {error.reason}", path) from None
        return parse_geojson(text, matcher, path=path)
    if head == b"<":
        root = parse_xml(data, path)
        if root.tag == "Annotations":
            return parse_imagescope(root, matcher, path=path)
        if root.tag == "ASAP_Annotations":
            return parse_asap(root, matcher, path=path)
        raise AnnotationError(
            f"XML root <{root.tag}> is neither ImageScope <Annotations> nor <ASAP_Annotations>",
            path,
        )
    raise AnnotationError("not an annotation file (expected GeoJSON or ImageScope/ASAP XML)", path)
