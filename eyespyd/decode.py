"""decode: a photo file -> the cheapest upright RGB pixels that still show the eyes.

Huffman decoding of a whole JPEG is the floor of a plain JPEG, so the fast paths avoid it: a camera
JPEG's MPF preview or a RAW's embedded JPEG preview when one is large enough, else the main JPEG
decoded at a DCT reduction (Pillow's `draft`). EXIF orientation is applied to the small image,
never to the full one. Every failure is a DecodeError naming the file and the reason.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from eyespyd.config import DecodeSettings
from eyespyd.containers import Preview, read_jpeg, read_raw, sniff
from eyespyd.errors import ContainerError, DecodeError
from eyespyd.types import Photo

DEFAULT_SETTINGS = DecodeSettings(long_side=640, min_preview_side=1000, max_megapixels=250)

# Pillow's own bomb check would refuse images below our configurable limit; ours runs on header
# sizes before any pixel is decoded, so Pillow's is only a backstop above the schema's maximum.
Image.MAX_IMAGE_PIXELS = 1_000_000_000

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif"})
PILLOW_SUFFIXES = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
RAW_SUFFIXES = {
    ".cr2": "CR2",
    ".cr3": "CR3",
    ".nef": "NEF",
    ".nrw": "NRW",
    ".arw": "ARW",
    ".sr2": "SR2",
    ".dng": "DNG",
    ".orf": "ORF",
    ".rw2": "RW2",
    ".pef": "PEF",
    ".raf": "RAF",
    ".iiq": "IIQ",
    ".mrw": "MRW",
}
SUFFIXES = frozenset(JPEG_SUFFIXES | set(PILLOW_SUFFIXES) | HEIF_SUFFIXES | set(RAW_SUFFIXES))

# What the content of a file with a given suffix may sniff as. TIFF-based RAWs (NEF, ARW, DNG...)
# are plain TIFF structurally, so the suffix names them.
_RAW_CONTENT = {
    "CR2": {"CR2"},
    "CR3": {"CR3"},
    "RAF": {"RAF"},
    "ORF": {"ORF"},
    "RW2": {"RW2"},
    "MRW": {"MRW"},
    "IIQ": {"IIQ", "TIFF"},
}
_TIFF_CONTENT = {"TIFF", "CR2", "IIQ"}

# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def is_photo_name(path: Path) -> bool:
    """Whether eyespyd handles files named like this (by suffix, any case)."""
    return path.suffix.lower() in SUFFIXES


def decode(path: Path, settings: DecodeSettings = DEFAULT_SETTINGS) -> Photo:
    """The smallest upright RGB image of `path` that still shows the eyes."""
    path = Path(path)
    try:
        with _open(path) as f:
            head = f.read(64)
            if not head:
                raise DecodeError(path, "empty file")
            kind = _format_of(path, sniff(head))
            f.seek(0)
            if kind == "JPEG":
                return _decode_jpeg(path, f, settings)
            if kind in RAW_SUFFIXES.values():
                return _decode_raw(path, f, kind, settings)
            if kind == "HEIF":
                return _decode_heif(path, settings)
            return _decode_pillow(path, f, kind, settings)
    except DecodeError:
        raise
    except ContainerError as exc:
        raise DecodeError(path, str(exc)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecodeError(path, "too large: the header declares an enormous image") from None
    except MemoryError:
        raise DecodeError(path, "too large to decode in memory") from None
    except OSError as exc:
        raise DecodeError(path, _os_reason(exc)) from exc
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError) as exc:
        # Pillow's plugins report malformed data with these; none of them means a bug of ours here.
        raise DecodeError(path, f"corrupt image data ({exc})") from exc


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DecodeError(path, "file not found (moved or deleted)") from None
    except IsADirectoryError:
        raise DecodeError(path, "is a folder, not a file") from None
    except PermissionError:
        raise DecodeError(path, "cannot read: permission denied") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot read: {exc.strerror or exc}") from None


def _os_reason(exc: OSError) -> str:
    text = str(exc)
    if "truncated" in text or "broken data stream" in text or isinstance(exc, EOFError):
        return "truncated: the file ends before the image does"
    if exc.strerror:
        return f"cannot read: {exc.strerror}"
    return f"corrupt image data ({text})"


def _format_of(path: Path, content: str | None) -> str:
    """The format to decode as; a name that disagrees with the content is refused, not guessed:
    a misnamed file is kept and reported rather than risk a wrong verdict."""
    suffix = path.suffix.lower()
    named = suffix.upper().lstrip(".") or "(no suffix)"
    if suffix not in SUFFIXES:
        raise DecodeError(path, f"unsupported format {named}")
    if content is None:
        raise DecodeError(path, f"not an image: named {named} but the content is not recognised")
    if suffix in JPEG_SUFFIXES:
        expected, kind = {"JPEG"}, "JPEG"
    elif suffix in HEIF_SUFFIXES:
        expected, kind = {"HEIF"}, "HEIF"
    elif suffix in PILLOW_SUFFIXES:
        kind = PILLOW_SUFFIXES[suffix]
        expected = _TIFF_CONTENT if kind == "TIFF" else {kind}
    else:
        kind = RAW_SUFFIXES[suffix]
        expected = _RAW_CONTENT.get(kind, {"TIFF"})
    if content not in expected:
        raise DecodeError(path, f"misnamed: named {named} but the content is {content}")
    return kind


def _decode_jpeg(path: Path, f: BinaryIO, settings: DecodeSettings) -> Photo:
    info = read_jpeg(f)
    _check_pixels(path, info.width, info.height, settings)
    main_long_side = max(info.width, info.height)
    preview = choose_preview(info.previews, settings.min_preview_side, main_long_side)
    if preview is not None and settings.min_preview_side <= preview.long_side < main_long_side:
        image = _jpeg_from_preview(path, f, preview, settings)
        source = f"MPF preview {preview.width}x{preview.height}"
    else:
        f.seek(0)
        image, source = _draft_jpeg(Image.open(f), settings.long_side)
    return _photo(path, image, "JPEG", source, (info.width, info.height), info.orientation)


def _decode_raw(path: Path, f: BinaryIO, kind: str, settings: DecodeSettings) -> Photo:
    info = read_raw(f, format_hint=kind)
    full_long_side = max(info.full_size) if info.full_size else None
    preview = choose_preview(info.previews, settings.min_preview_side, full_long_side)
    if preview is None:
        return _decode_raw_with_rawpy(path, kind, info.orientation, settings)
    _check_pixels(path, preview.width, preview.height, settings)
    image = _jpeg_from_preview(path, f, preview, settings)
    full = info.full_size or (preview.width, preview.height)
    source = f"{preview.where} {preview.width}x{preview.height}"
    return _photo(path, image, info.format, source, full, info.orientation)


def choose_preview(
    previews: Sequence[Preview], min_side: int, full_long_side: int | None = None
) -> Preview | None:
    """The largest preview that reaches `min_side` and is not the full-size image (which costs as
    much as decoding the main image); else the full-size one; else the largest there is.

    `full_long_side` is the main image's long side when known; otherwise the largest preview is
    taken to be the full-size one. A preview within 10% of it counts as full size.
    """
    if not previews:
        return None
    ranked = sorted(previews, key=lambda p: p.long_side, reverse=True)
    full = full_long_side or ranked[0].long_side
    adequate = [p for p in ranked if p.long_side >= min_side]
    reduced = [p for p in adequate if p.long_side < 0.9 * full]
    if reduced:
        return reduced[0]
    return adequate[0] if adequate else ranked[0]


def _jpeg_from_preview(
    path: Path, f: BinaryIO, preview: Preview, settings: DecodeSettings
) -> Image.Image:
    f.seek(preview.offset)
    data = f.read(preview.length)
    if len(data) < preview.length:
        raise DecodeError(path, "truncated: the embedded preview runs past the end of the file")
    image, _ = _draft_jpeg(Image.open(io.BytesIO(data)), settings.long_side)
    return image


def _draft_jpeg(image: Image.Image, long_side: int) -> tuple[Image.Image, str]:
    """Decode at the largest DCT reduction (1/2, 1/4, 1/8) whose long side still reaches
    `long_side`: libjpeg then skips most of the inverse DCT work."""
    width, height = image.size
    ratio = long_side / max(width, height)
    if ratio < 1:
        requested = (math.ceil(width * ratio), math.ceil(height * ratio))
        image.draft("RGB", requested)
    image.load()
    reduction = round(width / image.size[0]) if image.size[0] else 1
    source = "main image" if reduction == 1 else f"main image 1/{reduction}"
    return image, source


def _decode_pillow(path: Path, f: BinaryIO, kind: str, settings: DecodeSettings) -> Photo:
    image: Image.Image = Image.open(f)
    _check_pixels(path, image.size[0], image.size[1], settings)
    orientation = _exif_orientation(image)
    image.load()
    # Pillow 13 turns TIFFs upright while loading and drops the tag; older Pillow leaves both to
    # us. Turn the image only if Pillow did not.
    upright = orientation != 1 and _exif_orientation(image) == 1
    full = image.size
    image = _reduce(image, settings.long_side)
    return _photo(path, image, kind, "main image", full, orientation, upright_already=upright)


def _decode_heif(path: Path, settings: DecodeSettings) -> Photo:
    try:
        import pillow_heif
    except ImportError:
        raise DecodeError(
            path, "HEIC/HEIF needs the heic extra: pip install 'eyespyd[heic]'"
        ) from None
    heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
    width, height = heif.size
    _check_pixels(path, width, height, settings)
    # libheif applies the container's rotation and mirroring itself, so the pixels arrive upright.
    image = heif.to_pillow()
    image = _reduce(image, settings.long_side)
    return _photo(path, image, "HEIF", "main image", (width, height), 1)


def _decode_raw_with_rawpy(
    path: Path, kind: str, orientation: int, settings: DecodeSettings
) -> Photo:
    """LibRaw's view of the thumbnail, for RAWs whose preview our locator cannot find."""
    try:
        import rawpy
    except ImportError:
        raise DecodeError(
            path,
            f"no embedded JPEG preview found in this {kind} (pip install 'eyespyd[raw]' adds"
            " LibRaw as a fallback)",
        ) from None
    try:
        with rawpy.imread(str(path)) as raw:
            thumb = raw.extract_thumb()
            full = (int(raw.sizes.width), int(raw.sizes.height))
    except Exception as exc:  # LibRaw raises its own exception tree; all mean "no preview"
        detail = exc.args[0] if exc.args else exc
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise DecodeError(path, f"no embedded preview found (LibRaw: {detail})") from None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        image, _ = _draft_jpeg(Image.open(io.BytesIO(bytes(thumb.data))), settings.long_side)
    else:
        image = Image.fromarray(np.asarray(thumb.data))
    return _photo(path, image, kind, "LibRaw thumbnail", full, orientation)


def _reduce(image: Image.Image, long_side: int) -> Image.Image:
    """Box-reduce by a whole factor towards `long_side`: cheap, and never below it."""
    factor = max(image.size) // long_side
    return image.reduce(factor) if factor >= 2 else image


def _exif_orientation(image: Image.Image) -> int:
    value = image.getexif().get(0x0112, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_pixels(path: Path, width: int, height: int, settings: DecodeSettings) -> None:
    if width <= 0 or height <= 0:
        raise DecodeError(path, f"corrupt header: image size {width}x{height}")
    if width * height > settings.max_pixels:
        raise DecodeError(
            path,
            f"too large: {width}x{height} is {width * height / 1e6:.0f} megapixels,"
            f" over the limit of {settings.max_megapixels}",
        )


def _photo(
    path: Path,
    image: Image.Image,
    kind: str,
    source: str,
    full_size: tuple[int, int],
    orientation: int,
    *,
    upright_already: bool = False,
) -> Photo:
    """`full_size` is as stored (before orientation), unless `upright_already`."""
    image = _rgb(image)
    if not upright_already:
        if orientation in _UPRIGHT:
            image = image.transpose(_UPRIGHT[orientation])
        if orientation in (5, 6, 7, 8):
            full_size = (full_size[1], full_size[0])
    return Photo(
        path=path,
        pixels=np.asarray(image),
        format=kind,
        source=source,
        original_size=full_size,
        orientation=orientation if orientation in _UPRIGHT else 1,
        image=image,
    )


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey (scans, some TIFFs): keep the top 8 bits rather than clip at 255.
        grey = (np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as a viewer shows them, not black.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
