"""Minolta MRW: "\\0MRM", a u32 length, then blocks of (4-byte name, u32 length, data), all
big-endian. `\\0PRD` has the image size (height, width as u16s at +12); `\\0TTW` is a TIFF with
IFD0 (orientation) and EXIF, whose Minolta maker note points at the JPEG preview."""

from __future__ import annotations

import struct

from eyespyd.containers.results import Scan, valid_orientation
from eyespyd.containers.source import Source
from eyespyd.containers.tiff import open_tiff
from eyespyd.containers.tiffraw import ORIENTATION, full_size, walk
from eyespyd.errors import ContainerError

MAGIC = b"\0MRM"
MAX_BLOCKS = 32  # real files have 4 or 5


def scan_mrw(src: Source) -> Scan:
    if src.size < 8 or src.read(0, 4, "MRW header") != MAGIC:
        raise ContainerError("not an MRW header")
    blocks_end = min(8 + src.u32(4, ">", "MRW header length"), src.size)
    size: tuple[int, int] | None = None
    ttw: tuple[int, int] | None = None
    pos = 8
    for _ in range(MAX_BLOCKS):
        if blocks_end - pos < 8:
            break
        name, length = struct.unpack(">4sI", src.read(pos, 8, "MRW block header"))
        body = pos + 8
        if body + length > src.size:
            raise ContainerError(f"truncated MRW block at offset {pos}")
        if name == b"\0PRD" and length >= 16:
            height, width = struct.unpack(">HH", src.read(body + 12, 4, "MRW PRD block"))
            size = (width, height) if width and height else None
        elif name == b"\0TTW":
            ttw = (body, body + length)
        pos = body + length
    if ttw is None:
        raise ContainerError("no TTW block (TIFF metadata) in the MRW file")
    tiff, first = open_tiff(src, ttw[0], ttw[1], "MRW TTW block")
    found = walk(tiff, first)
    orientation = valid_orientation(tiff.first(found.ifds[0], ORIENTATION))
    return Scan("MRW", orientation, size or full_size(found, "MRW"), tuple(found.candidates))
