"""The pipeline's joins: decode size, faces, and eyes read again from a larger decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyespyd.config import load
from eyespyd.decode import decode
from eyespyd.pipeline import MIN_EYE_PX, Pipeline
from tests.test_faces import FACE_OF_PICTURE, background, paste

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
