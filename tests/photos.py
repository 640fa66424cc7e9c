"""Test helpers that make real image files in memory: JPEGs with EXIF orientation, PNG, TIFF.

Pictures are smooth gradients with a little noise and a marker block in the upright image's
top-left corner, so a test can tell whether orientation was applied.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MARKER = (255, 0, 0)

# For each EXIF orientation, how a camera stores an upright scene: the inverse of the transpose
# that makes it upright again.
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def scene(width: int, height: int, seed: int = 0) -> Image.Image:
    """An upright picture with a red block in its top-left corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(x * 200 // max(width, 1)), (y * 200 // max(height, 1)), np.full_like(x, 90)], axis=-1
    )
    noisy = base + rng.integers(0, 24, size=base.shape)
    pixels = noisy.clip(0, 255).astype(np.uint8)
    block = max(4, min(width, height) // 5)
    pixels[:block, :block] = MARKER
    return Image.fromarray(pixels)


def stored_as(image: Image.Image, orientation: int) -> Image.Image:
    transpose = STORED[orientation]
    return image if transpose is None else image.transpose(transpose)


def jpeg_bytes(
    width: int,
    height: int,
    *,
    orientation: int | None = None,
    quality: int = 90,
    progressive: bool = False,
    seed: int = 0,
) -> bytes:
    """A JPEG of an upright scene stored the way a camera would for `orientation`."""
    image = stored_as(scene(width, height, seed), orientation or 1)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, progressive=progressive, exif=exif.tobytes())
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def has_marker_top_left(pixels: np.ndarray) -> bool:
    """The red block sits in the top-left corner (allowing for JPEG's colour error)."""
    h, w = pixels.shape[:2]
    corner = pixels[: max(2, h // 12), : max(2, w // 12)].reshape(-1, 3).mean(axis=0)
    return bool(corner[0] > 180 and corner[1] < 90 and corner[2] < 90)
