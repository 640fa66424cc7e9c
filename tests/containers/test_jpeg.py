from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from eyespyd.containers import read_jpeg
from eyespyd.errors import ContainerError
from tests.containerbuild import make_mpf_jpeg
from tests.containers.conftest import make_jpeg
from tests.containers.helpers import CountingFile, at


def test_size_orientation_and_baseline_come_from_the_header() -> None:
    info = read_jpeg(io.BytesIO(make_jpeg(640, 480, orientation=6)))
    assert (info.width, info.height, info.orientation) == (640, 480, 6)
    assert not info.progressive
    assert info.previews == ()


def test_progressive_jpeg_says_so() -> None:
    assert read_jpeg(io.BytesIO(make_jpeg(64, 48, progressive=True))).progressive


@pytest.mark.parametrize("orientation", [None, 0, 9, 65535])
def test_absent_or_invalid_orientation_is_1(orientation: int | None) -> None:
    assert read_jpeg(io.BytesIO(make_jpeg(64, 48, orientation=orientation))).orientation == 1


@pytest.mark.parametrize("big_endian", [True, False])
def test_mpf_preview_is_found_with_its_offset_and_size(preview: bytes, big_endian: bool) -> None:
    main = make_jpeg(2400, 1600, orientation=8)
    data = make_mpf_jpeg(main, preview, big_endian=big_endian)
    info = read_jpeg(io.BytesIO(data))
    assert (info.width, info.height, info.orientation) == (2400, 1600, 8)
    [found] = info.previews
    assert (found.offset, found.length) == (at(data, preview), len(preview))
    assert (found.width, found.height, found.where) == (1620, 1080, "MPF image 2")
    assert found.long_side == 1620
    with Image.open(io.BytesIO(data[found.offset : found.offset + found.length])) as image:
        assert image.size == (1620, 1080)


def test_mpf_keeps_the_main_images_exif(preview: bytes) -> None:
    data = make_mpf_jpeg(make_jpeg(800, 600, orientation=3), preview)
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif()[0x0112] == 3
        assert image.size == (800, 600)


def test_jpeg_embedded_at_an_offset_is_read_from_base(preview: bytes) -> None:
    inner = make_mpf_jpeg(make_jpeg(800, 600, orientation=5), preview)
    data = b"container header" + bytes(1000) + inner
    info = read_jpeg(io.BytesIO(data), base=1016)
    assert (info.width, info.orientation) == (800, 5)
    assert info.previews[0].offset == at(data, preview)


def test_only_the_header_is_read() -> None:
    data = make_jpeg(3000, 2000)
    f = CountingFile(data)
    read_jpeg(f)
    assert f.bytes_read < 1024 < len(data) // 100


def test_mpf_entry_pointing_past_the_end_is_left_out(preview: bytes) -> None:
    data = make_mpf_jpeg(make_jpeg(800, 600), preview)
    info = read_jpeg(io.BytesIO(data[: len(data) - 10]))
    assert info.width == 800
    assert info.previews == ()


def test_corrupt_mpf_index_gives_no_previews_but_the_main_image(preview: bytes) -> None:
    data = bytearray(make_mpf_jpeg(make_jpeg(800, 600), preview))
    mpf = data.find(b"MPF\0")
    data[mpf + 4 : mpf + 8] = b"XX*\0"  # not a TIFF header any more
    info = read_jpeg(io.BytesIO(bytes(data)))
    assert (info.width, info.previews) == (800, ())


def test_corrupt_exif_gives_orientation_1() -> None:
    data = bytearray(make_jpeg(64, 48, orientation=6))
    exif = data.find(b"Exif\0\0")
    struct.pack_into("<I", data, exif + 6 + 4, 0xFFFFFF)  # IFD0 offset far outside the segment
    assert read_jpeg(io.BytesIO(bytes(data))).orientation == 1


def test_jpeg_without_sof_is_refused() -> None:
    data = bytes.fromhex("ffd8") + bytes.fromhex("ffdb0043") + bytes(65) + bytes.fromhex("ffd9")
    with pytest.raises(ContainerError, match="no SOF"):
        read_jpeg(io.BytesIO(data))


def test_jpeg_whose_scan_starts_before_any_sof_is_refused() -> None:
    data = bytes.fromhex("ffd8ffda000c03010002110311003f00") + bytes(100)
    with pytest.raises(ContainerError, match="no SOF"):
        read_jpeg(io.BytesIO(data))


@pytest.mark.parametrize("data", [b"", b"\xff", b"\x89PNG\r\n\x1a\n" + bytes(100), bytes(500)])
def test_not_a_jpeg_is_refused(data: bytes) -> None:
    with pytest.raises(ContainerError):
        read_jpeg(io.BytesIO(data))


@pytest.mark.parametrize("cut", [3, 4, 7, 20, 100, 200, 400])
def test_jpeg_truncated_before_its_scan_is_refused(cut: int) -> None:
    data = make_jpeg(64, 48, orientation=6)
    sos = data.find(b"\xff\xda")
    assert cut < sos
    with pytest.raises(ContainerError):
        read_jpeg(io.BytesIO(data[:cut]))


def test_jpeg_truncated_in_its_scan_still_has_a_header() -> None:
    data = make_jpeg(64, 48)
    assert read_jpeg(io.BytesIO(data[: data.find(b"\xff\xda") + 20])).width == 64


def test_fill_bytes_and_restart_markers_between_segments_are_skipped() -> None:
    data = make_jpeg(64, 48)
    sof = data.find(b"\xff\xc0")
    padded = data[:sof] + b"\xff\xff\xff" + b"\xff\xd0" + data[sof:]
    assert read_jpeg(io.BytesIO(padded)).height == 48


def test_endless_tiny_segments_are_refused() -> None:
    data = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 5000 + make_jpeg(8, 8)[2:]
    with pytest.raises(ContainerError, match="segments"):
        read_jpeg(io.BytesIO(data))
