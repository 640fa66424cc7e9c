"""Malformed and hostile input: only ContainerError, never a hang, never a big read."""

from __future__ import annotations

import contextlib
import io
import random
import time

import pytest
from PIL import Image

from eyespyd.containers import RawInfo, read_jpeg, read_raw
from eyespyd.containers.source import READ_BUDGET
from eyespyd.errors import ContainerError
from tests.containerbuild import make_cr3, make_mpf_jpeg, make_raf, make_tiff_raw
from tests.containers.conftest import make_jpeg
from tests.containers.helpers import CountingFile, TiffEdit

JPEG_OFFSET, JPEG_LENGTH, STRIP_BYTE_COUNTS, SUB_IFDS = 0x0201, 0x0202, 0x0117, 0x014A


@pytest.fixture(scope="module")
def small() -> bytes:
    return make_jpeg(64, 48, orientation=6)


def test_empty_file_is_refused() -> None:
    with pytest.raises(ContainerError, match="empty"):
        read_raw(io.BytesIO(b""))


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_refused(seed: int) -> None:
    data = random.Random(seed).randbytes(random.Random(seed).randrange(1, 5000))
    with pytest.raises(ContainerError):
        read_raw(io.BytesIO(data))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a_picture_that_is_not_a_raw_is_refused_by_name(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, fmt)
    with pytest.raises(ContainerError, match=f"the content is {fmt}"):
        read_raw(io.BytesIO(buffer.getvalue()), "CR2")


@pytest.mark.parametrize("make", ["nef", "cr2", "dng", "cr3", "raf", "orf", "rw2"])
@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.2, 0.5, 0.9, 0.999])
def test_truncated_raws_are_refused_or_keep_only_whole_previews(
    make: str, fraction: float, small: bytes
) -> None:
    data = built(make, small)
    cut = data[: max(1, int(len(data) * fraction))]
    try:
        info = read_raw(io.BytesIO(cut))
    except ContainerError:
        return
    assert all(p.offset + p.length <= len(cut) for p in info.previews)


def test_ifd_pointing_to_itself_ends_the_chain(small: bytes, thumb: bytes) -> None:
    edit = TiffEdit(make_tiff_raw("PEF", [small, thumb]))  # IFD0 raw, IFD1 small, IFD2 thumb
    _, ifd1, _ = edit.ifd_offsets()
    edit.put32(edit.next_link_at(ifd1), ifd1)
    info = within_a_moment(edit.bytes())
    assert [p.where for p in info.previews] == ["IFD1 JPEG"]


def test_ifd_chain_looping_back_to_ifd0_ends(small: bytes) -> None:
    edit = TiffEdit(make_tiff_raw("ARW", [small]))
    [ifd0] = edit.ifd_offsets()
    edit.put32(edit.next_link_at(ifd0), ifd0)
    assert len(within_a_moment(edit.bytes()).previews) == 1


def test_sub_ifd_pointing_back_to_ifd0_is_not_read_twice(small: bytes) -> None:
    edit = TiffEdit(make_tiff_raw("NEF", [small]))
    [ifd0] = edit.ifd_offsets()
    sub_ifds = edit.value(ifd0, SUB_IFDS)  # two offsets, stored elsewhere
    edit.put32(sub_ifds + 4, ifd0)
    assert len(within_a_moment(edit.bytes()).previews) == 1


def test_ifd_links_to_thousands_of_ifds_are_refused(small: bytes) -> None:
    # IFD0 followed by 5000 empty IFDs, each linking to the next.
    edit = TiffEdit(make_tiff_raw("ARW", [small]))
    [ifd0] = edit.ifd_offsets()
    chain_at = len(edit.data)
    edit.put32(edit.next_link_at(ifd0), chain_at)
    for i in range(5000):
        edit.data += b"\0\0" + (chain_at + 6 * (i + 1)).to_bytes(4, "little")
    with pytest.raises(ContainerError, match="more than 64 IFDs"):
        within_a_moment(edit.bytes())


def test_count_of_2_to_the_32_on_a_preview_strip_drops_that_preview(
    small: bytes, thumb: bytes
) -> None:
    edit = TiffEdit(make_tiff_raw("CR2", [thumb, small]))
    ifd0 = edit.ifd_offsets()[0]
    edit.set_count(ifd0, STRIP_BYTE_COUNTS, 2**32 - 1)
    assert [p.where for p in within_a_moment(edit.bytes()).previews] == ["IFD1 JPEG strips"]


def test_count_of_2_to_the_32_on_sub_ifds_is_refused(small: bytes) -> None:
    edit = TiffEdit(make_tiff_raw("NEF", [small]))
    edit.set_count(edit.ifd_offsets()[0], SUB_IFDS, 2**32 - 1)
    with pytest.raises(ContainerError, match="claims 4294967295 values"):
        within_a_moment(edit.bytes())


def test_ifd_claiming_65535_entries_is_refused(small: bytes) -> None:
    edit = TiffEdit(make_tiff_raw("ARW", [small]))
    edit.data[8:10] = b"\xff\xff"
    with pytest.raises(ContainerError, match="claims 65535 entries"):
        read_raw(io.BytesIO(edit.bytes()))


@pytest.mark.parametrize("offset", [2**32 - 1, 10**6])
def test_ifd0_offset_past_the_end_is_refused(small: bytes, offset: int) -> None:
    edit = TiffEdit(make_tiff_raw("ARW", [small]))
    edit.put32(4, offset)
    with pytest.raises(ContainerError, match="outside the TIFF"):
        read_raw(io.BytesIO(edit.bytes()))


def test_sub_ifd_offset_past_the_end_is_refused(small: bytes) -> None:
    edit = TiffEdit(make_tiff_raw("NEF", [small]))
    sub_ifds = edit.value(edit.ifd_offsets()[0], SUB_IFDS)
    edit.put32(sub_ifds, 2**32 - 16)
    with pytest.raises(ContainerError, match="SubIFD0 offset"):
        read_raw(io.BytesIO(edit.bytes()))


@pytest.mark.parametrize(("tag", "value"), [(JPEG_OFFSET, 2**32 - 1), (JPEG_LENGTH, 2**32 - 1)])
def test_preview_pointer_past_the_end_is_refused_as_truncation(
    small: bytes, tag: int, value: int
) -> None:
    edit = TiffEdit(make_tiff_raw("ARW", [small]))
    edit.set_value(edit.ifd_offsets()[0], tag, value)
    with pytest.raises(ContainerError, match="truncated: IFD0 JPEG"):
        read_raw(io.BytesIO(edit.bytes()))


def test_maker_note_preview_pointer_past_the_end_is_only_left_out(
    small: bytes, thumb: bytes
) -> None:
    data = bytearray(make_tiff_raw("PEF", [small, thumb], layout="makernote"))
    note = data.find(b"AOC\0MM")
    start = data.find(b"\x00\x04\x00\x04\x00\x00\x00\x01", note)  # tag 4, LONG, count 1
    data[start + 8 : start + 12] = b"\xff\xff\xff\x00"
    assert [p.where for p in read_raw(io.BytesIO(bytes(data))).previews] == ["IFD1 JPEG"]


@pytest.mark.parametrize("fmt", ["NEF", "CR2", "DNG", "ARW", "PEF", "ORF"])
def test_raw_cut_inside_a_preview_is_refused_as_truncated(fmt: str, small: bytes) -> None:
    data = make_tiff_raw(fmt, [small, make_jpeg(320, 240)])
    with pytest.raises(ContainerError, match="truncated"):
        read_raw(io.BytesIO(data[: data.find(small) + 100]))


@pytest.mark.parametrize("fmt", ["NEF", "ARW", "PEF", "ORF", "RW2"])
def test_raw_cut_in_its_raw_data_keeps_every_preview(fmt: str, small: bytes) -> None:
    # Truncation shows where the container points at JPEG data; this raw data is not JPEG.
    data = make_tiff_raw(fmt, [small])
    assert len(read_raw(io.BytesIO(data[:-1000])).previews) == 1


@pytest.mark.parametrize("fmt", ["CR2", "DNG"])
def test_raw_cut_in_its_lossless_jpeg_raw_data_is_refused_as_truncated(
    fmt: str, small: bytes
) -> None:
    data = make_tiff_raw(fmt, [small])
    with pytest.raises(ContainerError, match="truncated"):
        read_raw(io.BytesIO(data[:-1000]))


def test_truncated_ifd_is_refused(small: bytes) -> None:
    data = make_tiff_raw("ARW", [small])
    with pytest.raises(ContainerError, match="truncated TIFF IFD"):
        read_raw(io.BytesIO(data[:40]))


def test_reads_never_exceed_the_budget_on_hostile_files(small: bytes) -> None:
    for data in mutations(built("nef", small), 50, seed=3):
        f = CountingFile(data)
        with contextlib.suppress(ContainerError):
            read_raw(f)
        assert f.bytes_read <= READ_BUDGET


@pytest.mark.parametrize("make", ["nef", "cr2", "dng", "cr3", "raf", "orf", "pef", "rw2", "arw"])
def test_random_mutations_give_container_error_or_sound_results(make: str, small: bytes) -> None:
    original = built(make, small)
    for data in mutations(original, 300, seed=sum(map(ord, make))):
        try:
            info = read_raw(io.BytesIO(data))
        except ContainerError:
            continue
        assert isinstance(info, RawInfo)
        assert all(p.offset >= 0 and p.offset + p.length <= len(data) for p in info.previews)
        assert 1 <= info.orientation <= 8


def test_random_mutations_of_a_camera_jpeg_give_container_error_or_a_header(small: bytes) -> None:
    original = make_mpf_jpeg(make_jpeg(320, 240, orientation=6), small)
    for data in mutations(original, 300, seed=11, near_start=800):
        try:
            info = read_jpeg(io.BytesIO(data))
        except ContainerError:
            continue
        assert 1 <= info.orientation <= 8


# helpers


def built(make: str, jpeg: bytes) -> bytes:
    thumb = make_jpeg(32, 24)
    if make == "cr3":
        return make_cr3(jpeg, thumb, 6, full=jpeg[:-2] + b"\0\xff\xd9", raw_bytes=2000)
    if make == "raf":
        return make_raf(jpeg, raw_bytes=2000)
    return make_tiff_raw(make.upper(), [thumb, jpeg][: 1 if make == "rw2" else 2], raw_bytes=2000)


def mutations(data: bytes, count: int, seed: int, near_start: int = 600) -> list[bytes]:
    """Copies with a few random bytes changed, mostly in the metadata near the start, some also
    truncated; deterministic."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        copy = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            where = rng.randrange(min(near_start, len(copy))) if rng.random() < 0.8 else None
            copy[where if where is not None else rng.randrange(len(copy))] = rng.randrange(256)
        if rng.random() < 0.2:
            copy = copy[: rng.randrange(1, len(copy))]
        out.append(bytes(copy))
    return out


def within_a_moment(data: bytes) -> RawInfo:
    start = time.perf_counter()
    try:
        return read_raw(io.BytesIO(data))
    finally:
        assert time.perf_counter() - start < 0.5
