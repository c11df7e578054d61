"""What a TIFF-family slide file says about itself: format, mpp, magnification.

Scanners record the pixel size in different places: Aperio in the
ImageDescription (`MPP = 0.4990`, `AppMag = 20`), OME-TIFF in
`Pixels@PhysicalSizeX/Y` with a unit, Leica SCN and Hamamatsu NDPI in the
TIFF resolution tags (and their own XML or private tags for the objective),
generic pyramidal TIFFs in the resolution tags when at all. This module
reads those facts and nothing else; it never decodes pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tifffile

# A resolution tag can hold anything; image editors write 72 or 96 dpi by
# default. Only values in the range of microscopes (0.05 to 20 um/px, that
# is 500x down to about 0.5x) are taken as a real pixel size.
PLAUSIBLE_MPP = (0.05, 20.0)

_UM_PER_UNIT = {
    "pm": 1e-6,
    "nm": 1e-3,
    "µm": 1.0,
    "um": 1.0,
    "\u03bcm": 1.0,
    "micron": 1.0,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


@dataclass(frozen=True)
class SlideMetadata:
    format: str
    mpp: float | None
    magnification: float | None
    mpp_source: str | None  # which field the mpp came from, for `razn info`


def detect_format(tif: tifffile.TiffFile) -> str:
    if tif.is_svs:
        return "aperio-svs"
    if tif.is_scn:
        return "leica-scn"
    if tif.is_ndpi:
        return "hamamatsu-ndpi"
    if tif.is_ome:
        return "ome-tiff"
    if tif.is_qpi:
        return "perkinelmer-qptiff"
    return "tiff"


def read_metadata(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> SlideMetadata:
    """Format, level-0 mpp and objective power of an open TIFF.

    `page` is the level-0 page of the series chosen as the slide.
    """
    fmt = detect_format(tif)
    mpp = magnification = source = None
    if fmt == "aperio-svs":
        mpp, magnification = _aperio(page.description)
        source = "Aperio MPP" if mpp else None
    elif fmt == "ome-tiff":
        mpp = _ome_mpp(tif.ome_metadata)
        source = "OME PhysicalSizeX" if mpp else None
    elif fmt == "leica-scn":
        magnification = _scn_magnification(tif.scn_metadata)
    elif fmt == "hamamatsu-ndpi":
        tags = tif.ndpi_tags or {}
        magnification = _positive(tags.get("Magnification"))
    if mpp is None:
        mpp = resolution_mpp(page)
        source = "TIFF resolution tags" if mpp else None
    return SlideMetadata(fmt, mpp, magnification, source)


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _plausible(mpp: float | None) -> float | None:
    if mpp is None:
        return None
    return mpp if PLAUSIBLE_MPP[0] <= mpp <= PLAUSIBLE_MPP[1] else None


def _aperio(description: str) -> tuple[float | None, float | None]:
    fields = dict(
        (k.strip(), v.strip())
        for k, _, v in (item.partition("=") for item in description.split("|")[1:])
    )
    return _plausible(_positive(fields.get("MPP"))), _positive(fields.get("AppMag"))


def _ome_mpp(ome_xml: str | None) -> float | None:
    if not ome_xml:
        return None
    # Attributes are all we need; a regular expression avoids parsing
    # untrusted XML and does not care about the OME schema version.
    pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", ome_xml)
    if not pixels:
        return None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(0)))
    sizes = []
    for axis in ("X", "Y"):
        size = _positive(attrs.get(f"PhysicalSize{axis}"))
        unit = attrs.get(f"PhysicalSize{axis}Unit", "µm")
        factor = _UM_PER_UNIT.get(unit)
        if size is None or factor is None:
            return None
        sizes.append(size * factor)
    return _plausible(sum(sizes) / 2)


def _scn_magnification(scn_xml: str | None) -> float | None:
    if not scn_xml:
        return None
    # Imported here: only Leica SCN needs an XML parser (Aperio's metadata is
    # text), and it was a tenth of the imports of a slide's first open in napari.
    from defusedxml import ElementTree as SafeET

    try:
        root = SafeET.fromstring(scn_xml)
    except Exception:  # malformed or hostile XML: the magnification is optional
        return None
    for element in root.iter():
        if element.tag.endswith("objective") and element.text:
            return _positive(element.text)
    return None


def resolution_mpp(page: tifffile.TiffPage) -> float | None:
    """Microns per pixel from XResolution/YResolution, if they are real."""
    unit = page.tags.get("ResolutionUnit")
    unit = unit.value if unit is not None else 2  # the TIFF default is inch
    um_per_unit = {2: 25400.0, 3: 10000.0}.get(int(unit))
    if um_per_unit is None:  # 1: no absolute unit
        return None
    sizes = []
    for name in ("XResolution", "YResolution"):
        tag = page.tags.get(name)
        if tag is None:
            return None
        num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
        if not num or not den:
            return None
        sizes.append(um_per_unit * den / num)
    return _plausible(sum(sizes) / 2)
