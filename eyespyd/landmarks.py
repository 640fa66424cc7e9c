"""landmarks: where a face's eyes really are, from MediaPipe's face mesh (468 points), by LiteRT.

BlazeFace's two eye keypoints are a few percent of the eye distance off on a frontal face, and
much more on a face that laughs, tilts or looks down: on the validation faces pasted at headshot
scale, the crops of most missed blinks held a cheek or a brow with the closed lid at their edge.
The face mesh places each eye's contour (16 points round the lids) to a pixel or two. It costs
about 2 ms a face, so the pipeline asks it only about faces whose eyes are not plainly open.

    face_roi(face)             the square the mesh model reads: centred on the face, turned so
                               the eye line is level, 1.5 times the box (MediaPipe's own ROI)
    sample_roi(image, roi)     that square as a 1 x 192 x 192 x 3 tensor in [0, 1]
    eye_centres(mesh)          the mean of each eye's contour points

Options follow the FaceLandmarkFrontCpu graph of the mediapipe 0.10.14 wheel the model comes
from (face_detection_front_detection_to_roi: rotation from keypoint 0 to 1, scale 1.5, square).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from eyespyd.models import FACE_LANDMARK, load_interpreter
from eyespyd.types import Face, Point

FloatArray = npt.NDArray[np.float32]

INPUT_SIZE = 192
ROI_SCALE = 1.5  # RectTransformationCalculator in face_detection_front_detection_to_roi
# The subject's right eye (image left) and left eye: MediaPipe's FACEMESH_RIGHT_EYE and
# FACEMESH_LEFT_EYE contours, upper and lower lid from corner to corner.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
# Below this face score (sigmoid of the model's face flag) the mesh did not see a face in the
# ROI, and its points are guesses: BlazeFace's keypoints stand.
MIN_PRESENCE = 0.5
MAX_PLAIN_SHRINK = 0.5  # sample_roi resizes first only when the ROI shrinks more than this
# Corners of each eye in the mesh: outer and inner, subject's right eye then left eye.
RIGHT_CORNERS = (33, 133)
LEFT_CORNERS = (263, 362)
# An eye whose corner-to-corner width is under this share of the other eye's is seen nearly
# edge-on: the face is turned towards a profile and that eye (if visible at all) is foreshortened
# and half hidden by the nose. The eye-state model never learnt such views. On the 5,872 faces of
# the research data the narrower eye was never under 0.66 of the other (0.1st percentile); a face
# turned three-quarters away in a real group photo gave 0.64.
EDGE_ON = 0.5


@dataclass(frozen=True, slots=True)
class Roi:
    """A square of the image turned by `angle` radians about its centre (image x towards y)."""

    centre: Point
    angle: float
    side: float

    def to_image(self, points: FloatArray) -> FloatArray:
        """Map N x 2 points in input-tensor pixels (0..INPUT_SIZE) to image pixels."""
        k = self.side / INPUT_SIZE
        u = (points[:, 0] - INPUT_SIZE / 2) * k
        v = (points[:, 1] - INPUT_SIZE / 2) * k
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        xs = self.centre[0] + u * cos - v * sin
        ys = self.centre[1] + u * sin + v * cos
        return np.stack([xs, ys], axis=1).astype(np.float32)


@dataclass(frozen=True, slots=True)
class EyeCentres:
    right: Point  # the subject's right eye, on the image's left
    left: Point
    presence: float  # the mesh model's confidence that the ROI holds a face, 0..1
    edge_on: tuple[bool, bool] = (False, False)  # right, left: seen too side-on to judge (EDGE_ON)


def face_roi(face: Face) -> Roi:
    """MediaPipe's landmark ROI for a detected face: the box's centre, turned by the eye line,
    a square 1.5 times the box's longer side."""
    x0, y0, x1, y1 = face.box
    (rx, ry), (lx, ly) = face.right_eye, face.left_eye
    angle = math.atan2(ly - ry, lx - rx) if (lx, ly) != (rx, ry) else 0.0
    side = ROI_SCALE * max(x1 - x0, y1 - y0, 1.0)
    return Roi(((x0 + x1) / 2, (y0 + y1) / 2), angle, side)


def sample_roi(image: Image.Image, roi: Roi) -> FloatArray:
    """The ROI as a 1 x 192 x 192 x 3 float32 tensor in [0, 1]; black beyond the image.

    Only the ROI's bounding box is cut out, and shrunk (antialiased) before the affine warp when
    it is more than twice the input, so the cost does not grow with the image and a 600 px face
    does not alias."""
    cos, sin = math.cos(roi.angle), math.sin(roi.angle)
    half = roi.side / 2 * (abs(cos) + abs(sin))
    cx, cy = roi.centre
    box = (
        max(0, math.floor(cx - half)),
        max(0, math.floor(cy - half)),
        min(image.width, math.ceil(cx + half)),
        min(image.height, math.ceil(cy + half)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        return np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    region = image.crop(box)
    shrink = min(1.0, INPUT_SIZE / roi.side)
    # Bilinear sampling alone aliases only past a 2:1 reduction; below that the antialiased
    # resize (0.5 ms on a 300 px face) buys nothing.
    if shrink < MAX_PLAIN_SHRINK:
        size = (max(1, round(region.width * shrink)), max(1, round(region.height * shrink)))
        region = region.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    sx, sy = region.width / (box[2] - box[0]), region.height / (box[3] - box[1])
    # Output pixel (i, j) -> ROI offsets (u, v) -> image (x, y) -> region pixels; Pillow's AFFINE
    # takes that map from output to input, with pixel centres at +0.5 on both sides.
    k = roi.side / INPUT_SIZE
    ox = cx - box[0]
    oy = cy - box[1]
    a, b = k * cos * sx, -k * sin * sx
    d, e = k * sin * sy, k * cos * sy
    centre_out = INPUT_SIZE / 2
    c = ox * sx - a * centre_out - b * centre_out
    f = oy * sy - d * centre_out - e * centre_out
    warped = region.transform(
        (INPUT_SIZE, INPUT_SIZE),
        Image.Transform.AFFINE,
        (a, b, c, d, e, f),
        resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0),
    )
    tensor: FloatArray = (np.asarray(warped, np.float32) / np.float32(255.0))[None]
    return tensor


def edge_on(mesh: FloatArray) -> tuple[bool, bool]:
    """Whether the subject's right and left eye are seen nearly edge-on (EDGE_ON), from the
    widths of the eyes between their corners in the mesh (N x 2)."""
    right = float(np.linalg.norm(mesh[RIGHT_CORNERS[0]] - mesh[RIGHT_CORNERS[1]]))
    left = float(np.linalg.norm(mesh[LEFT_CORNERS[0]] - mesh[LEFT_CORNERS[1]]))
    return right < EDGE_ON * left, left < EDGE_ON * right


def eye_centres(mesh: FloatArray) -> tuple[Point, Point]:
    """The subject's right and left eye centres: the mean of each eye's contour points (N x 2)."""
    right = mesh[list(RIGHT_EYE)].mean(axis=0)
    left = mesh[list(LEFT_EYE)].mean(axis=0)
    return (float(right[0]), float(right[1])), (float(left[0]), float(left[1]))


class FaceMesh:
    """MediaPipe's face_landmark model, loaded once with one thread: preprocess -> infer ->
    postprocess. Not thread-safe; one per worker."""

    def __init__(self, *, models_dir: Path | None = None) -> None:
        self.interpreter = load_interpreter(FACE_LANDMARK, models_dir=models_dir, num_threads=1)
        self._input = int(self.interpreter.get_input_details()[0]["index"])
        outputs = {
            int(d["shape"][-1]): int(d["index"]) for d in self.interpreter.get_output_details()
        }
        self._points = outputs[468 * 3]
        self._presence = outputs[1]

    def eyes(self, image: Image.Image, face: Face) -> EyeCentres | None:
        """Both eye centres of `face` in `image` coordinates, or None when the mesh sees no face."""
        roi = face_roi(face)
        self.interpreter.set_tensor(self._input, sample_roi(image, roi))
        self.interpreter.invoke()
        logit = float(self.interpreter.get_tensor(self._presence).reshape(-1)[0])
        presence = 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))
        if presence < MIN_PRESENCE:
            return None
        raw = self.interpreter.get_tensor(self._points).reshape(468, 3)[:, :2]
        mesh = roi.to_image(raw.astype(np.float32))
        right, left = eye_centres(mesh)
        return EyeCentres(right, left, presence, edge_on(mesh))
