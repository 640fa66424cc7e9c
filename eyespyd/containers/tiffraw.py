"""TIFF-based RAWs: CR2, NEF, NRW, ARW, SR2, DNG, PEF, ORF, RW2, IIQ, and MRW's TIFF block.

Structurally these are TIFF files whose IFDs hold the raw data and one or more JPEG previews:
by JPEGInterchangeFormat/Length (0x0201/0x0202), or as strips (0x0111/0x0117) with Compression
6 or 7, in the IFD0 chain or in SubIFDs (0x014A). Panasonic keeps a whole JPEG in RW2's IFD0 tag
0x002E, and Nikon, Olympus, Pentax and Minolta keep one more in the EXIF maker note.

The IFDs that hold the images must be sound: one that is truncated, lies outside the file or
claims an absurd number of entries is a ContainerError. The EXIF IFD and the maker note only add
the full size and a vendor preview, so they are read on a best-effort basis. IFD links that loop
back end the walk. A pointer to something that is not a JPEG is not an error: the verification
in raw.py leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eyespyd.containers.makernote import maker_note_candidates
from eyespyd.containers.results import Candidate, Scan, valid_orientation, valid_size
from eyespyd.containers.source import Source
from eyespyd.containers.tiff import UNDEFINED, Ifd, Tiff, open_tiff
from eyespyd.errors import ContainerError

NEW_SUBFILE_TYPE = 0x00FE
IMAGE_WIDTH = 0x0100
IMAGE_LENGTH = 0x0101
COMPRESSION = 0x0103
MAKE = 0x010F
STRIP_OFFSETS = 0x0111
ORIENTATION = 0x0112
STRIP_BYTE_COUNTS = 0x0117
SUB_IFDS = 0x014A
JPEG_OFFSET = 0x0201
JPEG_LENGTH = 0x0202
EXIF_IFD = 0x8769
EXIF_WIDTH = 0xA002
EXIF_HEIGHT = 0xA003
DNG_VERSION = 0xC612
DEFAULT_CROP_SIZE = 0xC620
RW2_JPG_FROM_RAW = 0x002E
RW2_SENSOR_SIZE = (0x0002, 0x0003)  # width, height
RW2_BORDERS = (0x0004, 0x0005, 0x0006, 0x0007)  # top, left, bottom, right

JPEG_COMPRESSIONS = (6, 7)  # old-style and new-style JPEG; DNG previews use 7
# TIFF magic words: 42; ORF "RO" / "RS" read as little-endian words; RW2 0x55.
MAGICS = (42, 0x4F52, 0x5352, 0x55)

# Real files have 2 to 8 IFDs in all, a DNG a handful of SubIFDs; these stop hostile ones.
MAX_IFDS = 64
MAX_SUB_IFDS = 32
MAX_SUB_DEPTH = 2
MAX_STRIPS = 4096

# What the camera maker names a TIFF-structured RAW that has no magic of its own.
_BY_MAKE = {"NIKON": "NEF", "SONY": "ARW", "PENTAX": "PEF", "RICOH": "PEF", "ASAHI": "PEF"}
_ALTERNATIVES = {"NEF": {"NRW"}, "ARW": {"SR2"}}  # same maker, same structure, told by the name
_TIFF_RAWS = {"NEF", "NRW", "ARW", "SR2", "DNG", "PEF", "IIQ", "CR2", "ORF", "RW2"}


@dataclass(slots=True)
class Walk:
    """The IFDs of one TIFF, in the order visited, and the JPEG candidates they point at."""

    tiff: Tiff
    rw2: bool = False
    ifds: list[Ifd] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    exif: Ifd | None = None
    make: str = ""

    def chain(self, first: int) -> None:
        offset, index = first, 0
        while offset and index < MAX_IFDS:
            ifd = self._visit(offset, f"IFD{index}", 0)
            if ifd is None:
                return  # the chain loops back to an IFD already read
            offset, index = ifd.next, index + 1

    def _visit(self, offset: int, name: str, depth: int) -> Ifd | None:
        if any(seen.offset == self.tiff.base + offset for seen in self.ifds):
            return None
        if len(self.ifds) >= MAX_IFDS:
            raise ContainerError(f"more than {MAX_IFDS} IFDs in the {self.tiff.name}")
        ifd = self.tiff.ifd(offset, name)
        self.ifds.append(ifd)
        self.candidates += jpeg_candidates(self.tiff, ifd, self.rw2 and name == "IFD0")
        if depth < MAX_SUB_DEPTH:
            prefix = "" if name == "IFD0" else f"{name} "
            for i, sub in enumerate(self.tiff.ints(ifd, SUB_IFDS, MAX_SUB_IFDS)):
                if sub:
                    self._visit(sub, f"{prefix}SubIFD{i}", depth + 1)
        return ifd

    def read_exif(self) -> None:
        """The EXIF IFD of IFD0 and the maker note preview it points at, best effort."""
        ifd0 = self.ifds[0]
        self.make = self.tiff.text(ifd0, MAKE)
        offset = self.tiff.first(ifd0, EXIF_IFD)
        if not offset:
            return
        try:
            self.exif = self.tiff.ifd(offset, "ExifIFD")
        except ContainerError:
            return  # see the module docstring
        self.candidates += maker_note_candidates(self.tiff, self.exif, self.make)


def walk(tiff: Tiff, first: int, *, rw2: bool = False) -> Walk:
    """Every IFD of the chain from `first`, their SubIFDs, and the EXIF IFD of IFD0."""
    found = Walk(tiff, rw2)
    found.chain(first)
    if not found.ifds:
        raise ContainerError(f"no IFD0 in the {tiff.name}")
    found.read_exif()
    return found


def jpeg_candidates(tiff: Tiff, ifd: Ifd, rw2_ifd0: bool = False) -> list[Candidate]:
    """What `ifd` points at as a JPEG: JPEGInterchangeFormat, JPEG strips, RW2's JpgFromRaw."""
    found = []
    start, length = tiff.first(ifd, JPEG_OFFSET), tiff.first(ifd, JPEG_LENGTH)
    if start and length:
        found.append(Candidate(tiff.base + start, length, f"{ifd.name} JPEG"))
    if tiff.first(ifd, COMPRESSION) in JPEG_COMPRESSIONS:
        strips = _strips(tiff, ifd)
        if strips is not None:
            found.append(Candidate(strips[0], strips[1], f"{ifd.name} JPEG strips"))
    if rw2_ifd0:
        whole = ifd.entries.get(RW2_JPG_FROM_RAW)
        if whole is not None and whole.type == UNDEFINED:
            found.append(Candidate(whole.at, whole.count, f"{ifd.name} JpgFromRaw"))
    return found


def _strips(tiff: Tiff, ifd: Ifd) -> tuple[int, int] | None:
    """(offset, length) of an image stored in strips, when they are one contiguous run: a JPEG
    stream split into strips is still one stream."""
    try:
        offsets = tiff.ints(ifd, STRIP_OFFSETS, MAX_STRIPS)
        counts = tiff.ints(ifd, STRIP_BYTE_COUNTS, MAX_STRIPS)
    except ContainerError:
        return None  # a preview pointer that leads nowhere is left out, not fatal
    if not offsets or len(offsets) != len(counts):
        return None
    for i in range(len(offsets) - 1):
        if offsets[i] + counts[i] != offsets[i + 1]:
            return None
    return tiff.base + offsets[0], sum(counts)


def scan_tiff_raw(src: Source, family: str, hint: str | None) -> Scan:
    """A TIFF-based RAW; `family` is what sniff() said ("TIFF", "CR2", "ORF", "RW2", "IIQ")."""
    tiff, first = open_tiff(src, 0, src.size, "TIFF", MAGICS)
    found = walk(tiff, first, rw2=family == "RW2")
    ifd0 = found.ifds[0]
    fmt = _format(family, found, hint)
    return Scan(
        format=fmt,
        orientation=valid_orientation(tiff.first(ifd0, ORIENTATION)),
        full_size=full_size(found, fmt),
        candidates=tuple(found.candidates),
    )


def _format(family: str, found: Walk, hint: str | None) -> str:
    if family != "TIFF":
        return family
    if DNG_VERSION in found.ifds[0].entries:
        return "DNG"
    make = found.make.upper()
    for prefix, fmt in _BY_MAKE.items():
        if make.startswith(prefix):
            return hint if hint is not None and hint in _ALTERNATIVES.get(fmt, ()) else fmt
    if hint is not None and hint in _TIFF_RAWS:
        return hint  # a maker we do not recognise by name; the file's name is all we have
    return "TIFF"


def full_size(found: Walk, fmt: str) -> tuple[int, int] | None:
    """The full image's (width, height) as the container states it, in order of trust: DNG's
    DefaultCropSize, RW2's sensor borders, the EXIF pixel dimensions, the largest full-resolution
    IFD (NewSubfileType 0)."""
    tiff = found.tiff
    stated = []
    if fmt == "DNG":
        stated += [_crop_size(tiff, ifd) for ifd in found.ifds if _is_main(tiff, ifd)]
    if fmt == "RW2":
        stated.append(_rw2_size(tiff, found.ifds[0]))
    if found.exif is not None:
        stated.append(
            valid_size(tiff.first(found.exif, EXIF_WIDTH), tiff.first(found.exif, EXIF_HEIGHT))
        )
    for size in stated:
        if size is not None:
            return size
    sizes = [
        size
        for ifd in found.ifds
        if _is_main(tiff, ifd)
        and (size := valid_size(tiff.first(ifd, IMAGE_WIDTH), tiff.first(ifd, IMAGE_LENGTH)))
    ]
    return max(sizes, key=lambda s: s[0] * s[1], default=None)


def _is_main(tiff: Tiff, ifd: Ifd) -> bool:
    return not tiff.first(ifd, NEW_SUBFILE_TYPE)  # 0 (or absent): the full-resolution image


def _crop_size(tiff: Tiff, ifd: Ifd) -> tuple[int, int] | None:
    try:
        values = tiff.ints(ifd, DEFAULT_CROP_SIZE, 2)  # SHORT, LONG or RATIONAL
    except ContainerError:
        return None
    return valid_size(*values) if len(values) == 2 else None


def _rw2_size(tiff: Tiff, ifd0: Ifd) -> tuple[int, int] | None:
    top, left, bottom, right = (tiff.first(ifd0, tag) for tag in RW2_BORDERS)
    if top is not None and left is not None and bottom is not None and right is not None:
        return valid_size(right - left, bottom - top)
    return valid_size(tiff.first(ifd0, RW2_SENSOR_SIZE[0]), tiff.first(ifd0, RW2_SENSOR_SIZE[1]))
