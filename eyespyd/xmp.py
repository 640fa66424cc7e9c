"""xmp: a verdict -> the frame's XMP sidecar, merged into whatever is already there.

What is written, for a verdict (keep, blink or review), when `xmp.enabled` is on:

- `xmp:Rating`, if configured for the verdict: -1 for blink by default, the reject mark every
  editor reads;
- `xmp:Label`, if configured: a colour name (Lightroom's set is Red, Yellow, Green, Blue, Purple);
- always `eyespyd:Verdict`, `eyespyd:Score` and `eyespyd:ModelVersion` (namespace
  `http://ns.eyespyd.org/1.0/`), so that what eyespyd said can later be told apart from what the
  photographer did with the rating and the label.

Sidecar names (`sidecar_path`): `adobe` is `IMG_0001.xmp` (Lightroom, Bridge, Capture One), one
file shared by a RAW and a JPEG of the same stem; `darktable` is `IMG_0001.CR3.xmp` (darktable,
digiKam), one file per photo. `write_group` writes every sidecar a routed group needs.

An existing sidecar holds other people's work, so it is never re-serialised: expat parses it (to
validate it and to find where the properties are, by namespace URI, whatever their prefix) and the
edits are spliced into the original bytes. A property that is there is changed in place, as an
attribute of a top-level `rdf:Description` (`xmp:Rating="2"`) or as its child element
(`<xmp:Rating>2</xmp:Rating>`), every occurrence of it, never duplicated; a property that is not
there becomes an attribute of the first top-level `rdf:Description` (the first that declares its
namespace, if one does), with a namespace declaration if none is in scope. Every other byte stays
as it was: the BOM, the xpacket wrapper and its padding, declarations, prefixes, whitespace, line
endings, quoting. A sidecar that is not well-formed XMP is left as it was and `XmpError` says why;
so does one that holds our properties as something other than plain text.

Writing: a temporary file beside the sidecar (hidden, locked, named like route's, so
`route.clean_temps` removes one a kill left), with the old file's mode (and owner, where we may),
fsynced, then `os.replace`: readers see the old sidecar or the new one, never half of one. A
sidecar that another program changes while we merge is read and merged again; a new sidecar is
published without replacing one another program created meanwhile. Replacing gives the sidecar a
new inode: with the `hardlink` action the inbox's name of a routed sidecar keeps the old content.
Image files are never opened for writing.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from eyespyd import __version__
from eyespyd.config import XmpSettings
from eyespyd.decode import SUFFIXES
from eyespyd.durable import describe, fsync_dir, fsync_file, open_temp
from eyespyd.errors import EyespydError

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_EYESPYD = "http://ns.eyespyd.org/1.0/"

NAMINGS = ("adobe", "darktable")
VERDICTS = ("keep", "blink", "review")
MAX_SIDECAR_BYTES = 64 << 20  # Lightroom's sidecars with masks reach a few MB; more is no sidecar

Key = tuple[str, str]  # (namespace URI, local name)
RATING: Key = (NS_XMP, "Rating")
LABEL: Key = (NS_XMP, "Label")
VERDICT: Key = (NS_EYESPYD, "Verdict")
SCORE: Key = (NS_EYESPYD, "Score")
MODEL_VERSION: Key = (NS_EYESPYD, "ModelVersion")
_PROPERTIES = frozenset({RATING, LABEL, VERDICT, SCORE, MODEL_VERSION})
_PREFERRED_PREFIX = {NS_XMP: "xmp", NS_EYESPYD: "eyespyd", NS_RDF: "rdf"}
_RDF_RDF: Key = (NS_RDF, "RDF")
_RDF_DESCRIPTION: Key = (NS_RDF, "Description")

# A new sidecar: the standard packet, our properties are added to its description by _merge.
_TEMPLATE = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    f'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="eyespyd {__version__}">\n'
    f' <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
    '  <rdf:Description rdf:about=""\n'
    f'    xmlns:xmp="{NS_XMP}"\n'
    f'    xmlns:eyespyd="{NS_EYESPYD}"/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()

_WRITING = "writing the verdict into"
_READING = "reading the verdict from"
_ATTEMPTS = 3  # merges when another program keeps changing the sidecar under us

# What a start tag looks like once expat has accepted the document.
_TAG_NAME = re.compile(rb"<([^\s/>]+)")
_ATTRIBUTE = re.compile(rb"(\s+)([^\s=/>]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_TAG_CLOSE = re.compile(rb"\s*(/?)>")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# os.link's errors that mean "no hard links here" (exFAT cards, some shares): reserve the name.
_NO_LINK = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


class XmpError(EyespydError):
    """A sidecar could not be read or written; it is on disk as it was. One line for the log."""

    def __init__(self, doing: str, path: Path, reason: str) -> None:
        super().__init__(f"{doing} {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SidecarVerdict:
    """Our fields in a sidecar, and the rating and label as they are now (the photographer may
    have changed them since)."""

    verdict: str
    score: float | None
    model_version: str | None
    rating: int | None
    label: str | None


@dataclass(frozen=True, slots=True)
class Written:
    """What write_group did: the sidecars written (or already up to date) and the failures."""

    sidecars: tuple[Path, ...]
    errors: tuple[XmpError, ...]


# --- the public functions ---------------------------------------------------------------------


def sidecar_path(frame: Path, naming: str) -> Path:
    """The sidecar of `frame`: `IMG_0001.xmp` (adobe) or `IMG_0001.CR3.xmp` (darktable). An
    existing `.XMP` of that name is used rather than making a second sidecar beside it."""
    frame = Path(frame)
    if naming == "adobe":
        base = frame.stem
    elif naming == "darktable":
        base = frame.name
    else:
        raise ValueError(f"unknown sidecar naming {naming!r}; expected one of {', '.join(NAMINGS)}")
    for suffix in (".xmp", ".XMP"):
        candidate = frame.parent / (base + suffix)
        if os.path.lexists(candidate):
            return candidate
    return frame.parent / (base + ".xmp")


def write_verdict(
    frame: Path, verdict: str, score: float, model_version: str, settings: XmpSettings
) -> Path | None:
    """Merge the verdict into the sidecar of `frame` and return the sidecar's path; None when XMP
    is disabled. The eyespyd fields are always written; the rating and the label only where the
    settings give one for this verdict (null leaves the sidecar's own alone).

    Idempotent: a sidecar that already says all this is not touched. For a RAW+JPEG pair with
    adobe naming both photos share one sidecar: call this once, for either (write_group does).
    Raises XmpError (what, which file, why), with the sidecar as it was; never for a bad frame."""
    if not settings.enabled:
        return None
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    if not math.isfinite(score):
        raise ValueError(f"score must be a finite number, got {score!r}")
    sidecar = sidecar_path(frame, settings.naming)
    fields = _fields(verdict, score, model_version, settings)
    for key, text in fields.items():
        if _NOT_XML_CHAR.search(text):
            raise XmpError(
                _WRITING, sidecar, f"the {_qname(key)} value {text!r} holds a character XML cannot"
            )
    for _ in range(_ATTEMPTS):
        existing: tuple[os.stat_result, bytes] | None = None
        try:
            existing = _read_file(sidecar)
            if existing is None or not existing[1]:
                # No sidecar yet, or an empty file (nothing in it to keep): a new packet.
                before = existing[0] if existing is not None else None
                _publish(sidecar, _merge(_TEMPLATE, fields), before)
            else:
                before, data = existing
                merged = _merge(data, fields)
                if merged == data:
                    return sidecar  # says all this already: leave its time alone
                _publish(sidecar, merged, before)
            return sidecar
        except _ChangedMeanwhileError:
            continue
        except _LeaveAloneError as exc:
            kept = "; left as it was" if existing is not None and existing[1] else ""
            raise XmpError(_WRITING, sidecar, exc.reason + kept) from None
    raise XmpError(
        _WRITING, sidecar, "another program kept changing it while it was merged; left as it was"
    )


def write_group(
    group: Sequence[Path], verdict: str, score: float, model_version: str, settings: XmpSettings
) -> Written:
    """Write the verdict for every photo of a routed group (its sidecars are skipped): one shared
    sidecar with adobe naming, one per photo (`IMG_0001.CR3.xmp`, `IMG_0001.JPG.xmp`) with
    darktable naming. Each failure is collected, not raised, so one bad sidecar spares the rest."""
    if not settings.enabled:
        return Written((), ())
    written: list[Path] = []
    errors: list[XmpError] = []
    seen: set[Path] = set()
    for member in group:
        member = Path(member)
        if member.suffix.lower() not in SUFFIXES:
            continue
        target = sidecar_path(member, settings.naming)
        if target in seen:
            continue
        seen.add(target)
        try:
            path = write_verdict(member, verdict, score, model_version, settings)
        except XmpError as exc:
            errors.append(exc)
            continue
        if path is not None:
            written.append(path)
    return Written(tuple(written), tuple(errors))


def read_verdict(sidecar: Path) -> SidecarVerdict | None:
    """Our fields in `sidecar`, with its current rating and label; None when there is no such
    file or it holds no eyespyd:Verdict. Raises XmpError when it cannot be read or parsed."""
    sidecar = Path(sidecar)
    try:
        existing = _read_file(sidecar)
        if existing is None or not existing[1]:
            return None
        packet = _Reader(existing[1]).read()
    except _LeaveAloneError as exc:
        raise XmpError(_READING, sidecar, exc.reason) from None
    values: dict[Key, str] = {}
    for found in packet.found:
        values.setdefault(found.key, found.text.strip())
    verdict = values.get(VERDICT)
    if not verdict:
        return None
    return SidecarVerdict(
        verdict=verdict,
        score=_float(values.get(SCORE)),
        model_version=values.get(MODEL_VERSION),
        rating=_int(values.get(RATING)),
        label=values.get(LABEL),
    )


# --- what is written --------------------------------------------------------------------------


def _fields(
    verdict: str, score: float, model_version: str, settings: XmpSettings
) -> dict[Key, str]:
    """The properties to set, in the order new ones are added."""
    fields: dict[Key, str] = {}
    rating = settings.rating.get(verdict)
    if rating is not None:
        fields[RATING] = str(rating)
    label = settings.label.get(verdict)
    if label is not None:
        fields[LABEL] = label
    fields[VERDICT] = verdict
    fields[SCORE] = f"{score:.4f}"
    fields[MODEL_VERSION] = model_version
    return fields


def _qname(key: Key) -> str:
    return f"{_PREFERRED_PREFIX.get(key[0], '?')}:{key[1]}"


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None  # a rating of 2.5 or "high": no editor writes one


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


# --- reading the packet: expat validates, positions come from the original bytes ---------------


class _LeaveAloneError(Exception):
    """Why a sidecar is left alone; XmpError adds what was being done and to which file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ChangedMeanwhileError(Exception):
    """The sidecar changed between our read and our write: read and merge again."""


@dataclass(slots=True)
class _Attribute:
    qname: str
    space: bytes  # the whitespace before it, reused for the attributes we add
    end: int  # just past the closing quote
    value_start: int
    value_end: int
    quote: bytes


@dataclass(slots=True)
class _Tag:
    """A start tag in the original bytes."""

    qname: str
    start: int
    attributes: list[_Attribute]
    attributes_end: int  # where an attribute can be added
    close: int  # the "/>" or ">" that ends the tag
    end: int
    empty: bool


@dataclass(slots=True)
class _Found:
    """One occurrence of a property of ours and the bytes that hold its value."""

    key: Key
    text: str
    start: int
    end: int
    form: str  # "attribute", "element" (its content) or "empty" (the "/>" of <xmp:Label/>)
    quote: bytes = b'"'
    qname: str = ""


@dataclass(slots=True)
class _Description:
    tag: _Tag
    scope: dict[str, str]  # prefix -> namespace URI in scope on the element
    declares: frozenset[str]  # the URIs declared on the element itself


@dataclass(slots=True)
class _Packet:
    descriptions: list[_Description] = field(default_factory=list)
    found: list[_Found] = field(default_factory=list)
    rdf: _Tag | None = None
    rdf_scope: dict[str, str] = field(default_factory=dict)
    rdf_end: int | None = None  # where the first rdf:RDF's end tag starts; None for <rdf:RDF/>


@dataclass(slots=True)
class _Open:
    role: str  # "rdf", "description" (top level), "property" (one of ours in one), "other"
    tag: _Tag | None = None
    key: Key | None = None
    text: list[str] = field(default_factory=list)
    simple: bool = True


class _Reader:
    """One pass of expat over the packet. Namespace processing makes expat reject unbound
    prefixes and duplicate attributes; the byte offsets of the tags it reports are read again
    from the original bytes to find where each attribute and value is."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.packet = _Packet()
        self.bindings: dict[str, list[str]] = {}
        self.declared: list[str] = []  # URIs declared on the element that starts next
        self.stack: list[_Open] = []
        self.problems: list[str] = []
        self.rdf_depth = 0  # open rdf:RDF elements: one inside another is a value, not the packet
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.StartNamespaceDeclHandler = self._bind
        self.parser.EndNamespaceDeclHandler = self._unbind
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.CharacterDataHandler = self._text
        self.parser.StartDoctypeDeclHandler = self._doctype

    def read(self) -> _Packet:
        if self.data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in self.data[:4]:
            raise _LeaveAloneError(
                "it is UTF-16 or UTF-32 text; eyespyd merges into UTF-8 sidecars only"
            )
        try:
            self.parser.Parse(self.data, True)
        except expat.ExpatError as exc:
            where = f"line {exc.lineno}, column {exc.offset + 1}"
            raise _LeaveAloneError(
                f"not valid XML ({where}: {expat.ErrorString(exc.code)})"
            ) from None
        if self.packet.rdf is None:
            raise _LeaveAloneError("no rdf:RDF element in it: not an XMP packet")
        if self.problems:
            raise _LeaveAloneError(self.problems[0])
        return self.packet

    # handlers

    def _doctype(self, *_: object) -> None:
        raise _LeaveAloneError("it has a DOCTYPE, which an XMP packet may not have")

    def _bind(self, prefix: str | None, uri: str) -> None:
        self.bindings.setdefault(prefix or "", []).append(uri)
        self.declared.append(uri)

    def _unbind(self, prefix: str | None) -> None:
        self.bindings[prefix or ""].pop()

    def _scope(self) -> dict[str, str]:
        return {prefix: uris[-1] for prefix, uris in self.bindings.items() if uris}

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        start = self.parser.CurrentByteIndex
        key = _split(name)
        declared, self.declared = frozenset(self.declared), []
        parent = self.stack[-1] if self.stack else None
        role = parent.role if parent else None
        if role == "property":
            assert parent is not None
            parent.simple = False  # our properties are plain text, never structures
            self.stack.append(_Open("other"))
        elif key == _RDF_RDF and self.rdf_depth == 0:
            self.rdf_depth += 1
            tag = _scan_tag(self.data, start)
            if self.packet.rdf is None:
                self.packet.rdf, self.packet.rdf_scope = tag, self._scope()
            self.stack.append(_Open("rdf", tag))
        elif key == _RDF_DESCRIPTION and role == "rdf":
            tag = _scan_tag(self.data, start)
            scope = self._scope()
            self.packet.descriptions.append(_Description(tag, scope, declared))
            for attribute in tag.attributes:
                attribute_key = _resolve(attribute.qname, scope)
                if attribute_key in _PROPERTIES:
                    text = attributes[" ".join(attribute_key)]
                    self.packet.found.append(
                        _Found(
                            attribute_key,
                            text,
                            attribute.value_start,
                            attribute.value_end,
                            "attribute",
                            attribute.quote,
                        )
                    )
            self.stack.append(_Open("description", tag))
        elif key in _PROPERTIES and role == "description":
            tag = _scan_tag(self.data, start)
            # rdf:resource, rdf:parseType and the like make it something other than text.
            simple = not any(a.startswith(NS_RDF + " ") for a in attributes)
            self.stack.append(_Open("property", tag, key, simple=simple))
        else:
            self.stack.append(_Open("other"))

    def _end(self, name: str) -> None:
        end = self.parser.CurrentByteIndex
        opened = self.stack.pop()
        if opened.role == "rdf":
            self.rdf_depth -= 1
            if opened.tag is self.packet.rdf:
                assert opened.tag is not None
                self.packet.rdf_end = None if opened.tag.empty else end
        if opened.role != "property":
            return
        tag, key = opened.tag, opened.key
        assert tag is not None and key is not None
        if not opened.simple:
            self.problems.append(f"its {_qname(key)} is not a plain text value")
        elif tag.empty:
            self.packet.found.append(_Found(key, "", tag.close, tag.end, "empty", qname=tag.qname))
        else:
            text = "".join(opened.text)
            self.packet.found.append(_Found(key, text, tag.end, end, "element"))

    def _text(self, text: str) -> None:
        if self.stack and self.stack[-1].role == "property":
            self.stack[-1].text.append(text)


def _split(name: str) -> Key:
    """expat's "uri local" (or "local" without a namespace) as a key."""
    uri, _, local = name.rpartition(" ")
    return uri, local


def _resolve(qname: str, scope: Mapping[str, str]) -> Key | None:
    """The key of a prefixed attribute name; None for unprefixed ones (no namespace) and
    namespace declarations."""
    prefix, colon, local = qname.partition(":")
    if not colon or prefix == "xmlns":
        return None
    uri = scope.get(prefix)
    return (uri, local) if uri is not None else None


def _scan_tag(data: bytes, start: int) -> _Tag:
    """The start tag at `start`, read again from the bytes for positions. expat has accepted the
    document, so the tag is well formed."""
    name = _TAG_NAME.match(data, start)
    if name is None:
        raise _LeaveAloneError(f"unexpected bytes at offset {start}")  # expat's offsets are wrong
    position = name.end()
    attributes = []
    while (match := _ATTRIBUTE.match(data, position)) is not None:
        group = 3 if match.group(3) is not None else 4
        attributes.append(
            _Attribute(
                qname=match.group(2).decode("utf-8", "replace"),
                space=match.group(1),
                end=match.end(),
                value_start=match.start(group),
                value_end=match.end(group),
                quote=data[match.start(group) - 1 : match.start(group)],
            )
        )
        position = match.end()
    close = _TAG_CLOSE.match(data, position)
    if close is None:
        raise _LeaveAloneError(f"unexpected bytes at offset {position}")
    return _Tag(
        qname=name.group(1).decode("utf-8", "replace"),
        start=start,
        attributes=attributes,
        attributes_end=position,
        close=close.start(1) if close.group(1) else close.end() - 1,
        end=close.end(),
        empty=bool(close.group(1)),
    )


# --- merging: minimal edits spliced into the original bytes -----------------------------------

_Edit = tuple[int, int, bytes]  # replace data[start:end] by the bytes


def _merge(data: bytes, fields: Mapping[Key, str]) -> bytes:
    """`data` with `fields` set, everything else byte for byte as it was; or _LeaveAloneError."""
    packet = _Reader(data).read()
    edits: list[_Edit] = []
    missing: list[Key] = []
    for key, text in fields.items():
        occurrences = [f for f in packet.found if f.key == key]
        if not occurrences:
            missing.append(key)
        edits.extend(_set(found, text) for found in occurrences if found.text != text)
    if missing:
        edits.extend(_add(packet, missing, fields))
    merged = _splice(data, edits)
    _check(merged, fields)
    return merged


def _set(found: _Found, text: str) -> _Edit:
    if found.form == "attribute":
        return found.start, found.end, _escape(text, found.quote)
    if found.form == "element":
        return found.start, found.end, _escape(text, None)
    # <xmp:Label/> becomes <xmp:Label>Red</xmp:Label>
    value = b">" + _escape(text, None) + b"</" + found.qname.encode() + b">"
    return found.start, found.end, value


def _add(packet: _Packet, missing: list[Key], fields: Mapping[Key, str]) -> list[_Edit]:
    """Edits that add the missing properties as attributes of a top-level rdf:Description: the
    first that declares the property's namespace itself (one description per schema, as older
    Adobe tools write), else the first."""
    if not packet.descriptions:
        return [_new_description(packet, missing, fields)]
    by_description: dict[int, list[Key]] = {}
    for key in missing:
        index = next((i for i, d in enumerate(packet.descriptions) if key[0] in d.declares), 0)
        by_description.setdefault(index, []).append(key)
    edits = []
    for index, keys in sorted(by_description.items()):
        description = packet.descriptions[index]
        tag, scope = description.tag, dict(description.scope)
        # Follow the tag's layout: new attributes on their own lines if the others are, with
        # their quotes; new declarations after the last declaration, indented like it.
        last = tag.attributes[-1] if tag.attributes else None
        space, quote = (last.space, last.quote) if last else (b" ", b'"')
        declarations = [a for a in tag.attributes if a.qname.startswith("xmlns")]
        declare_at = declarations[-1].end if declarations else tag.attributes_end
        declare_space = declarations[-1].space if declarations else space
        new_declarations: list[bytes] = []
        new_attributes: list[bytes] = []
        for key in keys:
            prefix = _prefix(key[0], scope, new_declarations, declare_space, quote)
            new_attributes.append(_attribute(space, f"{prefix}:{key[1]}", fields[key], quote))
        if new_declarations:
            edits.append((declare_at, declare_at, b"".join(new_declarations)))
        edits.append((tag.attributes_end, tag.attributes_end, b"".join(new_attributes)))
    return edits


def _new_description(packet: _Packet, missing: list[Key], fields: Mapping[Key, str]) -> _Edit:
    """An rdf:RDF without a description gets one holding the missing properties."""
    rdf = packet.rdf
    assert rdf is not None
    scope = dict(packet.rdf_scope)
    quote = rdf.attributes[-1].quote if rdf.attributes else b'"'
    declarations: list[bytes] = []
    rdf_prefix = _prefix(NS_RDF, scope, declarations, b" ", quote)
    attributes = []
    for key in missing:
        prefix = _prefix(key[0], scope, declarations, b" ", quote)
        attributes.append(_attribute(b" ", f"{prefix}:{key[1]}", fields[key], quote))
    description = (
        f"<{rdf_prefix}:Description".encode()
        + _attribute(b" ", f"{rdf_prefix}:about", "", quote)
        + b"".join(declarations)
        + b"".join(attributes)
        + b"/>"
    )
    if packet.rdf_end is None:  # <rdf:RDF .../> becomes <rdf:RDF ...><rdf:Description/></rdf:RDF>
        return rdf.close, rdf.end, b">" + description + b"</" + rdf.qname.encode() + b">"
    return packet.rdf_end, packet.rdf_end, description


def _prefix(
    uri: str, scope: dict[str, str], declarations: list[bytes], space: bytes, quote: bytes
) -> str:
    """A prefix bound to `uri` in `scope`, or a new one, declared (appended to `declarations`)."""
    bound = sorted(p for p, u in scope.items() if u == uri and p)
    preferred = _PREFERRED_PREFIX.get(uri, "ns")
    if bound:
        return preferred if preferred in bound else bound[0]
    prefix, number = preferred, 1
    while prefix in scope:
        prefix, number = f"{preferred}{number}", number + 1
    scope[prefix] = uri
    declarations.append(_attribute(space, f"xmlns:{prefix}", uri, quote))
    return prefix


def _attribute(space: bytes, qname: str, text: str, quote: bytes) -> bytes:
    return space + qname.encode() + b"=" + quote + _escape(text, quote) + quote


def _escape(text: str, quote: bytes | None) -> bytes:
    """Text as ASCII XML: markup characters as entities, anything else outside printable ASCII
    as a character reference, so it reads the same whatever the file's encoding. Tabs and line
    breaks too, which attribute value normalisation would otherwise turn into spaces."""
    out = []
    for char in text:
        if char == "&":
            out.append("&amp;")
        elif char == "<":
            out.append("&lt;")
        elif char == ">":
            out.append("&gt;")
        elif char == '"' and quote == b'"':
            out.append("&quot;")
        elif char == "'" and quote == b"'":
            out.append("&apos;")
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"&#x{ord(char):X};")
    return "".join(out).encode("ascii")


def _splice(data: bytes, edits: list[_Edit]) -> bytes:
    out = []
    position = 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < position:
            raise _LeaveAloneError("overlapping edits (a bug in eyespyd); left as it was")
        out += [data[position:start], replacement]
        position = end
    out.append(data[position:])
    return b"".join(out)


def _check(merged: bytes, fields: Mapping[Key, str]) -> None:
    """The merged packet parses and says exactly what was meant, once or where it was."""
    try:
        packet = _Reader(merged).read()
    except _LeaveAloneError as exc:
        raise _LeaveAloneError(
            f"the merged sidecar would not parse ({exc.reason}); left as it was"
        ) from None
    for key, text in fields.items():
        values = [f.text for f in packet.found if f.key == key]
        if not values or any(v != text for v in values):
            raise _LeaveAloneError(
                f"the merged sidecar would not read back {_qname(key)}; left as it was"
            )


# --- files ------------------------------------------------------------------------------------


def _read_file(path: Path) -> tuple[os.stat_result, bytes] | None:
    """The sidecar's status and bytes; None if there is none. Symbolic links, folders and other
    things that are not plain files are refused, never followed or opened for long."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _LeaveAloneError(
                "it is a symbolic link; eyespyd does not write through links"
            ) from None
        raise _LeaveAloneError(f"it cannot be read: {describe(exc)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _LeaveAloneError("it is a folder, not a sidecar file")
        if not stat.S_ISREG(st.st_mode):
            raise _LeaveAloneError("it is not a regular file")
        if st.st_size > MAX_SIDECAR_BYTES:
            raise _LeaveAloneError(f"it is too large for a sidecar ({st.st_size} bytes)")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_SIDECAR_BYTES:
                raise _LeaveAloneError(
                    f"it is too large for a sidecar (over {MAX_SIDECAR_BYTES} bytes)"
                )
    except OSError as exc:
        raise _LeaveAloneError(f"it cannot be read: {describe(exc)}") from None
    finally:
        os.close(fd)
    return st, b"".join(chunks)


def _publish(sidecar: Path, data: bytes, before: os.stat_result | None) -> None:
    """Put `data` at `sidecar` atomically: over the file `before` describes (_ChangedMeanwhileError
    if it is not that file any more), or, with `before` None, only where no file is yet."""
    folder = sidecar.parent
    try:
        fd, temp = _open_temp(sidecar)
    except OSError as exc:
        raise _LeaveAloneError(f"cannot create a file in {folder}: {describe(exc)}") from None
    renamed = False
    try:
        try:
            if before is not None:
                os.fchmod(fd, stat.S_IMODE(before.st_mode))
                if (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):  # only root may give files away
                        os.fchown(fd, before.st_uid, before.st_gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            fsync_file(fd)
        except OSError as exc:
            raise _LeaveAloneError(
                f"cannot write a temporary file in {folder}: {describe(exc)}"
            ) from None
        if before is None:
            renamed = _publish_new(temp, sidecar)
        else:
            try:
                now = os.lstat(sidecar)
            except FileNotFoundError:
                raise _ChangedMeanwhileError from None
            except OSError as exc:
                raise _LeaveAloneError(f"it cannot be examined: {describe(exc)}") from None
            if _identity(now) != _identity(before):
                raise _ChangedMeanwhileError
            try:
                os.replace(temp, sidecar)  # noqa: PTH105 - patchable on every Python
            except OSError as exc:
                raise _LeaveAloneError(f"it cannot be replaced: {describe(exc)}") from None
            renamed = True
    finally:
        if not renamed:
            with contextlib.suppress(OSError):
                temp.unlink()
        os.close(fd)  # releases the lock
    fsync_dir(folder)


def _publish_new(temp: Path, sidecar: Path) -> bool:
    """Give the temporary file the sidecar's name without replacing a file another program put
    there meanwhile (_ChangedMeanwhileError: merge into that one). True if the temporary name
    is gone."""
    try:
        os.link(temp, sidecar)
    except FileExistsError:
        raise _ChangedMeanwhileError from None
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise _LeaveAloneError(f"cannot create it: {describe(exc)}") from None
        # No hard links here: reserve the name exclusively, then rename onto the reservation. A
        # kill in between leaves an empty sidecar, which the next write fills.
        try:
            os.close(os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise _ChangedMeanwhileError from None
        except OSError as exc:
            raise _LeaveAloneError(f"cannot create it: {describe(exc)}") from None
        try:
            temp.rename(sidecar)
        except OSError as exc:
            with contextlib.suppress(OSError):
                sidecar.unlink()
            raise _LeaveAloneError(f"cannot create it: {describe(exc)}") from None
        return True
    return False


def _open_temp(sidecar: Path) -> tuple[int, Path]:
    """A new hidden file beside `sidecar`, named as route names its temporary files and locked,
    so that `route.clean_temps` leaves it alone while we live and removes it if we are killed.
    Created with the usual mode (0666 less the umask), as a new sidecar should have."""
    return open_temp(sidecar.parent, sidecar.name, 0o666)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
