"""TIFF structure as TIFF-based RAWs, EXIF and MPF use it: a header, IFDs and their entries.

Entries are decoded lazily: reading an IFD reads its entry table only (12 bytes a tag), and a
value stored elsewhere is read when asked for, so a 60-tag IFD costs one small read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from eyespyd.containers.source import Source
from eyespyd.errors import ContainerError

# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED,
# SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD). Entries of other types are ignored.
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
# struct codes of the numeric types read here: integers, and rationals as two integers.
_CODES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I", 5: "II", 10: "ii"}

# Real IFDs hold tens of entries (a DNG's IFD0 about 60); thousands means a corrupt count.
MAX_ENTRIES = 1024

ASCII = 2
UNDEFINED = 7


@dataclass(frozen=True, slots=True)
class Entry:
    tag: int
    type: int
    count: int
    at: int  # absolute offset of the value: inside the entry when it fits in 4 bytes

    @property
    def nbytes(self) -> int:
        return TYPE_SIZES[self.type] * self.count


@dataclass(frozen=True, slots=True)
class Ifd:
    name: str
    offset: int  # absolute
    entries: dict[int, Entry]
    next: int  # offset of the next IFD in the chain, relative to the TIFF base; 0 ends it


class Tiff:
    """One TIFF offset space: a byte order, the base its offsets count from, and where it ends
    (the file, or the APP1 segment / box / maker note that holds it)."""

    def __init__(self, src: Source, base: int, order: str, end: int, name: str) -> None:
        self.src = src
        self.base = base
        self.order = order  # "<" or ">", for struct
        self.end = min(end, src.size)
        self.name = name

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Bytes at an absolute offset, refusing any that lie outside this TIFF."""
        if offset < self.base or offset + length > self.end:
            raise ContainerError(f"{what} at offset {offset} lies outside the {self.name}")
        return self.src.read(offset, length, what)

    def fits(self, offset: int, length: int) -> bool:
        return self.base <= offset and offset + length <= self.end

    def ifd(self, offset: int, name: str) -> Ifd:
        """The IFD at `offset` (relative to the base)."""
        at = self.base + offset
        if not self.fits(at, 2):
            raise ContainerError(f"{name} offset {offset} lies outside the {self.name}")
        (count,) = struct.unpack(self.order + "H", self.read(at, 2, f"{name} entry count"))
        if count > MAX_ENTRIES:
            raise ContainerError(f"{name} at offset {at} claims {count} entries")
        table_end = at + 2 + 12 * count
        if not self.fits(at, table_end - at):
            raise ContainerError(f"truncated TIFF IFD {name} at offset {at}")
        # The next-IFD link is missing at the very end of some maker notes: treat it as 0.
        with_link = self.fits(at, table_end + 4 - at)
        table = self.read(at + 2, 12 * count + (4 if with_link else 0), f"{name} entries")
        entries: dict[int, Entry] = {}
        for i in range(count):
            tag, kind, n, value = struct.unpack_from(self.order + "HHI4s", table, 12 * i)
            size = TYPE_SIZES.get(kind)
            if size is None or tag in entries:
                continue
            if size * n <= 4:
                value_at = at + 2 + 12 * i + 8
            else:
                value_at = self.base + struct.unpack(self.order + "I", value)[0]
            entries[tag] = Entry(tag, kind, n, value_at)
        link = struct.unpack_from(self.order + "I", table, 12 * count)[0] if with_link else 0
        return Ifd(name, at, entries, link)

    def first(self, ifd: Ifd, tag: int) -> int | None:
        """The first value of a numeric tag (rationals rounded); None when absent or unreadable.

        For single-valued tags (Orientation, Compression, sizes, offsets): a silly count or a
        pointer off the end makes the value unknown, not the file unreadable.
        """
        entry = ifd.entries.get(tag)
        code = _CODES.get(entry.type) if entry is not None and entry.count else None
        if entry is None or code is None or not self.fits(entry.at, struct.calcsize(code)):
            return None
        raw = self.src.read(entry.at, struct.calcsize(code), f"tag 0x{tag:04X} in {ifd.name}")
        return _numbers(struct.unpack(self.order + code, raw), len(code))[0]

    def ints(self, ifd: Ifd, tag: int, limit: int) -> tuple[int, ...]:
        """Every value of an integer or rational tag (rationals rounded; empty when absent);
        ContainerError when there are more than `limit` or they lie outside this TIFF."""
        entry = ifd.entries.get(tag)
        if entry is None:
            return ()
        what = f"tag 0x{tag:04X} in {ifd.name}"
        if entry.count > limit:
            raise ContainerError(f"{what} claims {entry.count} values")
        code = _CODES.get(entry.type)
        if code is None:
            raise ContainerError(f"{what} has type {entry.type}, not a number")
        data = self.read(entry.at, entry.nbytes, what)
        return _numbers(struct.unpack(self.order + code * entry.count, data), len(code))

    def text(self, ifd: Ifd, tag: int, limit: int = 64) -> str:
        """An ASCII tag's text (at most `limit` bytes), or "" when absent or unreadable."""
        entry = ifd.entries.get(tag)
        if entry is None or entry.type != ASCII:
            return ""
        length = min(entry.count, limit)
        if not self.fits(entry.at, length):
            return ""
        raw = self.src.read(entry.at, length, f"tag 0x{tag:04X} in {ifd.name}")
        return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _numbers(values: tuple[int, ...], per_value: int) -> tuple[int, ...]:
    """Integers as they are; rationals (numerator, denominator pairs) rounded, 0 for x/0."""
    if per_value == 1:
        return values
    pairs = zip(values[::2], values[1::2], strict=True)
    return tuple(round(n / d) if d else 0 for n, d in pairs)


def open_tiff(
    src: Source, base: int, end: int, name: str, magics: tuple[int, ...] = (42,)
) -> tuple[Tiff, int]:
    """The TIFF whose header is at `base`, and its first IFD's offset.

    `magics` are the accepted values of the 16-bit word after the byte order: 42 for TIFF, and
    the RAW makers' own (0x4F52 "RO" for ORF, 0x55 for RW2).
    """
    if not src.has(base, 8) or base + 8 > end:
        raise ContainerError(f"truncated {name} header at offset {base}")
    head = src.read(base, 8, f"{name} header")
    orders = {b"II": "<", b"MM": ">"}
    order = orders.get(head[:2])
    if order is None:
        raise ContainerError(f"not a TIFF header at offset {base}")
    magic, first = struct.unpack(order + "HI", head[2:])
    if magic not in magics:
        raise ContainerError(f"not a TIFF header at offset {base} (magic {magic:#x})")
    return Tiff(src, base, order, end, name), first
