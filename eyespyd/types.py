"""The typed results that flow between pipeline stages.

Frozen and slotted: a stage can never change what an earlier one found. Nothing found is an empty
tuple, never None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of Photo.pixels


@dataclass(frozen=True, slots=True, eq=False)
class Photo:
    """The cheapest upright RGB pixels of a file that still show the eyes.

    `pixels` is H x W x 3 uint8, already rotated for EXIF orientation. `scale` maps its coordinates
    back to the full upright image: full = pixels / scale.
    """

    path: Path
    pixels: np.ndarray = field(repr=False)
    format: str  # "JPEG", "PNG", "TIFF", "WEBP", "HEIF", "CR2", "CR3", "NEF", ...
    source: str  # where the pixels came from: "main image 1/4", "MPF preview", "PRVW box", ...
    original_size: tuple[int, int]  # (width, height) of the full image, upright
    orientation: int  # EXIF orientation 1..8 that was applied
    # The same pixels as the Pillow image decode made them from, when it did: the face passes
    # resample it, and converting `pixels` back costs a copy of the whole image per stage.
    image: Image.Image | None = field(default=None, repr=False, compare=False)

    def pillow(self) -> Image.Image:
        """`pixels` as a Pillow RGB image (decode's own, or a copy)."""
        if self.image is not None:
            return self.image
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(self.pixels))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of `pixels`."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def scale(self) -> float:
        """Ratio of `pixels` width to the full upright image's width."""
        return self.size[0] / self.original_size[0] if self.original_size[0] else 1.0


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face, in pixel coordinates of the image it was found in.

    keypoints are BlazeFace's six, in its order: right eye, left eye, nose tip, mouth, right ear,
    left ear ("right" is the subject's right, which appears on the image's left).
    """

    box: Box
    score: float
    keypoints: tuple[Point, Point, Point, Point, Point, Point]

    @property
    def right_eye(self) -> Point:
        return self.keypoints[0]

    @property
    def left_eye(self) -> Point:
        return self.keypoints[1]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]
