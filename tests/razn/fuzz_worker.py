"""Seeded byte-level fuzzing of the real slides and annotation files, run by
`test_fuzz_inputs.py` in a subprocess of its own (so a crash or a hang is
seen as one, not taken down with pytest).

Each case mutates one real file and runs it through `razn.cli.main` as the
CLI does (`razn info FILE --json` for slides, `razn convert FILE --slide
CMU -o OUT` for annotations). A case passes when main returns (with any
exit code: a clean result or a clean one-line error); any exception that
escapes main is a traceback a user would see, and fails the run. A watchdog
turns a case that runs past `--case-timeout` into a failure too (a hang).

Usage: python -m tests.razn.fuzz_worker DATA_DIR WORK_DIR --seed S --budget-s T --max-cases N

Prints one JSON line per case and a last line {"cases": n, ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

# Tokens spliced into text files: the structure characters of JSON and XML
# and the values that readers get wrong (booleans, null, huge numbers).
TEXT_TOKENS = [
    b"[", b"]", b"{", b"}", b'"', b",", b":", b"<", b">", b"/>", b"</", b"&amp;", b"&#0;",
    b"true", b"false", b"null", b"1e999", b"-1e308", b"NaN", b"-0", b"99999999999999999999",
    b'"type": "Polygon"', b'"coordinates": [[[0,0],[1,0],[1,1]]]', b'Type="2"', b'X="1e40"',
    b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\n" * 3, b"[[[[[[[[", b"]]]]]]]]",
]  # fmt: skip


def tiff_structure_offsets(data: bytes) -> list[tuple[int, int]]:
    """(offset, length) of the TIFF header, every IFD and every out-of-line tag
    value: where a mutation changes what the file claims, not one pixel."""
    import tifffile

    spans = [(0, 16)]
    with contextlib.suppress(Exception), tifffile.TiffFile(io.BytesIO(data)) as tif:
        for page in tif.pages:
            entries = len(page.tags)
            spans.append((page.offset, 2 + 12 * entries + 4))
            for tag in page.tags:
                if tag.valueoffset != tag.offset + 8:  # stored out of line
                    spans.append((tag.valueoffset, min(tag.count * 8, 4096)))
    return [(o, n) for o, n in spans if 0 <= o < len(data) and n > 0]


def mutate_binary(data: bytes, spans, rng) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = rng.choice(["structure", "structure", "structure", "anywhere", "truncate"])
    if kind == "truncate":
        cut = int(rng.integers(8, len(buf)))
        return bytes(buf[:cut]), f"truncate at {cut}"
    edits = []
    for _ in range(int(rng.integers(1, 6))):
        if kind == "structure":
            start, length = spans[int(rng.integers(len(spans)))]
            at = start + int(rng.integers(length))
        else:
            at = int(rng.integers(len(buf)))
        at = min(at, len(buf) - 4)
        how = rng.choice(["byte", "zero", "ones", "u32"])
        if how == "byte":
            buf[at] = int(rng.integers(256))
        elif how == "zero":
            buf[at : at + 4] = b"\0\0\0\0"
        elif how == "ones":
            buf[at : at + 4] = b"\xff\xff\xff\xff"
        else:  # a plausible-looking but wrong 32-bit value (a size, an offset)
            value = int(rng.choice([1, 2, 3, 7, 255, 256, 65535, 10**6, 2**31 - 1]))
            buf[at : at + 4] = value.to_bytes(4, "little")
        edits.append(f"{how}@{at}")
    return bytes(buf), f"{kind}: " + " ".join(edits)


def mutate_text(data: bytes, rng) -> tuple[bytes, str]:
    buf = bytearray(data)
    edits = []
    for _ in range(int(rng.integers(1, 5))):
        at = int(rng.integers(len(buf) + 1))
        how = rng.choice(["token", "token", "byte", "delete", "duplicate", "truncate"])
        if how == "token":
            buf[at:at] = TEXT_TOKENS[int(rng.integers(len(TEXT_TOKENS)))]
        elif how == "byte" and at < len(buf):
            buf[at] = int(rng.integers(256))
        elif how == "delete":
            del buf[at : at + int(rng.integers(1, 64))]
        elif how == "duplicate":
            buf[at:at] = buf[at : at + int(rng.integers(1, 256))]
        elif how == "truncate":
            del buf[at:]
        edits.append(f"{how}@{at}")
    return bytes(buf), " ".join(edits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=45.0)
    parser.add_argument("--max-cases", type=int, default=1000)
    parser.add_argument("--case-timeout", type=float, default=20.0)
    args = parser.parse_args(argv)

    from razn.cli import main as razn

    slides = sorted((args.data / "slides").glob("*.svs"))
    notes = sorted((args.data / "annotations").iterdir())
    originals = {p: p.read_bytes() for p in [*slides, *notes]}
    spans = {p: tiff_structure_offsets(originals[p]) for p in slides}
    reference = slides[0]  # the slide annotations are converted against
    rng = np.random.default_rng(args.seed)
    start, cases, outcomes = time.perf_counter(), 0, {"ok": 0, "error": 0}
    while cases < args.max_cases and time.perf_counter() - start < args.budget_s:
        is_slide = rng.random() < 0.4
        source = (
            slides[int(rng.integers(len(slides)))]
            if is_slide
            else notes[int(rng.integers(len(notes)))]
        )
        if is_slide:
            data, mutation = mutate_binary(originals[source], spans[source], rng)
            command = ["info", None, "--json"]
        else:
            data, mutation = mutate_text(originals[source], rng)
            out = args.work / ("out.tif" if rng.random() < 0.5 else "out.geojson")
            command = ["convert", None, "--slide", str(reference), "-o", str(out)]
        target = args.work / f"case{source.suffix}"
        target.write_bytes(data)
        command[1] = str(target)
        print(json.dumps({"case": cases, "file": source.name, "mutation": mutation}), flush=True)
        faulthandler.dump_traceback_later(args.case_timeout, exit=True)
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = razn(command)
        except BaseException:
            faulthandler.cancel_dump_traceback_later()
            print(json.dumps({"case": cases, "traceback": traceback.format_exc()}), flush=True)
            return 1
        faulthandler.cancel_dump_traceback_later()
        if "Traceback" in err.getvalue():
            print(json.dumps({"case": cases, "traceback": err.getvalue()}), flush=True)
            return 1
        outcomes["ok" if code == 0 else "error"] += 1
        cases += 1
    seconds = round(time.perf_counter() - start, 1)
    print(json.dumps({"cases": cases, "seconds": seconds, **outcomes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
