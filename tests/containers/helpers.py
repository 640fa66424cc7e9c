"""Small tools for the container tests: open bytes as a file, count what a parser reads, and
edit a built file's TIFF entries to make it hostile."""

from __future__ import annotations

import io
import struct

from eyespyd.containers import Preview


class CountingFile(io.BytesIO):
    """A file in memory that counts the bytes read from it and the reads made."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self.reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        self.reads += 1
        return data


def at(data: bytes, jpeg: bytes) -> int:
    """Where `jpeg` sits in `data` (it must be there once)."""
    offset = data.find(jpeg)
    assert offset >= 0 and data.find(jpeg, offset + 1) < 0
    return offset


def sizes(previews: tuple[Preview, ...]) -> list[tuple[int, int]]:
    return [(p.width, p.height) for p in previews]


class TiffEdit:
    """Finds IFDs and entries in a little- or big-endian TIFF held in a bytearray, to patch them."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.order = "<" if data[:2] == b"II" else ">"

    def u32(self, offset: int) -> int:
        value: int = struct.unpack_from(self.order + "I", self.data, offset)[0]
        return value

    def put32(self, offset: int, value: int) -> None:
        struct.pack_into(self.order + "I", self.data, offset, value)

    def ifd_offsets(self) -> list[int]:
        """IFD0 and the IFDs chained after it."""
        found, offset = [], self.u32(4)
        while offset and offset not in found:
            found.append(offset)
            offset = self.next_link_at(offset)
            offset = self.u32(offset)
        return found

    def count(self, ifd: int) -> int:
        value: int = struct.unpack_from(self.order + "H", self.data, ifd)[0]
        return value

    def next_link_at(self, ifd: int) -> int:
        return ifd + 2 + 12 * self.count(ifd)

    def entry_at(self, ifd: int, tag: int) -> int:
        for i in range(self.count(ifd)):
            pos = ifd + 2 + 12 * i
            if struct.unpack_from(self.order + "H", self.data, pos)[0] == tag:
                return pos
        raise KeyError(hex(tag))

    def set_count(self, ifd: int, tag: int, count: int) -> None:
        self.put32(self.entry_at(ifd, tag) + 4, count)

    def set_value(self, ifd: int, tag: int, value: int) -> None:
        self.put32(self.entry_at(ifd, tag) + 8, value)

    def value(self, ifd: int, tag: int) -> int:
        return self.u32(self.entry_at(ifd, tag) + 8)

    def bytes(self) -> bytes:
        return bytes(self.data)
