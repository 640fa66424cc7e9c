"""JPEG markers up to the start of scan: the SOF size, EXIF orientation and MPF previews.

Only marker segments are read, each with a small read; a segment's payload is skipped by seeking
unless it is one we need (SOF, the EXIF APP1's IFD0, the MPF APP2's index). The entropy-coded
data after SOS is never touched, so the cost does not grow with the image.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from eyespyd.containers.results import Candidate, JpegInfo, Preview, valid_orientation
from eyespyd.containers.source import Source
from eyespyd.containers.tiff import open_tiff
from eyespyd.errors import ContainerError

SOI = b"\xff\xd8"
SOS = 0xDA
EOI = 0xD9
APP1 = 0xE1
APP2 = 0xE2
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# What libjpeg-turbo (so Pillow) decodes: baseline, extended and progressive Huffman DCT. SOF3 is
# lossless JPEG, the way CR2 and DNG store raw sensor data: it starts with FFD8 too.
DCT_SOF = frozenset({0xC0, 0xC1, 0xC2})
PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0..7 carry no length

# Camera JPEGs have about ten segments before SOS; thousands means garbage.
MAX_SEGMENTS = 512
# An MPF index lists a handful of images (primary, one or two previews, a few for panoramas).
MAX_MPF_IMAGES = 64


@dataclass(frozen=True, slots=True)
class Segment:
    marker: int
    at: int  # absolute offset of the payload (after the 2-byte length)
    length: int  # payload length


@dataclass(frozen=True, slots=True)
class Sof:
    marker: int
    width: int
    height: int


def read_jpeg(f: BinaryIO, base: int = 0) -> JpegInfo:
    """The header of the JPEG that starts at `base` in `f`: main size, orientation, MPF previews.

    Reads marker segments up to SOS only. ContainerError when there is no SOI at `base`, the
    markers are corrupt or truncated, or no SOF comes before the image data. A malformed EXIF
    or MPF segment does not make the JPEG unreadable: it gives orientation 1 or no previews.
    """
    return scan_jpeg(Source(f), base)


def scan_jpeg(src: Source, start: int) -> JpegInfo:
    sof: Sof | None = None
    orientation: int | None = None
    previews: tuple[Preview, ...] = ()
    exif_seen = mpf_seen = False
    for seg in segments(src, start, src.size):
        if seg.marker in SOF_MARKERS and sof is None:
            sof = _sof(src, seg)
        elif seg.marker == APP1 and not exif_seen and _starts(src, seg, b"Exif\0\0"):
            exif_seen = True
            orientation = _exif_orientation(src, seg)
        elif seg.marker == APP2 and not mpf_seen and _starts(src, seg, b"MPF\0"):
            mpf_seen = True
            previews = _mpf_previews(src, seg)
    if sof is None:
        raise ContainerError(f"JPEG at offset {start} has no SOF marker before its image data")
    return JpegInfo(
        width=sof.width,
        height=sof.height,
        orientation=orientation or 1,
        previews=previews,
        progressive=sof.marker in PROGRESSIVE_SOF,
    )


def segments(src: Source, start: int, end: int) -> Iterator[Segment]:
    """The marker segments of the JPEG at `start`, up to and including SOS; stops at EOI."""
    if end - start < 2 or src.read(start, 2, "JPEG SOI marker") != SOI:
        raise ContainerError(f"not a JPEG at offset {start}: no SOI marker")
    pos = start + 2
    for _ in range(MAX_SEGMENTS):
        if pos + 2 > end:
            raise ContainerError(f"truncated JPEG: ends at offset {pos} before the image data")
        head = src.read(pos, min(4, end - pos), "JPEG marker")
        if head[0] != 0xFF:
            raise ContainerError(f"corrupt JPEG: no marker at offset {pos}")
        marker = head[1]
        if marker == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == EOI:
            return
        if len(head) < 4:
            raise ContainerError(f"truncated JPEG marker at offset {pos}")
        (length,) = struct.unpack(">H", head[2:4])
        if length < 2 or pos + 2 + length > end:
            raise ContainerError(f"truncated JPEG segment 0x{marker:02X} at offset {pos}")
        yield Segment(marker, pos + 4, length - 2)
        if marker == SOS:
            return
        pos += 2 + length
    raise ContainerError(f"more than {MAX_SEGMENTS} JPEG segments before the image data")


def read_sof(src: Source, start: int, end: int) -> Sof:
    """The first SOF of the JPEG in [start, end); ContainerError if there is none before SOS."""
    for seg in segments(src, start, end):
        if seg.marker in SOF_MARKERS:
            return _sof(src, seg)
    raise ContainerError(f"JPEG at offset {start} has no SOF marker before its image data")


def verified(src: Source, candidates: Iterable[Candidate]) -> tuple[Preview, ...]:
    """The candidates that are decodable JPEGs (whole inside the file, SOI, a DCT SOF with a
    non-zero size), each offset once, largest first."""
    found: dict[int, Preview] = {}
    tried: set[int] = set()
    for c in candidates:
        if c.offset in tried or c.length < 4 or not src.has(c.offset, c.length):
            continue
        tried.add(c.offset)
        try:
            sof = read_sof(src, c.offset, c.offset + c.length)
        except ContainerError:
            continue  # a placeholder, raw data, or a pointer to garbage: not a preview
        if sof.marker in DCT_SOF and sof.width and sof.height:
            found[c.offset] = Preview(c.offset, c.length, sof.width, sof.height, c.where)
    return tuple(sorted(found.values(), key=lambda p: (p.width * p.height, p.length), reverse=True))


def _sof(src: Source, seg: Segment) -> Sof:
    if seg.length < 5:
        raise ContainerError(f"truncated JPEG SOF at offset {seg.at}")
    _precision, height, width = struct.unpack(">BHH", src.read(seg.at, 5, "JPEG SOF"))
    return Sof(seg.marker, width, height)


def _starts(src: Source, seg: Segment, signature: bytes) -> bool:
    if seg.length < len(signature):
        return False
    return src.read(seg.at, len(signature), "JPEG APP segment") == signature


def _exif_orientation(src: Source, seg: Segment) -> int | None:
    try:
        tiff, first = open_tiff(src, seg.at + 6, seg.at + seg.length, "EXIF segment")
        return valid_orientation(tiff.first(tiff.ifd(first, "EXIF IFD0"), 0x0112))
    except ContainerError:
        return None  # the picture is fine without it; treated as upright, as viewers do


def _mpf_previews(src: Source, seg: Segment) -> tuple[Preview, ...]:
    """The images an MPF index (CIPA DC-007) lists besides the first, which is this JPEG.

    Each MP entry is 16 bytes: attribute, size, offset (from the MPF TIFF header; 0 for the
    first image), two dependent-image entry numbers.
    """
    base = seg.at + 4
    try:
        tiff, first = open_tiff(src, base, seg.at + seg.length, "MPF segment")
        index = tiff.ifd(first, "MP Index IFD")
        entry = index.entries.get(0xB002)
        if entry is None:
            return ()
        count = min(entry.nbytes // 16, MAX_MPF_IMAGES)
        table = tiff.read(entry.at, 16 * count, "MP entries")
    except ContainerError:
        return ()  # the main image is still there to decode
    candidates = []
    for i in range(1, count):
        _attribute, size, offset, _dep1, _dep2 = struct.unpack_from(
            tiff.order + "IIIHH", table, 16 * i
        )
        if offset:
            candidates.append(Candidate(base + offset, size, f"MPF image {i + 1}"))
    return verified(src, candidates)
