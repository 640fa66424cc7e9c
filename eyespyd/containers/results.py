"""What the container parsers find: the public results, and the candidates they are built from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Preview:
    """An embedded JPEG that can be decoded on its own: `length` bytes from `offset` in the file.

    width and height come from the JPEG's own SOF marker, as stored (not rotated). `where` says
    where the container keeps it, for logs: "SubIFD0 JPEG", "CR3 PRVW", "MPF image 2"...
    """

    offset: int
    length: int
    width: int
    height: int
    where: str

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)


@dataclass(frozen=True, slots=True)
class JpegInfo:
    """A JPEG's header: main image size, EXIF orientation and the MPF previews it lists."""

    width: int
    height: int
    orientation: int  # EXIF orientation 1..8; 1 when absent or invalid
    previews: tuple[Preview, ...]  # the other images of an MPF index, largest first
    progressive: bool


@dataclass(frozen=True, slots=True)
class RawInfo:
    """What a RAW container says about its image and the JPEG previews it embeds."""

    format: str  # "CR2", "CR3", "NEF", "DNG", ... or "TIFF" for a TIFF that names no camera
    orientation: int  # EXIF orientation 1..8; 1 when absent
    full_size: tuple[int, int] | None  # (width, height) of the full image, when the file says
    previews: tuple[Preview, ...]  # every verified JPEG preview, largest first; may be empty


@dataclass(frozen=True, slots=True)
class Candidate:
    """A byte range a container points at as a JPEG, before its SOF has been read.

    A range past the end of the file means the file is truncated, except for a maker note's
    pointer: those are often wrong (ExifTool has a "FixBase" mode for them), so one that leads
    nowhere is only left out.
    """

    offset: int
    length: int
    where: str
    from_maker_note: bool = False


@dataclass(frozen=True, slots=True)
class Scan:
    """One container family's reading of a file, before the candidates are verified."""

    format: str
    orientation: int | None  # None when the container does not say
    full_size: tuple[int, int] | None
    candidates: tuple[Candidate, ...]


def valid_orientation(value: int | None) -> int | None:
    """The EXIF orientation if it is one of the eight defined values, else None."""
    return value if value is not None and 1 <= value <= 8 else None


def valid_size(width: int | None, height: int | None) -> tuple[int, int] | None:
    """(width, height) if both are known and positive (signed TIFF types can say otherwise)."""
    if width is None or height is None or width <= 0 or height <= 0:
        return None
    return width, height
