from __future__ import annotations

import struct

import pytest

from eyespyd.containers import sniff


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    payload = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(payload)) + b"ftyp" + payload


@pytest.mark.parametrize(
    ("head", "family"),
    [
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "PNG"),
        (b"GIF89a\x10\0", "GIF"),
        (b"GIF87a\x10\0", "GIF"),
        (b"BM" + bytes(12) + struct.pack("<I", 40) + bytes(8), "BMP"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "WEBP"),
        (ftyp(b"heic", b"mif1", b"heic"), "HEIF"),
        (ftyp(b"mif1", b"heic"), "HEIF"),
        (ftyp(b"avif", b"mif1"), "HEIF"),
        (ftyp(b"MiHE", b"MiHA", b"heix"), "HEIF"),  # an unknown major brand, a HEIF compatible one
        (ftyp(b"crx ", b"crx ", b"isom"), "CR3"),
        (b"FUJIFILMCCD-RAW 0201FF129502", "RAF"),
        (b"IIRO\x08\0\0\0", "ORF"),
        (b"IIRS\x08\0\0\0", "ORF"),
        (b"MMOR\0\0\0\x08", "ORF"),
        (b"IIU\0\x18\0\0\0", "RW2"),
        (b"\0MRM\0\0\x0a\x0c\0PRD", "MRW"),
        (b"II*\0\x10\0\0\0CR\x02\0\0\0\0\0", "CR2"),
        (b"II*\0\x08\x0a\0\0IIIICwaR\0\0\0\0", "IIQ"),
        (b"II*\0\x08\x0a\0\0IIIITwaR\0\0\0\0", "IIQ"),
        (b"MM\0*\0\0\0\x08MMMMRawC\0\0\0\0", "IIQ"),
        (b"II*\0\x08\0\0\0\x1a\0\xfe\0", "TIFF"),
        (b"MM\0*\0\0\0\x08\0\x1a", "TIFF"),
    ],
)
def test_each_signature_names_its_family(head: bytes, family: str) -> None:
    assert sniff(head + bytes(64 - len(head)) if len(head) < 64 else head) == family


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff",
        b"\xff\xd8",  # SOI without a marker after it
        b"II*",
        b"plain text, nothing like an image header at all............",
        ftyp(b"isom", b"mp41"),  # an MP4 video
        b"BM" + bytes(12) + struct.pack("<I", 7) + bytes(8),  # "BM" but no DIB header size
        b"BM",
        b"II+\0\x08\0\x08\0",  # BigTIFF: not read here
    ],
)
def test_unknown_or_too_short_heads_are_none(head: bytes) -> None:
    assert sniff(head) is None


def test_a_head_shorter_than_64_bytes_is_enough() -> None:
    assert sniff(b"IIU\0") == "RW2"
    assert sniff(b"\xff\xd8\xff") == "JPEG"
