"""What a file is, from its first bytes."""

from __future__ import annotations

import struct

# ftyp brands of HEIF still images (HEVC, AVIF and the generic MIAF/image brands).
HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
    | {b"mif2", b"miaf", b"avif", b"avis"}
)
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff(head: bytes) -> str | None:
    """The format family from a file's first 64 bytes (fewer if the file is shorter):
    "JPEG", "PNG", "GIF", "BMP", "WEBP", "HEIF", "CR3", "RAF", "ORF", "RW2", "MRW", "CR2",
    "IIQ", or "TIFF" for any other TIFF (NEF, ARW, DNG, PEF... are plain TIFF structurally).
    None when unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head.startswith((b"IIRO", b"IIRS", b"MMOR")):
        return "ORF"
    if head.startswith(b"IIU\0"):
        return "RW2"
    if head.startswith(b"\0MRM"):
        return "MRW"
    if head.startswith((b"II*\0", b"MM\0*")):
        return _tiff_family(head)
    if head[4:8] == b"ftyp":
        return _ftyp_family(head)
    if head.startswith(b"BM") and len(head) >= 18:
        (dib_size,) = struct.unpack_from("<I", head, 14)
        return "BMP" if dib_size in _BMP_HEADER_SIZES else None
    return None


def _tiff_family(head: bytes) -> str:
    if head[8:11] == b"CR\x02":
        return "CR2"
    # Phase One's own directory ("IIII" + "?waR", or "MMMM" + "Raw?") right after the header.
    if (head[8:12] == b"IIII" and head[13:16] == b"waR") or (
        head[8:12] == b"MMMM" and head[12:15] == b"Raw"
    ):
        return "IIQ"
    return "TIFF"


def _ftyp_family(head: bytes) -> str | None:
    (size,) = struct.unpack_from(">I", head)
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    if b"crx " in brands:
        return "CR3"
    if any(brand in HEIF_BRANDS for brand in brands):
        return "HEIF"
    return None
