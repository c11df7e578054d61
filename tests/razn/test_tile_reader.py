"""The direct tile reader returns exactly tifffile's own pixels, by every path.

The reader decodes JPEG tiles with libjpeg-turbo directly (not through
`TiffPage.decode`), reads runs of tiles with one pread, decodes on several
threads and, for dask and napari, without the tile cache. Each of those is
checked here against `tifffile`'s decode of the same level, on the real
slides and on a YCbCr JPEG pyramid with partial edge tiles.
"""

from __future__ import annotations

import contextlib
import sys
import threading

import numpy as np
import pytest
import tifffile

import razn


@contextlib.contextmanager
def _reference(path):
    """Every stored level of the slide's main series as tifffile decodes it
    (through its zarr store, so a window decodes only the tiles it needs)."""
    import zarr

    with tifffile.imread(path, aszarr=True) as store:
        group = zarr.open(store, mode="r")
        yield [group] if isinstance(group, zarr.Array) else [group[k] for k in sorted(group)]


def _random_boxes(height, width, count, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = rng.integers(1, min(height, 700), 2)
        y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        yield int(y), int(y + h), int(x), int(x + w)


@pytest.fixture(scope="module")
def ycbcr_pyramid(tmp_path_factory):
    """A JPEG pyramid as tifffile writes it (YCbCr, JFIF), 256 px tiles, odd size."""
    from tests.razn.slide_files import halve, tissue_image

    path = tmp_path_factory.mktemp("jpeg") / "ycbcr.tif"
    image = tissue_image(700, 900, seed=3)
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(256, 256), photometric="rgb", compression="jpeg", subifds=1)
        tif.write(halve(image), tile=(256, 256), photometric="rgb", compression="jpeg")
    return path


@pytest.mark.parametrize("which", ["cmu", "tcga", "ycbcr"])
def test_fast_path_matches_tifffile(which, cmu_svs, tcga_svs, ycbcr_pyramid):
    path = {"cmu": cmu_svs, "tcga": tcga_svs, "ycbcr": ycbcr_pyramid}[which]
    with _reference(path) as reference, razn.open_slide(path) as slide:
        pixels = slide._read_stored.__self__
        for index, expected in enumerate(reference):
            reader = pixels._direct[index]  # every level here is tiled: read directly
            if reader._page.compression == 7:  # JPEG: the libjpeg-turbo path, not tifffile's
                assert reader._decode_jpeg is not None
            h, w = expected.shape[:2]
            if h * w <= 8_000_000:
                # The whole level, through the cache and without it (dask's path).
                whole = expected[:, :, :3]
                np.testing.assert_array_equal(slide._read_stored(index, 0, h, 0, w), whole)
                np.testing.assert_array_equal(np.asarray(slide.levels[index]), whole)
            for y0, y1, x0, x1 in _random_boxes(h, w, 12, seed=index):
                window = slide._read_stored(index, y0, y1, x0, x1)
                np.testing.assert_array_equal(window, expected[y0:y1, x0:x1, :3])
        # Level 0 through the public call, a box that straddles tile edges.
        np.testing.assert_array_equal(
            slide.read_region((37, 41), (613, 389), downsample=1),
            reference[0][41:430, 37:650, :3],
        )


def test_concurrent_reads_match(cmu_svs):
    """Threads reading overlapping windows at once (a napari view, a segmenter)."""
    with _reference(cmu_svs) as reference:
        expected = reference[0][:, :, :3]
    boxes = list(_random_boxes(*expected.shape[:2], 48, seed=7))
    errors = []
    with razn.open_slide(cmu_svs) as slide:

        def read(part):
            for y0, y1, x0, x1 in part:
                window = slide.read_region((x0, y0), (x1 - x0, y1 - y0), downsample=1)
                if not np.array_equal(window, expected[y0:y1, x0:x1]):
                    errors.append((y0, y1, x0, x1))

        threads = [threading.Thread(target=read, args=(boxes[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_level_views_index_like_numpy(cmu_svs):
    """napari indexes the level views with steps, integers or arrays."""
    with _reference(cmu_svs) as reference:
        expected = reference[0][:, :, :3]
    with razn.open_slide(cmu_svs) as slide:
        view = slide.level_views[0]
        assert view.shape == expected.shape and view.dtype == np.uint8 and view.ndim == 3
        for key in [
            (slice(None, None, 7), slice(5, 900, 3)),
            (10, slice(None, None, 2), 1),
            (slice(100, 50),),
            ([3, 1, 2000], slice(0, 4)),
            (-1, -1),
            (Ellipsis, 0),
            (slice(2000, 2300), Ellipsis),
        ]:
            np.testing.assert_array_equal(view[key], expected[key])


def test_derived_level_views_match_the_dask_levels(cmu_svs):
    """CMU has one stored level: napari's coarser levels are averaged 2 x 2,
    the same pixels as the dask levels the engine uses."""
    with razn.open_slide(cmu_svs) as slide:
        assert [level.stored for level in slide.level_info] == [True, False, False]
        for view, level in zip(slide.level_views[1:], slide.levels[1:], strict=True):
            assert view.shape == level.shape
            np.testing.assert_array_equal(view[:, :], np.asarray(level))
            np.testing.assert_array_equal(view[101:333, 7:519], np.asarray(level[101:333, 7:519]))


def test_small_derived_levels_are_averaged_once(cmu_svs, monkeypatch):
    """napari reads the coarsest level whole (its thumbnail), then the level
    it shows: a small derived level is computed once and kept, so CMU's
    level 0 is decoded once (each tile halved as it is decoded); a large
    one (here: any, by lowering the limit) is averaged window by window, in
    bands where the finer level is derived too, with the same pixels."""
    import razn.slide._levels as levels
    from razn.slide._tiles import TiledLevelReader

    with razn.open_slide(cmu_svs) as slide:
        expected = [np.asarray(level) for level in slide.levels]
    decoded = []
    decode = TiledLevelReader._decode
    monkeypatch.setattr(
        TiledLevelReader,
        "_decode",
        lambda self, i, data: decoded.append(i) or decode(self, i, data),
    )
    with razn.open_slide(cmu_svs) as slide:
        finest = slide.level_views[0]
        read = finest._read
        finest._read = lambda *box: pytest.fail(f"level 0 put together for a derived level: {box}")
        for view, whole in zip(slide.level_views[1:], expected[1:], strict=True):
            np.testing.assert_array_equal(view[:, :], whole)
        assert sorted(decoded) == list(range(130))  # 10 x 13 tiles, each decoded once
        # A kept level is handed out read-only (a view, not a copy per
        # slice); np.array still gives a copy one can write to.
        window = slide.level_views[1][10:20, 30:40]
        with pytest.raises(ValueError, match="read-only"):
            window[0, 0] = 0
        writable = np.array(slide.level_views[2])
        writable[0, 0] = 0
        np.testing.assert_array_equal(slide.level_views[2][0, 0], expected[2][0, 0])
        np.testing.assert_array_equal(slide.level_views[2][5:99, 7:300], expected[2][5:99, 7:300])
        finest._read = read
    monkeypatch.setattr(levels, "_KEPT_DERIVED_PIXELS", 0)
    monkeypatch.setattr(levels, "_HALVE_BAND_ROWS", 37)
    with razn.open_slide(cmu_svs) as slide:
        for view, whole in zip(slide.level_views[1:], expected[1:], strict=True):
            np.testing.assert_array_equal(view[3:701, 11:500], whole[3:701, 11:500])
            np.testing.assert_array_equal(view[-5:, -7:], whole[-5:, -7:])


def test_halved_reads_match_halving_the_window(cmu_svs, tcga_svs, ycbcr_pyramid):
    """A halved read (tiles averaged as they are decoded) gives the pixels
    of averaging the full window 2 x 2, PIL's `reduce(2)`: at tile edges,
    the slide's edge, odd sizes, from the cache or not, JPEG and JPEG 2000."""
    from PIL import Image

    from razn.slide._levels import halve_pixels

    rng = np.random.default_rng(3)
    block = rng.integers(0, 256, (37, 52, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        halve_pixels(block), np.asarray(Image.fromarray(block).reduce(2))[:18]
    )
    for path in (cmu_svs, tcga_svs, ycbcr_pyramid):
        with razn.open_slide(path) as slide:
            reader = slide._read_stored.__self__._direct[0]  # the level's TiledLevelReader
            h, w = slide.shape
            boxes = [
                (0, h, 0, w),
                (0, 2, 0, 2),
                (h - 3 - (h - 3) % 2, h, w - 501 - (w - 501) % 2, w),
            ]
            for y0, y1, x0, x1 in _random_boxes(h, w, 6, seed=7):
                boxes.append((y0 // 2 * 2, y1, x0 // 2 * 2, x1))
            for cache in (True, False, True):
                for y0, y1, x0, x1 in boxes:
                    full = reader.read(y0, y1, x0, x1, cache=False)[..., :3]
                    halved = reader.read(y0, y1, x0, x1, cache=cache, halve=True)[..., :3]
                    np.testing.assert_array_equal(halved, halve_pixels(full))
            with pytest.raises(ValueError, match="even origin"):
                reader.read(1, 9, 0, 8, halve=True)
            # What the derived level reads through (errors named as a SlideError).
            y0, y1, x0, x1 = boxes[-1]
            np.testing.assert_array_equal(
                slide._halved_reader(0)(y0, y1, x0, x1, cache=False),
                halve_pixels(reader.read(y0, y1, x0, x1)[..., :3]),
            )


@pytest.mark.parametrize("kind", ["svs", "png"])
def test_reading_regions_does_not_import_dask(kind, cmu_svs, tmp_path):
    """Opening a slide (or a plain image) and reading a region costs no
    dask (or zarr) import."""
    import subprocess

    from PIL import Image

    path = cmu_svs
    if kind == "png":
        path = tmp_path / "image.png"
        Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(path)
    code = (
        "import sys, razn\n"
        f"s = razn.open_slide({str(path)!r}, mpp=0.5)\n"
        "s.read_region((0, 0), (256, 256), downsample=1)\n"
        "print(sorted(m for m in ('dask', 'dask.array', 'zarr') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def test_tile_cache_grows_only_when_reads_come_back():
    """A pass that never returns to a tile keeps the cache at its start size
    (no 64 MB of fresh memory filled for nothing); a tile decoded again
    after eviction grows it, up to the limit."""
    from razn.slide._tiles import TileCache

    shape = (256, 256, 3)
    nbytes = 256 * 256 * 3
    cache = TileCache(max_bytes=64 * nbytes, start_bytes=4 * nbytes)

    def held() -> int:
        return sum(tile.nbytes for tile in cache._tiles.values())

    for key in range(200):  # a scan: every tile new
        cache.put(key, cache.buffers.take(shape))
    assert held() == 4 * nbytes
    assert cache.get(199) is not None and cache.get(0) is None
    cache.put(190, cache.buffers.take(shape))  # evicted, then asked for again
    assert cache.capacity == 8 * nbytes
    for key in range(180, 200):  # a working set of 20 tiles, read over and over
        cache.put(key, cache.buffers.take(shape))
    for _ in range(3):
        for key in range(180, 200):
            if cache.get(key) is None:
                cache.put(key, cache.buffers.take(shape))
    assert all(cache.get(key) is not None for key in range(180, 200))
    assert 20 * nbytes <= held() <= 64 * nbytes
    for key in range(1000, 1400):  # however many re-reads, never past the limit
        cache.put(key, cache.buffers.take(shape))
        cache.put(key - 3, cache.buffers.take(shape))
    assert held() <= 64 * nbytes and cache.capacity <= 64 * nbytes


def test_costly_tiles_get_the_whole_cache_at_once(cmu_svs, tcga_svs):
    """JPEG tiles (cheap to decode again) start with a small cache; JPEG 2000
    tiles (ten times the cost of keeping them) keep everything from the start."""
    from razn.slide._tiles import DEFAULT_CACHE_BYTES, START_CACHE_BYTES

    for path, capacity in [(cmu_svs, START_CACHE_BYTES), (tcga_svs, DEFAULT_CACHE_BYTES)]:
        with razn.open_slide(path) as slide:
            assert slide._read_stored.__self__._direct[0]._cache.capacity == capacity


def test_regions_read_again_come_from_the_cache(cmu_svs):
    """Overlapping regions (CMU is small): the cache grows to hold them, so
    the second pass over the same regions decodes next to nothing."""
    with razn.open_slide(cmu_svs) as slide:
        reader = slide._read_stored.__self__._direct[0]
        decoded = []
        decode = reader._decode
        reader._decode = lambda index, data: decoded.append(index) or decode(index, data)
        height, width = slide.shape
        rng = np.random.default_rng(1)
        boxes = [
            (int(rng.integers(0, width - 512)), int(rng.integers(0, height - 512)))
            for _ in range(40)
        ]
        for xy in boxes:
            slide.read_region(xy, (512, 512), downsample=1)
        first = len(decoded)
        for xy in boxes:
            slide.read_region(xy, (512, 512), downsample=1)
    tiles = len(set(decoded))
    assert first < 1.5 * tiles  # each tile decoded about once in the first pass
    assert len(decoded) - first <= 0.05 * tiles


def test_tile_buffers_recycle_only_tiles_no_one_holds():
    """Evicted tiles' memory is reused (no fresh page faults per tile), but
    never while a reader still copies from the tile."""
    from razn.slide._tiles import TileCache

    shape = (256, 256, 3)
    nbytes = 256 * 256 * 3

    def address(array):
        return array.__array_interface__["data"][0]

    cache = TileCache(max_bytes=nbytes, start_bytes=nbytes)
    cache.put("a", cache.buffers.take(shape))
    evicted = address(cache._tiles["a"])
    cache.put("b", cache.buffers.take(shape))  # evicts "a", which no one holds
    assert address(cache.buffers.take(shape)) == evicted

    cache = TileCache(max_bytes=nbytes, start_bytes=nbytes)
    held = cache.buffers.take(shape)
    held[:] = 7
    cache.put("a", held)
    cache.put("b", cache.buffers.take(shape))  # evicts "a" while `held` refers to it
    others = [cache.buffers.take(shape) for _ in range(80)]
    assert not any(np.shares_memory(held, other) for other in others)
    assert (held == 7).all()
