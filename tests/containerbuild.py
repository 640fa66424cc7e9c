"""Builders of camera files around real JPEG bytes, for tests and benchmarks.

Each returns a whole file as bytes, laid out as cameras write them: the header, every IFD or box,
then the JPEGs, then `raw_bytes` of filler standing in for the raw data (so a truncated copy
loses the raw data and previews first, and offsets are realistic). Pass JPEGs made with Pillow.

    make_mpf_jpeg(main, preview)     a camera JPEG whose MPF index lists `preview` as image 2
    make_tiff_raw(fmt, previews)     CR2, NEF, NRW, ARW, SR2, DNG, PEF, ORF, RW2, IIQ (see LAYOUTS)
    make_cr3(prvw, thmb)             Canon CR3 with PRVW, THMB and optionally a full-size JPEG
    make_raf(jpeg)                   Fujifilm RAF

The full image size written into the metadata is FULL_SIZE unless `full_size=` says otherwise.
"""

from __future__ import annotations

import io
import itertools
import random
import struct
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

FULL_SIZE = (6000, 4000)
RAW_BYTES = 64 * 1024

# TIFF field types used here.
ASCII, SHORT, LONG, UNDEFINED = 2, 3, 4, 7

# Where make_tiff_raw puts the previews, by layout; DEFAULT_LAYOUT says what each camera does.
LAYOUTS = {
    "ifd": "IFD0 is the raw image; previews[i] is in IFD{i+1} by JPEGInterchangeFormat (PEF)",
    "ifd0": "previews[i] is in IFD{i} by JPEGInterchangeFormat; the raw is SubIFD0 (ARW, SR2)",
    "subifd": "IFD0 is an RGB thumbnail; previews[i] is SubIFD{i}'s JPEGInterchangeFormat, the "
    "raw the last SubIFD (NEF)",
    "strips": "previews[i] is IFD{i}'s strips, Compression 6; the raw (lossless JPEG) is the "
    "last IFD (CR2)",
    "dng": "IFD0 is an RGB thumbnail with DNGVersion; SubIFD0 is the raw (lossless JPEG, "
    "Compression 7), previews[i] is SubIFD{i+1}'s strips, Compression 7 (DNG)",
    "makernote": "previews[0] is in the maker note (Nikon PreviewIFD, Olympus CameraSettings, "
    "Pentax); the rest in IFD1... by JPEGInterchangeFormat (ORF)",
    "jpgfromraw": "previews[0] is RW2's IFD0 tag 0x002E; the rest in IFD1... (RW2)",
}
DEFAULT_LAYOUT = {
    "CR2": "strips",
    "NEF": "subifd",
    "NRW": "subifd",
    "ARW": "ifd0",
    "SR2": "ifd0",
    "DNG": "dng",
    "PEF": "ifd",
    "ORF": "makernote",
    "RW2": "jpgfromraw",
    "IIQ": "ifd0",
}
_MAKE = {
    "CR2": "Canon",
    "NEF": "NIKON CORPORATION",
    "NRW": "NIKON CORPORATION",
    "ARW": "SONY",
    "SR2": "SONY",
    "DNG": "RICOH IMAGING COMPANY, LTD.",  # a Pentax maker: DNGVersion must win over the make
    "PEF": "PENTAX",
    "ORF": "OLYMPUS CORPORATION",
    "RW2": "Panasonic",
    "IIQ": "Phase One",
}
_BIG_ENDIAN = {"NEF", "NRW", "PEF"}  # what those cameras write


# --- layout: chunks placed one after another, each able to point at the others ---------------

Chunk = bytes | Callable[[Mapping[str, int]], bytes]


class _File:
    """Named chunks laid end to end (padded to even lengths when `pad`, as TIFF writers do). A
    chunk is bytes, or a function of every chunk's absolute offset, so an IFD can point at a
    JPEG placed after it; such a function must return the same length whatever the offsets."""

    def __init__(self, pad: bool = True) -> None:
        self._chunks: list[tuple[str, Chunk]] = []
        self._pad = pad

    def add(self, name: str, chunk: Chunk) -> None:
        self._chunks.append((name, chunk))

    def build(self) -> bytes:
        zeros: defaultdict[str, int] = defaultdict(int)
        where: dict[str, int] = {}
        pos = 0
        for name, chunk in self._chunks:
            where[name] = pos
            size = len(chunk) if isinstance(chunk, bytes) else len(chunk(zeros))
            pos += size + (size % 2 if self._pad else 0)
        out = bytearray()
        for _, chunk in self._chunks:
            data = chunk if isinstance(chunk, bytes) else chunk(where)
            out += data + (b"\0" * (len(data) % 2) if self._pad else b"")
        return bytes(out)


@dataclass(frozen=True)
class _At:
    """An entry whose data lives in another chunk: its offset and byte count."""

    offset: int
    count: int


Value = int | tuple[int, ...] | str | bytes | _At
Entries = list[tuple[int, int, Value]]


def _ifd(order: str, at: int, entries: Entries, next_ifd: int = 0, base: int = 0) -> bytes:
    """One IFD at absolute offset `at`, its offsets counted from `base`, with the values that do
    not fit in an entry stored right after it."""
    data_at = at + 2 + 12 * len(entries) + 4
    table = bytearray(struct.pack(order + "H", len(entries)))
    extra = bytearray()
    for tag, kind, value in sorted(entries, key=lambda e: e[0]):
        if isinstance(value, _At):
            table += struct.pack(order + "HHII", tag, kind, value.count, value.offset - base)
            continue
        count, raw = _encode(order, kind, value)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", data_at + len(extra) - base)
            extra += raw + b"\0" * (len(raw) % 2)
        table += struct.pack(order + "HHI", tag, kind, count) + field
    table += struct.pack(order + "I", next_ifd)
    return bytes(table + extra)


def _encode(order: str, kind: int, value: Value) -> tuple[int, bytes]:
    if isinstance(value, str):
        raw = value.encode("latin-1") + b"\0"
        return len(raw), raw
    if isinstance(value, bytes):
        return len(value), value
    values = (value,) if isinstance(value, int) else value
    assert isinstance(values, tuple)
    code = {SHORT: "H", LONG: "I"}[kind]
    return len(values), struct.pack(order + code * len(values), *values)


def _tiff_header(order: str, first_ifd: int, magic: int = 42) -> bytes:
    return (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", magic, first_ifd)


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as image:
        size: tuple[int, int] = image.size
        return size


def _filler(size: int, seed: int = 0) -> bytes:
    """Deterministic noise standing in for compressed raw data."""
    return random.Random(seed).randbytes(size)


def lossless_jpeg(width: int, height: int, body: bytes) -> bytes:
    """A lossless-JPEG (SOF3) stream as CR2 and DNG store raw data: it starts with FFD8 too, and a
    preview locator must not take it for a preview."""
    sof = struct.pack(">BHHB", 14, height, width, 2) + b"\x01\x11\x00\x02\x11\x00"
    sos = b"\x02\x01\x00\x02\x10\x01\x00\x00"
    return (
        b"\xff\xd8"
        + b"\xff\xc3"
        + struct.pack(">H", 2 + len(sof))
        + sof
        + b"\xff\xda"
        + struct.pack(">H", 2 + len(sos))
        + sos
        + body
        + b"\xff\xd9"
    )


# --- camera JPEG with an MPF index ---------------------------------------------------------------


def make_mpf_jpeg(main: bytes, preview: bytes, *, big_endian: bool = True) -> bytes:
    """`main` with an APP2 MPF index (CIPA DC-007) inserted after its APP0/APP1 segments (so its
    EXIF is kept) and `preview` appended after its EOI, listed as image 2, as cameras do."""
    if not main.startswith(b"\xff\xd8"):
        raise ValueError("main is not a JPEG")
    insert = 2
    while main[insert : insert + 2] in (b"\xff\xe0", b"\xff\xe1"):
        insert += 2 + struct.unpack(">H", main[insert + 2 : insert + 4])[0]
    order = ">" if big_endian else "<"
    ifd_size = 2 + 3 * 12 + 4
    segment_size = 2 + 2 + 4 + 8 + ifd_size + 32
    tiff_at = insert + 4 + 4  # after FFE2, the length, "MPF\0"
    total_main = len(main) + segment_size
    entries = struct.pack(order + "IIIHH", 0x20030000, total_main, 0, 0, 0)
    entries += struct.pack(order + "IIIHH", 0x00010002, len(preview), total_main - tiff_at, 0, 0)
    index = _ifd(
        order,
        8,
        [
            (0xB000, UNDEFINED, b"0100"),
            (0xB001, LONG, 2),
            (0xB002, UNDEFINED, _At(8 + ifd_size, 32)),
        ],
    )
    payload = b"MPF\0" + _tiff_header(order, 8) + index + entries
    segment = b"\xff\xe2" + struct.pack(">H", 2 + len(payload)) + payload
    assert len(segment) == segment_size
    return main[:insert] + segment + main[insert:] + preview


# --- TIFF-based RAWs ------------------------------------------------------------------------------


def make_tiff_raw(
    fmt: str,
    previews: Sequence[bytes],
    orientation: int = 1,
    layout: str | None = None,
    *,
    full_size: tuple[int, int] = FULL_SIZE,
    raw_bytes: int = RAW_BYTES,
    big_endian: bool | None = None,
    strips: int = 1,
) -> bytes:
    """A TIFF-based RAW of format `fmt` with `previews` placed as `layout` says (LAYOUTS; by
    default the camera's own, DEFAULT_LAYOUT). `strips` splits each strip-stored JPEG into that
    many contiguous strips. IFD0 carries Make and `orientation`; the full size is in the EXIF
    IFD (CR2, ARW, SR2, PEF, ORF, IIQ), the raw IFD (NEF, NRW), DefaultCropSize (DNG) or the
    sensor borders (RW2)."""
    layout = layout or DEFAULT_LAYOUT[fmt]
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}")
    big = fmt in _BIG_ENDIAN if big_endian is None else big_endian
    if big and fmt in ("CR2", "RW2", "IIQ"):
        raise ValueError(f"{fmt} files are little-endian")
    order = ">" if big else "<"
    raw = lossless_jpeg(full_size[0], full_size[1], _filler(raw_bytes))
    return _TiffRaw(fmt, list(previews), orientation, layout, full_size, order, strips, raw).build()


class _TiffRaw:
    def __init__(
        self,
        fmt: str,
        previews: list[bytes],
        orientation: int,
        layout: str,
        full_size: tuple[int, int],
        order: str,
        strips: int,
        raw: bytes,
    ) -> None:
        self.fmt, self.previews, self.layout, self.raw = fmt, previews, layout, raw
        self.orientation, self.full, self.order, self.strips = orientation, full_size, order, strips
        self.file = _File()
        # IFDs in chain order, each (chunk name, entries as a function of the offsets).
        self.chain: list[tuple[str, Callable[[Mapping[str, int]], Entries]]] = []
        self.subs: list[tuple[str, Callable[[Mapping[str, int]], Entries]]] = []

    def build(self) -> bytes:
        self.file.add("header", self._header)
        getattr(self, f"_layout_{self.layout}")()
        chain_names = [name for name, _ in self.chain]
        for i, (name, entries) in enumerate(self.chain):
            following = chain_names[i + 1] if i + 1 < len(chain_names) else None
            self.file.add(name, self._ifd_chunk(name, entries, following))
        for name, entries in self.subs:
            self.file.add(name, self._ifd_chunk(name, entries, None))
        self.file.add("exif", self._ifd_chunk("exif", self._exif_entries, None))
        if self.layout == "makernote":
            self.file.add("makernote", self._makernote)
        in_note = 1 if self.layout == "makernote" else 0  # previews[0] is inside the note
        for i, preview in enumerate(self.previews[in_note:], start=in_note):
            self.file.add(f"jpeg{i}", preview)
        self.file.add("raw", self.raw)
        return self.file.build()

    # chunks

    def _header(self, at: Mapping[str, int]) -> bytes:
        first = at["ifd0"]
        if self.fmt == "CR2":  # "CR" 2 0 and the raw IFD's offset
            return _tiff_header("<", first) + b"CR\x02\0" + struct.pack("<I", at["rawifd"])
        if self.fmt == "ORF":
            return _tiff_header(self.order, first, 0x4F52)  # "IIRO" / "MMOR"
        if self.fmt == "RW2":
            return _tiff_header("<", first, 0x55)
        if self.fmt == "IIQ":  # Phase One's own directory follows the header
            return _tiff_header("<", first) + b"IIIICwaR" + bytes(8)
        return _tiff_header(self.order, first)

    def _ifd_chunk(
        self, name: str, entries: Callable[[Mapping[str, int]], Entries], following: str | None
    ) -> Callable[[Mapping[str, int]], bytes]:
        def chunk(at: Mapping[str, int]) -> bytes:
            next_ifd = at[following] if following else 0
            return _ifd(self.order, at[name], entries(at), next_ifd)

        return chunk

    def _ifd0_common(self, at: Mapping[str, int]) -> Entries:
        return [
            (0x010F, ASCII, _MAKE[self.fmt]),
            (0x0112, SHORT, self.orientation),
            (0x8769, LONG, at["exif"]),
        ]

    def _exif_entries(self, at: Mapping[str, int]) -> Entries:
        entries: Entries = [(0x9000, UNDEFINED, b"0231")]
        if self.fmt in ("CR2", "ARW", "SR2", "PEF", "ORF", "IIQ"):
            entries += [(0xA002, LONG, self.full[0]), (0xA003, LONG, self.full[1])]
        if self.layout == "makernote":
            entries.append((0x927C, UNDEFINED, _At(at["makernote"], len(self._makernote(at)))))
        return entries

    def _jpeg_entries(self, i: int) -> Callable[[Mapping[str, int]], Entries]:
        return lambda at: [
            (0x0103, SHORT, 6),
            (0x0201, LONG, at[f"jpeg{i}"]),
            (0x0202, LONG, len(self.previews[i])),
        ]

    def _strip_entries(self, i: int, compression: int, at: Mapping[str, int]) -> Entries:
        jpeg = self.previews[i]
        width, height = _jpeg_size(jpeg)
        cuts = [len(jpeg) * k // self.strips for k in range(self.strips + 1)]
        offsets = tuple(at[f"jpeg{i}"] + cut for cut in cuts[:-1])
        counts = tuple(b - a for a, b in itertools.pairwise(cuts))
        return [
            (0x00FE, LONG, 1),
            (0x0100, LONG, width),
            (0x0101, LONG, height),
            (0x0103, SHORT, compression),
            (0x0106, SHORT, 6),  # YCbCr
            (0x0111, LONG, offsets),
            (0x0115, SHORT, 3),
            (0x0116, LONG, height // self.strips + 1),
            (0x0117, LONG, counts),
        ]

    def _raw_entries(self, compression: int) -> Callable[[Mapping[str, int]], Entries]:
        return lambda at: [
            (0x00FE, LONG, 0),
            (0x0100, LONG, self.full[0]),
            (0x0101, LONG, self.full[1]),
            (0x0103, SHORT, compression),
            (0x0111, LONG, at["raw"]),
            (0x0117, LONG, len(self.raw)),
        ]

    def _rgb_thumbnail_entries(self, at: Mapping[str, int]) -> Entries:
        # 160x120 uncompressed RGB pointing into the raw filler: not a JPEG, never a preview.
        return [
            (0x00FE, LONG, 1),
            (0x0100, LONG, 160),
            (0x0101, LONG, 120),
            (0x0103, SHORT, 1),
            (0x0111, LONG, at["raw"]),
            (0x0117, LONG, min(160 * 120 * 3, len(self.raw))),
        ]

    # layouts

    def _layout_ifd(self) -> None:
        self.chain.append(("ifd0", lambda at: self._ifd0_common(at) + self._raw_entries(1)(at)))
        self._previews_from(0)

    def _layout_ifd0(self) -> None:
        def ifd0(at: Mapping[str, int]) -> Entries:
            entries = [*self._ifd0_common(at), (0x014A, LONG, at["rawifd"])]
            return entries + (self._jpeg_entries(0)(at) if self.previews else [])

        self.chain.append(("ifd0", ifd0))
        for i in range(1, len(self.previews)):
            self.chain.append((f"ifd{i}", self._jpeg_entries(i)))
        self.subs.append(("rawifd", self._raw_entries(32767)))

    def _layout_subifd(self) -> None:
        names = [f"sub{i}" for i in range(len(self.previews))] + ["rawifd"]

        def ifd0(at: Mapping[str, int]) -> Entries:
            offsets = tuple(at[name] for name in names)
            return (
                self._ifd0_common(at) + self._rgb_thumbnail_entries(at) + [(0x014A, LONG, offsets)]
            )

        self.chain.append(("ifd0", ifd0))
        for i in range(len(self.previews)):
            self.subs.append((f"sub{i}", self._jpeg_entries(i)))
        self.subs.append(("rawifd", self._raw_entries(34713)))

    def _layout_strips(self) -> None:
        def preview_ifd(i: int) -> Callable[[Mapping[str, int]], Entries]:
            def entries(at: Mapping[str, int]) -> Entries:
                common = self._ifd0_common(at) if i == 0 else []
                return common + self._strip_entries(i, 6, at)

            return entries

        def raw_ifd(at: Mapping[str, int]) -> Entries:  # CR2's raw IFD has no width or height
            return [e for e in self._raw_entries(6)(at) if e[0] not in (0x0100, 0x0101)]

        if not self.previews:
            self.chain.append(("ifd0", self._ifd0_common))
        for i in range(len(self.previews)):
            self.chain.append((f"ifd{i}", preview_ifd(i)))
        self.chain.append(("rawifd", raw_ifd))

    def _layout_dng(self) -> None:
        names = ["rawifd"] + [f"sub{i}" for i in range(len(self.previews))]
        width, height = self.full

        def ifd0(at: Mapping[str, int]) -> Entries:
            offsets = tuple(at[name] for name in names)
            return (
                self._ifd0_common(at)
                + self._rgb_thumbnail_entries(at)
                + [(0x014A, LONG, offsets), (0xC612, UNDEFINED, b"\x01\x06\x00\x00")]
            )

        def raw_ifd(at: Mapping[str, int]) -> Entries:
            entries = [e for e in self._raw_entries(7)(at) if e[0] not in (0x0100, 0x0101)]
            return [
                *entries,
                (0x0100, LONG, width + 64),  # the sensor has borders; DefaultCropSize does not
                (0x0101, LONG, height + 40),
                (0xC620, LONG, (width, height)),
            ]

        def preview_ifd(i: int) -> Callable[[Mapping[str, int]], Entries]:
            return lambda at: self._strip_entries(i, 7, at)

        self.chain.append(("ifd0", ifd0))
        self.subs.append(("rawifd", raw_ifd))
        for i in range(len(self.previews)):
            self.subs.append((f"sub{i}", preview_ifd(i)))

    def _layout_makernote(self) -> None:
        if self.fmt not in ("NEF", "NRW", "ORF", "PEF"):
            raise ValueError(f"no maker note preview layout for {self.fmt}")
        self.chain.append(("ifd0", lambda at: self._ifd0_common(at) + self._raw_entries(1)(at)))
        self._previews_from(1)

    def _layout_jpgfromraw(self) -> None:
        if self.fmt != "RW2":
            raise ValueError("the jpgfromraw layout is RW2's")
        width, height = self.full

        def ifd0(at: Mapping[str, int]) -> Entries:
            entries = [
                (0x0002, SHORT, width + 16),
                (0x0003, SHORT, height + 12),
                (0x0004, SHORT, 6),  # top border
                (0x0005, SHORT, 8),  # left
                (0x0006, SHORT, height + 6),  # bottom
                (0x0007, SHORT, width + 8),  # right
                (0x0111, LONG, at["raw"]),
                *self._ifd0_common(at),
            ]
            if self.previews:
                entries.append((0x002E, UNDEFINED, _At(at["jpeg0"], len(self.previews[0]))))
            return entries

        self.chain.append(("ifd0", ifd0))
        self._previews_from(1)

    def _previews_from(self, first: int) -> None:
        for i in range(first, len(self.previews)):
            self.chain.append((f"ifd{len(self.chain)}", self._jpeg_entries(i)))

    # maker notes: previews[0], kept inside the note as the cameras do

    def _makernote(self, at: Mapping[str, int]) -> bytes:
        jpeg = self.previews[0] if self.previews else b""
        o = self.order
        mark = b"II" if o == "<" else b"MM"

        def two_ifds(first_at: int, first: Entries, second: Callable[[int], Entries]) -> bytes:
            """An IFD at `first_at` whose last entry points at a second IFD right after it, whose
            entries (a function of where the JPEG after both lands) point at the JPEG."""
            main = _ifd(o, first_at, first)
            second_at = first_at + len(main)
            size = len(_ifd(o, second_at, second(0)))
            return main + _ifd(o, second_at, second(second_at + size))

        if self.fmt in ("NEF", "NRW"):  # offsets from the TIFF header at +10
            main_size = 6 + 12 * 2
            ifds = two_ifds(
                8,
                [(0x0001, UNDEFINED, b"0210"), (0x0011, LONG, 8 + main_size)],
                lambda jpeg_at: [
                    (0x0103, SHORT, 6),
                    (0x0201, LONG, jpeg_at),
                    (0x0202, LONG, len(jpeg)),
                ],
            )
            return b"Nikon\0\x02\x10\0\0" + _tiff_header(o, 8) + ifds + jpeg
        if self.fmt == "ORF":  # offsets from the note's start
            main_size = 6 + 12 * 2
            ifds = two_ifds(
                12,
                [(0x0000, UNDEFINED, b"0100"), (0x2020, LONG, 12 + main_size)],
                lambda jpeg_at: [
                    (0x0000, UNDEFINED, b"0100"),
                    (0x0100, LONG, 1),
                    (0x0101, LONG, jpeg_at),
                    (0x0102, LONG, len(jpeg)),
                ],
            )
            return b"OLYMPUS\0" + mark + struct.pack(o + "H", 3) + ifds + jpeg
        # Pentax "AOC\0": offsets from the file's TIFF header
        ifd_at = at["makernote"] + 6

        def entries(jpeg_at: int) -> Entries:
            return [
                (0x0000, UNDEFINED, b"\x04\x00\x00\x00"),
                (0x0003, LONG, len(jpeg)),
                (0x0004, LONG, jpeg_at),
            ]

        size = len(_ifd(o, ifd_at, entries(0)))
        return b"AOC\0" + mark + _ifd(o, ifd_at, entries(ifd_at + size)) + jpeg


# --- Canon CR3 ------------------------------------------------------------------------------------


CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
PREVIEW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")


def box(kind: bytes, payload: bytes) -> bytes:
    """An ISO BMFF box with a 32-bit size."""
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def make_cr3(
    prvw: bytes,
    thmb: bytes,
    orientation: int = 1,
    *,
    full: bytes | None = None,
    full_size: tuple[int, int] = FULL_SIZE,
    raw_bytes: int = RAW_BYTES,
) -> bytes:
    """A CR3: `thmb` in moov's Canon uuid THMB box, `prvw` in the preview uuid's PRVW box,
    `orientation` and `full_size` in CMT1, and track 1 holding `full` (the full-size JPEG; a
    placeholder when None) ahead of track 2's raw data in mdat."""
    full_jpeg = full if full is not None else b"<full-size JPEG placeholder>"
    raw = _filler(raw_bytes)
    width, height = full_size
    cmt1_ifd = _ifd(
        "<",
        8,
        [
            (0x0100, LONG, width),
            (0x0101, LONG, height),
            (0x010F, ASCII, "Canon"),
            (0x0112, SHORT, orientation),
        ],
    )
    thumb_w, thumb_h = _jpeg_size(thmb)
    canon = (
        CANON_UUID
        + box(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00")
        + box(b"CMT1", _tiff_header("<", 8) + cmt1_ifd)
        + box(b"THMB", struct.pack(">IHHIHH", 0, thumb_w, thumb_h, len(thmb), 1, 0) + thmb)
    )
    prvw_w, prvw_h = _jpeg_size(prvw)
    prvw_box = box(b"PRVW", struct.pack(">IHHHHI", 0, 1, prvw_w, prvw_h, 1, len(prvw)) + prvw)
    preview_uuid = box(b"uuid", PREVIEW_UUID + struct.pack(">II", 0, 1) + prvw_box)

    def trak(sample_at: int, sample_size: int, media: bytes) -> bytes:
        # The sample entry: CRAW's 82-byte header (width and height at +24), then a JPEG box for
        # the JPEG track or a CMP1 box (the CRX codec's parameters) for a raw track.
        craw = bytes(24) + struct.pack(">HH", *full_size) + bytes(54) + box(media, bytes(4))
        stbl = (
            box(b"stsd", struct.pack(">II", 0, 1) + box(b"CRAW", craw))
            + box(b"stsz", struct.pack(">III", 0, sample_size, 1))
            + box(b"co64", struct.pack(">IIQ", 0, 1, sample_at))
        )
        minf = box(b"minf", box(b"vmhd", bytes(12)) + box(b"stbl", stbl))
        mdia = box(b"mdia", box(b"hdlr", bytes(8) + b"vide" + bytes(13)) + minf)
        return box(b"trak", box(b"tkhd", bytes(84)) + mdia)

    def moov(at: Mapping[str, int]) -> bytes:
        tracks = trak(at["mdat"] + 16, len(full_jpeg), b"JPEG") + trak(
            at["mdat"] + 16 + len(full_jpeg), len(raw), b"CMP1"
        )
        return box(b"moov", box(b"uuid", canon) + box(b"mvhd", bytes(100)) + tracks)

    mdat_payload = full_jpeg + raw
    file = _File(pad=False)  # boxes follow each other with no gap
    file.add("ftyp", box(b"ftyp", b"crx " + struct.pack(">I", 1) + b"crx isom"))
    file.add("moov", moov)
    file.add("preview", preview_uuid)
    # Canon writes mdat with a 64-bit size (size field 1).
    file.add("mdat", struct.pack(">I4sQ", 1, b"mdat", 16 + len(mdat_payload)) + mdat_payload)
    return file.build()


# --- Fujifilm RAF ---------------------------------------------------------------------------------


def make_raf(
    jpeg: bytes, *, full_size: tuple[int, int] = FULL_SIZE, raw_bytes: int = RAW_BYTES
) -> bytes:
    """A RAF: the 148-byte header pointing at `jpeg` (which carries the EXIF and orientation),
    the RAF directory with RawImageFullSize and RawImageCroppedSize, then the raw data."""
    width, height = full_size
    records = [
        (0x100, struct.pack(">HH", height + 24, width + 96)),
        (0x111, struct.pack(">HH", height, width)),
    ]
    directory = struct.pack(">I", len(records)) + b"".join(
        struct.pack(">HH", tag, len(data)) + data for tag, data in records
    )
    jpeg_at = 148
    directory_at = jpeg_at + len(jpeg) + len(jpeg) % 2
    raw_at = directory_at + len(directory)
    header = (
        b"FUJIFILMCCD-RAW 0201FF129502"
        + b"X-T5".ljust(32, b"\0")
        + b"0100"
        + bytes(20)
        + struct.pack(">6I", jpeg_at, len(jpeg), directory_at, len(directory), raw_at, raw_bytes)
    )
    header = header.ljust(jpeg_at, b"\0")
    return header + jpeg + b"\0" * (len(jpeg) % 2) + directory + _filler(raw_bytes)
