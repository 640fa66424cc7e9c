"""The real RAW files of ExifTool's test set (image data stripped): the locator must find the
tags and boxes where those cameras keep their previews.

Their previews are placeholders ("<Dummy preview image data>"), not JPEGs, so read_raw leaves
them out. To check the locator found the right bytes, each test stamps a minimal JPEG header
(SOI and a SOF0 naming a size) over a placeholder and expects a preview there."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from eyespyd.containers import read_raw

# file, format, full size, placeholders with where they are kept; only RAF and RW2 embed real
# (8x8) JPEGs.
SAMPLES = {
    "CanonRaw.cr2": ("CR2", (3456, 2304), {
        b"<Dummy preview image data>": "IFD0 JPEG strips",
        b"<Dummy thumbnail image data>": "IFD1 JPEG",
    }),
    "CanonRaw.cr3": ("CR3", (6000, 4000), {
        b"<Dummy thumbnail image data>": "CR3 THMB",
        b"<Dummy preview image data>": "CR3 PRVW",
        b"<Dummy JpgFromRaw image data>": "CR3 track 1",
    }),
    "DNG.dng": ("DNG", (3456, 2304), {
        b"<Dummy preview image data>": "SubIFD1 JPEG strips",
        b"<Dummy JpgFromRaw image data>": "SubIFD2 JPEG strips",
    }),
    "Nikon.nef": ("NEF", (3040, 2014), {
        b"<Dummy JpgFromRaw image data>": "SubIFD0 JPEG",
        b"<Dummy preview image data>": "Nikon PreviewIFD",
    }),
    "Minolta.mrw": ("MRW", (3264, 2448), {b"<Dummy preview image data>": "Minolta PreviewImage"}),
    "PhaseOne.iiq": ("IIQ", (7320, 5484), {}),
    "FujiFilm.raf": ("RAF", (4256, 1424), {}),
    "Panasonic.rw2": ("RW2", (3648, 2736), {}),
}  # fmt: skip


def sof_only_jpeg(width: int, height: int, length: int) -> bytes:
    """SOI and a 3-component SOF0, padded to `length`: enough for the locator's check."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes(9)
    return (b"\xff\xd8" + sof).ljust(length, b"\0")


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_format_orientation_and_full_size(samples: Path, name: str) -> None:
    fmt, full_size, _ = SAMPLES[name]
    info = read_raw(io.BytesIO((samples / name).read_bytes()), name.rsplit(".")[-1].upper())
    assert (info.format, info.orientation, info.full_size) == (fmt, 1, full_size)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_placeholder_previews_are_left_out(samples: Path, name: str) -> None:
    previews = read_raw(io.BytesIO((samples / name).read_bytes())).previews
    real = {"FujiFilm.raf": [(148, "RAF header")], "Panasonic.rw2": [(1536, "IFD0 JpgFromRaw")]}
    assert [(p.offset, p.where) for p in previews] == real.get(name, [])
    assert all((p.width, p.height) == (8, 8) for p in previews)


@pytest.mark.parametrize("name", sorted(n for n, s in SAMPLES.items() if s[2]))
def test_sample_previews_are_located_in_the_cameras_own_places(samples: Path, name: str) -> None:
    data = bytearray((samples / name).read_bytes())
    expected = {}
    for i, (placeholder, where) in enumerate(SAMPLES[name][2].items()):
        offset = data.find(placeholder)
        assert offset > 0
        width = 100 + i  # tells the previews apart
        data[offset : offset + len(placeholder)] = sof_only_jpeg(width, 80, len(placeholder))
        expected[where] = (offset, len(placeholder), width)
    found = {p.where: (p.offset, p.length, p.width) for p in read_raw(io.BytesIO(data)).previews}
    assert found == expected
