"""Safe XML parsing for annotation files (a leaf: the XML readers and `reader` share it).

XML is parsed with defusedxml: annotation files come from other people's
machines, and a file that declares entities (the billion-laughs bomb, an
external entity reading local files) is refused before anything expands.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree

from razn.errors import AnnotationError

__all__ = ["parse_xml"]


def parse_xml(data: bytes, path=None) -> ET.Element:
    """Parse XML bytes safely; entity declarations and bad XML raise `AnnotationError`."""
    try:
        return defusedxml.ElementTree.fromstring(data)
    except defusedxml.DefusedXmlException as error:
        raise AnnotationError(
            f"refused: the XML declares entities or external references ({error}); "
            "annotation files never need them, and they are how XML bombs work",
            path,
        ) from None
    except ET.ParseError as error:
        raise AnnotationError(f"not well-formed XML ({error})", path) from None
