from __future__ import annotations

import io
import struct

import pytest

from eyespyd.containers import read_raw
from eyespyd.errors import ContainerError
from tests.containerbuild import box, make_cr3
from tests.containers.helpers import CountingFile, at


def test_cr3_prvw_is_found_with_its_size(preview: bytes, thumb: bytes) -> None:
    data = make_cr3(preview, thumb, orientation=8)
    info = read_raw(io.BytesIO(data), "CR3")
    assert (info.format, info.orientation, info.full_size) == ("CR3", 8, (6000, 4000))
    assert [(p.where, p.width, p.height) for p in info.previews] == [
        ("CR3 PRVW", 1620, 1080),
        ("CR3 THMB", 160, 120),
    ]
    prvw, thmb = info.previews
    assert (prvw.offset, prvw.length) == (at(data, preview), len(preview))
    assert (thmb.offset, thmb.length) == (at(data, thumb), len(thumb))


def test_cr3_full_size_jpeg_of_track_1_is_found(preview: bytes, thumb: bytes, large: bytes) -> None:
    data = make_cr3(preview, thumb, full=large, full_size=(3000, 2000))
    info = read_raw(io.BytesIO(data), "CR3")
    assert info.full_size == (3000, 2000)
    assert [p.where for p in info.previews] == ["CR3 track 1", "CR3 PRVW", "CR3 THMB"]
    assert (info.previews[0].offset, info.previews[0].length) == (at(data, large), len(large))


def test_cr3_reads_stay_small_whatever_the_file_size(preview: bytes, thumb: bytes) -> None:
    small = CountingFile(make_cr3(preview, thumb, raw_bytes=1_000))
    big = CountingFile(make_cr3(preview, thumb, raw_bytes=3_000_000))
    read_raw(small)
    read_raw(big)
    assert big.bytes_read == small.bytes_read < 4096


def cr3_boxes(data: bytes) -> dict[bytes, int]:
    """Offset of each top-level box."""
    found, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        found[kind] = pos
        pos += size
    return found


def test_top_level_box_of_size_0_runs_to_the_end_of_the_file(preview: bytes, thumb: bytes) -> None:
    data = bytearray(make_cr3(preview, thumb))
    mdat = cr3_boxes(bytes(data))[b"mdat"]
    data[mdat : mdat + 16] = struct.pack(">I4s", 0, b"mdat") + b"\0" * 8
    info = read_raw(io.BytesIO(bytes(data)))
    assert [p.where for p in info.previews] == ["CR3 PRVW", "CR3 THMB"]


@pytest.mark.parametrize("where", ["PRVW", "track 1", "raw data"])
def test_cr3_truncated_after_its_moov_is_refused(
    preview: bytes, thumb: bytes, large: bytes, where: str
) -> None:
    data = make_cr3(preview, thumb, full=large)
    cut = {"PRVW": at(data, preview) + 100, "track 1": at(data, large) + 100}.get(where, -100)
    with pytest.raises(ContainerError, match="runs past the end of the file"):
        read_raw(io.BytesIO(data[:cut]))


def test_moov_bigger_than_the_file_is_refused(thumb: bytes) -> None:
    data = bytearray(make_cr3(thumb, thumb))
    struct.pack_into(">I", data, cr3_boxes(bytes(data))[b"moov"], len(data) * 2)
    with pytest.raises(ContainerError, match="'moov' at offset 24 runs past the end of the file"):
        read_raw(io.BytesIO(bytes(data)))


def test_huge_64_bit_box_size_is_refused(preview: bytes, thumb: bytes) -> None:
    data = bytearray(make_cr3(preview, thumb))
    struct.pack_into(">Q", data, cr3_boxes(bytes(data))[b"mdat"] + 8, 2**63)
    with pytest.raises(ContainerError, match=r"'mdat' .* runs past the end of the file"):
        read_raw(io.BytesIO(bytes(data)))


def test_only_the_jpeg_track_is_a_preview(preview: bytes, thumb: bytes) -> None:
    # Track 2 is raw data (a CMP1 sample entry) that happens to start like a JPEG.
    data = make_cr3(preview, thumb, full=None, raw_bytes=5000)
    raw_at = len(data) - 5000
    data = data[:raw_at] + thumb + data[raw_at + len(thumb) :]
    assert "CR3 track 2" not in [p.where for p in read_raw(io.BytesIO(data)).previews]


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (0, "size 0"),
        (3, "impossible size"),
        (7, "impossible size"),
        (0x7FFFFFF0, "past its parent"),
    ],
)
def test_impossible_box_sizes_inside_moov_are_refused(
    thumb: bytes, size: int, message: str
) -> None:
    data = bytearray(make_cr3(thumb, thumb))
    first_child = cr3_boxes(bytes(data))[b"moov"] + 8
    struct.pack_into(">I", data, first_child, size)
    with pytest.raises(ContainerError, match=message):
        read_raw(io.BytesIO(bytes(data)))


@pytest.mark.parametrize("largesize", [0, 8, 15])
def test_64_bit_box_size_below_its_header_is_refused(thumb: bytes, largesize: int) -> None:
    data = bytearray(make_cr3(thumb, thumb))
    first_child = cr3_boxes(bytes(data))[b"moov"] + 8
    struct.pack_into(">I", data, first_child, 1)
    struct.pack_into(">Q", data, first_child + 8, largesize)
    with pytest.raises(ContainerError, match="impossible size"):
        read_raw(io.BytesIO(bytes(data)))


def test_cr3_without_moov_is_refused() -> None:
    data = box(b"ftyp", b"crx \0\0\0\1crx isom") + box(b"free", bytes(100))
    with pytest.raises(ContainerError, match="no moov"):
        read_raw(io.BytesIO(data))


def test_prvw_box_claiming_more_than_its_uuid_is_bounded_by_the_uuid(
    preview: bytes, thumb: bytes
) -> None:
    data = bytearray(make_cr3(preview, thumb))
    prvw = data.find(b"PRVW") - 4
    struct.pack_into(">I", data, prvw, 0xFFFFFFF0)  # ExifTool's stripped samples look like this
    found = {p.where: p for p in read_raw(io.BytesIO(bytes(data))).previews}
    assert found["CR3 PRVW"].length == len(preview)
