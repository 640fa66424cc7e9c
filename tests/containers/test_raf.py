from __future__ import annotations

import io
import struct

import pytest

from eyespyd.containers import read_raw
from eyespyd.errors import ContainerError
from tests.containerbuild import make_raf
from tests.containers.conftest import make_jpeg


def test_raf_header_jpeg_is_found_with_its_own_orientation() -> None:
    jpeg = make_jpeg(1920, 1280, orientation=6)
    data = make_raf(jpeg, full_size=(6240, 4160))
    info = read_raw(io.BytesIO(data), "RAF")
    assert (info.format, info.orientation, info.full_size) == ("RAF", 6, (6240, 4160))
    [found] = info.previews
    assert (found.offset, found.length, found.where) == (148, len(jpeg), "RAF header")
    assert (found.width, found.height) == (1920, 1280)


def test_raf_truncated_inside_its_jpeg_is_refused() -> None:
    data = make_raf(make_jpeg(320, 240))
    with pytest.raises(ContainerError, match="truncated: RAF header"):
        read_raw(io.BytesIO(data[:1000]))


def test_raf_whose_jpeg_is_not_a_jpeg_has_no_preview_and_orientation_1() -> None:
    data = bytearray(make_raf(make_jpeg(320, 240, orientation=6)))
    data[148:150] = b"\0\0"
    info = read_raw(io.BytesIO(bytes(data)))
    assert (info.previews, info.orientation) == ((), 1)


def test_raf_with_a_broken_directory_has_no_full_size() -> None:
    data = bytearray(make_raf(make_jpeg(320, 240)))
    struct.pack_into(">I", data, 92, len(data) - 2)  # the directory offset, 2 bytes from the end
    info = read_raw(io.BytesIO(bytes(data)))
    assert info.full_size is None and len(info.previews) == 1


@pytest.mark.parametrize("cut", [15, 16, 60, 90])
def test_truncated_raf_header_is_refused(cut: int) -> None:
    with pytest.raises(ContainerError):
        read_raw(io.BytesIO(make_raf(make_jpeg(64, 48))[:cut]))
