"""xmp: verdicts merged into sidecars that other tools wrote, and read back by ExifTool.

The fixtures in data/xmp/ are sidecars in the style Lightroom Classic, Capture One, Bridge CS3 and
darktable write (see data/xmp/README.md). ExifTool, a reader that is not ours, checks what was
written; the tests that need it skip when `exiftool` is not installed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eyespyd import __version__, xmp
from eyespyd.config import XmpSettings
from eyespyd.route import TEMP_SUFFIX, clean_temps
from eyespyd.xmp import SidecarVerdict, XmpError, read_verdict, sidecar_path, write_group

DATA = Path(__file__).parent / "data" / "xmp"
LIGHTROOM = DATA / "lightroom_classic.xmp"
CAPTURE_ONE = DATA / "capture_one.xmp"
BRIDGE = DATA / "bridge_cs3_two_descriptions.xmp"
DARKTABLE = DATA / "darktable.CR3.xmp"
FIXTURES = (LIGHTROOM, CAPTURE_ONE, BRIDGE, DARKTABLE)

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="ExifTool is not installed")

MODEL = "eyes-int8 1.0 (sha256 3f9a1c0d)"
NS = b'xmlns:eyespyd="http://ns.eyespyd.org/1.0/"'


def settings(
    naming: str = "adobe",
    rating: dict[str, int | None] | None = None,
    label: dict[str, str | None] | None = None,
    enabled: bool = True,
) -> XmpSettings:
    """The configuration's defaults unless told otherwise."""
    return XmpSettings(
        enabled=enabled,
        naming=naming,
        rating=rating if rating is not None else {"keep": None, "blink": -1, "review": None},
        label=label if label is not None else {"keep": None, "blink": "Red", "review": "Yellow"},
    )


def write(frame: Path, verdict: str = "blink", score: float = 0.912, **kw: Any) -> Path | None:
    return xmp.write_verdict(frame, verdict, score, MODEL, settings(**kw))


def photo(folder: Path, name: str = "IMG_0001.CR3") -> Path:
    path = folder / name
    path.write_bytes(b"pretend raw " * 1000)
    return path


def fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_mode


def place(fixture: Path, folder: Path, name: str = "IMG_0001.xmp") -> Path:
    path = folder / name
    shutil.copyfile(fixture, path)
    return path


def exiftool(path: Path) -> dict[str, Any]:
    """Every XMP tag ExifTool reads from `path`, by group, structures whole (darktable's history,
    Lightroom's crs:Look); it must read the file without a warning."""
    assert EXIFTOOL is not None
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-struct", "-XMP:all", "-Warning", "-Error", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    tags: dict[str, Any] = json.loads(out.stdout)[0]
    tags.pop("SourceFile")
    assert not [k for k in tags if k.startswith("ExifTool:")], tags
    return tags


def ours(tag: str) -> bool:
    return tag.startswith("XMP-eyespyd:") or tag in ("XMP-xmp:Rating", "XMP-xmp:Label")


def others(tags: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tags.items() if not ours(k)}


def edit(data: bytes, old: bytes, new: bytes) -> bytes:
    """`data` with the one occurrence of `old` replaced: how an expected file is built."""
    assert data.count(old) == 1, (old, data.count(old))
    return data.replace(old, new)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX))


# --- names --------------------------------------------------------------------------------------


def test_adobe_naming_replaces_the_extension_and_darktable_appends(tmp_path: Path) -> None:
    frame = tmp_path / "IMG_0001.CR3"
    assert sidecar_path(frame, "adobe") == tmp_path / "IMG_0001.xmp"
    assert sidecar_path(frame, "darktable") == tmp_path / "IMG_0001.CR3.xmp"
    assert sidecar_path(tmp_path / "IMG_0001.JPG", "adobe") == tmp_path / "IMG_0001.xmp"


def test_an_existing_uppercase_sidecar_is_used_rather_than_doubled(tmp_path: Path) -> None:
    place(LIGHTROOM, tmp_path, "IMG_0001.XMP")
    assert sidecar_path(tmp_path / "IMG_0001.CR3", "adobe") == tmp_path / "IMG_0001.XMP"
    assert write(photo(tmp_path)) == tmp_path / "IMG_0001.XMP"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IMG_0001.CR3", "IMG_0001.XMP"]


def test_an_unknown_naming_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="naming"):
        sidecar_path(tmp_path / "IMG_0001.CR3", "capture-one")


# --- new sidecars -------------------------------------------------------------------------------


@needs_exiftool
def test_a_new_sidecar_is_a_standard_packet_that_exiftool_reads(tmp_path: Path) -> None:
    frame = photo(tmp_path)
    before = fingerprint(frame)
    sidecar = write(frame, "blink", 0.912)
    assert sidecar == tmp_path / "IMG_0001.xmp"
    data = sidecar.read_bytes()
    assert data.startswith(b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>')
    assert data.rstrip().endswith(b'<?xpacket end="w"?>')
    assert b'<x:xmpmeta xmlns:x="adobe:ns:meta/"' in data
    assert exiftool(sidecar) == {
        "XMP-x:XMPToolkit": f"eyespyd {__version__}",
        "XMP-xmp:Rating": -1,
        "XMP-xmp:Label": "Red",
        "XMP-eyespyd:Verdict": "blink",
        "XMP-eyespyd:Score": 0.912,
        "XMP-eyespyd:ModelVersion": MODEL,
    }
    umask = os.umask(0)
    os.umask(umask)
    assert sidecar.stat().st_mode & 0o777 == 0o666 & ~umask
    assert fingerprint(frame) == before
    assert leftovers(tmp_path) == []


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    frame = photo(tmp_path)
    assert write(frame, enabled=False) is None
    assert write_group([frame], "blink", 0.9, MODEL, settings(enabled=False)).sidecars == ()
    assert [p.name for p in tmp_path.iterdir()] == ["IMG_0001.CR3"]


@needs_exiftool
def test_keep_without_rating_or_label_still_records_the_verdict(tmp_path: Path) -> None:
    sidecar = write(photo(tmp_path), "keep", 0.03)
    assert sidecar is not None
    tags = exiftool(sidecar)
    assert "XMP-xmp:Rating" not in tags and "XMP-xmp:Label" not in tags
    assert tags["XMP-eyespyd:Verdict"] == "keep"
    assert read_verdict(sidecar) == SidecarVerdict("keep", 0.03, MODEL, None, None)


def test_an_empty_sidecar_file_is_filled(tmp_path: Path) -> None:
    (tmp_path / "IMG_0001.xmp").write_bytes(b"")
    sidecar = write(photo(tmp_path), "review", 0.5)
    assert sidecar is not None
    assert read_verdict(sidecar) == SidecarVerdict("review", 0.5, MODEL, None, "Yellow")


# --- merges into real-world sidecars ------------------------------------------------------------


@needs_exiftool
def test_lightroom_sidecar_rating_attribute_changes_in_place_and_the_rest_is_kept(
    tmp_path: Path,
) -> None:
    original = LIGHTROOM.read_bytes()
    sidecar = place(LIGHTROOM, tmp_path)
    frame = photo(tmp_path)
    before = fingerprint(frame)

    assert write(frame, "blink", 0.912) == sidecar

    expected = edit(original, b'xmp:Rating="2"', b'xmp:Rating="-1"')
    expected = edit(
        expected,
        b'    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"\n',
        b'    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"\n    ' + NS + b"\n",
    )
    expected = edit(
        expected,
        b'   crs:RawFileName="IMG_0001.CR3">',
        b'   crs:RawFileName="IMG_0001.CR3"\n'
        b'   xmp:Label="Red"\n'
        b'   eyespyd:Verdict="blink"\n'
        b'   eyespyd:Score="0.9120"\n'
        b'   eyespyd:ModelVersion="' + MODEL.encode() + b'">',
    )
    assert sidecar.read_bytes() == expected
    tags = exiftool(sidecar)
    assert others(tags) == others(exiftool(LIGHTROOM))
    assert tags["XMP-crs:ToneCurvePV2012"] == ["0, 0", "64, 58", "128, 132", "192, 197", "255, 255"]
    assert tags["XMP-dc:Subject"] == ["wedding", "Smith & Jones", "Zoë", "first dance"]
    assert (tags["XMP-xmp:Rating"], tags["XMP-xmp:Label"]) == (-1, "Red")
    assert fingerprint(frame) == before


@needs_exiftool
def test_capture_one_sidecar_elements_change_in_place_and_the_packet_is_kept(
    tmp_path: Path,
) -> None:
    original = CAPTURE_ONE.read_bytes()
    sidecar = place(CAPTURE_ONE, tmp_path)

    write(photo(tmp_path, "IMG_0001.ARW"), "blink", 0.87)

    expected = edit(original, b"<xmp:Rating>3</xmp:Rating>", b"<xmp:Rating>-1</xmp:Rating>")
    expected = edit(expected, b"<xmp:Label>Green</xmp:Label>", b"<xmp:Label>Red</xmp:Label>")
    expected = edit(
        expected,
        b'            xmlns:aux="http://ns.adobe.com/exif/1.0/aux/">',
        b'            xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"\n            ' + NS + b"\n"
        b'            eyespyd:Verdict="blink"\n'
        b'            eyespyd:Score="0.8700"\n'
        b'            eyespyd:ModelVersion="' + MODEL.encode() + b'">',
    )
    data = sidecar.read_bytes()
    assert data == expected
    assert data.count(b"xmp:Rating") == 2 and data.count(b"xmp:Label") == 2  # open and close tag
    tags = exiftool(sidecar)
    assert others(tags) == others(exiftool(CAPTURE_ONE))
    assert (tags["XMP-xmp:Rating"], tags["XMP-xmp:Label"]) == (-1, "Red")


@needs_exiftool
def test_two_descriptions_with_the_old_xap_prefix(tmp_path: Path) -> None:
    """Bridge CS3 writes one rdf:Description per schema and `xap:` for the xmp namespace: the
    rating is found by its namespace, the label joins it in its description."""
    original = BRIDGE.read_bytes()
    sidecar = place(BRIDGE, tmp_path, "DSC_0412.xmp")

    write(photo(tmp_path, "DSC_0412.NEF"), "blink", 0.9)

    expected = edit(original, b"<xap:Rating>4</xap:Rating>", b"<xap:Rating>-1</xap:Rating>")
    expected = edit(
        expected,
        b'    xmlns:xap="http://ns.adobe.com/xap/1.0/">',
        b'    xmlns:xap="http://ns.adobe.com/xap/1.0/"\n    xap:Label="Red">',
    )
    expected = edit(
        expected,
        b'    xmlns:tiff="http://ns.adobe.com/tiff/1.0/">',
        b'    xmlns:tiff="http://ns.adobe.com/tiff/1.0/"\n    ' + NS + b"\n"
        b'    eyespyd:Verdict="blink"\n'
        b'    eyespyd:Score="0.9000"\n'
        b'    eyespyd:ModelVersion="' + MODEL.encode() + b'">',
    )
    assert sidecar.read_bytes() == expected
    tags = exiftool(sidecar)
    assert others(tags) == others(exiftool(BRIDGE))
    assert (tags["XMP-xmp:Rating"], tags["XMP-xmp:Label"]) == (-1, "Red")


@needs_exiftool
def test_darktable_sidecar_keeps_its_history(tmp_path: Path) -> None:
    original = DARKTABLE.read_bytes()
    sidecar = place(DARKTABLE, tmp_path, "IMG_0001.CR3.xmp")

    assert write(photo(tmp_path), "blink", 0.95, naming="darktable") == sidecar

    expected = edit(original, b'xmp:Rating="1"', b'xmp:Rating="-1"')
    expected = edit(
        expected,
        b'    xmlns:darktable="http://darktable.sf.net/"\n',
        b'    xmlns:darktable="http://darktable.sf.net/"\n    ' + NS + b"\n",
    )
    expected = edit(
        expected,
        b'   darktable:history_end="9">',
        b'   darktable:history_end="9"\n'
        b'   xmp:Label="Red"\n'
        b'   eyespyd:Verdict="blink"\n'
        b'   eyespyd:Score="0.9500"\n'
        b'   eyespyd:ModelVersion="' + MODEL.encode() + b'">',
    )
    assert sidecar.read_bytes() == expected
    tags = exiftool(sidecar)
    assert others(tags) == others(exiftool(DARKTABLE))
    operations = [step["Operation"] for step in tags["XMP-darktable:History"]]
    assert operations[:3] == ["rawprepare", "temperature", "highlights"] and len(operations) == 9
    assert tags["XMP-xmpMM:DerivedFrom"] == "IMG_0001.CR3"


@needs_exiftool
@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_a_second_verdict_updates_the_first_without_duplicating_it(
    tmp_path: Path, fixture: Path
) -> None:
    sidecar = place(fixture, tmp_path, "IMG_0001.xmp")
    frame = photo(tmp_path)
    write(frame, "blink", 0.91)
    once = sidecar.read_bytes()
    mtime = sidecar.stat().st_mtime_ns

    write(frame, "blink", 0.91)  # the same again: nothing to change, the file is not touched
    assert sidecar.read_bytes() == once
    assert sidecar.stat().st_mtime_ns == mtime

    write(frame, "review", 0.6, label={"keep": None, "blink": "Red", "review": "Purple"})
    data = sidecar.read_bytes()
    for name in (b"eyespyd:Verdict=", b"eyespyd:Score=", b"eyespyd:ModelVersion=", NS):
        assert data.count(name) == 1, name
    tags = exiftool(sidecar)
    assert others(tags) == others(exiftool(fixture))
    assert tags["XMP-eyespyd:Verdict"] == "review"
    assert tags["XMP-xmp:Rating"] == -1  # review's rating is null: the rating is left alone
    assert tags["XMP-xmp:Label"] == "Purple"


@needs_exiftool
def test_fields_exiftool_rewrote_as_elements_are_updated_in_place(tmp_path: Path) -> None:
    """A photographer's tool rewrites the sidecar its own way (ExifTool: single quotes, one
    description per schema, elements); our fields are still found and updated, once."""
    assert EXIFTOOL is not None
    frame = photo(tmp_path)
    sidecar = write(frame, "blink", 0.91)
    assert sidecar is not None
    subprocess.run(
        [
            EXIFTOOL,
            "-q",
            "-overwrite_original",
            "-XMP-xmp:Rating=4",
            "-XMP-dc:Subject=pick",
            sidecar,
        ],
        check=True,
    )
    rewritten = sidecar.read_bytes()
    assert b"<eyespyd:Verdict>blink</eyespyd:Verdict>" in rewritten
    assert read_verdict(sidecar) == SidecarVerdict("blink", 0.91, MODEL, 4, "Red")

    write(frame, "keep", 0.1, label={"keep": "Green", "blink": "Red", "review": None})

    data = sidecar.read_bytes()
    assert data.count(b"Verdict") == 2 and b"<eyespyd:Verdict>keep</eyespyd:Verdict>" in data
    tags = exiftool(sidecar)
    assert tags["XMP-xmp:Rating"] == 4  # the photographer's: keep's rating is null
    assert tags["XMP-xmp:Label"] == "Green"
    assert tags["XMP-dc:Subject"] == ["pick"]


@needs_exiftool
def test_an_exiftool_sidecar_gets_attributes_in_its_quotes(tmp_path: Path) -> None:
    assert EXIFTOOL is not None
    sidecar = tmp_path / "IMG_0001.xmp"
    subprocess.run([EXIFTOOL, "-q", "-XMP-dc:Subject=studio", str(sidecar)], check=True)
    original = sidecar.read_bytes()

    write(photo(tmp_path), "blink", 0.9)

    data = sidecar.read_bytes()
    assert b"xmlns:eyespyd='http://ns.eyespyd.org/1.0/'" in data
    assert b"eyespyd:Verdict='blink'" in data
    assert b"\n  xmp:Rating='-1'" in data
    assert original.split(b"<dc:subject>")[1] == data.split(b"<dc:subject>")[1]
    assert exiftool(sidecar)["XMP-dc:Subject"] == ["studio"]


# --- edge cases ---------------------------------------------------------------------------------


@needs_exiftool
def test_a_byte_order_mark_is_kept(tmp_path: Path) -> None:
    sidecar = tmp_path / "IMG_0001.CR3.xmp"
    sidecar.write_bytes(b"\xef\xbb\xbf" + DARKTABLE.read_bytes())
    write(photo(tmp_path), naming="darktable")
    data = sidecar.read_bytes()
    assert data.startswith(b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>')
    assert exiftool(sidecar)["XMP-eyespyd:Verdict"] == "blink"


@needs_exiftool
def test_windows_line_endings_are_kept(tmp_path: Path) -> None:
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(LIGHTROOM.read_bytes().replace(b"\n", b"\r\n"))
    write(photo(tmp_path))
    data = sidecar.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    assert b'\r\n   xmp:Label="Red"\r\n   eyespyd:Verdict="blink"' in data
    assert exiftool(sidecar)["XMP-xmp:Label"] == "Red"


@needs_exiftool
def test_an_empty_property_element_gets_its_value(tmp_path: Path) -> None:
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        b' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        b' rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:Label/><xmp:Rating'
        b" >0</xmp:Rating></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    write(photo(tmp_path))
    data = sidecar.read_bytes()
    assert b"<xmp:Label>Red</xmp:Label><xmp:Rating >-1</xmp:Rating>" in data
    tags = exiftool(sidecar)
    assert (tags["XMP-xmp:Rating"], tags["XMP-xmp:Label"]) == (-1, "Red")


@needs_exiftool
@pytest.mark.parametrize(
    "rdf",
    [
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>',
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n</rdf:RDF>',
    ],
    ids=["empty-element", "no-description"],
)
def test_an_rdf_without_a_description_gets_one(tmp_path: Path, rdf: bytes) -> None:
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(b'<x:xmpmeta xmlns:x="adobe:ns:meta/">' + rdf + b"</x:xmpmeta>\n")
    write(photo(tmp_path))
    tags = exiftool(sidecar)
    assert (tags["XMP-xmp:Rating"], tags["XMP-eyespyd:Verdict"]) == (-1, "blink")


@needs_exiftool
def test_a_label_with_markup_and_accents_is_escaped(tmp_path: Path) -> None:
    label = 'Rot & <Grün> "2"'
    sidecar = write(photo(tmp_path), label={"keep": None, "blink": label, "review": None})
    assert sidecar is not None
    assert b'xmp:Label="Rot &amp; &lt;Gr&#xFC;n&gt; &quot;2&quot;"' in sidecar.read_bytes()
    assert exiftool(sidecar)["XMP-xmp:Label"] == label
    assert read_verdict(sidecar) == SidecarVerdict("blink", 0.912, MODEL, -1, label)


def test_a_label_xml_cannot_hold_is_reported(tmp_path: Path) -> None:
    with pytest.raises(XmpError, match=r"xmp:Label value 'Red\\x07' holds a character"):
        write(photo(tmp_path), label={"keep": None, "blink": "Red\x07", "review": None})
    assert not (tmp_path / "IMG_0001.xmp").exists()


# --- sidecars left alone ------------------------------------------------------------------------

_MALFORMED = {
    "truncated": (
        LIGHTROOM.read_bytes()[:3000],
        "not valid XML (line 3, column 3: unclosed token)",
    ),
    "not-xml": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "not valid XML (line 1, column 1"),
    "unbound-prefix": (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description/></rdf:RDF></x:xmpmeta>',
        "unbound prefix",
    ),
    "doctype": (
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
        "it has a DOCTYPE",
    ),
    "not-xmp": (b"<html><body>hello</body></html>", "no rdf:RDF element in it"),
    "utf-16": ('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'.encode("utf-16"), "UTF-16"),
    "label-is-a-structure": (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22'
        b'-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:Label>'
        b'<rdf:Alt><rdf:li xml:lang="x-default">Red</rdf:li></rdf:Alt></xmp:Label>'
        b"</rdf:Description></rdf:RDF></x:xmpmeta>",
        "its xmp:Label is not a plain text value",
    ),
}


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_a_malformed_sidecar_is_left_byte_identical_and_reported(tmp_path: Path, case: str) -> None:
    content, why = _MALFORMED[case]
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(content)
    os.utime(sidecar, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before = fingerprint(sidecar)

    with pytest.raises(XmpError) as caught:
        write(photo(tmp_path))

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"writing the verdict into {sidecar}: ")
    assert why in message and message.endswith("; left as it was")
    assert caught.value.path == sidecar
    assert fingerprint(sidecar) == before
    assert leftovers(tmp_path) == []
    if case != "label-is-a-structure":
        with pytest.raises(XmpError, match="reading the verdict from"):
            read_verdict(sidecar)


def test_a_sidecar_that_is_a_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "IMG_0001.xmp").mkdir()
    with pytest.raises(XmpError, match="it is a folder, not a sidecar file"):
        write(photo(tmp_path))
    assert list((tmp_path / "IMG_0001.xmp").iterdir()) == []
    assert leftovers(tmp_path) == []


def test_a_symbolic_link_is_not_written_through(tmp_path: Path) -> None:
    elsewhere = place(LIGHTROOM, tmp_path, "elsewhere.xmp")
    (tmp_path / "IMG_0001.xmp").symlink_to(elsewhere)
    with pytest.raises(XmpError, match="symbolic link"):
        write(photo(tmp_path))
    assert elsewhere.read_bytes() == LIGHTROOM.read_bytes()
    assert (tmp_path / "IMG_0001.xmp").is_symlink()


def _failing_open(
    monkeypatch: pytest.MonkeyPatch, fails: Callable[[str, int], bool], code: int
) -> None:
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if fails(os.fspath(path), flags):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_an_unreadable_sidecar_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sidecar = place(LIGHTROOM, tmp_path)
    frame = photo(tmp_path)
    _failing_open(monkeypatch, lambda path, _: path == str(sidecar), errno.EACCES)
    with pytest.raises(XmpError, match=r"IMG_0001\.xmp: it cannot be read: permission denied$"):
        write(frame)
    monkeypatch.undo()
    assert sidecar.read_bytes() == LIGHTROOM.read_bytes()


def test_a_locked_sidecar_that_cannot_be_replaced_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chflags uchg (macOS) or chattr +i (Linux): the folder is writable, the name is not."""
    sidecar = place(LIGHTROOM, tmp_path)
    frame = photo(tmp_path)

    def locked(source: Any, target: Any) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), os.fspath(target))

    monkeypatch.setattr(os, "replace", locked)
    with pytest.raises(XmpError, match="cannot be replaced: operation not permitted; left as"):
        write(frame)
    monkeypatch.undo()
    assert sidecar.read_bytes() == LIGHTROOM.read_bytes()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
def test_a_read_only_folder_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """Tests run as root, who may write anywhere: the refusal is simulated."""
    if existing:
        place(LIGHTROOM, tmp_path)
    frame = photo(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    _failing_open(
        monkeypatch,
        lambda path, flags: bool(flags & os.O_CREAT) and Path(path).parent == tmp_path,
        errno.EROFS,
    )
    with pytest.raises(XmpError) as caught:
        write(frame)
    monkeypatch.undo()
    assert f"cannot create a file in {tmp_path}: read-only file system" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_mode_of_an_existing_sidecar_is_kept(tmp_path: Path) -> None:
    sidecar = place(LIGHTROOM, tmp_path)
    sidecar.chmod(0o640)
    write(photo(tmp_path))
    assert sidecar.stat().st_mode & 0o7777 == 0o640
    assert read_verdict(sidecar) is not None


def test_a_sidecar_changed_meanwhile_by_another_program_is_merged_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightroom saves its metadata between our read and our replace: its save is kept."""
    sidecar = place(LIGHTROOM, tmp_path)
    theirs = LIGHTROOM.read_bytes().replace(
        b"<rdf:li>first dance</rdf:li>", b"<rdf:li>cake</rdf:li>"
    )
    real_fsync = xmp.fsync_file
    calls = []

    def lightroom_saves(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            sidecar.write_bytes(theirs)
        real_fsync(fd)

    monkeypatch.setattr(xmp, "fsync_file", lightroom_saves)
    write(photo(tmp_path))
    data = sidecar.read_bytes()
    assert len(calls) == 2
    assert b"<rdf:li>cake</rdf:li>" in data and b"<rdf:li>first dance</rdf:li>" not in data
    assert data.count(b"eyespyd:Verdict=") == 1
    assert leftovers(tmp_path) == []


def test_a_sidecar_created_meanwhile_by_another_program_is_merged_into_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sidecar = tmp_path / "IMG_0001.xmp"
    real_fsync = xmp.fsync_file

    def darktable_writes(fd: int) -> None:
        if not sidecar.exists():
            shutil.copyfile(DARKTABLE, sidecar)
        real_fsync(fd)

    monkeypatch.setattr(xmp, "fsync_file", darktable_writes)
    write(photo(tmp_path))
    data = sidecar.read_bytes()
    assert b'darktable:operation="rawprepare"' in data
    assert b'eyespyd:Verdict="blink"' in data
    assert leftovers(tmp_path) == []


def test_a_temporary_file_left_by_a_kill_is_removed_by_route_clean_temps(tmp_path: Path) -> None:
    fd, temp = xmp._open_temp(tmp_path / "IMG_0001.xmp")
    assert clean_temps(tmp_path) == 0  # locked: a living writer's
    os.close(fd)  # the kill
    assert clean_temps(tmp_path) == 1
    assert not temp.exists()


# --- groups -------------------------------------------------------------------------------------


def test_a_raw_jpeg_pair_shares_one_adobe_sidecar(tmp_path: Path) -> None:
    jpeg, raw = photo(tmp_path, "IMG_0001.JPG"), photo(tmp_path, "IMG_0001.CR3")
    existing = place(LIGHTROOM, tmp_path)
    before = fingerprint(jpeg), fingerprint(raw)

    written = write_group([jpeg, raw, existing], "blink", 0.9, MODEL, settings())

    assert written.sidecars == (existing,) and written.errors == ()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "IMG_0001.CR3",
        "IMG_0001.JPG",
        "IMG_0001.xmp",
    ]
    assert (fingerprint(jpeg), fingerprint(raw)) == before
    assert read_verdict(existing) == SidecarVerdict("blink", 0.9, MODEL, -1, "Red")


def test_darktable_naming_writes_one_sidecar_per_photo(tmp_path: Path) -> None:
    jpeg, raw = photo(tmp_path, "IMG_0001.JPG"), photo(tmp_path, "IMG_0001.CR3")
    dt = place(DARKTABLE, tmp_path, "IMG_0001.CR3.xmp")
    written = write_group([jpeg, raw, dt], "review", 0.5, MODEL, settings("darktable"))
    assert written.sidecars == (tmp_path / "IMG_0001.JPG.xmp", dt)
    assert read_verdict(written.sidecars[0]) == SidecarVerdict("review", 0.5, MODEL, None, "Yellow")
    # review has no rating: darktable's stays
    assert read_verdict(dt) == SidecarVerdict("review", 0.5, MODEL, 1, "Yellow")
    assert b"darktable:history" in dt.read_bytes()


def test_a_group_reports_each_failure_and_writes_the_rest(tmp_path: Path) -> None:
    jpeg, raw = photo(tmp_path, "IMG_0001.JPG"), photo(tmp_path, "IMG_0001.CR3")
    (tmp_path / "IMG_0001.JPG.xmp").mkdir()
    written = write_group([jpeg, raw], "blink", 0.9, MODEL, settings("darktable"))
    assert written.sidecars == (tmp_path / "IMG_0001.CR3.xmp",)
    assert [e.path for e in written.errors] == [tmp_path / "IMG_0001.JPG.xmp"]


# --- reading ------------------------------------------------------------------------------------


def test_read_verdict_is_none_without_our_fields(tmp_path: Path) -> None:
    assert read_verdict(tmp_path / "IMG_0001.xmp") is None
    assert read_verdict(place(LIGHTROOM, tmp_path)) is None


def test_bad_arguments_are_programming_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="verdict"):
        write(photo(tmp_path), "maybe")
    with pytest.raises(ValueError, match="finite"):
        write(photo(tmp_path), "blink", float("nan"))


@needs_exiftool
def test_namespaces_declared_on_an_ancestor_are_used_and_taken_prefixes_avoided(
    tmp_path: Path,
) -> None:
    sidecar = tmp_path / "IMG_0001.xmp"
    sidecar.write_bytes(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/" xmlns:eyespyd="http://example.com/not-ours/">\n'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns:xmp="http://ns.adobe.com/xap/1.0/">\n'
        b"<rdf:Description>\n<xmp:Rating>5</xmp:Rating>\n<eyespyd:Verdict>theirs</eyespyd:Verdict>\n"
        b"</rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n"
    )
    write(photo(tmp_path))
    data = sidecar.read_bytes()
    assert data.startswith(
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/" xmlns:eyespyd="http://example.com/not-ours/">\n'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns:xmp="http://ns.adobe.com/xap/1.0/">\n'
        b'<rdf:Description xmlns:eyespyd1="http://ns.eyespyd.org/1.0/" xmp:Label="Red"'
        b' eyespyd1:Verdict="blink"'
    )
    assert b"<xmp:Rating>-1</xmp:Rating>\n<eyespyd:Verdict>theirs</eyespyd:Verdict>" in data
    tags = exiftool(sidecar)
    assert (tags["XMP-xmp:Rating"], tags["XMP-xmp:Label"]) == (-1, "Red")
    assert read_verdict(sidecar) == SidecarVerdict("blink", 0.912, MODEL, -1, "Red")
