"""contact: the contact sheet, one HTML file of the frames a session sent to blink/ and review/.

Each frame gets a card: a thumbnail of the file where it is now, with the faces and the eye crops
marked from what the ledger recorded, the verdict, the score, the reasons and each face's eye
probabilities. The file is self-contained (inline CSS, thumbnails as JPEG data URIs, no script,
nothing fetched), so it opens offline from a laptop in the studio.

    write_contact_sheet(ledger, out)        `eyespyd report --html OUT`: any session, any place
    refresh_session_sheet(ledger, folders)  the daemon, after each frame it routes to blink or
                                            review: the session's sheet next to the destinations

Thumbnails are cached in memory by (file, size, mtime, faces), so a refresh after frame 300
decodes only the new frame. Sheets are written to a temporary name and renamed over the old one.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import logging
import math
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from eyespyd import __version__
from eyespyd.config import DecodeSettings, FolderSettings
from eyespyd.decode import DEFAULT_SETTINGS, JPEG_SUFFIXES, decode
from eyespyd.errors import DecodeError, EyespydError
from eyespyd.eyes import eye_geometry
from eyespyd.record import ROUTED, Frame, Ledger, Session, Tally, find_session
from eyespyd.types import Face, Photo, Point
from eyespyd.verdict import BLINK, HIDDEN_AT, KEEP, REVIEW

log = logging.getLogger(__name__)

THUMB_PX = 360  # long side; the grid shows them at about 300 CSS px, sharp on most laptops
JPEG_QUALITY = 70  # 15 to 25 KB for a 360 px photo
SHEET_PREFIX = "eyespyd-report-"
FLAGGED = (BLINK, REVIEW)  # the sections, in this order
VERDICT_COLOURS = {KEEP: (46, 160, 67), BLINK: (215, 38, 61), REVIEW: (230, 160, 0)}
HIDDEN_COLOUR = (120, 120, 255)
CACHE_BYTES = 12 << 20  # about 450 thumbnails: the latest MAX_CARDS cards, with room
_BROWSER_VIEWABLE = JPEG_SUFFIXES | {".png", ".webp", ".gif"}
_WORKERS = min(4, os.cpu_count() or 1)


class ContactSheetError(EyespydError):
    """The contact sheet could not be written."""


# --- drawing ------------------------------------------------------------------------------------


def closed_colour(closed: float) -> tuple[int, int, int]:
    """Green (open) to red (closed)."""
    closed = min(max(closed, 0.0), 1.0)
    return (round(255 * closed), round(200 * (1 - closed)), 40)


def draw_faces(
    image: Image.Image, faces: Sequence[Mapping[str, Any]], scale: float, *, labels: bool = True
) -> None:
    """Mark `faces` on `image`, in place: each face's box with its number, each eye's crop square
    coloured from green (open) to red (closed), blue when hidden, and its closed probability when
    there is room for it.

    `faces` are in the ledger's form (`record.faces_json`): "box" and "keypoints" in the full
    upright image's pixels, "eyes" with "right", "left", "right_hidden", "left_hidden". `scale`
    maps those coordinates onto `image` (image = full * scale). Without keypoints (older ledger
    rows) the eyes cannot be placed: the box takes the colour of the more closed visible eye and
    the probabilities are written beside the number. Malformed entries, and detections the face
    mesh saw no face in ("is_face": false), are skipped; the others keep their numbers.
    """
    canvas = ImageDraw.Draw(image)
    unit = max(2, round(max(image.size) / 400))
    font = _font(6 * unit)
    for number, raw in enumerate(faces, start=1):
        mark = _FaceMark.parse(raw)
        if mark is None or raw.get("is_face") is False:
            continue  # malformed, or a detection the face mesh saw no face in (a glass)
        x0, y0, x1, y1 = (v * scale for v in mark.box)
        squares = mark.eye_squares(scale)
        box_colour = (255, 255, 255) if squares else _eye_colour(mark.worst_visible)
        _outlined(canvas, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], box_colour, unit)
        roomy = labels and (x1 - x0) >= 40 * unit
        tag = str(number)
        if squares is None and roomy:
            tag += "  " + "  ".join(_eye_text(c, h) for c, h in mark.eyes_in_image_order)
        _chip(canvas, (x0, y0), tag, box_colour, font, unit, image.size, inside=True)
        if squares is None:
            continue
        for corners, (closed, hidden) in zip(squares, mark.eyes_in_image_order, strict=True):
            colour = _eye_colour(None if hidden >= HIDDEN_AT else closed)
            _outlined(canvas, list(corners), colour, unit)
            if roomy:
                left = min(x for x, _ in corners)
                low = max(y for _, y in corners)
                text = _eye_text(closed, hidden)
                _chip(canvas, (left, low + unit), text, colour, font, unit, image.size)


@dataclass(frozen=True, slots=True)
class _FaceMark:
    box: tuple[float, float, float, float]
    keypoints: tuple[Point, Point, Point, Point, Point, Point] | None
    right: tuple[float, float]  # (closed, hidden) of the subject's right eye, on the image's left
    left: tuple[float, float]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> _FaceMark | None:
        try:
            x0, y0, x1, y1 = (float(v) for v in raw["box"])
            eyes = raw.get("eyes") or {}
            right = (float(eyes.get("right", 0.0)), float(eyes.get("right_hidden", 0.0)))
            left = (float(eyes.get("left", 0.0)), float(eyes.get("left_hidden", 0.0)))
            points = raw.get("keypoints")
            keypoints = None
            if points is not None and len(points) == 6:
                p = [(float(x), float(y)) for x, y in points]
                keypoints = (p[0], p[1], p[2], p[3], p[4], p[5])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            return None
        return cls((x0, y0, x1, y1), keypoints, right, left)

    @property
    def eyes_in_image_order(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return self.right, self.left

    @property
    def worst_visible(self) -> float | None:
        visible = [c for c, h in (self.right, self.left) if h < HIDDEN_AT]
        return max(visible) if visible else None

    def eye_squares(self, scale: float) -> tuple[list[Point], list[Point]] | None:
        """The two crop squares the eye model saw (eyes.eye_geometry), scaled onto the image."""
        if self.keypoints is None:
            return None
        right, left = eye_geometry(Face(self.box, 1.0, self.keypoints))
        return (
            [(x * scale, y * scale) for x, y in right.corners()],
            [(x * scale, y * scale) for x, y in left.corners()],
        )


def _eye_colour(closed: float | None) -> tuple[int, int, int]:
    return HIDDEN_COLOUR if closed is None else closed_colour(closed)


def _eye_text(closed: float, hidden: float) -> str:
    return "hidden" if hidden >= HIDDEN_AT else f"{closed:.2f}"


def _outlined(
    canvas: ImageDraw.ImageDraw, corners: list[Point], colour: tuple[int, int, int], unit: int
) -> None:
    """A polygon in `colour` over a darker, wider one: visible on pale skin and on black hair."""
    canvas.polygon(corners, outline=(20, 20, 20), width=unit + 2)
    canvas.polygon(corners, outline=colour, width=unit)


def _chip(
    canvas: ImageDraw.ImageDraw,
    at: Point,
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    unit: int,
    bounds: tuple[int, int],
    *,
    inside: bool = False,
) -> None:
    """`text` on a small dark label whose top-left corner is `at`, clamped into the image."""
    left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
    width, height = right - left + 2 * unit, bottom - top + 2 * unit
    image_w, image_h = bounds
    x = min(max(at[0] + (unit if inside else 0), 0), max(image_w - width, 0))
    y = min(max(at[1] + (unit if inside else 0), 0), max(image_h - height, 0))
    canvas.rectangle((x, y, x + width, y + height), fill=(20, 20, 20))
    canvas.text((x + unit - left, y + unit - top), text, fill=colour, font=font)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


# --- thumbnails ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A card's picture: a data URI, or why there is none."""

    data_uri: str = ""
    width: int = 0
    height: int = 0
    problem: str = ""  # "file not found", or why the file could not be decoded


class ThumbnailCache:
    """Drawn thumbnails by (file, size, mtime, size asked, faces), least recently used first out.
    Thread-safe; one per process is enough (`CACHE`)."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[object, ...], Thumbnail] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[object, ...]) -> Thumbnail | None:
        with self._lock:
            thumb = self._items.get(key)
            if thumb is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return thumb

    def put(self, key: tuple[object, ...], thumb: Thumbnail) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= _cost(old)
            self._items[key] = thumb
            self._bytes += _cost(thumb)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= _cost(dropped)

    def __len__(self) -> int:
        return len(self._items)


def _cost(thumb: Thumbnail) -> int:
    return len(thumb.data_uri) + len(thumb.problem) + 200  # the key and the object, roughly


CACHE = ThumbnailCache()


def thumbnail(
    path: Path,
    faces: Sequence[Mapping[str, Any]],
    settings: DecodeSettings,
    thumb_px: int = THUMB_PX,
    cache: ThumbnailCache | None = CACHE,
) -> Thumbnail:
    """`path` decoded small, upright, faces marked, as a JPEG data URI; never raises for a file
    that is gone or unreadable (the Thumbnail says why)."""
    try:
        key = _thumbnail_key(path, faces, thumb_px)
    except FileNotFoundError:
        return Thumbnail(problem="file not found")
    except OSError as exc:
        return Thumbnail(problem=f"cannot read the file: {exc.strerror or exc}")
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    try:
        photo = decode(path, replace(settings, long_side=thumb_px, min_preview_side=thumb_px))
    except DecodeError as exc:
        thumb = Thumbnail(problem=exc.reason)  # a changed file has another key and is tried again
        if cache is not None:
            cache.put(key, thumb)
        return thumb
    thumb = _drawn(photo.pillow(), photo.original_size[0], faces, thumb_px)
    if cache is not None:
        cache.put(key, thumb)
    return thumb


def prime(
    path: Path,
    faces: Sequence[Mapping[str, Any]],
    photo: Photo,
    thumb_px: int = THUMB_PX,
    cache: ThumbnailCache = CACHE,
) -> None:
    """Cache `path`'s thumbnail, drawn from `photo`, pixels of that file already decoded.

    The daemon's worker still holds the pixels it judged a flagged frame on. Without this, the
    sheet decoded every flagged frame a second time (57 ms for a 24 MP JPEG on a slow 2-core
    machine, against about 10 ms to draw it from the pixels in hand). Never raises for a file
    that has gone: the sheet then says so itself."""
    try:
        key = _thumbnail_key(path, faces, thumb_px)
    except OSError:
        return
    image = photo.pillow()
    # Drawn on a smaller copy: the photo's own image may be decode's, still in use elsewhere.
    factor = max(1, min(image.size) // (2 * thumb_px))
    small = image.reduce(factor) if factor > 1 else image.copy()
    cache.put(key, _drawn(small, photo.original_size[0], faces, thumb_px))


def prime_routed(
    primary: Path,
    sources: Sequence[Path],
    targets: Sequence[Path],
    faces: Sequence[Mapping[str, Any]],
    photo: Photo,
    cache: ThumbnailCache = CACHE,
) -> None:
    """`prime` for a frame just routed, under the path its card will look for: where
    `current_place` finds the primary among the ledger row's sources and targets."""
    for source, target in zip(sources, targets, strict=False):
        if source == primary:
            prime(target, faces, photo, cache=cache)
            return
    if targets:
        prime(targets[0], faces, photo, cache=cache)


def _thumbnail_key(
    path: Path, faces: Sequence[Mapping[str, Any]], thumb_px: int
) -> tuple[object, ...]:
    """The cache key of a thumbnail: the file as it is now (a changed file gets a new one), the
    size asked and the faces drawn. Raises OSError when the file cannot be looked at."""
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns, thumb_px, json.dumps(faces, sort_keys=True))


def _drawn(
    image: Image.Image, full_width: int, faces: Sequence[Mapping[str, Any]], thumb_px: int
) -> Thumbnail:
    """`image` (changed in place) shrunk to `thumb_px`, faces marked, as a JPEG data URI;
    `full_width` is the full upright image's width, which the faces' coordinates are in."""
    image.thumbnail((thumb_px, thumb_px), Image.Resampling.LANCZOS)
    full_width = full_width or image.size[0]
    # No numbers on the eyes at this size: the card lists them, and they would hide the eyes.
    draw_faces(image, faces, image.size[0] / full_width, labels=False)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return Thumbnail(uri, image.size[0], image.size[1])


# --- the sheet ----------------------------------------------------------------------------------


def write_contact_sheet(
    ledger: Ledger,
    out: Path,
    session: int | None = None,
    *,
    decode_settings: DecodeSettings | None = None,
    thumb_px: int = THUMB_PX,
    cache: ThumbnailCache | None = CACHE,
) -> Path:
    """Write the contact sheet of a session (the latest by default) to `out`, atomically, and
    return `out`. Raises LedgerError for a session that does not exist, ContactSheetError when
    the file cannot be written."""
    chosen = find_session(ledger, session)
    return _write(Path(out), ledger, chosen, None, decode_settings, thumb_px, cache)


def session_sheet_path(folders: FolderSettings, session: Session) -> Path:
    """Where the daemon keeps a session's sheet: beside blink/ and review/ when they share a
    parent folder (the shoot's folder), else in review/; named by the session's start date and
    number, so a restart the same day starts a new sheet instead of replacing the morning's."""
    blink, review = Path(folders.blink), Path(folders.review)
    folder = review.parent if blink.parent == review.parent else review
    day = datetime.fromtimestamp(session.started).strftime("%Y-%m-%d")
    return folder / f"{SHEET_PREFIX}{day}-session-{session.id}.html"


_refresh_locks: dict[Path, threading.Lock] = {}
_refresh_guard = threading.Lock()
_failing: set[Path] = set()


def refresh_session_sheet(
    ledger: Ledger,
    folders: FolderSettings,
    *,
    decode_settings: DecodeSettings | None = None,
    thumb_px: int = THUMB_PX,
    cache: ThumbnailCache | None = CACHE,
) -> Path | None:
    """Rewrite the current session's sheet for one folder set (the frames routed into its keep,
    blink and review folders) and return its path. For the daemon, after each frame it routes to
    blink or review: only new frames are decoded. Safe from several worker threads (refreshes of
    one sheet run one at a time, each from a fresh read of the ledger). Never raises for I/O: a
    sheet that cannot be written is logged once, as a warning, and None is returned."""
    chosen = find_session(ledger, ledger.session)
    out = session_sheet_path(folders, chosen)
    with _refresh_guard:
        lock = _refresh_locks.setdefault(out, threading.Lock())
    with lock:
        ours = {_norm(p) for p in (folders.keep, folders.blink, folders.review)}
        destinations = [d for d in ledger.destinations(chosen.id) if _norm(Path(d)) in ours]
        try:
            _write(out, ledger, chosen, destinations, decode_settings, thumb_px, cache)
        except ContactSheetError as exc:
            if out not in _failing:
                _failing.add(out)
                log.warning("%s; the contact sheet will be tried again after the next frame", exc)
            return None
        if out in _failing:
            _failing.discard(out)
            log.info("wrote the contact sheet %s", out)
        return out


MAX_CARDS = 300  # flagged frames a sheet shows, the latest first to go in


def _write(
    out: Path,
    ledger: Ledger,
    session: Session,
    destinations: Sequence[str] | None,
    decode_settings: DecodeSettings | None,
    thumb_px: int,
    cache: ThumbnailCache | None,
) -> Path:
    """The sheet of the session's frames routed into `destinations` (all when None).

    Reads only the counts and the latest MAX_CARDS flagged frames: reading every frame of a
    session of thousands, every few seconds, made the daemon's memory grow with the session (a
    refresh at 5,000 frames held 23 MB) and took over a second."""
    settings = decode_settings or DEFAULT_SETTINGS
    with ledger.snapshot():  # the counts and the cards from one state of the ledger
        tally = ledger.tally(session.id, destinations)
        flagged = ledger.frames(
            session.id, ROUTED, verdicts=FLAGGED, destinations=destinations, latest=MAX_CARDS
        )
    # A page of thousands of thumbnails opens slowly on a laptop: the latest MAX_CARDS frames
    # get cards, and a line says how many earlier ones do not.
    hidden = max(0, sum(tally.routed.get(v, 0) for v in FLAGGED) - len(flagged))

    def thumb(frame: Frame) -> Thumbnail:
        return thumbnail(current_place(frame), frame.faces, settings, thumb_px, cache)

    if len(flagged) > 1 and _WORKERS > 1:
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="eyespyd-contact") as pool:
            thumbs = list(pool.map(thumb, flagged))  # Pillow decodes without holding the GIL
    else:
        thumbs = [thumb(f) for f in flagged]
    shown = dict(zip((f.id for f in flagged), thumbs, strict=True))
    page = render(session, tally, flagged, shown, out, hidden=hidden)
    # A file name that is not UTF-8 (bytes from an old card) shows with a replacement character.
    _write_atomically(out, page.encode("utf-8", errors="replace"))
    return out


def current_place(frame: Frame) -> Path:
    """Where the frame's photo is now: its primary member's target (for `tag`, the file itself)."""
    for source, target in zip(frame.sources, frame.targets, strict=False):
        if source == frame.path:
            return target
    return frame.targets[0] if frame.targets else frame.path


def _write_atomically(out: Path, data: bytes) -> None:
    temp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise ContactSheetError(
            f"cannot write the contact sheet {out}: {exc.strerror or exc}"
        ) from exc


def _norm(path: Path) -> str:
    return os.path.normpath(Path(path).absolute())


# --- HTML ---------------------------------------------------------------------------------------


def render(
    session: Session,
    tally: Tally,
    flagged: Sequence[Frame],
    thumbs: Mapping[int, Thumbnail],
    out: Path,
    *,
    hidden: int = 0,
) -> str:
    """The page: a header with the session and its counts (`tally`), then a section per flagged
    verdict with a card for each of the `flagged` frames. `thumbs` maps frame ids to their
    thumbnails; links to the photos are relative to `out`. `hidden` flagged frames of the session
    have no card, and a line says so."""
    counts = {KEEP: 0, BLINK: 0, REVIEW: 0, **tally.routed}
    errors, in_progress = tally.failed, tally.in_progress
    sections = {v: [f for f in flagged if f.status == ROUTED and f.verdict == v] for v in FLAGGED}
    flagged_count = sum(counts[v] for v in FLAGGED)

    started = datetime.fromtimestamp(session.started)
    title = f"eyespyd: {flagged_count} flagged, {started:%a %d %b %Y}"
    stats = [
        f'<span class="stat blink">{counts[BLINK]} blink</span>',
        f'<span class="stat review">{counts[REVIEW]} review</span>',
        f'<span class="stat">{counts[KEEP]} keep</span>',
    ]
    if errors:
        stats.append(f'<span class="stat error">{_plural(errors, "error")}</span>')
    if in_progress:
        stats.append(f'<span class="stat">{in_progress} in progress</span>')

    body = []
    if hidden:
        body.append(
            f'<p class="legend">{_plural(hidden, "earlier flagged frame")} of this session'
            f" {'is' if hidden == 1 else 'are'} not shown here; <code>eyespyd report</code>"
            " lists them all.</p>"
        )
    for verdict in FLAGGED:
        cards = sections[verdict]
        if not cards:
            continue
        body.append(
            f'<section class="{verdict}" id="{verdict}">'
            f'<h2><span class="dot {verdict}"></span>{verdict.capitalize()}'
            f' <span class="count">{len(cards)}</span></h2><div class="grid">'
        )
        body.extend(_card(f, thumbs.get(f.id, Thumbnail()), out.parent) for f in cards)
        body.append("</div></section>")
    if not flagged_count:
        body.append('<p class="empty">No frame of this session went to blink or review.</p>')

    e = _escape
    generated = datetime.now().strftime("%Y-%m-%d %H:%M")
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="eyespyd {e(__version__)}">',
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
            '<header><h1>Flagged frames <span class="muted">',
            f"{started:%a %d %b %Y}</span></h1>",
            f'<p class="muted">Session {session.id}, started {started:%H:%M}'
            f' &middot; configuration <span class="config">{e(session.config)}</span></p>',
            f'<div class="stats"><span class="stat total"><b>{flagged_count}</b> of'
            f" {_plural(tally.frames, 'frame')} flagged</span>{''.join(stats)}</div>",
            '<p class="legend muted">Boxes mark faces, squares the eyes the model read:'
            ' <span class="g">green open</span> to <span class="r">red closed</span>,'
            ' <span class="h">blue hidden</span>. R and L: how likely the subject\'s right and'
            " left eye is closed, 0 to 1.</p></header><main>",
            *body,
            f"</main><footer>eyespyd {e(__version__)}, {e(generated)}</footer></body></html>\n",
        ]
    )


def _card(frame: Frame, thumb: Thumbnail, base: Path) -> str:
    e = _escape
    place = current_place(frame)
    verdict = frame.verdict if frame.verdict in FLAGGED else "other"
    if thumb.data_uri:
        img = (
            f'<img src="{thumb.data_uri}" width="{thumb.width}" height="{thumb.height}"'
            f' alt="{e(place.name)}">'
        )
        if place.suffix.lower() in _BROWSER_VIEWABLE:
            img = f'<a href="{e(_href(place, base))}" title="open the photo">{img}</a>'
        picture = f'<div class="thumb">{img}</div>'
    else:
        problem = thumb.problem or "no picture"
        picture = (
            f'<div class="thumb missing"><div><b>{e(problem)}</b>'
            f"<span>{e(str(place))}</span></div></div>"
        )
    reasons = "".join(f"<li>{e(r)}</li>" for r in frame.reasons)
    faces = "".join(_face_line(n, raw) for n, raw in enumerate(frame.faces, start=1))
    return (
        f'<article class="card {verdict}" id="frame-{frame.id}" data-frame="{frame.id}">'
        f"{picture}"
        f'<div class="info"><div class="top"><span class="badge {verdict}">{e(frame.verdict)}'
        f'</span><span class="score" title="blink score of the deciding face, 0 to 1">'
        f"<small>score</small> {frame.score:.2f}</span></div>"
        f'<h3 class="name" title="{e(str(place))}">{e(place.name)}</h3>'
        f'<p class="folder" title="{e(str(place.parent))}">in {e(_folder_name(place, base))}</p>'
        f'<ul class="reasons">{reasons}</ul>'
        + (f'<ul class="faces">{faces}</ul>' if faces else "")
        + "</div></article>"
    )


def _face_line(number: int, raw: Mapping[str, Any]) -> str:
    mark = _FaceMark.parse(raw)
    if mark is None:
        return ""
    eyes = []
    for side, (closed, hidden) in (("R", mark.right), ("L", mark.left)):
        if hidden >= HIDDEN_AT:
            eyes.append(f'<span class="eye h">{side} hidden</span>')
        else:
            r, g, b = closed_colour(closed)
            eyes.append(
                f'<span class="eye" style="border-color:rgb({r},{g},{b})">'
                f"{side} {closed:.2f}</span>"
            )
    return f'<li><span class="n">{number}</span>{"".join(eyes)}</li>'


def _folder_name(path: Path, base: Path) -> str:
    """The photo's folder: as seen from the sheet when it is beside it (`blink/`), else whole."""
    folder = path.parent
    if folder.parent == base:
        return folder.name + "/"
    return str(folder)


def _href(path: Path, base: Path) -> str:
    try:
        relative = os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return path.absolute().as_uri()
    return quote(Path(relative).as_posix(), errors="surrogateescape")


def _escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_CSS = """
:root{color-scheme:dark;--bg:#1c1d1f;--card:#292a2d;--line:#3a3b3f;--text:#ececea;
--muted:#a0a2a6;--blink:#d7263d;--review:#e6a000;--keep:#2ea043}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{padding:22px 28px 16px;border-bottom:1px solid var(--line)}
h1{font-size:22px;font-weight:600;margin:0 0 4px}
.muted{color:var(--muted);font-weight:400}
header p{margin:2px 0}
.config{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.stats{display:flex;flex-wrap:wrap;gap:8px;margin:14px 0 10px}
.stat{padding:4px 12px;border-radius:999px;background:#35363a;font-size:13.5px}
.stat.blink{background:var(--blink);color:#fff}
.stat.review{background:var(--review);color:#1c1d1f}
.stat.error{background:#5a2a2a}
.stat.total{background:none;padding-left:0}
.legend{font-size:12.5px}
.g{color:#5fd37a}.r{color:#ff6b6b}.h{color:#9a9aff}
main{padding:4px 28px 32px}
h2{display:flex;align-items:center;gap:10px;font-size:17px;font-weight:600;margin:26px 0 12px}
h2 .count{color:var(--muted);font-weight:400}
.dot{width:12px;height:12px;border-radius:50%;display:inline-block}
.dot.blink{background:var(--blink)}.dot.review{background:var(--review)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:16px}
.card{background:var(--card);border-radius:8px;overflow:hidden;border-top:4px solid var(--muted);
display:flex;flex-direction:column}
.card.blink{border-top-color:var(--blink)}.card.review{border-top-color:var(--review)}
.thumb{aspect-ratio:3/2;background:#131415;display:flex;align-items:center;
justify-content:center;overflow:hidden}
.thumb a{display:contents}
.thumb img{display:block;max-width:100%;max-height:100%;width:auto;height:auto}
.thumb.missing{color:var(--muted);text-align:center;padding:16px;
background:repeating-linear-gradient(135deg,#1a1b1c 0 12px,#202123 12px 24px)}
.thumb.missing b{display:block;color:var(--text);font-size:15px;margin-bottom:6px}
.thumb.missing span{font-size:12px;word-break:break-all}
.info{padding:10px 12px 12px}
.top{display:flex;align-items:center;justify-content:space-between}
.badge{font-size:11.5px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;
padding:2px 9px;border-radius:4px;background:#444}
.badge.blink{background:var(--blink);color:#fff}
.badge.review{background:var(--review);color:#1c1d1f}
.score{font-variant-numeric:tabular-nums;font-size:15px;font-weight:600}
.score small{color:var(--muted);font-weight:400;font-size:11.5px;margin-right:3px}
.name{font-size:14.5px;font-weight:600;margin:8px 0 0;word-break:break-all}
.folder{color:var(--muted);font-size:12px;margin:1px 0 6px;word-break:break-all}
.reasons{margin:0;padding:0 0 0 16px;font-size:12.5px}
.reasons li:first-child{color:var(--text)}
.reasons li+li{color:var(--muted)}
.faces{list-style:none;margin:8px 0 0;padding:0;display:flex;flex-direction:column;gap:4px}
.faces li{display:flex;align-items:center;gap:6px;font-size:12px;
font-variant-numeric:tabular-nums}
.faces .n{display:inline-block;min-width:18px;text-align:center;background:#151617;
border-radius:3px;padding:0 4px}
.eye{border-left:4px solid #888;padding:0 6px;background:#323336;border-radius:2px}
.eye.h{border-left-color:#7878ff}
.empty{color:var(--muted);font-size:15px;margin:40px 0}
footer{color:var(--muted);font-size:12px;padding:0 28px 24px}
""".replace("\n", "")
