"""The JPEG previews that some makers keep in their EXIF maker note rather than in an IFD.

Each maker note is a TIFF IFD after a maker's header, with its own rule for what its offsets
count from (the ExifTool MakerNotes table documents them): Nikon embeds a whole TIFF header,
Olympus counts from the start of the note, Pentax and Minolta from the file's TIFF header.
Maker notes are vendor data read on a best-effort basis: one we cannot read adds no preview and
does not make the file unreadable.
"""

from __future__ import annotations

from eyespyd.containers.results import Candidate
from eyespyd.containers.tiff import UNDEFINED, Ifd, Tiff, open_tiff
from eyespyd.errors import ContainerError

MAKER_NOTE = 0x927C
_ORDERS = {b"II": "<", b"MM": ">"}


def maker_note_candidates(tiff: Tiff, exif: Ifd, make: str) -> list[Candidate]:
    """The preview pointed at by the maker note in `exif`, if it is a maker note we know."""
    entry = exif.entries.get(MAKER_NOTE)
    if entry is None or entry.count < 8:
        return []
    try:
        head = tiff.read(entry.at, min(entry.count, 16), "maker note header")
        if head.startswith(b"Nikon\0\x02"):
            return _nikon(tiff, entry.at)
        if head.startswith((b"OLYMPUS\0", b"OM SYSTEM\0", b"OLYMP\0", b"EPSON\0")):
            return _olympus(tiff, entry.at, head)
        if head.startswith((b"AOC\0", b"PENTAX \0")):
            return _pentax(tiff, entry.at, head)
        if make.upper().startswith(("MINOLTA", "KONICA MINOLTA")):
            return _minolta(tiff, entry.at)
    except ContainerError:
        pass  # see the module docstring
    return []


def _nikon(tiff: Tiff, at: int) -> list[Candidate]:
    # "Nikon\0" 02 10 00 00, then a TIFF header: offsets count from that header.
    note, first = open_tiff(tiff.src, at + 10, tiff.end, "Nikon maker note")
    preview_ifd = note.first(note.ifd(first, "Nikon maker note"), 0x0011)
    if not preview_ifd:
        return []
    ifd = note.ifd(preview_ifd, "Nikon PreviewIFD")
    return _pair(note, ifd, 0x0201, 0x0202, "Nikon PreviewIFD")


def _olympus(tiff: Tiff, at: int, head: bytes) -> list[Candidate]:
    if head.startswith(b"OLYMPUS\0"):  # "OLYMPUS\0" II 03 00: offsets from the note's start
        note = Tiff(tiff.src, at, _order(head[8:10], tiff), tiff.end, "Olympus maker note")
        main = note.ifd(12, "Olympus maker note")
    elif head.startswith(b"OM SYSTEM\0"):  # "OM SYSTEM\0\0\0" II 04 00: the same, 16 bytes
        note = Tiff(tiff.src, at, _order(head[12:14], tiff), tiff.end, "Olympus maker note")
        main = note.ifd(16, "Olympus maker note")
    else:  # old "OLYMP\0" 01 00: offsets from the file's TIFF header
        note = tiff
        main = note.ifd(at + 8 - tiff.base, "Olympus maker note")
    found = _pair(note, main, 0x0088, 0x0089, "Olympus PreviewImage")
    settings = main.entries.get(0x2020)  # CameraSettings: an IFD pointer, or the IFD inline
    if settings is not None:
        if settings.type == UNDEFINED:
            offset: int | None = settings.at - note.base
        else:
            offset = note.first(main, 0x2020)
        if offset:
            ifd = note.ifd(offset, "Olympus CameraSettings")
            if note.first(ifd, 0x0100) != 0:  # PreviewImageValid, when present
                found += _pair(note, ifd, 0x0101, 0x0102, "Olympus PreviewImage")
    return found


def _pentax(tiff: Tiff, at: int, head: bytes) -> list[Candidate]:
    if head.startswith(b"AOC\0"):  # "AOC\0" MM: offsets from the file's TIFF header (PEF)
        note = Tiff(tiff.src, tiff.base, _order(head[4:6], tiff), tiff.end, "Pentax maker note")
        main = note.ifd(at + 6 - tiff.base, "Pentax maker note")
    else:  # "PENTAX \0" MM: offsets from the note's start
        note = Tiff(tiff.src, at, _order(head[8:10], tiff), tiff.end, "Pentax maker note")
        main = note.ifd(10, "Pentax maker note")
    return _pair(note, main, 0x0004, 0x0003, "Pentax PreviewImage")


def _minolta(tiff: Tiff, at: int) -> list[Candidate]:
    main = tiff.ifd(at - tiff.base, "Minolta maker note")  # no header; file's offsets
    found = _pair(tiff, main, 0x0088, 0x0089, "Minolta PreviewImage")
    inline = main.entries.get(0x0081)  # the DiMAGE 7 keeps the JPEG inside the tag itself
    if inline is not None and inline.type == UNDEFINED:
        found.append(Candidate(inline.at, inline.count, "Minolta PreviewImage", True))
    return found


def _pair(note: Tiff, ifd: Ifd, start_tag: int, length_tag: int, where: str) -> list[Candidate]:
    start, length = note.first(ifd, start_tag), note.first(ifd, length_tag)
    if not start or not length:
        return []
    return [Candidate(note.base + start, length, where, from_maker_note=True)]


def _order(mark: bytes, parent: Tiff) -> str:
    return _ORDERS.get(mark, parent.order)
