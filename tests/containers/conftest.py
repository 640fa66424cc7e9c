"""Fixtures for the container tests: real JPEGs made with Pillow, and the shared RAW samples."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Tiny real RAW files from ExifTool's test set (image data stripped, previews placeholders).
SAMPLES = Path(
    os.environ.get(
        "EYESPYD_RAW_SAMPLES", Path(__file__).resolve().parents[3] / "shared/data/raw-structure"
    )
)


def make_jpeg(
    width: int, height: int, *, orientation: int | None = None, progressive: bool = False
) -> bytes:
    """A real JPEG: a flat colour with a noisy block, and EXIF orientation when given."""
    image = Image.new("RGB", (width, height), (90, 140, 200))
    rng = np.random.default_rng(width * 7919 + height)
    block = rng.integers(0, 256, size=(height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    image.paste(Image.fromarray(block), (0, 0))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80, progressive=progressive, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def thumb() -> bytes:
    return make_jpeg(160, 120)


@pytest.fixture(scope="session")
def preview() -> bytes:
    return make_jpeg(1620, 1080)


@pytest.fixture(scope="session")
def large() -> bytes:
    return make_jpeg(3000, 2000)


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"RAW samples not found at {SAMPLES}")
    return SAMPLES
