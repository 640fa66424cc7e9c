"""decode: every supported format gives small upright RGB pixels; every bad file a DecodeError."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyespyd.config import DecodeSettings
from eyespyd.decode import choose_preview, decode
from eyespyd.errors import DecodeError
from tests import containerbuild
from tests.photos import encoded, has_marker_top_left, jpeg_bytes, scene, stored_as

SMALL = DecodeSettings(long_side=640, min_preview_side=500, max_megapixels=250)


def put(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_is_upright_for_every_exif_orientation(tmp_path: Path, orientation: int) -> None:
    path = put(tmp_path, "IMG.JPG", jpeg_bytes(600, 400, orientation=orientation))
    photo = decode(path, SMALL)
    assert photo.orientation == orientation
    assert photo.original_size == (600, 400)
    assert photo.size == (600, 400)
    assert has_marker_top_left(photo.pixels)
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape[2] == 3
    # The face passes read decode's own Pillow image: it must be the pixels, turned the same way.
    assert photo.image is not None
    assert np.array_equal(np.asarray(photo.pillow()), photo.pixels)


def test_large_jpeg_is_drafted_to_the_largest_reduction_that_reaches_the_target(
    tmp_path: Path,
) -> None:
    path = put(tmp_path, "big.jpg", jpeg_bytes(3000, 2000, orientation=6))
    photo = decode(path, SMALL)
    # 3000 / 4 = 750 still reaches 640; 3000 / 8 = 375 would not.
    assert photo.source == "main image 1/4"
    assert photo.size == (750, 500)  # stored portrait, turned upright by orientation 6
    assert photo.original_size == (3000, 2000)
    assert photo.scale == pytest.approx(0.25)
    assert has_marker_top_left(photo.pixels)


def test_progressive_jpeg_is_drafted_too(tmp_path: Path) -> None:
    path = put(tmp_path, "p.jpg", jpeg_bytes(2600, 1400, progressive=True))
    photo = decode(path, SMALL)
    assert photo.source == "main image 1/4"
    assert photo.size == (650, 350)


def test_small_jpeg_is_decoded_whole(tmp_path: Path) -> None:
    photo = decode(put(tmp_path, "s.jpeg", jpeg_bytes(300, 200)), SMALL)
    assert (photo.source, photo.size) == ("main image", (300, 200))


def test_grey_and_cmyk_jpegs_become_rgb(tmp_path: Path) -> None:
    grey = encoded(scene(400, 300).convert("L"), "JPEG")
    cmyk = encoded(scene(400, 300).convert("CMYK"), "JPEG")
    for name, data in (("g.jpg", grey), ("c.jpg", cmyk)):
        pixels = decode(put(tmp_path, name, data), SMALL).pixels
        assert pixels.shape == (300, 400, 3)


@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "PNG"), (".tif", "TIFF"), (".webp", "WEBP")])
def test_pillow_formats_are_upright_rgb(tmp_path: Path, suffix: str, fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    image = stored_as(scene(300, 200), 8)
    data = encoded(image, fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    photo = decode(put(tmp_path, "x" + suffix, data), SMALL)
    assert photo.format == fmt
    assert photo.orientation == 8
    assert photo.size == (300, 200)
    assert has_marker_top_left(photo.pixels)
    assert np.array_equal(np.asarray(photo.pillow()), photo.pixels)


def test_big_png_is_reduced_by_a_whole_factor(tmp_path: Path) -> None:
    photo = decode(put(tmp_path, "big.png", encoded(scene(2000, 1000), "PNG")), SMALL)
    assert photo.size == (667, 334)  # 2000 // 640 = 3: the largest factor still above 640
    assert photo.original_size == (2000, 1000)


def test_transparent_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (64, 32), (0, 0, 0, 0))
    photo = decode(put(tmp_path, "t.png", encoded(rgba, "PNG")), SMALL)
    assert photo.pixels.min() == 255


def test_sixteen_bit_tiff_keeps_its_tones(tmp_path: Path) -> None:
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    photo = decode(put(tmp_path, "scan.tiff", encoded(Image.fromarray(ramp), "TIFF")), SMALL)
    assert photo.pixels[0, 0].tolist() == [0, 0, 0]
    assert photo.pixels[15, 15].tolist() == [255, 255, 255]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_heic_is_upright_when_the_extra_is_installed(tmp_path: Path, orientation: int) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = orientation
    # pillow-heif stores the orientation as HEIF transforms (irot/imir); libheif applies them.
    heif = pillow_heif.from_pillow(stored_as(scene(640, 480), orientation))
    path = tmp_path / "IMG_0001.HEIC"
    heif.save(str(path), quality=90, exif=exif.tobytes())
    photo = decode(path, SMALL)
    assert photo.format == "HEIF"
    assert photo.size == (640, 480)
    assert has_marker_top_left(photo.pixels)


def test_heic_without_the_extra_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # makes the import fail
    path = put(tmp_path, "x.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    with pytest.raises(DecodeError, match=r"pip install 'eyespyd\[heic\]'"):
        decode(path, SMALL)


# --- bad input: always a DecodeError naming the file and the reason ----------------------------


def reason_for(path: Path) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(path, SMALL)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    return caught.value.reason


def test_empty_file(tmp_path: Path) -> None:
    assert reason_for(put(tmp_path, "e.jpg", b"")) == "empty file"


@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.3, 0.6, 0.95])
def test_truncated_jpeg_at_several_points(tmp_path: Path, fraction: float) -> None:
    data = jpeg_bytes(800, 600, orientation=6)
    reason = reason_for(put(tmp_path, "t.jpg", data[: max(2, int(len(data) * fraction))]))
    assert "truncated" in reason or "corrupt" in reason


def test_random_bytes_named_jpg(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert reason_for(put(tmp_path, "r.jpg", noise)).startswith("not an image")


def test_png_named_cr2_is_refused_as_misnamed(tmp_path: Path) -> None:
    path = put(tmp_path, "IMG_0001.CR2", encoded(scene(64, 64), "PNG"))
    assert reason_for(path) == "misnamed: named CR2 but the content is PNG"


def test_unsupported_suffix(tmp_path: Path) -> None:
    assert reason_for(put(tmp_path, "clip.mov", b"\x00" * 100)) == "unsupported format MOV"


def test_enormous_jpeg_header_is_refused_before_decoding(tmp_path: Path) -> None:
    data = bytearray(jpeg_bytes(64, 48))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 50_000, 50_000)  # height, width
    assert reason_for(put(tmp_path, "bomb.jpg", bytes(data))).startswith("too large: 50000x50000")


def test_enormous_png_header_is_refused(tmp_path: Path) -> None:
    data = bytearray(encoded(scene(64, 48), "PNG"))
    struct.pack_into(">II", data, 16, 50_000, 50_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # keep IHDR's CRC valid
    assert reason_for(put(tmp_path, "bomb.png", bytes(data))).startswith("too large")


def test_directory_named_like_a_photo(tmp_path: Path) -> None:
    folder = tmp_path / "IMG_0002.CR3"
    folder.mkdir()
    assert reason_for(folder) == "is a folder, not a file"


def test_vanished_file(tmp_path: Path) -> None:
    assert reason_for(tmp_path / "gone.jpg") == "file not found (moved or deleted)"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = put(tmp_path, "locked.jpg", jpeg_bytes(64, 48))
    # chmod 000 does not stop root (CI runs as root), so make the open itself fail as it would.
    real_open = Path.open

    def refuse(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", refuse)
    assert reason_for(path) == "cannot read: permission denied"


def test_mutated_jpegs_never_raise_anything_but_decode_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    original = jpeg_bytes(320, 240, orientation=3)
    for i in range(150):
        data = bytearray(original)
        for _ in range(rng.integers(1, 8)):
            data[rng.integers(0, len(data))] = rng.integers(0, 256)
        if rng.random() < 0.3:
            data = data[: rng.integers(2, len(data))]
        path = put(tmp_path, f"m{i}.jpg", bytes(data))
        try:
            photo = decode(path, SMALL)
        except DecodeError:
            continue
        assert photo.pixels.ndim == 3 and photo.pixels.shape[2] == 3


# --- choosing a preview ------------------------------------------------------------------------


def preview(long_side: int) -> object:
    from eyespyd.containers import Preview

    return Preview(offset=0, length=1, width=long_side, height=long_side * 2 // 3, where="x")


def test_choose_preview_prefers_the_largest_reduced_adequate_one() -> None:
    thumb, mid, big, full = preview(160), preview(1620), preview(2048), preview(6000)
    assert choose_preview([thumb, full, mid], 1000, 6000) is mid
    assert choose_preview([thumb, mid, big, full], 1000, 6000) is big
    assert choose_preview([thumb, full], 1000, 6000) is full  # only the full-size one is adequate
    assert choose_preview([thumb], 1000, 6000) is thumb  # nothing adequate: the largest there is
    assert choose_preview([thumb, mid, full], 1000, None) is mid  # largest taken as full size
    assert choose_preview([], 1000, None) is None


# --- RAW files: the embedded preview, found without reading the file ---------------------------

TIFF_RAWS = ["CR2", "NEF", "NRW", "ARW", "SR2", "DNG", "PEF", "ORF", "RW2", "IIQ"]


@pytest.fixture(scope="module")
def previews() -> dict[str, bytes]:
    """Real JPEGs of one upright scene, stored unrotated as RAW previews are."""
    return {
        "thumb": jpeg_bytes(160, 120),
        "mid": jpeg_bytes(810, 540),
        "full": jpeg_bytes(2400, 1600),
    }


@pytest.mark.parametrize("fmt", TIFF_RAWS)
def test_tiff_raw_uses_its_reduced_preview_and_container_orientation(
    tmp_path: Path, fmt: str, previews: dict[str, bytes]
) -> None:
    # A mid-size preview that reaches min_preview_side is chosen over the full-size one.
    data = containerbuild.make_tiff_raw(
        fmt,
        [previews["thumb"], previews["mid"], previews["full"]],
        orientation=8,
        full_size=(2400, 1600),
    )
    photo = decode(put(tmp_path, f"IMG_0001.{fmt}", data), SMALL)
    assert photo.format == fmt
    assert photo.source.endswith("810x540")
    assert photo.orientation == 8
    assert photo.size == (540, 810)  # turned upright: portrait
    assert photo.original_size == (1600, 2400)
    # The scene's top-left corner went to the bottom-left when orientation 8 was undone.
    assert has_marker_top_left(np.rot90(photo.pixels, k=-1))


@pytest.mark.parametrize("fmt", ["NEF", "CR2"])
def test_raw_with_only_a_full_size_preview_drafts_it(
    tmp_path: Path, fmt: str, previews: dict[str, bytes]
) -> None:
    data = containerbuild.make_tiff_raw(
        fmt, [previews["thumb"], previews["full"]], full_size=(2400, 1600)
    )
    photo = decode(put(tmp_path, f"IMG.{fmt}", data), SMALL)
    assert photo.source.endswith("2400x1600")
    assert photo.size == (1200, 800)  # 2400 / 4 = 600 would fall short of 640: drafted to 1/2
    assert has_marker_top_left(photo.pixels)


def test_cr3_uses_the_prvw_box(tmp_path: Path, previews: dict[str, bytes]) -> None:
    data = containerbuild.make_cr3(previews["mid"], previews["thumb"], orientation=3)
    photo = decode(put(tmp_path, "IMG_0001.CR3", data), SMALL)
    assert photo.format == "CR3"
    assert "PRVW" in photo.source
    assert photo.orientation == 3
    assert photo.original_size == containerbuild.FULL_SIZE
    assert has_marker_top_left(np.rot90(photo.pixels, k=2))


def test_raf_uses_the_header_jpeg_and_its_exif_orientation(tmp_path: Path) -> None:
    data = containerbuild.make_raf(jpeg_bytes(810, 540, orientation=6))
    photo = decode(put(tmp_path, "DSCF0001.RAF", data), SMALL)
    assert (photo.format, photo.orientation) == ("RAF", 6)
    assert photo.size == (810, 540)
    assert has_marker_top_left(photo.pixels)


def test_camera_jpeg_uses_its_mpf_preview_turned_by_the_main_orientation(tmp_path: Path) -> None:
    main = jpeg_bytes(2400, 1600, orientation=6)
    # The preview is stored as the sensor saw it, like the main image, with no EXIF of its own.
    preview = encoded(stored_as(scene(810, 540), 6), "JPEG", quality=90)
    data = containerbuild.make_mpf_jpeg(main, preview)
    photo = decode(put(tmp_path, "IMG_0001.JPG", data), SMALL)
    assert photo.source == "MPF preview 540x810"
    assert photo.size == (810, 540)
    assert photo.original_size == (2400, 1600)
    assert photo.orientation == 6
    assert has_marker_top_left(photo.pixels)


def test_camera_jpeg_with_a_too_small_mpf_preview_drafts_the_main_image(
    tmp_path: Path, previews: dict[str, bytes]
) -> None:
    data = containerbuild.make_mpf_jpeg(jpeg_bytes(2600, 1600), previews["thumb"])
    photo = decode(put(tmp_path, "IMG_0002.JPG", data), SMALL)
    assert photo.source == "main image 1/4"


def test_raw_truncated_inside_its_preview_is_a_decode_error(
    tmp_path: Path, previews: dict[str, bytes]
) -> None:
    data = containerbuild.make_cr3(previews["mid"], previews["thumb"])
    preview_at = data.index(previews["mid"])
    for cut in (20, preview_at - 10, preview_at + 100, preview_at + len(previews["mid"]) // 2):
        assert reason_for(put(tmp_path, "IMG_0003.CR3", data[:cut]))


SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw-structure"


@pytest.mark.parametrize(
    "name",
    [
        "CanonRaw.cr2",
        "CanonRaw.cr3",
        "DNG.dng",
        "FujiFilm.raf",
        "Nikon.nef",
        "Panasonic.rw2",
        "PhaseOne.iiq",
        "Minolta.mrw",
    ],
)
def test_real_raw_samples_decode_or_fail_with_a_reason(name: str) -> None:
    # ExifTool's samples have their image data stripped: most previews are placeholders.
    path = SAMPLES / name
    if not path.exists():
        pytest.skip("../shared/data is not on this machine")
    try:
        photo = decode(path, SMALL)
    except DecodeError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        assert "preview" in exc.reason or "unsupported" in exc.reason
    else:
        assert photo.pixels.ndim == 3 and photo.format == path.suffix.upper().lstrip(".")
