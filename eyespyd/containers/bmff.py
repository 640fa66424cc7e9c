"""Canon CR3: an ISO base media file (boxes) with three JPEGs.

- `moov` > `uuid` 85c0b687-820f-11e0-8111-f4ce462b6a48 (Canon's metadata box) holds `CMT1`, a
  TIFF whose IFD0 has the orientation and full size, and `THMB`, a 160x120 JPEG after a 16-byte
  header (version, width, height, length, 4 more bytes).
- A top-level `uuid` eaf42b5e-1c98-4b88-b9fb-b7dc406e4d16 holds 8 bytes, then a `PRVW` box: 16
  bytes of header (the JPEG's length at +12) and the 1620x1080 JPEG.
- Track 1's only sample, in `mdat`, is the full-size JPEG: its sample entry (`stsd` > `CRAW`)
  holds a `JPEG` box after the entry's 82-byte header, and `stsz` and `co64` locate it.

Boxes are walked by their 8- or 16-byte headers; only the few that matter are read. A box whose
size is impossible (below its header, 0 inside another box, past its parent or the end of the
file) is a ContainerError: at the top level that is how a truncated file shows.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from eyespyd.containers.results import Candidate, Scan, valid_orientation, valid_size
from eyespyd.containers.source import Source
from eyespyd.containers.tiff import open_tiff
from eyespyd.errors import ContainerError

CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
PREVIEW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")
SOI = b"\xff\xd8"
# The path from a trak down to the tables that locate its samples.
_SAMPLE_TABLE_PATH = (b"mdia", b"minf", b"stbl")

CRAW_HEADER = 82  # the visual sample entry fields before CRAW's own boxes
# A CR3 has about 60 boxes in all; these stop hostile ones.
MAX_BOXES = 4096
MAX_TRACKS = 16


@dataclass(frozen=True, slots=True)
class Box:
    type: bytes
    start: int
    payload: int  # absolute offset after the header
    end: int


def boxes(src: Source, start: int, end: int, *, top: bool = False) -> Iterator[Box]:
    """The boxes in [start, end). At the top level a box of size 0 runs to the end of the file."""
    parent = "the end of the file" if top else "its parent"
    pos = start
    for _ in range(MAX_BOXES):
        if end - pos < 8:
            return
        size, kind = struct.unpack(">I4s", src.read(pos, 8, "box header"))
        header = 8
        if size == 1:
            if end - pos < 16:
                raise ContainerError(f"truncated box header at offset {pos}")
            (size,) = struct.unpack(">Q", src.read(pos + 8, 8, "box size"))
            header = 16
        elif size == 0:
            if not top:
                raise ContainerError(f"box {_name(kind)} at offset {pos} has size 0 in a box")
            size = end - pos
        if size < header:
            raise ContainerError(f"box {_name(kind)} at offset {pos} has impossible size {size}")
        if pos + size > end:
            raise ContainerError(f"box {_name(kind)} at offset {pos} runs past {parent}")
        yield Box(kind, pos, pos + header, pos + size)
        pos += size
    raise ContainerError(f"more than {MAX_BOXES} boxes at offset {start}")


def scan_cr3(src: Source) -> Scan:
    orientation: int | None = None
    full_size: tuple[int, int] | None = None
    candidates: list[Candidate] = []
    seen_moov = False
    for box in boxes(src, 0, src.size, top=True):
        if box.type == b"moov" and not seen_moov:
            seen_moov = True
            orientation, full_size, found = _moov(src, box)
            candidates += found
        elif box.type == b"uuid" and _uuid(src, box) == PREVIEW_UUID:
            candidates += _prvw(src, box)
    if not seen_moov:
        raise ContainerError("no moov box in the CR3 file")
    return Scan("CR3", orientation, full_size, tuple(candidates))


def _moov(src: Source, moov: Box) -> tuple[int | None, tuple[int, int] | None, list[Candidate]]:
    orientation: int | None = None
    full_size: tuple[int, int] | None = None
    candidates: list[Candidate] = []
    tracks = 0
    for box in boxes(src, moov.payload, moov.end):
        if box.type == b"uuid" and _uuid(src, box) == CANON_UUID:
            for item in boxes(src, box.payload + 16, box.end):
                if item.type == b"CMT1" and orientation is None:
                    orientation, full_size = _cmt1(src, item)
                elif item.type == b"THMB":
                    candidates += _jpeg_after_header(src, item.payload, item.end, 8, "CR3 THMB")
        elif box.type == b"trak" and tracks < MAX_TRACKS:
            tracks += 1
            candidates += _jpeg_track(src, box, f"CR3 track {tracks}")
    return orientation, full_size, candidates


def _uuid(src: Source, box: Box) -> bytes:
    return src.read(box.payload, 16, "uuid") if box.end - box.payload >= 16 else b""


def _cmt1(src: Source, box: Box) -> tuple[int | None, tuple[int, int] | None]:
    """Orientation and (ImageWidth, ImageLength) from CMT1, the TIFF IFD0 of a CR3."""
    tiff, first = open_tiff(src, box.payload, box.end, "CMT1 box")
    ifd0 = tiff.ifd(first, "CMT1 IFD0")
    size = valid_size(tiff.first(ifd0, 0x0100), tiff.first(ifd0, 0x0101))
    return valid_orientation(tiff.first(ifd0, 0x0112)), size


def _prvw(src: Source, uuid: Box) -> list[Candidate]:
    """The PRVW box, 8 bytes into the preview uuid's data. Its own size is not trusted (in
    files rewritten by some tools it exceeds the uuid box): the uuid box bounds it."""
    at = uuid.payload + 16 + 8
    if uuid.end - at < 8 or src.read(at + 4, 4, "PRVW box type") != b"PRVW":
        return []
    return _jpeg_after_header(src, at + 8, uuid.end, 12, "CR3 PRVW")


def _jpeg_after_header(
    src: Source, payload: int, end: int, length_at: int, where: str
) -> list[Candidate]:
    """The JPEG after the 16-byte header of THMB and PRVW, its length the header's u32 at
    `length_at`, bounded by the box. Should a header ever be longer, the JPEG's SOI within the
    first 64 bytes marks its start and the box's end its end."""
    head = src.read(payload, min(64, end - payload), f"{where} header")
    if len(head) < 16:
        return []
    found = head.find(SOI, 16)
    if found <= 16:  # at 16 as documented, or nowhere: the verification will tell
        (stated,) = struct.unpack_from(">I", head, length_at)
        room = end - payload - 16
        return [Candidate(payload + 16, min(stated, room) if stated else room, where)]
    return [Candidate(payload + found, end - payload - found, where)]


def _jpeg_track(src: Source, trak: Box, where: str) -> list[Candidate]:
    """Offset and size of a JPEG track's first sample, from its stsz and co64 (or stco)."""
    table: Box | None = trak
    for kind in _SAMPLE_TABLE_PATH:
        table = _child(src, table, kind) if table is not None else None
    if table is None or not _holds_jpeg(src, table):
        return []
    size = offset = None
    for box in boxes(src, table.payload, table.end):
        if box.type == b"stsz" and box.end - box.payload >= 12:
            fixed, count = struct.unpack(">II", src.read(box.payload + 4, 8, "stsz"))
            if fixed:
                size = fixed
            elif count and box.end - box.payload >= 16:
                size = src.u32(box.payload + 12, ">", "stsz entry")
        elif box.type in (b"co64", b"stco") and box.end - box.payload >= 8:
            if src.u32(box.payload + 4, ">", "chunk count") == 0:
                continue
            wide = box.type == b"co64"
            if box.end - box.payload >= (16 if wide else 12):
                raw = src.read(box.payload + 8, 8 if wide else 4, "chunk offset")
                offset = int.from_bytes(raw, "big")
    if not size or not offset:
        return []
    return [Candidate(offset, size, where)]


def _holds_jpeg(src: Source, stbl: Box) -> bool:
    """Whether the track's sample entry is a CRAW with a JPEG box (the others hold CRX raw data
    or CTMD metadata)."""
    stsd = _child(src, stbl, b"stsd")
    if stsd is None:
        return False
    entry = next(boxes(src, stsd.payload + 8, stsd.end), None)  # after version, flags, count
    if entry is None or entry.type != b"CRAW":
        return False
    return any(b.type == b"JPEG" for b in boxes(src, entry.payload + CRAW_HEADER, entry.end))


def _child(src: Source, box: Box, kind: bytes) -> Box | None:
    return next((b for b in boxes(src, box.payload, box.end) if b.type == kind), None)


def _name(kind: bytes) -> str:
    return repr(kind.decode("latin-1"))
