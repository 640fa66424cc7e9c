from __future__ import annotations

import io

import pytest
from PIL import Image

from eyespyd.containers import read_raw
from eyespyd.containers.source import READ_BUDGET
from tests.containerbuild import DEFAULT_LAYOUT, make_tiff_raw
from tests.containers.helpers import CountingFile, at, sizes

# Where each format's default layout puts [thumb, preview, large].
EXPECTED_WHERE = {
    "CR2": ["IFD2 JPEG strips", "IFD1 JPEG strips", "IFD0 JPEG strips"],
    "NEF": ["SubIFD2 JPEG", "SubIFD1 JPEG", "SubIFD0 JPEG"],
    "NRW": ["SubIFD2 JPEG", "SubIFD1 JPEG", "SubIFD0 JPEG"],
    "ARW": ["IFD2 JPEG", "IFD1 JPEG", "IFD0 JPEG"],
    "SR2": ["IFD2 JPEG", "IFD1 JPEG", "IFD0 JPEG"],
    "DNG": ["SubIFD3 JPEG strips", "SubIFD2 JPEG strips", "SubIFD1 JPEG strips"],
    "PEF": ["IFD3 JPEG", "IFD2 JPEG", "IFD1 JPEG"],
    "ORF": ["IFD2 JPEG", "IFD1 JPEG", "Olympus PreviewImage"],
    "IIQ": ["IFD2 JPEG", "IFD1 JPEG", "IFD0 JPEG"],
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED_WHERE))
def test_every_preview_is_found_largest_first_with_offsets_and_sizes(
    fmt: str, thumb: bytes, preview: bytes, large: bytes
) -> None:
    data = make_tiff_raw(fmt, [thumb, preview, large], orientation=6)
    info = read_raw(io.BytesIO(data), fmt)
    assert (info.format, info.orientation, info.full_size) == (fmt, 6, (6000, 4000))
    assert sizes(info.previews) == [(3000, 2000), (1620, 1080), (160, 120)]
    assert [p.where for p in info.previews] == EXPECTED_WHERE[fmt]
    for found, jpeg in zip(info.previews, [large, preview, thumb], strict=True):
        assert (found.offset, found.length) == (at(data, jpeg), len(jpeg))


def test_rw2_jpg_from_raw_is_found_and_its_size_comes_from_the_borders(preview: bytes) -> None:
    data = make_tiff_raw("RW2", [preview], orientation=8, full_size=(5184, 3888))
    info = read_raw(io.BytesIO(data), "RW2")
    assert (info.format, info.orientation, info.full_size) == ("RW2", 8, (5184, 3888))
    [found] = info.previews
    assert (found.offset, found.length, found.where) == (
        at(data, preview),
        len(preview),
        "IFD0 JpgFromRaw",
    )


@pytest.mark.parametrize(
    ("fmt", "where"),
    [
        ("NEF", "Nikon PreviewIFD"),
        ("PEF", "Pentax PreviewImage"),
        ("ORF", "Olympus PreviewImage"),
    ],
)
@pytest.mark.parametrize("big_endian", [True, False])
def test_maker_note_preview_is_found(
    fmt: str, where: str, big_endian: bool, thumb: bytes, preview: bytes
) -> None:
    data = make_tiff_raw(fmt, [preview, thumb], 3, "makernote", big_endian=big_endian)
    info = read_raw(io.BytesIO(data), fmt)
    assert (info.format, info.orientation) == (fmt, 3)
    assert [(p.where, p.offset) for p in info.previews] == [
        (where, at(data, preview)),
        ("IFD1 JPEG", at(data, thumb)),
    ]


@pytest.mark.parametrize("fmt", ["CR2", "DNG"])
def test_a_jpeg_split_into_contiguous_strips_is_one_preview(fmt: str, preview: bytes) -> None:
    data = make_tiff_raw(fmt, [preview], strips=5)
    [found] = read_raw(io.BytesIO(data), fmt).previews
    assert (found.offset, found.length, found.width) == (at(data, preview), len(preview), 1620)


@pytest.mark.parametrize("fmt", ["CR2", "DNG"])
def test_lossless_jpeg_raw_data_is_not_taken_for_a_preview(fmt: str) -> None:
    # Both store the raw image as lossless JPEG (SOF3) under the same compression codes.
    info = read_raw(io.BytesIO(make_tiff_raw(fmt, [])), fmt)
    assert info.previews == ()
    assert info.full_size == (6000, 4000)


def test_dng_full_size_is_the_default_crop_not_the_sensor(preview: bytes) -> None:
    info = read_raw(io.BytesIO(make_tiff_raw("DNG", [preview], full_size=(4000, 3000))), "DNG")
    assert info.full_size == (4000, 3000)  # the raw IFD says 4064x3040


def test_dng_version_beats_the_make(preview: bytes) -> None:
    # The DNG's Make is Ricoh's, which would otherwise say PEF.
    assert read_raw(io.BytesIO(make_tiff_raw("DNG", [preview])), "PEF").format == "DNG"


@pytest.mark.parametrize(
    ("fmt", "hint", "expected"),
    [
        ("NEF", "NRW", "NRW"),
        ("NEF", "NEF", "NEF"),
        ("NEF", None, "NEF"),
        ("NEF", "ARW", "NEF"),  # the content decides
        ("ARW", "SR2", "SR2"),
        ("ARW", "nef", "ARW"),
        ("PEF", "DNG", "PEF"),
        ("CR2", "NEF", "CR2"),
        ("ORF", "RW2", "ORF"),
        ("RW2", "ORF", "RW2"),
        ("IIQ", None, "IIQ"),
    ],
)
def test_format_comes_from_the_content_and_the_hint_only_names_alternatives(
    fmt: str, hint: str | None, expected: str, thumb: bytes
) -> None:
    assert read_raw(io.BytesIO(make_tiff_raw(fmt, [thumb])), hint).format == expected


def test_a_plain_tiff_is_a_tiff_with_no_previews() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buffer, "TIFF")
    info = read_raw(io.BytesIO(buffer.getvalue()))
    assert (info.format, info.previews, info.full_size, info.orientation) == (
        "TIFF",
        (),
        (64, 48),
        1,
    )


def test_a_tiff_from_an_unknown_maker_takes_the_hint() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(buffer, "TIFF")
    assert read_raw(io.BytesIO(buffer.getvalue()), "IIQ").format == "IIQ"


def test_orientation_missing_from_ifd0_comes_from_the_largest_preview() -> None:
    from tests.containers.conftest import make_jpeg

    jpeg = make_jpeg(320, 240, orientation=5)
    data = bytearray(make_tiff_raw("ARW", [jpeg], orientation=1))
    # Make IFD0's Orientation tag an unknown one (0x0112 -> 0x0113).
    entry = data.find(b"\x12\x01\x03\x00\x01\x00\x00\x00")
    data[entry] = 0x13
    assert read_raw(io.BytesIO(bytes(data)), "ARW").orientation == 5


@pytest.mark.parametrize("fmt", sorted(DEFAULT_LAYOUT))
def test_metadata_reads_are_few_and_small_whatever_the_file_size(fmt: str, thumb: bytes) -> None:
    small, big = (
        CountingFile(make_tiff_raw(fmt, [thumb], raw_bytes=size)) for size in (1_000, 2_000_000)
    )
    read_raw(small, fmt)
    read_raw(big, fmt)
    assert (big.bytes_read, big.reads) == (small.bytes_read, small.reads)
    assert big.bytes_read < 4096 < READ_BUDGET
