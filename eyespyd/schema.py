"""The one schema behind validation, defaults and the sample configuration.

Every key eyespyd reads is declared here once, with its default, its documentation and its check.
`config.py` validates against it and builds the typed settings; `example_yaml()` writes
`config/eyespyd.example.yaml` from it, so the sample can never drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

Check = Callable[[object], str | None]  # returns the problem, or None when the value is fine


@dataclass(frozen=True, slots=True)
class Option:
    """A leaf key: a scalar value with a default."""

    default: object
    doc: str
    check: Check


@dataclass(frozen=True, slots=True)
class Section:
    """A mapping of named keys."""

    doc: str
    keys: Mapping[str, Node]


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list whose items are all `item` sections; `default` is the list used when absent."""

    doc: str
    item: Section
    default: tuple[Mapping[str, object], ...]
    min_items: int = 1


Node = Option | Section | ListOf


def _is_bool(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _one_of(*choices: str) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        return f"must be one of {', '.join(choices)} (got {value!r})"

    return check


def _number(lo: float, hi: float) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number from {lo:g} to {hi:g} (got {value!r})"
        if not lo <= value <= hi:
            return f"must be from {lo:g} to {hi:g} (got {value!r})"
        return None

    return check


def _integer(lo: int, hi: int) -> Check:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number from {lo} to {hi} (got {value!r})"
        if not lo <= value <= hi:
            return f"must be from {lo} to {hi} (got {value!r})"
        return None

    return check


def _path(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be a folder path (got {value!r})"
    return None


def _path_or_none(value: object) -> str | None:
    return None if value is None else _path(value)


def _sha256_or_none(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if isinstance(value, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return None
    return f"must be the 64 hexadecimal digits of a sha256 (got {value!r})"


def _rating_or_none(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 5:
        return f"must be -1 (rejected), 0 to 5, or null to leave the rating alone (got {value!r})"
    return None


LABELS = ("Red", "Yellow", "Green", "Blue", "Purple")


def _label_or_none(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return None
    return f"must be a colour label such as {', '.join(LABELS)}, or null (got {value!r})"


FOLDER = Section(
    doc="One watched folder and where its frames go.",
    keys={
        "inbox": Option(
            "~/Pictures/eyespy/inbox",
            "Folder the camera, tethering software or card import writes into.",
            _path,
        ),
        "keep": Option("~/Pictures/eyespy/keep", "Frames with every eye open.", _path),
        "blink": Option("~/Pictures/eyespy/blink", "Frames where a prominent face blinked.", _path),
        "review": Option(
            "~/Pictures/eyespy/review", "Frames eyespyd cannot decide; look at these.", _path
        ),
        "recursive": Option(
            False,
            "Also watch subfolders of the inbox (a card's DCIM tree copied in).",
            _is_bool,
        ),
        "polling": Option(
            False,
            "Poll the inbox instead of using file-system events: needed for NFS and SMB shares,"
            " whose changes by other machines never raise events.",
            _is_bool,
        ),
    },
)

SCHEMA = Section(
    doc="eyespyd configuration. Every key is optional; absent keys take the value shown.",
    keys={
        "folders": ListOf(
            "The watched folders. A destination may not lie inside its own inbox, and no inbox"
            " may be another folder's destination. Relative paths are relative to this file;"
            " '~' is your home folder.",
            FOLDER,
            default=({},),
        ),
        "action": Option(
            "move",
            "What routing does with a frame: move, copy, hardlink, or tag (leave it in place and"
            " only record the verdict and write XMP).",
            _one_of("move", "copy", "hardlink", "tag"),
        ),
        "decode": Section(
            doc="How much of each photo is decoded. Smaller is faster; eyes need some detail.",
            keys={
                "long_side": Option(
                    640,
                    "Target long side in pixels of the decoded image. JPEGs are decoded at the"
                    " largest reduction (1/2, 1/4, 1/8) that still reaches it: a 24 MP frame at"
                    " 750 px, a 1620 px preview at 810. A face whose eyes come out under 24 px"
                    " there is decoded again, larger, for its eyes.",
                    _integer(640, 4096),
                ),
                "min_preview_side": Option(
                    1000,
                    "An embedded preview (RAW, or a camera JPEG's MPF image) whose long side"
                    " reaches this is used instead of the full image.",
                    _integer(320, 4096),
                ),
                "max_megapixels": Option(
                    250,
                    "Refuse images larger than this (decompression bombs, broken headers).",
                    _integer(1, 2000),
                ),
            },
        ),
        "verdict": Section(
            doc="How eye states become keep, blink or review.",
            keys={
                "threshold": Option(
                    0.55,
                    "A face blinked when the mean closed probability of its eyes reaches this."
                    " Lower catches more blinks and risks more false ones.",
                    _number(0.05, 0.99),
                ),
                "review_margin": Option(
                    0.15,
                    "Scores this far below the threshold go to review instead of keep.",
                    _number(0.0, 0.5),
                ),
                "one_eye_is_enough": Option(
                    False,
                    "A single closed eye makes a blink (true), or both eyes must be closed (false);"
                    " a wink or a half-hidden eye otherwise goes to review.",
                    _is_bool,
                ),
                "min_face_size": Option(
                    0.5,
                    "Ignore faces narrower than this fraction of the largest face (people in the"
                    " background).",
                    _number(0.0, 1.0),
                ),
                "no_face": Option(
                    "keep",
                    "Where photos with no face go: keep or review. Never blink.",
                    _one_of("keep", "review"),
                ),
                "eyes_not_visible": Option(
                    "review",
                    "Where photos go whose deciding face shows no readable eyes (sunglasses,"
                    " profile): review or keep. Never blink.",
                    _one_of("review", "keep"),
                ),
            },
        ),
        "model": Section(
            doc="The eye-state model. The shipped one was trained on research-only data; for"
            " commercial work train your own with `eyespyd train --keep DIR --blink DIR`.",
            keys={
                "path": Option(
                    None,
                    "A .tflite eye-state model file; null uses the one shipped with eyespyd.",
                    _path_or_none,
                ),
                "sha256": Option(
                    None,
                    "The sha256 of that file, as `eyespyd train` printed it; checked at every"
                    " start, so an altered file is refused.",
                    _sha256_or_none,
                ),
            },
        ),
        "xmp": Section(
            doc="Write the verdict into an XMP sidecar that Lightroom, Capture One or Bridge show.",
            keys={
                "enabled": Option(False, "Write XMP sidecars.", _is_bool),
                "naming": Option(
                    "adobe",
                    "adobe: IMG_0001.xmp (Lightroom, Bridge, Capture One; shared by a RAW+JPEG"
                    " pair); darktable: IMG_0001.CR3.xmp (darktable, digiKam).",
                    _one_of("adobe", "darktable"),
                ),
                "rating": Section(
                    doc="xmp:Rating per verdict: -1 is the reject mark every editor reads;"
                    " null leaves the rating alone.",
                    keys={
                        "keep": Option(None, "Rating for keep.", _rating_or_none),
                        "blink": Option(-1, "Rating for blink.", _rating_or_none),
                        "review": Option(None, "Rating for review.", _rating_or_none),
                    },
                ),
                "label": Section(
                    doc="xmp:Label (colour label) per verdict; null leaves the label alone.",
                    keys={
                        "keep": Option(None, "Label for keep.", _label_or_none),
                        "blink": Option("Red", "Label for blink.", _label_or_none),
                        "review": Option("Yellow", "Label for review.", _label_or_none),
                    },
                ),
            },
        ),
        "settle_seconds": Option(
            1.0,
            "A file is complete once its size and time stay unchanged this long (a fifth of it"
            " after a close event on Linux). Raise it for slow network copies.",
            _number(0.1, 60.0),
        ),
        "rescan_seconds": Option(
            30,
            "Scan the inboxes this often as well as watching them, so no frame is stranded by a"
            " lost file-system event.",
            _number(2, 3600),
        ),
        "workers": Option(
            0,
            "Frames processed in parallel; 0 means one per CPU core.",
            _integer(0, 64),
        ),
        "log_level": Option(
            "info",
            "debug, info, warning or error. info logs one line per frame.",
            _one_of("debug", "info", "warning", "error"),
        ),
    },
)


def defaults(node: Node = SCHEMA) -> object:
    """The value a node takes when the configuration does not mention it."""
    if isinstance(node, Option):
        return node.default
    if isinstance(node, ListOf):
        return [
            {k: defaults(v) for k, v in node.item.keys.items()} | dict(item)
            for item in node.default
        ]
    return {name: defaults(child) for name, child in node.keys.items()}


def example_yaml() -> str:
    """The sample configuration: every key with its default and a comment saying what it does."""
    lines = [f"# {line}" for line in _wrap(SCHEMA.doc)]
    lines.append("")
    _emit_section(SCHEMA, lines, indent="")
    return "\n".join(lines) + "\n"


def _emit_section(section: Section, lines: list[str], indent: str, first_prefix: str = "") -> None:
    for i, (name, node) in enumerate(section.keys.items()):
        # The first key of a list item carries the "- " marker; its siblings align under it.
        lead = first_prefix if i == 0 and first_prefix else indent
        lines.extend(f"{indent}# {line}" for line in _wrap(node.doc))
        if isinstance(node, Option):
            lines.append(f"{lead}{name}: {_scalar(node.default)}")
        elif isinstance(node, Section):
            lines.append(f"{lead}{name}:")
            _emit_section(node, lines, indent + "  ")
        else:
            lines.append(f"{lead}{name}:")
            _emit_section(node.item, lines, indent + "    ", first_prefix=indent + "  - ")
        if not indent:
            lines.append("")


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _wrap(text: str, width: int = 96) -> list[str]:
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return out
