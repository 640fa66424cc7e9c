"""read_raw: the JPEG previews a RAW file embeds, found without reading the file.

Each family's parser turns the container's structure into candidates (byte ranges it points at
as JPEGs) and what it says about orientation and full size. A candidate that runs past the end
of the file means the file is truncated (a copy still being written, a broken transfer): that is
a ContainerError, so a cut-off preview never passes for the picture. (Truncation shows only where
the container points at JPEG data, CR2's and DNG's lossless-JPEG raw data included, or in CR3 at
any box; the raw data of the other formats is not looked at.) Every other candidate is checked
by reading its markers up to the SOF, and only those with a DCT SOF become previews: a container
whose previews are placeholders or raw data gives `previews == ()`, not an error, and decode
falls back to LibRaw.
"""

from __future__ import annotations

from typing import BinaryIO

from eyespyd.containers.bmff import scan_cr3
from eyespyd.containers.jpeg import scan_jpeg, verified
from eyespyd.containers.mrw import scan_mrw
from eyespyd.containers.raf import scan_raf
from eyespyd.containers.results import Preview, RawInfo, Scan
from eyespyd.containers.sniff import sniff
from eyespyd.containers.source import Source
from eyespyd.containers.tiffraw import scan_tiff_raw
from eyespyd.errors import ContainerError

_TIFF_FAMILIES = frozenset({"TIFF", "CR2", "ORF", "RW2", "IIQ"})


def read_raw(f: BinaryIO, format_hint: str | None = None) -> RawInfo:
    """Format, orientation, full size and verified JPEG previews (largest first) of a RAW file.

    `format_hint` is the file's extension in upper case without the dot ("NEF"); it only names
    TIFF-structured files whose content does not (Make and DNGVersion decide first). Raises
    ContainerError for a file that is not a RAW container, whose structure is corrupt, or that
    is truncated; `previews` is empty when none of the JPEGs it points at is decodable.
    """
    src = Source(f)
    if src.size == 0:
        raise ContainerError("empty file")
    family = sniff(src.read(0, min(64, src.size), "file header"))
    scan = _scan(src, family, format_hint.upper().lstrip(".") if format_hint else None)
    for c in scan.candidates:
        if not c.from_maker_note and not src.has(c.offset, c.length):
            raise ContainerError(
                f"truncated: {c.where} ({c.length} bytes at offset {c.offset}) runs past"
                f" the end of the file ({src.size} bytes)"
            )
    previews = verified(src, scan.candidates)
    orientation = scan.orientation or _orientation_of(src, previews)
    return RawInfo(scan.format, orientation, scan.full_size, previews)


def _scan(src: Source, family: str | None, hint: str | None) -> Scan:
    if family in _TIFF_FAMILIES:
        return scan_tiff_raw(src, family, hint)
    if family == "CR3":
        return scan_cr3(src)
    if family == "RAF":
        return scan_raf(src)
    if family == "MRW":
        return scan_mrw(src)
    if family is None:
        raise ContainerError("not a RAW file: unrecognised content")
    raise ContainerError(f"not a RAW file: the content is {family}")


def _orientation_of(src: Source, previews: tuple[Preview, ...]) -> int:
    """When the container does not say (RAF always; RW2 and others sometimes), the largest
    preview's own EXIF does: the camera wrote both."""
    if not previews:
        return 1
    try:
        return scan_jpeg(src, previews[0].offset).orientation
    except ContainerError:
        return 1
