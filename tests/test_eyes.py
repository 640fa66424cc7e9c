"""eyes: crop geometry on drawn images, and the committed model on real eyes."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from eyespyd.eyes import (
    SIDE_PER_EYE_DISTANCE,
    EyeClassifier,
    EyeState,
    FaceEyes,
    _percentiles,
    crop_eye,
    crop_eyes,
    eye_crop_size_px,
    eye_geometry,
    face_patches,
    mean_reading,
    missed_eyes,
    normalise,
)
from eyespyd.models import ModelInfo
from eyespyd.types import Face

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "eye_state.tflite"
FIXTURES = Path(__file__).resolve().parent / "data" / "faces"


def face_at(right: tuple[float, float], left: tuple[float, float]) -> Face:
    """A face whose only known parts are its eye centres; the box is what BlazeFace would give."""
    d = math.dist(right, left)
    cx, cy = (right[0] + left[0]) / 2, (right[1] + left[1]) / 2
    w = d / 0.42
    box = (cx - w / 2, cy - w / 3, cx + w / 2, cy + 2 * w / 3)
    return Face(box, 0.9, (right, left, (cx, cy + d / 2), (cx, cy + d), right, left))


def eye_line_image(
    right: tuple[float, float], left: tuple[float, float], size: tuple[int, int] = (400, 300)
) -> np.ndarray:
    """White image, two black dots on the eyes and a 3 px black line through them, beyond both."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    dx, dy = left[0] - right[0], left[1] - right[1]
    start = (right[0] - dx / 2, right[1] - dy / 2)
    end = (left[0] + dx / 2, left[1] + dy / 2)
    draw.line([start, end], fill="black", width=3)
    for x, y in (right, left):
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill="black")
    return np.asarray(image)


@pytest.mark.parametrize("degrees", [0.0, 25.0, -40.0])
def test_crop_is_centred_on_the_eye_and_turned_level_with_the_eye_line(degrees: float) -> None:
    a = math.radians(degrees)
    centre, half = (200.0, 150.0), 60.0
    right = (centre[0] - half * math.cos(a), centre[1] - half * math.sin(a))
    left = (centre[0] + half * math.cos(a), centre[1] + half * math.sin(a))
    crops = crop_eyes(eye_line_image(right, left), face_at(right, left), 32)
    for crop in crops:
        patch = crop.patch.astype(np.float32)
        assert patch.shape == (32, 32)
        # The dot: dark in the middle.
        assert patch[14:18, 14:18].mean() < 60
        # The eye line runs along the middle rows, end to end, and nowhere else.
        assert patch[15:17, :].mean() < 90
        assert patch[0:4, :].mean() > 200 and patch[-4:, :].mean() > 200
        # Across the line, the middle column is dark only near the middle.
        assert patch[:, 15:17].mean() > 150


def test_left_eye_is_mirrored_so_both_eyes_face_the_same_way() -> None:
    image = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(image)
    right, left = (140.0, 150.0), (260.0, 150.0)
    # A mark on each eye's outer side (away from the nose), mirror images of each other.
    # Pixel centres of x = 110..119 and 280..289 mirror each other about x = 200.
    draw.rectangle((110, 140, 119, 160), fill="black")
    draw.rectangle((280, 140, 289, 160), fill="black")
    r, lf = crop_eyes(np.asarray(image), face_at(right, left), 32)
    # Equal up to the rounding of each eye's own resampling box.
    assert np.abs(r.patch.astype(int) - lf.patch.astype(int)).mean() < 3
    assert r.patch[:, :8].mean() < r.patch[:, -8:].mean()  # outer side on the crop's left


def test_crop_side_is_proportional_to_the_eye_distance() -> None:
    face = face_at((100.0, 100.0), (180.0, 100.0))
    assert eye_crop_size_px(face) == pytest.approx(SIDE_PER_EYE_DISTANCE * 80)
    r, lf = eye_geometry(face)
    corners = r.corners()
    assert math.dist(corners[0], corners[1]) == pytest.approx(r.side)
    assert lf.mirrored and not r.mirrored


def test_turned_away_face_keeps_a_usable_crop_size() -> None:
    # Eye line foreshortened to 10 px on a 120 px face: the crop follows the face width.
    face = Face((0, 0, 120, 120), 0.9, ((50, 50), (60, 50), (60, 70), (60, 90), (20, 50), (80, 50)))
    assert eye_crop_size_px(face) >= 0.3 * 120 * SIDE_PER_EYE_DISTANCE


@pytest.mark.parametrize(
    "right,left",
    [
        ((0.0, 0.0), (30.0, 2.0)),
        ((-50.0, 10.0), (5.0, 12.0)),
        ((390.0, 295.0), (460.0, 310.0)),
        ((1000.0, 1000.0), (1100.0, 1000.0)),
        ((50.0, 50.0), (50.0, 50.0)),
    ],
)
def test_eyes_at_or_past_the_edge_are_padded_never_an_error(
    right: tuple[float, float], left: tuple[float, float]
) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    crops = crop_eyes(pixels, face_at(right, left), 24)
    assert all(c.patch.shape == (24, 24) and c.patch.dtype == np.uint8 for c in crops)


def test_edge_padding_repeats_the_edge_instead_of_drawing_black() -> None:
    pixels = np.full((100, 100, 3), 200, np.uint8)
    crops = crop_eyes(pixels, face_at((2.0, 2.0), (40.0, 2.0)), 24)
    # A flat image stays flat: no black border that could read as a lid or a lens.
    assert int(crops[0].patch.max()) - int(crops[0].patch.min()) <= 1


def test_tiny_eyes_report_their_native_size() -> None:
    face = face_at((10.0, 10.0), (22.0, 10.0))
    crops = crop_eyes(np.zeros((40, 40, 3), np.uint8), face, 48)
    assert crops[0].geometry.side == pytest.approx(9.0)
    assert crops[0].patch.shape == (48, 48)


def test_gray_and_rgb_pixels_give_the_same_crop() -> None:
    rgb = np.repeat(np.random.default_rng(1).integers(0, 255, (120, 160, 1), np.uint8), 3, axis=2)
    face = face_at((60.0, 60.0), (100.0, 62.0))
    a = crop_eyes(rgb, face, 32)
    b = crop_eyes(rgb[:, :, 0], face, 32)
    np.testing.assert_array_equal(a[0].patch, b[0].patch)


def test_normalise_stretches_contrast_but_not_a_flat_patch() -> None:
    ramp = np.tile(np.linspace(80, 160, 32, dtype=np.float32), (32, 1))
    out = normalise(ramp)
    assert out.min() <= 10 and out.max() >= 245
    flat = np.full((32, 32), 30, np.float32) + np.random.default_rng(0).normal(0, 1, (32, 32))
    assert np.ptp(normalise(flat.astype(np.float32))) < 40


@pytest.mark.parametrize("side", [1, 2, 5, 7, 31, 48, 56])
def test_percentiles_are_numpys_to_the_last_bit(side: int) -> None:
    # normalise_many's own percentile must not move a single crop's pixel from what the model was
    # trained on with np.percentile.
    rng = np.random.default_rng(side)
    smooth = rng.uniform(0, 255, (10, side, side)).astype(np.float32)
    stepped = rng.integers(0, 256, (10, side, side)).astype(np.float32)
    for patches in (smooth, stepped):
        rows = patches.reshape(10, -1)
        expected = np.percentile(patches, (2.0, 98.0), axis=(1, 2))
        np.testing.assert_array_equal(_percentiles(rows, (2.0, 98.0)), expected)
        np.testing.assert_array_equal(
            _percentiles(rows, (0.0, 50.0, 100.0)), np.percentile(rows, (0.0, 50.0, 100.0), axis=1)
        )


def test_both_eyes_normalised_together_are_each_eye_normalised_alone() -> None:
    # face_patches stretches both eyes in one pass; each must be what crop_eye gives on its own,
    # the crop the model was trained on.
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (120, 160), np.uint8)
    gray[:, 80:] //= 4  # the left eye darker, so the two stretches differ
    face = face_at((55.0, 60.0), (105.0, 58.0))
    together = face_patches(gray, face, 48)
    for patch, geometry in zip(together, eye_geometry(face), strict=True):
        np.testing.assert_array_equal(patch, crop_eye(gray, geometry, 48).patch)


def committed_model() -> ModelInfo:
    """The registry's entry once there is one; until then, the committed file as it is."""
    from eyespyd import models

    info = getattr(models, "EYE_STATE", None)
    if isinstance(info, ModelInfo):
        return info
    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    return ModelInfo("eye_state", "eye_state.tflite", digest)


@pytest.fixture(scope="module")
def classifier() -> EyeClassifier:
    if not MODEL.is_file():
        pytest.fail(f"{MODEL} is missing")
    return EyeClassifier(committed_model())


def test_committed_model_is_at_most_300_kb() -> None:
    # The budget for our eye-state model; the detectors and the mesh are MediaPipe's.
    assert MODEL.stat().st_size <= 300_000


def test_committed_model_has_int8_input_and_three_classes(classifier: EyeClassifier) -> None:
    assert classifier.size == 48
    probs = classifier.probabilities(np.zeros((2, 48, 48), np.uint8))
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)


EYE_FIXTURES = sorted(
    p.name
    for pattern in ("open_*.jpg", "closed_*.jpg", "sunglasses_*.jpg")
    for p in FIXTURES.glob(pattern)
)


@pytest.mark.parametrize("name", EYE_FIXTURES)
def test_committed_model_tells_closed_from_open_eyes(classifier: EyeClassifier, name: str) -> None:
    from eyespyd.faces import FaceDetector

    with Image.open(FIXTURES / name) as image:
        pixels = np.asarray(image.convert("RGB"))
    faces = FaceDetector().detect(pixels)
    assert faces, f"no face in {name}"
    eyes = classifier.classify(pixels, faces[0])
    for state in (eyes.right, eyes.left):
        assert len(state.crop_box) == 4 and state.crop_px > 0
        if name.startswith("closed"):
            assert state.closed > 0.5, (name, state)
        elif name.startswith("open"):
            assert state.closed < 0.5, (name, state)
            assert state.hidden < 0.5, (name, state)
        else:  # dark glasses: never a blink, and the model says it cannot see
            assert state.closed < 0.5, (name, state)
            assert state.hidden > 0.5, (name, state)


@pytest.mark.parametrize("name", ["open_01.jpg", "closed_02.jpg", "sunglasses_01.jpg"])
def test_both_eyes_are_read_once_centred_in_one_invoke(
    classifier: EyeClassifier, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eyespyd.faces import FaceDetector

    with Image.open(FIXTURES / name) as image:
        pixels = np.asarray(image.convert("RGB"))
    face = FaceDetector().detect(pixels)[0]
    crops = crop_eyes(pixels, face, 48)
    expected = classifier.probabilities(np.stack([c.patch for c in crops]))
    batches: list[int] = []
    probabilities = classifier.probabilities
    monkeypatch.setattr(
        classifier, "probabilities", lambda p: batches.append(len(p)) or probabilities(p)
    )

    eyes = classifier.classify(pixels, face)

    assert batches == [2]
    for state, crop, p in zip((eyes.right, eyes.left), crops, expected, strict=True):
        assert state.closed == pytest.approx(float(p[1]), abs=1e-6)
        assert state.hidden == pytest.approx(float(p[2]), abs=1e-6)
        assert state.crop_box == crop.geometry.corners()


def test_an_eye_is_missed_when_the_mesh_puts_it_past_half_the_crops_side() -> None:
    detected = face_at((100, 100), (200, 100))  # eye distance 100: crops 75 px
    placed = face_at((100, 100 + 0.45 * 75), (200 + 0.55 * 75, 100))

    assert missed_eyes(detected, placed) == (False, True)
    assert missed_eyes(detected, detected) == (False, False)


def test_a_missed_eye_is_read_from_the_second_crop_alone() -> None:
    def eye(closed: float, hidden: float, corner: float) -> EyeState:
        return EyeState(closed, hidden, ((corner, 0), (1, 0), (1, 1), (0, 1)), 30.0 + corner)

    first = FaceEyes(right=eye(0.2, 0.6, 0), left=eye(0.1, 0.9, 0))
    second = FaceEyes(right=eye(0.6, 0.2, 5), left=eye(0.8, 0.1, 5))

    both = mean_reading(first, second)
    assert (both.right.closed, both.right.hidden) == pytest.approx((0.4, 0.4))
    assert (both.left.closed, both.left.hidden) == pytest.approx((0.45, 0.5))
    assert both.right.crop_box == second.right.crop_box and both.left.crop_px == 35.0

    one_missed = mean_reading(first, second, (False, True))
    assert one_missed.right == both.right
    assert one_missed.left == second.left
