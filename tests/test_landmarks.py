"""The face mesh that places the eyes: ROI geometry and sampling as plain numpy, then the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from eyespyd.faces import FaceDetector
from eyespyd.landmarks import (
    INPUT_SIZE,
    LEFT_CORNERS,
    LEFT_EYE,
    RIGHT_CORNERS,
    RIGHT_EYE,
    FaceMesh,
    Roi,
    edge_on,
    eye_centres,
    face_roi,
    sample_roi,
)
from eyespyd.types import Face
from tests.test_faces import FIXTURES, background, load


def face(
    box: tuple[float, float, float, float], right: tuple[float, float], left: tuple[float, float]
) -> Face:
    return Face(box=box, score=0.9, keypoints=(right, left, (0, 0), (0, 0), (0, 0), (0, 0)))


def test_roi_is_the_box_centre_turned_by_the_eye_line_and_half_again_as_big() -> None:
    level = face_roi(face((100, 200, 300, 360), (150, 250), (250, 250)))
    assert level.centre == (200, 280)
    assert level.side == pytest.approx(1.5 * 200)
    assert level.angle == pytest.approx(0.0)

    tilted = face_roi(face((100, 200, 300, 360), (150, 250), (200, 300)))
    assert tilted.angle == pytest.approx(math.pi / 4)


@pytest.mark.parametrize(("degrees", "side"), [(0, 150), (30, 150), (-50, 120), (20, 600)])
def test_a_point_sampled_into_the_tensor_maps_back_to_where_it_was(
    degrees: float, side: float
) -> None:
    # A bright spot in a dark image: where it lands in the tensor, mapped back by Roi.to_image,
    # must be where it is in the image, whatever the turn and whether the ROI is shrunk.
    image = np.zeros((800, 900, 3), np.uint8)
    spot = (430.0, 370.0)
    radius = max(2, round(side / INPUT_SIZE * 2))
    x, y = round(spot[0]), round(spot[1])
    image[y - radius : y + radius, x - radius : x + radius] = 255
    roi = Roi((450.0, 400.0), math.radians(degrees), side)

    tensor = sample_roi(Image.fromarray(image), roi)

    assert tensor.shape == (1, INPUT_SIZE, INPUT_SIZE, 3)
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0
    weights = tensor[0, :, :, 0]
    rows, cols = np.mgrid[0:INPUT_SIZE, 0:INPUT_SIZE]
    found = np.array([[(cols * weights).sum(), (rows * weights).sum()]]) / weights.sum() + 0.5
    back = roi.to_image(found.astype(np.float32))[0]
    assert back == pytest.approx(spot, abs=1.5 * max(1.0, side / INPUT_SIZE))


def test_beyond_the_image_the_tensor_is_black() -> None:
    image = np.full((200, 200, 3), 200, np.uint8)
    roi = Roi((0.0, 100.0), 0.0, 200.0)  # the left half of the ROI lies left of the image

    tensor = sample_roi(Image.fromarray(image), roi)[0]

    assert tensor[:, : INPUT_SIZE // 2 - 2].max() == 0.0
    assert tensor[:, INPUT_SIZE // 2 + 2 :].min() == pytest.approx(200 / 255, abs=0.01)


def test_an_roi_wholly_outside_the_image_is_all_black() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    tensor = sample_roi(Image.fromarray(image), Roi((500.0, 500.0), 0.3, 50.0))
    assert tensor.max() == 0.0


def test_eye_centres_are_the_means_of_each_eyes_contour() -> None:
    mesh = np.zeros((468, 2), np.float32)
    mesh[list(RIGHT_EYE)] = [[10, 20], [14, 22]] * (len(RIGHT_EYE) // 2)
    mesh[list(LEFT_EYE)] = [[50, 18], [54, 20]] * (len(LEFT_EYE) // 2)

    right, left = eye_centres(mesh)

    assert right == pytest.approx((12, 21))
    assert left == pytest.approx((52, 19))


@pytest.mark.parametrize(
    ("right_width", "left_width", "expected"),
    [
        (30, 30, (False, False)),
        (16, 30, (False, False)),
        (14, 30, (True, False)),
        (40, 9, (False, True)),
    ],
)
def test_an_eye_under_half_the_others_width_is_edge_on(
    right_width: float, left_width: float, expected: tuple[bool, bool]
) -> None:
    mesh = np.zeros((468, 2), np.float32)
    mesh[RIGHT_CORNERS[0]], mesh[RIGHT_CORNERS[1]] = (100, 50), (100 + right_width, 50)
    mesh[LEFT_CORNERS[1]], mesh[LEFT_CORNERS[0]] = (160, 52), (160 + left_width, 52)
    assert edge_on(mesh) == expected


# --- the model on real faces ----------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    return FaceMesh()


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


OPEN_FIXTURES = sorted(p.name for p in FIXTURES.glob("open_*"))


@pytest.mark.parametrize("name", OPEN_FIXTURES)
def test_mesh_eyes_lie_near_blazefaces_and_between_its_eyes_and_mouth(
    mesh: FaceMesh, detector: FaceDetector, name: str
) -> None:
    pixels = load(name)
    (found,) = detector.detect(pixels)

    centres = mesh.eyes(Image.fromarray(pixels), found)

    assert centres is not None
    assert centres.presence > 0.9
    distance = math.dist(found.right_eye, found.left_eye)
    assert math.dist(centres.right, found.right_eye) < 0.25 * distance
    assert math.dist(centres.left, found.left_eye) < 0.25 * distance
    assert centres.right[0] < centres.left[0]  # the subject's right eye on the image's left
    assert centres.edge_on == (False, False)


@pytest.mark.parametrize("degrees", [10, 25, -40])
def test_mesh_eyes_follow_a_turned_photo(
    mesh: FaceMesh, detector: FaceDetector, degrees: float
) -> None:
    # The same face turned about the picture's centre: the mesh's eyes turn with it. (Upside
    # down is not asked: decode turns photos upright by their EXIF orientation.)
    upright = np.asarray(Image.fromarray(load("open_05.jpg")).resize((400, 400)))
    turned = np.asarray(Image.fromarray(upright).rotate(degrees, Image.Resampling.BICUBIC))
    (first,) = detector.detect(upright)
    (second,) = detector.detect(turned)
    before = mesh.eyes(Image.fromarray(upright), first)
    after = mesh.eyes(Image.fromarray(turned), second)
    assert before is not None and after is not None

    a = math.radians(-degrees)  # Pillow turns anticlockwise on screen; y points down

    def rotate(p: tuple[float, float]) -> tuple[float, float]:
        u, v = p[0] - 200, p[1] - 200
        return (200 + u * math.cos(a) - v * math.sin(a), 200 + u * math.sin(a) + v * math.cos(a))

    distance = math.dist(before.right, before.left)
    assert math.dist(rotate(before.right), after.right) < 0.08 * distance
    assert math.dist(rotate(before.left), after.left) < 0.08 * distance


def test_a_box_around_no_face_is_not_confirmed(mesh: FaceMesh) -> None:
    pixels = background(640, 480, seed=5)
    fake = face((200, 150, 360, 310), (250, 210), (310, 210))
    assert mesh.eyes(Image.fromarray(pixels), fake) is None
