"""Bounded reads from a seekable file: every parser reads through here.

A container is a map of offsets; a hostile or broken one can point anywhere or claim anything.
Reading through one object keeps three promises in one place: no read past the end of the file,
no exception but ContainerError, and no more than a fixed budget of bytes read for metadata, so
a RAW of any size costs the same few small reads.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from eyespyd.errors import ContainerError

# Metadata of real files is a few KB to a few tens of KB (IFDs, a CR3 moov, a JPEG's APP1);
# anything near this means the structure is lying about its sizes.
READ_BUDGET = 256 * 1024


class Source:
    """A seekable binary file, its size, and a budget of bytes that may still be read."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._left = READ_BUDGET
        try:
            self.size = f.seek(0, 2)
        except (OSError, ValueError) as exc:
            raise ContainerError(f"cannot seek in the file: {exc}") from exc

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly `length` bytes at `offset`, or ContainerError naming `what` was being read."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ContainerError(
                f"{what} at offset {offset} runs past the end of the file ({self.size} bytes)"
            )
        if length > self._left:
            raise ContainerError(f"metadata larger than {READ_BUDGET // 1024} KiB at {what}")
        self._left -= length
        try:
            self._f.seek(offset)
            data = self._f.read(length)
        except (OSError, ValueError) as exc:
            raise ContainerError(f"cannot read {what} at offset {offset}: {exc}") from exc
        if len(data) != length:  # the file shrank under us
            raise ContainerError(f"truncated {what} at offset {offset}")
        return data

    def has(self, offset: int, length: int) -> bool:
        """Whether `length` bytes at `offset` lie inside the file."""
        return offset >= 0 and length >= 0 and offset + length <= self.size

    def u32(self, offset: int, order: str, what: str) -> int:
        value: int = struct.unpack(order + "I", self.read(offset, 4, what))[0]
        return value
