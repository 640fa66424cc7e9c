"""contact: the contact sheet shows every flagged frame once, marks faces where they are, escapes
every name, survives missing files, refreshes cheaply, and renders in headless Chromium.

The frames are real pictures (the `tests/data/faces` fixtures pasted into camera-sized frames) with
face data as BlazeFace found it on the fixtures and made-up eye probabilities, routed through the
real ledger; the verdicts come from the real verdict function. No model is needed.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from eyespyd import contact, record
from eyespyd.config import FolderSettings
from eyespyd.contact import (
    SHEET_PREFIX,
    ContactSheetError,
    ThumbnailCache,
    draw_faces,
    prime_routed,
    refresh_session_sheet,
    session_sheet_path,
    thumbnail,
    write_contact_sheet,
)
from eyespyd.decode import DEFAULT_SETTINGS, decode
from eyespyd.record import Ledger, LedgerError, route_and_record
from eyespyd.route import MOVE, frame_group
from eyespyd.types import Face
from eyespyd.verdict import BLINK, KEEP, REVIEW
from tests.fakes import Eye, Eyes, FaceResult, Result

FIXTURES = Path(__file__).parent / "data" / "faces"

# BlazeFace (short range) on the fixtures: box and the six keypoints, in the fixture's pixels.
DETECTED: dict[str, tuple[tuple[float, ...], tuple[tuple[float, float], ...]]] = {
    "closed_05": (
        (0.0, 9.5, 365.0, 365.0),
        (
            (83.6, 145.0),
            (262.6, 124.9),
            (182.9, 234.8),
            (193.6, 323.5),
            (-1.5, 183.7),
            (357.2, 141.3),
        ),
    ),
    "closed_09": (
        (24.0, 39.0, 200.7, 215.8),
        (
            (74.6, 87.1),
            (151.0, 84.5),
            (114.4, 127.6),
            (115.0, 166.9),
            (34.7, 106.6),
            (188.7, 102.1),
        ),
    ),
    "closed_06": (
        (10.3, 29.0, 223.2, 230.0),
        (
            (69.8, 90.3),
            (162.0, 84.8),
            (119.1, 137.7),
            (121.4, 184.0),
            (23.3, 112.5),
            (207.5, 101.6),
        ),
    ),
    "open_03": (
        (6.1, 7.9, 200.0, 200.0),
        ((56.6, 63.4), (140.4, 62.2), (92.5, 109.5), (95.3, 152.1), (22.5, 80.7), (190.9, 79.7)),
    ),
    "open_06": (
        (8.2, 11.0, 198.3, 200.0),
        ((59.8, 62.3), (140.7, 64.0), (94.4, 106.8), (94.8, 148.5), (23.8, 78.7), (186.3, 83.6)),
    ),
    "open_09": (
        (8.3, 7.8, 191.9, 191.4),
        ((57.6, 64.6), (138.1, 62.0), (97.5, 113.6), (99.2, 148.5), (20.1, 76.3), (179.8, 71.5)),
    ),
    "sunglasses_01": (
        (7.5, 14.0, 187.1, 193.6),
        ((56.5, 65.7), (133.6, 63.1), (93.8, 107.9), (95.6, 146.0), (20.4, 81.7), (175.0, 77.4)),
    ),
}

BLINK_RED = (215, 38, 61)
REVIEW_AMBER = (230, 160, 0)
NASTY = """a <b> & "c" 'd' <img src=x onerror=alert(1)>.jpg"""


@dataclass(frozen=True)
class Placed:
    """A fixture face pasted into a frame: which fixture, zoom, top-left corner, eye states."""

    fixture: str
    zoom: float
    at: tuple[int, int]
    right: Eye
    left: Eye


def backdrop(width: int, height: int, seed: int) -> Image.Image:
    """A grey studio backdrop with a soft vignette and grain."""
    return Image.fromarray(_backdrop(width, height, seed))


@functools.lru_cache(maxsize=16)
def _backdrop(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot((x - width / 2) / width, (y - height / 2) / height)
    grey = 150 - 90 * r + rng.normal(0, 3, (height, width))
    tint = np.stack([grey, grey * 0.98, grey * 1.03], axis=-1)
    return tint.clip(0, 255).astype(np.uint8)


def compose(
    path: Path,
    placed: Sequence[Placed],
    size: tuple[int, int] = (1500, 1000),
    *,
    orientation: int = 1,
    seed: int = 0,
) -> tuple[FaceResult, ...]:
    """Write a camera-like JPEG with the fixtures' faces pasted in; return the faces in the full
    upright image's coordinates, as the pipeline reports them."""
    frame = backdrop(*size, seed=seed)
    faces = []
    for p in placed:
        with Image.open(FIXTURES / f"{p.fixture}.jpg") as source:
            face_image = source.convert("RGB")
        width, height = face_image.size
        face_image = face_image.resize((round(width * p.zoom), round(height * p.zoom)))
        frame.paste(face_image, p.at)
        box, points = DETECTED[p.fixture]
        dx, dy = p.at

        def moved(
            x: float, y: float, dx: int = dx, dy: int = dy, zoom: float = p.zoom
        ) -> tuple[float, float]:
            return (x * zoom + dx, y * zoom + dy)

        x0, y0 = moved(box[0], box[1])
        x1, y1 = moved(box[2], box[3])
        k = [moved(x, y) for x, y in points]
        keypoints = (k[0], k[1], k[2], k[3], k[4], k[5])
        faces.append(FaceResult(Face((x0, y0, x1, y1), 0.9, keypoints), Eyes(p.right, p.left)))
    exif = Image.Exif()
    if orientation == 6:  # stored turned a quarter, as a camera held upright does
        frame = frame.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    frame.save(path, "JPEG", quality=88, exif=exif.tobytes())
    return tuple(faces)


def classified(path: Path, verdict: str, faces: tuple[FaceResult, ...], why: str) -> Result:
    """A result as the pipeline gives it, the reasons worded as the verdict words them. The verdict
    is the test's to choose: these tests are about showing verdicts, not reaching them."""
    largest = max((f.face.width for f in faces), default=1.0)
    reasons = []
    for number, f in enumerate(faces, start=1):
        share = "the face" if len(faces) == 1 else f"{f.face.width / largest:.0%} of the largest"
        eyes = [("right", f.eyes.right), ("left", f.eyes.left)]
        described = ", ".join(
            f"{side} eye {e.closed:.2f} closed" for side, e in eyes if e.hidden < 0.5
        )
        lead = why if number == 1 else ""
        reasons.append(f"face {number} ({share}): {lead}{described or 'eyes not visible'}")
    visible = [e.closed for e in (faces[0].eyes.right, faces[0].eyes.left) if e.hidden < 0.5]
    score = round(sum(visible) / len(visible), 4) if visible else 0.0
    return Result(path, verdict, score, tuple(reasons) or ("no face found",), faces)


@dataclass
class Shoot:
    root: Path
    folders: FolderSettings
    ledger: Ledger

    def add(
        self,
        name: str,
        verdict: str,
        placed: Sequence[Placed],
        *,
        why: str = "",
        size: tuple[int, int] = (1500, 1000),
        orientation: int = 1,
    ) -> record.Outcome:
        path = self.folders.inbox / name
        faces = compose(path, placed, size, orientation=orientation, seed=len(name) % 4)
        result = classified(path, verdict, faces, why)
        destination = self.folders.destination(result.verdict)
        outcome = route_and_record(self.ledger, result, frame_group(path), destination, MOVE)
        assert outcome.status == record.ROUTED
        return outcome


def faces_json_with_keypoints(result: record.Classified) -> list[dict[str, Any]]:
    """record.faces_json plus each face's keypoints, which the sheet needs to place the eye
    squares (until record.faces_json stores them itself)."""
    rows = ORIGINAL_FACES_JSON(result)
    for row, f in zip(rows, result.faces, strict=True):
        row.setdefault("keypoints", [[round(x, 1), round(y, 1)] for x, y in f.face.keypoints])
    return rows


ORIGINAL_FACES_JSON = record.faces_json


def open_shoot(tmp_path: Path) -> Iterator[Shoot]:
    root = tmp_path / "shoot"
    folders = FolderSettings(
        inbox=root / "inbox",
        keep=root / "keep",
        blink=root / "blink",
        review=root / "review",
        recursive=False,
        polling=False,
    )
    for folder in (folders.inbox, folders.keep, folders.blink, folders.review):
        folder.mkdir(parents=True)
    with Ledger.open(tmp_path / "state" / "ledger.sqlite3") as ledger:
        ledger.start_session("/home/ana/.config/eyespyd/config.yaml")
        yield Shoot(root, folders, ledger)


@pytest.fixture
def shoot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shoot]:
    monkeypatch.setattr(record, "faces_json", faces_json_with_keypoints)
    yield from open_shoot(tmp_path)


def shut(p: float = 0.96) -> Eyes:
    return Eyes(Eye(p), Eye(p - 0.02))


def wide() -> Eyes:
    return Eyes(Eye(0.04), Eye(0.06))


def place(fixture: str, eyes: Eyes, zoom: float = 2.4, at: tuple[int, int] = (480, 180)) -> Placed:
    return Placed(fixture, zoom, at, eyes.right, eyes.left)


def blinked() -> Placed:
    """A frame-filling face with both eyes shut."""
    return place("closed_05", shut(), zoom=2.0, at=(380, 120))


@pytest.fixture
def flagged_shoot(shoot: Shoot) -> Shoot:
    """A morning's frames: 4 to blink (one since deleted), 4 to review, 2 kept."""
    shoot.add("DSC_0101.JPG", BLINK, [place("closed_05", shut(0.97), zoom=2.0, at=(380, 120))])
    shoot.add(
        "DSC_0102.JPG", REVIEW, [place("open_06", Eyes(Eye(0.58), Eye(0.55)))], why="uncertain: "
    )
    shoot.add(
        "DSC_0103.JPG",
        BLINK,
        [
            place("closed_09", shut(0.93), zoom=1.8, at=(280, 260)),
            place("open_03", wide(), zoom=1.9, at=(820, 240)),
        ],
    )
    shoot.add(
        NASTY, REVIEW, [place("closed_06", Eyes(Eye(0.91), Eye(0.12)))], why="one eye closed: "
    )
    shoot.add(
        "DSC_0105.JPG", REVIEW, [place("sunglasses_01", Eyes(Eye(0.3, 0.95), Eye(0.2, 0.97)))]
    )
    gone = shoot.add("DSC_0106.JPG", BLINK, [place("closed_09", shut(0.9))])
    gone.targets[0].unlink()  # the photographer deleted it from blink/
    shoot.add("DSC_0107.JPG", KEEP, [place("open_09", wide())])
    shoot.add(
        "DSC_0108.JPG",
        BLINK,
        [place("closed_06", shut(0.88), zoom=2.6, at=(150, 500))],
        size=(1000, 1500),
        orientation=6,
    )
    shoot.add(
        "DSC_0109.JPG",
        REVIEW,
        [place("open_09", Eyes(Eye(0.05, 0.1), Eye(0.86)))],
        why="one eye closed: ",
    )
    shoot.add("DSC_0110.JPG", KEEP, [place("open_03", wide())])
    return shoot


def frames_by_verdict(ledger: Ledger) -> dict[str, list[record.Frame]]:
    out: dict[str, list[record.Frame]] = {}
    for f in ledger.frames(status=record.ROUTED):
        out.setdefault(f.verdict, []).append(f)
    return out


def cards(page: str) -> list[str]:
    return re.findall(r'<article class="card [a-z]+" id="frame-(\d+)"', page)


def data_uri_image(uri: str) -> Image.Image:
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))).convert("RGB")


# --- the HTML -----------------------------------------------------------------------------------


def test_every_flagged_frame_has_exactly_one_card_blink_first(
    flagged_shoot: Shoot, tmp_path: Path
) -> None:
    by_verdict = frames_by_verdict(flagged_shoot.ledger)
    assert {v: len(f) for v, f in by_verdict.items()} == {"blink": 4, "review": 4, "keep": 2}

    out = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html")

    page = out.read_text(encoding="utf-8")
    expected = [str(f.id) for v in ("blink", "review") for f in by_verdict[v]]
    assert cards(page) == expected
    for f in by_verdict["keep"]:
        assert f'id="frame-{f.id}"' not in page
    assert page.index('<section class="blink"') < page.index('<section class="review"')


def test_a_long_session_shows_only_its_latest_flagged_frames(
    flagged_shoot: Shoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eyespyd.contact

    monkeypatch.setattr(eyespyd.contact, "MAX_CARDS", 3)
    by_verdict = frames_by_verdict(flagged_shoot.ledger)
    latest = sorted(f.id for v in ("blink", "review") for f in by_verdict[v])[-3:]
    page = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")
    assert sorted(int(c) for c in cards(page)) == latest
    assert "5 earlier flagged frames of this session are not shown here" in page
    assert "<b>8</b> of 10 frames flagged" in page  # the counts still cover the whole session


def test_header_has_session_configuration_and_counts(flagged_shoot: Shoot, tmp_path: Path) -> None:
    page = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

    assert "Session 1, started " in page
    assert "/home/ana/.config/eyespyd/config.yaml" in page
    assert '<span class="stat blink">4 blink</span>' in page
    assert '<span class="stat review">4 review</span>' in page
    assert '<span class="stat">2 keep</span>' in page
    assert "<b>8</b> of 10 frames flagged" in page


def test_cards_show_verdict_score_reasons_and_eye_probabilities(
    flagged_shoot: Shoot, tmp_path: Path
) -> None:
    page = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")
    first = flagged_shoot.ledger.frames()[0]
    card = page[page.index(f'id="frame-{first.id}"') :]
    card = card[: card.index("</article>")]

    assert '<span class="badge blink">blink</span>' in card
    assert f"<small>score</small> {first.score:.2f}</span>" in card
    assert ">DSC_0101.JPG</h3>" in card
    assert html.escape(str(flagged_shoot.folders.blink)) in card
    assert f"<li>{html.escape(first.reasons[0])}</li>" in card
    assert "R 0.97" in card and "L 0.95" in card
    assert "<script" not in page.lower().replace("&lt;script", "")  # no script of ours either


def test_a_nasty_file_name_is_escaped_everywhere(flagged_shoot: Shoot, tmp_path: Path) -> None:
    page = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

    assert NASTY not in page
    assert "<b> &" not in page
    assert "<img src=x" not in page
    escaped = html.escape(NASTY, quote=True)
    assert f">{escaped}</h3>" in page
    assert f'alt="{escaped}"' in page
    # The link to the photo is percent-encoded and relative to the sheet.
    assert 'href="shoot/review/a%20%3Cb%3E%20%26%20%22c%22%20%27d%27%20' in page


def test_a_frame_whose_file_is_gone_gets_a_not_found_card(
    flagged_shoot: Shoot, tmp_path: Path
) -> None:
    gone = next(f for f in flagged_shoot.ledger.frames() if f.path.name == "DSC_0106.JPG")

    page = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

    card = page[page.index(f'id="frame-{gone.id}"') :]
    card = card[: card.index("</article>")]
    assert '<div class="thumb missing"><div><b>file not found</b>' in card
    assert html.escape(str(flagged_shoot.folders.blink / "DSC_0106.JPG")) in card
    assert "<img" not in card
    assert '<span class="badge blink">blink</span>' in card
    assert page.count("<img ") == 7


def test_a_file_that_no_longer_decodes_gets_a_card_with_the_reason(
    shoot: Shoot, tmp_path: Path
) -> None:
    outcome = shoot.add("DSC_0001.JPG", BLINK, [blinked()])
    outcome.targets[0].write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")

    page = write_contact_sheet(shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

    assert len(cards(page)) == 1
    assert '<div class="thumb missing"><div><b>' in page
    assert "file not found" not in page
    assert "<img " not in page


def test_the_sheet_is_self_contained(flagged_shoot: Shoot, tmp_path: Path) -> None:
    page = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert len(sources) == 7
    assert all(s.startswith("data:image/jpeg;base64,") for s in sources)
    assert "<script" not in page
    assert "<link" not in page
    assert "url(" not in page
    assert "@import" not in page


def test_thumbnails_are_small_and_the_sheet_stays_light(
    flagged_shoot: Shoot, tmp_path: Path
) -> None:
    out = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html")
    page = out.read_text("utf-8")

    for uri in re.findall(r'src="(data:[^"]*)"', page):
        encoded = len(uri) * 3 // 4
        assert 3_000 < encoded < 40_000
        image = data_uri_image(uri)
        assert max(image.size) == 360
    assert out.stat().st_size < 400_000


def test_the_sheet_is_replaced_atomically_and_leaves_no_temporary_file(
    flagged_shoot: Shoot, tmp_path: Path
) -> None:
    out = tmp_path / "sheet.html"
    out.write_text("old")
    write_contact_sheet(flagged_shoot.ledger, out)
    write_contact_sheet(flagged_shoot.ledger, out)

    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["sheet.html"]
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o644 & ~mask  # readable from the studio's laptop


def test_an_unwritable_place_is_one_error_that_says_where(
    flagged_shoot: Shoot, tmp_path: Path
) -> None:
    with pytest.raises(ContactSheetError, match=r"cannot write the contact sheet .*nowhere"):
        write_contact_sheet(flagged_shoot.ledger, tmp_path / "nowhere" / "sheet.html")


def test_an_unknown_session_is_a_ledger_error(flagged_shoot: Shoot, tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no session 7"):
        write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html", session=7)


def test_a_session_without_flagged_frames_says_so(shoot: Shoot, tmp_path: Path) -> None:
    shoot.add("DSC_0001.JPG", KEEP, [place("open_03", wide())])

    page = write_contact_sheet(shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

    assert cards(page) == []
    assert "No frame of this session went to blink or review." in page


def test_an_earlier_session_can_be_chosen(flagged_shoot: Shoot, tmp_path: Path) -> None:
    flagged_shoot.ledger.start_session("/etc/eyespyd.yaml")
    flagged_shoot.add("DSC_0201.JPG", BLINK, [blinked()])

    latest = write_contact_sheet(flagged_shoot.ledger, tmp_path / "latest.html").read_text("utf-8")
    first = write_contact_sheet(flagged_shoot.ledger, tmp_path / "first.html", session=1)

    assert len(cards(latest)) == 1 and "Session 2," in latest
    assert len(cards(first.read_text("utf-8"))) == 8


# --- drawing ------------------------------------------------------------------------------------


def marks_of(path: Path, faces: Sequence[dict[str, Any]]) -> np.ndarray:
    """How much drawing `faces` changed each pixel of the thumbnail of `path`."""
    cache = ThumbnailCache()
    drawn = data_uri_image(thumbnail(path, faces, DEFAULT_SETTINGS, cache=cache).data_uri)
    bare = data_uri_image(thumbnail(path, (), DEFAULT_SETTINGS, cache=cache).data_uri)
    diff: np.ndarray = np.abs(np.asarray(drawn, np.int16) - np.asarray(bare, np.int16)).max(axis=2)
    return diff


@pytest.mark.parametrize("orientation", [1, 6])
def test_face_boxes_land_on_the_faces_in_the_thumbnail(tmp_path: Path, orientation: int) -> None:
    """Faces are stored in the full upright image's pixels; the thumbnail is 360 px and upright."""
    path = tmp_path / "frame.jpg"
    size = (1000, 1500) if orientation == 6 else (1500, 1000)
    (face,) = compose(
        path, [place("open_09", wide(), zoom=2.0, at=(300, 400))], size, orientation=orientation
    )
    row = {
        "box": list(face.face.box),
        "keypoints": [list(p) for p in face.face.keypoints],
        "eyes": {"right": 0.04, "left": 0.06, "right_hidden": 0.0, "left_hidden": 0.0},
    }

    diff = marks_of(path, [row])

    scale = 360 / max(size)
    x0, y0, x1, y1 = (round(v * scale) for v in face.face.box)
    assert diff.shape == (round(size[1] * scale), round(size[0] * scale))
    mid_x, mid_y = (x0 + x1) // 2, (y0 + y1) // 2
    # The box's four edges changed; the frame's corner and the mouth did not.
    for x, y in ((mid_x, y0), (mid_x, y1), (x0, mid_y), (x1, mid_y)):
        window = diff[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4]
        assert window.max() > 120, (x, y)
    assert diff[:20, :20].max() < 30
    mouth_x, mouth_y = (round(v * scale) for v in face.face.keypoints[3])
    assert diff[mouth_y - 3 : mouth_y + 4, mouth_x - 3 : mouth_x + 4].max() < 40
    # Each eye square is around its keypoint.
    for ex, ey in face.face.keypoints[:2]:
        cx, cy = round(ex * scale), round(ey * scale)
        assert diff[cy - 12 : cy + 13, cx - 12 : cx + 13].max() > 120


# A face filling the middle of a 400 px square, in the ledger's form, without its eyes.
SQUARE_FACE: dict[str, Any] = {
    "box": [100, 100, 300, 300],
    "keypoints": [[160, 170], [240, 170], [200, 210], [200, 250], [110, 180], [290, 180]],
}


def test_eye_squares_are_green_when_open_and_red_when_closed() -> None:
    image = Image.new("RGB", (400, 400), (128, 128, 128))
    eyes = {"right": 0.02, "left": 0.98, "right_hidden": 0.0, "left_hidden": 0.0}
    face = {**SQUARE_FACE, "eyes": eyes}
    draw_faces(image, [face], 1.0)
    pixels = np.asarray(image)

    def colours_near(x: int, y: int) -> set[tuple[int, int, int]]:
        patch = pixels[y - 32 : y + 33, x - 32 : x + 33].reshape(-1, 3)
        return {(int(r), int(g), int(b)) for r, g, b in patch}

    assert (5, 196, 40) in colours_near(160, 170)  # the subject's right eye, open
    assert (250, 4, 40) in colours_near(240, 170)  # the left eye, closed
    assert (250, 4, 40) not in colours_near(160, 170)


def test_a_thumbnail_drawn_from_the_workers_pixels_spares_the_sheet_a_decode(
    shoot: Shoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the daemon does: the worker decodes and judges the frame, routes it with its twin and
    # sidecar, then primes the thumbnail from the pixels in hand.
    path = shoot.folders.inbox / "DSC_0201.JPG"
    result = classified(path, BLINK, compose(path, [blinked()], (1500, 1000)), "")
    (shoot.folders.inbox / "DSC_0201.xmp").write_text("<x/>", encoding="utf-8")
    photo = decode(path, DEFAULT_SETTINGS)
    group = frame_group(path)
    outcome = route_and_record(shoot.ledger, result, group, shoot.folders.blink, MOVE)
    cache = ThumbnailCache()
    prime_routed(path, group, outcome.targets, record.faces_json(result), photo, cache=cache)

    def decode_again(*_: object, **__: object) -> None:
        raise AssertionError("the sheet decoded the frame again")

    monkeypatch.setattr(contact, "decode", decode_again)
    sheet = write_contact_sheet(shoot.ledger, shoot.root / "sheet.html", cache=cache)

    assert (cache.hits, cache.misses) == (1, 0)
    page = sheet.read_text("utf-8")
    assert "DSC_0201.JPG" in page and page.count("data:image/jpeg;base64,") == 1


def test_a_detection_the_mesh_saw_no_face_in_is_not_drawn() -> None:
    image = Image.new("RGB", (400, 400), (128, 128, 128))
    eyes = {"right": 0.0, "left": 0.0, "right_hidden": 1.0, "left_hidden": 1.0}
    glass = {**SQUARE_FACE, "eyes": eyes, "is_face": False}
    draw_faces(image, [glass], 1.0)
    assert np.asarray(image).max() == np.asarray(image).min() == 128
    draw_faces(image, [{**glass, "is_face": True}], 1.0)  # the same box as a face is drawn
    assert np.asarray(image).max() > 128


def test_faces_without_keypoints_still_get_a_coloured_box(tmp_path: Path) -> None:
    image = Image.new("RGB", (400, 400), (128, 128, 128))
    face = {"box": [100, 100, 300, 300], "eyes": {"right": 0.97, "left": 0.95}}
    draw_faces(image, [face, {"box": "nonsense"}, {}], 1.0)
    pixels = np.asarray(image)

    assert tuple(pixels[200, 100]) == (247, 6, 40)  # the box, red: the more closed eye
    assert tuple(pixels[200, 200]) == (128, 128, 128)  # nothing drawn inside


def test_a_ledger_without_keypoints_makes_a_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written before the ledger kept keypoints: boxes, no eye squares, no error."""

    def without_keypoints(result: record.Classified) -> list[dict[str, Any]]:
        rows = ORIGINAL_FACES_JSON(result)
        for row in rows:
            row.pop("keypoints", None)
        return rows

    monkeypatch.setattr(record, "faces_json", without_keypoints)
    for shoot in open_shoot(tmp_path):
        shoot.add("DSC_0001.JPG", BLINK, [blinked()])
        (frame,) = shoot.ledger.frames()

        page = write_contact_sheet(shoot.ledger, tmp_path / "sheet.html").read_text("utf-8")

        assert cards(page) == [str(frame.id)]
        assert page.count("<img ") == 1
        assert "R 0.96" in page


# --- the daemon's sheet -------------------------------------------------------------------------


def test_the_session_sheet_lives_beside_the_destinations_named_by_date_and_session(
    flagged_shoot: Shoot,
) -> None:
    out = refresh_session_sheet(flagged_shoot.ledger, flagged_shoot.folders)

    assert out is not None
    assert out.parent == flagged_shoot.root
    assert re.fullmatch(SHEET_PREFIX + r"\d{4}-\d\d-\d\d-session-1\.html", out.name)
    (session,) = flagged_shoot.ledger.sessions()
    assert out == session_sheet_path(flagged_shoot.folders, session)
    page = out.read_text("utf-8")
    assert len(cards(page)) == 8
    assert page.count(">in blink/</p>") == 4  # folders named as seen from the sheet
    assert 'href="blink/DSC_0101.JPG"' in page


def test_a_session_sheet_goes_into_review_when_the_folders_are_apart(tmp_path: Path) -> None:
    folders = FolderSettings(
        tmp_path / "in",
        tmp_path / "k",
        tmp_path / "x" / "blink",
        tmp_path / "y" / "review",
        False,
        False,
    )
    session = record.Session(3, 1_800_000_000.0, "cfg", 1, "0")

    assert session_sheet_path(folders, session).parent == tmp_path / "y" / "review"


def test_a_refresh_decodes_only_the_new_frame(
    shoot: Shoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[Path] = []

    def counting(path: Path, settings: Any) -> Any:
        decoded.append(path)
        return decode(path, settings)

    monkeypatch.setattr("eyespyd.contact.decode", counting)
    cache = ThumbnailCache()
    for n in range(4):
        shoot.add(f"DSC_{n:04}.JPG", BLINK, [blinked()])
        refresh_session_sheet(shoot.ledger, shoot.folders, cache=cache)

    assert [p.name for p in decoded] == [f"DSC_{n:04}.JPG" for n in range(4)]
    assert cache.hits == 0 + 1 + 2 + 3


def test_a_session_sheet_shows_only_its_own_folders(shoot: Shoot, tmp_path: Path) -> None:
    shoot.add("DSC_0001.JPG", BLINK, [blinked()])
    other = FolderSettings(
        tmp_path / "b" / "in",
        tmp_path / "b" / "keep",
        tmp_path / "b" / "blink",
        tmp_path / "b" / "review",
        False,
        False,
    )
    other.inbox.mkdir(parents=True)
    shoot.folders, mine = other, shoot.folders
    shoot.add("DSC_0002.JPG", BLINK, [blinked()])

    out = refresh_session_sheet(shoot.ledger, mine)

    assert out is not None
    page = out.read_text("utf-8")
    assert ">DSC_0001.JPG<" in page and ">DSC_0002.JPG<" not in page
    assert '<span class="stat blink">1 blink</span>' in page


def test_a_sheet_that_cannot_be_written_is_logged_once_and_never_raises(
    shoot: Shoot, caplog: pytest.LogCaptureFixture
) -> None:
    shoot.add("DSC_0001.JPG", BLINK, [blinked()])
    folders = FolderSettings(
        shoot.folders.inbox,
        shoot.folders.keep,
        shoot.root / "gone" / "blink",
        shoot.root / "gone" / "review",
        False,
        False,
    )

    with caplog.at_level("WARNING", logger="eyespyd.contact"):
        assert refresh_session_sheet(shoot.ledger, folders) is None
        assert refresh_session_sheet(shoot.ledger, folders) is None

    assert len(caplog.records) == 1
    assert "cannot write the contact sheet" in caplog.records[0].getMessage()


# --- in a browser -------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_sheet_renders_in_chromium(flagged_shoot: Shoot, tmp_path: Path) -> None:
    out = write_contact_sheet(flagged_shoot.ledger, tmp_path / "sheet.html")
    url = out.absolute().as_uri()

    dom = chromium(tmp_path, "--dump-dom", url).stdout
    expected = [str(f.id) for f in flagged_shoot.ledger.frames() if f.verdict != "keep"]
    rendered = re.findall(r'<article class="card [a-z]+" id="frame-(\d+)"', dom)
    assert sorted(rendered, key=int) == expected
    assert dom.count('<img src="data:image/jpeg;base64,') == 7
    assert "file not found" in dom

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    with Image.open(shot) as screenshot:
        assert screenshot.size == (1280, 2000)
        pixels = np.asarray(screenshot.convert("RGB"), dtype=np.int16)
    white = (pixels > 245).all(axis=2).mean()
    assert white < 0.2  # a dark page, not a blank one
    lively = pixels.std(axis=(0, 1)).mean()
    assert lively > 15  # photos and text, not a flat fill

    def share_of(colour: tuple[int, int, int]) -> float:
        return float((np.abs(pixels - np.array(colour)).max(axis=2) < 12).mean())

    assert share_of(BLINK_RED) > 0.001  # badges, card edges and the blink count
    assert share_of(REVIEW_AMBER) > 0.001
