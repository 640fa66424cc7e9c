"""The pipeline's joins: decode size, faces, and eyes read again from a larger decode or where
the face mesh places them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyespyd.config import load
from eyespyd.decode import decode
from eyespyd.eyes import eye_geometry, mean_reading, missed_eyes, plainly_open
from eyespyd.landmarks import EyeCentres, FaceMesh
from eyespyd.pipeline import MIN_EYE_PX, Pipeline
from eyespyd.types import Face, Photo
from eyespyd.verdict import decide
from tests.test_faces import FACE_OF_PICTURE, FIXTURES, background, paste

CAMERA = (4000, 2667)  # decoded at 1/8 by default: 500 x 334


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    settings = load()
    return Pipeline(settings.decode, settings.verdict, model=settings.model)


def camera_jpeg(folder: Path, name: str, faces: list[tuple[str, float, int, int]]) -> Path:
    """A 4000 px camera JPEG with fixture faces (name, width share, x, y) pasted in."""
    frame = background(*CAMERA, seed=3)
    for fixture, share, x, y in faces:
        paste(frame, fixture, share * CAMERA[0], x, y)
    path = folder / name
    Image.fromarray(frame).save(path, quality=92)
    return path


def test_a_headshot_is_judged_on_the_small_decode(pipeline: Pipeline, tmp_path: Path) -> None:
    path = camera_jpeg(tmp_path, "headshot.jpg", [("open_03.jpg", 0.3, 1300, 500)])
    photo = decode(path, pipeline.decode_settings)
    assert max(photo.size) <= 1000  # the defaults decode a 4000 px JPEG at 1/8 or 1/4

    faces, eyes, used = pipeline.read_faces(photo)

    assert used is photo  # eyes big enough: no second decode
    assert len(faces) == 1
    assert min(eyes[0].right.crop_px, eyes[0].left.crop_px) >= MIN_EYE_PX


def test_small_eyes_are_read_again_from_a_larger_decode(pipeline: Pipeline, tmp_path: Path) -> None:
    # Faces 7% of the width: on the 500 px decode their eye crops are about 10 px.
    share, x, y = 0.07, 1000, 900
    placed = [("closed_02.jpg", share, x, y), ("closed_05.jpg", share, x + 900, y)]
    path = camera_jpeg(tmp_path, "group.jpg", placed)
    photo = decode(path, pipeline.decode_settings)

    faces, eyes, used = pipeline.read_faces(photo)

    assert used.size[0] > photo.size[0]
    assert len(faces) == 2
    assert all(min(e.right.crop_px, e.left.crop_px) >= MIN_EYE_PX for e in eyes)
    # Faces come back in the larger decode's coordinates, over the pasted pictures.
    side = share * CAMERA[0] / FACE_OF_PICTURE  # of a pasted picture, in full-image pixels
    k = used.scale
    expected = sorted(((px + side / 2) * k, (py + side / 2) * k) for _, _, px, py in placed)
    found = sorted(((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces)
    np.testing.assert_allclose(found, expected, atol=0.25 * side * k)
    # And classify reports them in the full image's coordinates, with both faces blinking.
    result = pipeline.classify(path)
    assert result.verdict == "blink"
    boxes = sorted(face.face.box for face in result.faces)
    for (x0, y0, _, _), (_, _, px, py) in zip(
        boxes, sorted(placed, key=lambda p: p[2]), strict=True
    ):
        assert abs(x0 - px) < 0.3 * share * CAMERA[0]
        assert abs(y0 - py) < 0.3 * share * CAMERA[0]


class SpyMesh:
    """The real face mesh, with every face it was asked about; it can be told to see no face,
    or to `alter` what it saw."""

    def __init__(
        self,
        inner: FaceMesh,
        *,
        sees_faces: bool = True,
        alter: Callable[[Face, EyeCentres], EyeCentres] | None = None,
    ) -> None:
        self.inner = inner
        self.sees_faces = sees_faces
        self.alter = alter
        self.asked: list[Face] = []

    def eyes(self, image: Image.Image, face: Face) -> EyeCentres | None:
        self.asked.append(face)
        if not self.sees_faces:
            return None
        found = self.inner.eyes(image, face)
        assert found is not None
        return found if self.alter is None else self.alter(face, found)


def fixture_photo(pipeline: Pipeline, name: str) -> Photo:
    return decode(FIXTURES / name, pipeline.decode_settings)


def test_plainly_open_eyes_are_never_shown_to_the_mesh(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SpyMesh(pipeline.mesh)
    monkeypatch.setattr(pipeline, "mesh", spy)

    for name in ("open_01.jpg", "open_05.jpg", "open_07.jpg"):
        faces, eyes, _ = pipeline.read_faces(fixture_photo(pipeline, name))
        assert len(faces) == 1 and plainly_open(eyes[0])

    assert spy.asked == []


def test_closed_eyes_are_read_again_where_the_mesh_places_them(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SpyMesh(pipeline.mesh)
    monkeypatch.setattr(pipeline, "mesh", spy)
    photo = fixture_photo(pipeline, "closed_05.jpg")

    faces, eyes, _ = pipeline.read_faces(photo)

    (detected,) = spy.asked
    centres = pipeline.mesh.inner.eyes(Image.fromarray(photo.pixels), detected)
    assert centres is not None
    (placed,) = faces
    assert (placed.right_eye, placed.left_eye) == (centres.right, centres.left)
    assert placed.keypoints[2:] == detected.keypoints[2:] and placed.box == detected.box
    first = pipeline.eyes.classify(photo.pixels, detected)
    second = pipeline.eyes.classify(photo.pixels, placed)
    assert eyes[0] == mean_reading(first, second)
    assert eyes[0].right.crop_box == second.right.crop_box  # the crops drawn are the mesh's
    assert decide(faces, eyes, pipeline.verdict_settings).verdict == "blink"


def left_eye_a_crop_away(face: Face, found: EyeCentres) -> EyeCentres:
    """The left eye a whole crop's side below the detector's: its first crop missed it."""
    side = eye_geometry(face)[0].side
    return replace(found, left=(face.left_eye[0], face.left_eye[1] + side))


def test_an_eye_the_first_crop_missed_is_read_where_the_mesh_puts_it_alone(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "mesh", SpyMesh(pipeline.mesh, alter=left_eye_a_crop_away))
    photo = fixture_photo(pipeline, "closed_05.jpg")
    (detected,), (first,), _ = pipeline.find_faces(photo)

    (placed,), (eyes,), _ = pipeline.read_faces(photo)

    second = pipeline.eyes.classify(photo.pixels, placed)
    assert missed_eyes(detected, placed) == (False, True)
    assert eyes.left == second.left
    assert eyes.right == mean_reading(first, second).right


def left_eye_edge_on(face: Face, found: EyeCentres) -> EyeCentres:
    """The subject's left eye seen edge-on, as in a face turned away."""
    return replace(found, edge_on=(False, True))


def test_an_eye_seen_edge_on_gives_no_evidence(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = fixture_photo(pipeline, "closed_05.jpg")
    plain, _ = pipeline.read_faces(photo)[:2]
    monkeypatch.setattr(pipeline, "mesh", SpyMesh(pipeline.mesh, alter=left_eye_edge_on))

    faces, eyes, _ = pipeline.read_faces(photo)

    assert faces == plain
    assert (eyes[0].left.closed, eyes[0].left.hidden) == (0.0, 1.0)
    assert eyes[0].right.closed > 0.5  # the other eye still counts, and is closed
    decision = decide(faces, eyes, pipeline.verdict_settings)
    assert decision.verdict == "review"  # one closed eye in view: a question, never a blink
    assert "only one eye visible" in decision.reasons[0]


def test_a_detection_the_mesh_does_not_see_as_a_face_gives_no_evidence(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "mesh", SpyMesh(pipeline.mesh, sees_faces=False))
    photo = fixture_photo(pipeline, "closed_05.jpg")
    detected, _, _ = pipeline.find_faces(photo)

    faces, eyes, _ = pipeline.read_faces(photo)

    assert faces == detected  # kept where the detector put it, so faces and eyes stay in step
    assert [(e.closed, e.hidden) for e in (eyes[0].right, eyes[0].left)] == [(0.0, 1.0)] * 2
    assert not eyes[0].is_face  # beside real faces the verdict leaves it out
    result = pipeline.classify(photo.path)
    assert (len(result.faces), result.face_count) == (1, 0)  # the journal line says "0 faces"
    decision = decide(faces, eyes, pipeline.verdict_settings)
    assert decision.verdict == pipeline.verdict_settings.eyes_not_visible  # never blink
