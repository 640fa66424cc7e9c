"""Fujifilm RAF: a fixed big-endian header, then a JPEG, the RAF directory and the raw data.

The header starts "FUJIFILMCCD-RAW "; the JPEG's offset and length are the u32s at 84 and 88,
and the RAF directory's offset the u32 at 92. The JPEG carries the EXIF, so the orientation is
its own. The directory is a u32 count of (u16 tag, u16 length, data) records; tags 0x100
(RawImageFullSize) and 0x111 (RawImageCroppedSize) hold height then width, and ExifTool's
ImageSize is the cropped size.
"""

from __future__ import annotations

import struct

from eyespyd.containers.results import Candidate, Scan
from eyespyd.containers.source import Source
from eyespyd.errors import ContainerError

MAGIC = b"FUJIFILMCCD-RAW"
HEADER = 96  # through the u32 at 92
FULL_SIZE, CROPPED_SIZE = 0x100, 0x111
# The directory has about 130 records of a few bytes; the sizes come first.
DIRECTORY_READ = 4096
MAX_RECORDS = 256


def scan_raf(src: Source) -> Scan:
    if src.size < HEADER:
        raise ContainerError("truncated RAF header")
    head = src.read(0, HEADER, "RAF header")
    if not head.startswith(MAGIC):
        raise ContainerError("not a RAF header")
    jpeg_at, jpeg_length, directory = struct.unpack(">III", head[84:96])
    candidates = (Candidate(jpeg_at, jpeg_length, "RAF header"),) if jpeg_length else ()
    return Scan("RAF", None, _size(src, directory), candidates)


def _size(src: Source, at: int) -> tuple[int, int] | None:
    """(width, height) from the RAF directory; None when it is absent or unreadable, since the
    size only helps to choose among previews."""
    if not at or not src.has(at, 4):
        return None
    data = src.read(at, min(DIRECTORY_READ, src.size - at), "RAF directory")
    (count,) = struct.unpack_from(">I", data)
    sizes: dict[int, tuple[int, int]] = {}
    pos = 4
    for _ in range(min(count, MAX_RECORDS)):
        if pos + 4 > len(data):
            break
        tag, length = struct.unpack_from(">HH", data, pos)
        if tag in (FULL_SIZE, CROPPED_SIZE) and length == 4 and pos + 8 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 4)
            if width and height:
                sizes[tag] = (width, height)
        pos += 4 + length
    return sizes.get(CROPPED_SIZE) or sizes.get(FULL_SIZE)
