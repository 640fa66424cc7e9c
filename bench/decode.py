"""Decode benchmark: median ms per file for each format, against a plain full Pillow decode.

    python -m bench.decode [--runs 15]

Files are made here, in a temporary folder: a 24 MP plain JPEG (6000x4000, quality 90), a camera-
style JPEG with a 1620 px MPF preview, RAW containers (CR3, NEF, ARW, RAF, DNG) written around real
JPEG previews with the test builders, and PNG / TIFF / HEIC. One thread, as a worker runs it.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from eyespyd.decode import decode
from tests import containerbuild


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth shapes with sensor-like noise: compresses like a real photo (2.7 MB at quality 90
    for 24 MP, the file DESIGN.md measured), unlike pure noise (far larger) or flat colour."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 200 + 2, width // 200 + 2, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.asarray(base, dtype=np.int16)
    pixels = pixels + rng.normal(0, 2, size=(height, width, 1)).astype(np.int16)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def jpeg(image: Image.Image, quality: int = 90, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def make_files(folder: Path) -> dict[str, Path]:
    full = photo_like(6000, 4000)
    main = jpeg(full, orientation=6)
    preview = jpeg(full.resize((1620, 1080), Image.Resampling.BILINEAR), quality=85)
    thumb = jpeg(full.resize((160, 120), Image.Resampling.BILINEAR), quality=80)
    files = {
        "JPEG 24 MP plain": ("plain.jpg", main),
        "JPEG 24 MP + MPF 1620": ("camera.jpg", containerbuild.make_mpf_jpeg(main, preview)),
        "CR3 (PRVW 1620)": ("IMG.CR3", containerbuild.make_cr3(preview, thumb, orientation=6)),
        "NEF (1620 + full-size)": (
            "IMG.NEF",
            containerbuild.make_tiff_raw("NEF", [thumb, preview, main], orientation=6),
        ),
        "ARW (1620)": ("IMG.ARW", containerbuild.make_tiff_raw("ARW", [thumb, preview])),
        "RAF (1620)": ("IMG.RAF", containerbuild.make_raf(preview)),
        "DNG (1620)": ("IMG.DNG", containerbuild.make_tiff_raw("DNG", [preview])),
        "PNG 12 MP": ("big.png", _encoded(full.resize((4240, 2832)), "PNG", compress_level=1)),
        "TIFF 12 MP": ("big.tif", _encoded(full.resize((4240, 2832)), "TIFF")),
    }
    out = {}
    for label, (name, data) in files.items():
        path = folder / name
        path.write_bytes(data)
        out[label] = path
    try:
        import pillow_heif

        heic = folder / "IMG.HEIC"
        pillow_heif.from_pillow(full.resize((4032, 3024))).save(str(heic), quality=85)
        out["HEIC 12 MP"] = heic
    except ImportError:
        pass
    return out


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


RAW_SUFFIXES = {".cr3", ".nef", ".arw", ".raf", ".dng"}


def plain_pillow(path: Path) -> None:
    """What a script without eyespyd's shortcuts would do: decode everything, then rotate."""
    if path.suffix.lower() == ".heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    with Image.open(path) as image:
        ImageOps.exif_transpose(image.convert("RGB"))


def median_ms(work: Callable[[], object], runs: int) -> float:
    work()  # warm the page cache and Pillow's plugins
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        print(f"{'file':26} {'MB':>6} {'eyespyd ms':>11} {'full Pillow ms':>15}  pixels used")
        for label, path in files.items():
            photo = decode(path)
            ours = median_ms(partial(decode, path), args.runs)
            # Pillow cannot decode RAW data (it would open a TIFF-based RAW's tiny RGB thumbnail).
            theirs = "n/a"
            if path.suffix.lower() not in RAW_SUFFIXES:
                theirs = f"{median_ms(partial(plain_pillow, path), max(3, args.runs // 3)):.0f}"
            size_mb = path.stat().st_size / 1e6
            print(
                f"{label:26} {size_mb:6.1f} {ours:11.1f} {theirs:>15}  "
                f"{photo.size[0]}x{photo.size[1]} from {photo.source}"
            )


if __name__ == "__main__":
    main()
