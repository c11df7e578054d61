"""Small slide files written with tifffile for the reader's tests."""

from __future__ import annotations

import numpy as np
import tifffile


def tissue_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """White glass with a pink-purple ellipse of 'tissue' and fine noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2 < 1
    image = np.full((height, width, 3), 245, np.uint8)
    pink = np.array([220, 140, 190]) + rng.integers(-20, 20, (height, width, 3))
    image[inside] = pink[inside].clip(0, 255)
    return image


def halve(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3)).astype(np.uint8)


def write_subifd_pyramid(path, image, levels: int = 3, **kwargs) -> list[np.ndarray]:
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(128, 128), photometric="rgb", subifds=levels - 1, **kwargs)
        for level in pyramid[1:]:
            tif.write(level, tile=(128, 128), photometric="rgb", subfiletype=1)
    return pyramid


def write_page_pyramid(path, image, levels: int = 3) -> list[np.ndarray]:
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(128, 128), photometric="rgb")
        for level in pyramid[1:]:
            tif.write(level, tile=(128, 128), photometric="rgb", subfiletype=1)
    return pyramid


def write_ome_pyramid(path, image, mpp: float, unit: str = "µm") -> list[np.ndarray]:
    pyramid = [image, halve(image)]
    size = mpp * {"µm": 1, "nm": 1000, "mm": 1e-3}[unit]
    metadata = {
        "axes": "YXS",
        "PhysicalSizeX": size,
        "PhysicalSizeY": size,
        "PhysicalSizeXUnit": unit,
        "PhysicalSizeYUnit": unit,
    }
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(image, tile=(128, 128), photometric="rgb", subifds=1, metadata=metadata)
        tif.write(pyramid[1], tile=(128, 128), photometric="rgb", subfiletype=1)
    return pyramid
