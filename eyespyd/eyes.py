"""eyes: crop each eye of a face, aligned on the eye line, and ask the eye-state model about it.

The same code crops eyes for training (`eyespyd.train`) and at run time, so the model never sees a
geometry or a normalisation at run time that it was not trained on:

    eye_geometry(face)            where each eye's crop square is (centre, angle, side, mirrored)
    sample_square(gray, ...)      resample that square to size x size, antialiased, edges padded
    normalise(patch)              gain-limited contrast stretch to uint8

Crops are grayscale: a few closed-eye training faces are gray, and colour would let the model tell
the data sets apart instead of the eyes. The subject's left eye (image right) is mirrored so that
both eyes reach the model with the nose on the same side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

from eyespyd.errors import ModelError
from eyespyd.types import Face, Point

if TYPE_CHECKING:
    from pathlib import Path

    from eyespyd.models import ModelInfo

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]

# Side of an eye's crop square as a fraction of the distance between the eye centres. 0.75 holds
# the whole eye (about half the inter-eye distance wide), the lids and the lower edge of the brow,
# with room for BlazeFace's keypoint error, which is a few percent of that distance.
SIDE_PER_EYE_DISTANCE = 0.75
# A face turned away shortens the eye line while the eyes keep their size; the face box does not
# shrink with the turn. Frontal faces have an eye distance of about 0.4 of BlazeFace's box width.
MIN_EYE_DISTANCE_PER_BOX = 0.3
# normalise(): the stretch never multiplies contrast by more than 255 / MIN_RANGE, so a flat patch
# (dark lens, closed lid in shadow) keeps its flatness instead of turning into amplified noise.
MIN_RANGE = 48.0
# The model's classes, in the order of its output.
CLASSES = ("open", "closed", "hidden")


@dataclass(frozen=True, slots=True)
class EyeGeometry:
    """One eye's crop square in image pixels: centred on the eye, turned by `angle` radians."""

    centre: Point
    angle: float  # of the eye line, image x axis towards image y axis (clockwise on screen)
    side: float  # in source pixels
    mirrored: bool  # the subject's left eye, flipped so the nose is on the same side as the right

    def corners(self) -> tuple[Point, Point, Point, Point]:
        """Top-left, top-right, bottom-right, bottom-left of the square in the face's frame."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        h = self.side / 2
        cx, cy = self.centre
        out = []
        for u, v in ((-h, -h), (h, -h), (h, h), (-h, h)):
            out.append((cx + u * cos - v * sin, cy + u * sin + v * cos))
        return (out[0], out[1], out[2], out[3])


@dataclass(frozen=True, slots=True, eq=False)
class EyeCrop:
    """What the model sees of one eye (`patch`, size x size uint8 gray) and where it came from."""

    patch: ByteArray = field(repr=False)
    geometry: EyeGeometry


@dataclass(frozen=True, slots=True)
class EyeState:
    """The model's verdict on one eye."""

    closed: float  # probability the eye is closed, 0..1
    hidden: float  # probability the eye is not visible (dark glasses, hand, hair, turned away)
    crop_box: tuple[Point, Point, Point, Point]  # corners of the crop square in image pixels
    crop_px: float  # side of the crop in source pixels: small means little detail to judge by

    @property
    def open(self) -> float:
        return max(0.0, 1.0 - self.closed - self.hidden)


@dataclass(frozen=True, slots=True)
class FaceEyes:
    right: EyeState  # the subject's right eye, on the image's left
    left: EyeState
    # False when the face mesh, asked to place the eyes, saw no face there: the detection was a
    # glass, a lamp or a pattern, which `verdict.decide` leaves out beside real faces.
    is_face: bool = True


def eye_geometry(face: Face) -> tuple[EyeGeometry, EyeGeometry]:
    """The crop squares of the subject's right and left eye."""
    (rx, ry), (lx, ly) = face.right_eye, face.left_eye
    dx, dy = lx - rx, ly - ry
    distance = math.hypot(dx, dy)
    # The subject's right eye is on the image's left in an upright face; an eye line pointing
    # backwards means the face is upside down, and the angle follows it round.
    angle = math.atan2(dy, dx) if distance > 0 else 0.0
    side = SIDE_PER_EYE_DISTANCE * max(distance, MIN_EYE_DISTANCE_PER_BOX * face.width, 1.0)
    return (
        EyeGeometry((rx, ry), angle, side, mirrored=False),
        EyeGeometry((lx, ly), angle, side, mirrored=True),
    )


def eye_crop_size_px(face: Face) -> float:
    """Side of the eye crops in source pixels; below the model's input size detail is missing.

    The pipeline can re-decode a face at a higher scale when this is small (say under 24 px).
    """
    return eye_geometry(face)[0].side


def to_gray(pixels: npt.NDArray[np.uint8]) -> ByteArray:
    """H x W gray from H x W x 3 RGB (Pillow's ITU-R 601 luma) or from H x W gray."""
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return np.asarray(Image.fromarray(np.ascontiguousarray(pixels[:, :, :3])).convert("L"))
    raise ValueError(f"expected H x W gray or H x W x 3 RGB pixels, got shape {pixels.shape}")


def _bilinear(image: FloatArray, xs: FloatArray, ys: FloatArray) -> FloatArray:
    """Sample `image` at float pixel coordinates; points outside repeat the nearest edge pixel."""
    height, width = image.shape
    xs = np.clip(xs, 0, width - 1)
    ys = np.clip(ys, 0, height - 1)
    x0 = np.minimum(np.floor(xs).astype(np.intp), width - 1)
    y0 = np.minimum(np.floor(ys).astype(np.intp), height - 1)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    wx = (xs - x0).astype(np.float32)
    wy = (ys - y0).astype(np.float32)
    top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    out: FloatArray = (top * (1 - wy) + bottom * wy).astype(np.float32)
    return out


def sample_square(gray: ByteArray, geometry: EyeGeometry, size: int) -> FloatArray:
    """The geometry's square of a gray image resampled to size x size float32 (0..255).

    Only the square's bounding box is touched, so the cost does not grow with the image. A
    square larger than `size` is first shrunk with Pillow's antialiasing resize, so thin
    eyelashes average out instead of aliasing. Parts beyond the image repeat its edge: a constant
    fill would draw a dark bar that looks like a lid or a lens.
    """
    height, width = gray.shape
    cx, cy = geometry.centre
    half = geometry.side / 2 * (abs(math.cos(geometry.angle)) + abs(math.sin(geometry.angle)))
    # One pixel of margin for the bilinear neighbours; clamped so the box always holds a pixel.
    x0 = min(max(math.floor(cx - half) - 1, 0), width - 1)
    y0 = min(max(math.floor(cy - half) - 1, 0), height - 1)
    x1 = max(min(math.ceil(cx + half) + 2, width), x0 + 1)
    y1 = max(min(math.ceil(cy + half) + 2, height), y0 + 1)
    region = gray[y0:y1, x0:x1]
    scale = size / max(geometry.side, 1e-6)
    sx = sy = 1.0
    if scale < 1.0:
        new_w = max(1, round(region.shape[1] * scale))
        new_h = max(1, round(region.shape[0] * scale))
        sx, sy = new_w / region.shape[1], new_h / region.shape[0]
        region = np.asarray(
            Image.fromarray(region).resize((new_w, new_h), Image.Resampling.BILINEAR)
        )
    image = region.astype(np.float32)
    # Output pixel centres as offsets from the square's centre, in source pixels.
    steps = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5) * np.float32(geometry.side)
    u, v = np.meshgrid(steps, steps)
    if geometry.mirrored:
        u = -u
    cos, sin = math.cos(geometry.angle), math.sin(geometry.angle)
    xs = cx + u * cos - v * sin
    ys = cy + u * sin + v * cos
    # Source pixel centres sit at integer + 0.5 in continuous coordinates.
    xs = (xs - x0) * sx - 0.5
    ys = (ys - y0) * sy - 0.5
    return _bilinear(image, xs.astype(np.float32), ys.astype(np.float32))


def normalise(patch: FloatArray) -> ByteArray:
    """Stretch the 2nd..98th percentile of a patch to 0..255, by at most 255 / MIN_RANGE.

    Evens out exposure and skin tone, which say nothing about the eye's state.
    """
    one: ByteArray = normalise_many(patch[None])[0]
    return one


def normalise_many(patches: FloatArray) -> ByteArray:
    """normalise() of each of N x S x S patches, in one vectorised pass (the arithmetic is the
    same as one at a time)."""
    lo, hi = _percentiles(patches.reshape(len(patches), -1), (2.0, 98.0))
    narrow = hi - lo < MIN_RANGE
    mid = (hi + lo) / 2
    lo = np.where(narrow, mid - MIN_RANGE / 2, lo)[:, None, None]
    hi = np.where(narrow, mid + MIN_RANGE / 2, hi)[:, None, None]
    stretched = (patches - lo) * (255.0 / (hi - lo))
    out: ByteArray = np.clip(np.rint(stretched), 0, 255).astype(np.uint8)
    return out


def _percentiles(rows: FloatArray, qs: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """np.percentile(rows, qs, axis=1) with its default linear method, from one partition of
    each row instead of one per percentile: half the time of np.percentile,
    and numpy's arithmetic step for step, so the same numbers (tests/test_eyes.py)."""
    last = rows.shape[1] - 1
    positions = [q / 100 * last for q in qs]
    below = [math.floor(pos) for pos in positions]
    kth = sorted({k for i in below for k in (i, min(i + 1, last))})
    ranked = np.partition(rows, kth, axis=1)
    out = []
    for pos, i in zip(positions, below, strict=True):
        a, b = ranked[:, i], ranked[:, min(i + 1, last)]
        t = np.float64(pos - i)  # a float64, as numpy's, so the blend is in float64
        step = b - a  # in the rows' own dtype, as numpy's _lerp does
        # From the nearer end, as numpy does, so a weight of 1 gives exactly b.
        out.append(a + step * t if t < 0.5 else b - step * (1 - t))
    return np.stack(out).astype(np.float64)


def crop_eye(gray: ByteArray, geometry: EyeGeometry, size: int) -> EyeCrop:
    """One eye as the model sees it."""
    return EyeCrop(normalise(sample_square(gray, geometry, size)), geometry)


def crop_eyes(pixels: npt.NDArray[np.uint8], face: Face, size: int) -> tuple[EyeCrop, EyeCrop]:
    """The subject's right and left eye of `face`, as size x size uint8 gray patches.

    `pixels` is H x W x 3 RGB or H x W gray, in the coordinates of `face`. Never raises for
    eyes at or beyond the image's edge: the missing part repeats the edge.
    """
    right, left = eye_geometry(face)
    patches = face_patches(pixels, face, size)
    return EyeCrop(patches[0], right), EyeCrop(patches[1], left)


def face_patches(pixels: npt.NDArray[np.uint8], face: Face, size: int) -> ByteArray:
    """2 x size x size: the subject's right and left eye of `face` as the model reads them (the
    patches of `crop_eyes`, without the crops' geometry)."""
    geometries = eye_geometry(face)
    gray, (x0, y0) = _gray_around(pixels, geometries)
    squares = [sample_square(gray, _moved(g, -x0, -y0), size) for g in geometries]
    return normalise_many(np.stack(squares))


# Most eyes in a session are plainly open, and the face mesh and a second reading (3 to 9 ms a
# face, by machine) add nothing to them. When both eyes read p(closed) and p(hidden) under this,
# the reading stands alone. Measured on the validation faces, natively and pasted into frames at
# 22% and 30%: 1,938 of 2,579 faces stood alone, and had each eye also been read at four shifts
# (as until 2026-12-06), none of them would have had an eye over 0.14 p(closed) (the verdict
# starts to doubt at 0.40) nor, at 30%, over 0.09 p(hidden).
SURE_OPEN = 0.1


def plainly_open(reading: FaceEyes) -> bool:
    """Both eyes read open with p(closed) and p(hidden) under SURE_OPEN: nothing to look into."""
    eyes = (reading.right, reading.left)
    return all(eye.closed < SURE_OPEN and eye.hidden < SURE_OPEN for eye in eyes)


def hide(reading: FaceEyes, which: tuple[bool, bool]) -> FaceEyes:
    """The reading with the right and/or left eye (`which`) counted as not visible: no evidence
    either way, whatever the model said of it."""

    def hidden(eye: EyeState) -> EyeState:
        return EyeState(closed=0.0, hidden=1.0, crop_box=eye.crop_box, crop_px=eye.crop_px)

    right, left = which
    return FaceEyes(
        right=hidden(reading.right) if right else reading.right,
        left=hidden(reading.left) if left else reading.left,
        is_face=reading.is_face,
    )


def not_a_face(reading: FaceEyes) -> FaceEyes:
    """The reading of a detection the face mesh does not see as a face: neither eye visible, and
    marked as no face (`FaceEyes.is_face`)."""
    return replace(hide(reading, (True, True)), is_face=False)


# An eye whose crop centre lies further than this share of the crop's side from where the face
# mesh puts the eye was not in view: the crop held a brow, a temple or a cheek. BlazeFace's eye
# keypoints do that on tilted, laughing and downcast faces in real group photos; on the
# validation faces the 99th percentile of the distance was 0.44 to 0.50 of the side.
MISSED_EYE = 0.5


def missed_eyes(detected: Face, placed: Face) -> tuple[bool, bool]:
    """Whether the crops at `detected`'s eye keypoints missed the right and the left eye that
    `placed` locates (MISSED_EYE)."""
    side = eye_geometry(detected)[0].side
    right = math.dist(detected.right_eye, placed.right_eye) > MISSED_EYE * side
    left = math.dist(detected.left_eye, placed.left_eye) > MISSED_EYE * side
    return right, left


def mean_reading(
    first: FaceEyes, second: FaceEyes, missed: tuple[bool, bool] = (False, False)
) -> FaceEyes:
    """Both readings of a face averaged, eye by eye; the crops are the second reading's. An eye
    the first crops `missed` is the second reading's alone: a crop without the eye is no evidence.

    Two crop placements (BlazeFace's eye keypoints and the face mesh's eye contours) are wrong
    in different ways, and their mean is steadier than either (bench/accuracy.py)."""

    def mean(a: EyeState, b: EyeState, missed: bool) -> EyeState:
        if missed:
            return b
        return EyeState(
            closed=(a.closed + b.closed) / 2,
            hidden=(a.hidden + b.hidden) / 2,
            crop_box=b.crop_box,
            crop_px=b.crop_px,
        )

    return FaceEyes(
        right=mean(first.right, second.right, missed[0]),
        left=mean(first.left, second.left, missed[1]),
    )


def _gray_around(
    pixels: npt.NDArray[np.uint8], geometries: tuple[EyeGeometry, ...], margin: float = 1.2
) -> tuple[ByteArray, tuple[int, int]]:
    """Gray pixels of just the part around the eyes (the image may be a 1620 px preview), with the
    offset of that part; `margin` leaves room around the squares."""
    xs, ys = [], []
    for g in geometries:
        grown = EyeGeometry(g.centre, g.angle, g.side * margin, g.mirrored)
        for x, y in grown.corners():
            xs.append(x)
            ys.append(y)
    height, width = pixels.shape[:2]
    x0 = min(max(math.floor(min(xs)) - 2, 0), width - 1)
    y0 = min(max(math.floor(min(ys)) - 2, 0), height - 1)
    x1 = max(min(math.ceil(max(xs)) + 3, width), x0 + 1)
    y1 = max(min(math.ceil(max(ys)) + 3, height), y0 + 1)
    return to_gray(pixels[y0:y1, x0:x1]), (x0, y0)


def _moved(g: EyeGeometry, dx: float, dy: float) -> EyeGeometry:
    return EyeGeometry((g.centre[0] + dx, g.centre[1] + dy), g.angle, g.side, g.mirrored)


def _default_model() -> ModelInfo:
    from eyespyd import models

    info = getattr(models, "EYE_STATE", None)
    if info is None:
        raise ModelError("the eye-state model is not registered in eyespyd.models (EYE_STATE)")
    return info  # type: ignore[no-any-return]


class EyeClassifier:
    """The int8 eye-state model: crop both eyes -> one invoke for the pair -> probabilities.

    Loads the model once (sha256-checked). One thread: parallelism comes from workers.
    """

    def __init__(
        self,
        model: ModelInfo | None = None,
        *,
        models_dir: Path | None = None,
        num_threads: int = 1,
    ) -> None:
        from eyespyd.models import load_interpreter

        self.model = model if model is not None else _default_model()
        self._interpreter = load_interpreter(
            self.model, models_dir=models_dir, num_threads=num_threads
        )
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        shape = tuple(int(n) for n in inp["shape"])
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 1:
            raise ModelError(f"model {self.model.name}: expected N x S x S x 1 input, got {shape}")
        self.size = shape[1]
        self._input = int(inp["index"])
        self._output = int(out["index"])
        self._in_dtype = inp["dtype"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        self._classes = int(out["shape"][-1])
        self._batch = 0

    def probabilities(self, patches: npt.NDArray[np.uint8]) -> FloatArray:
        """N x classes probabilities (open, closed[, hidden]) for N x S x S uint8 patches."""
        batch = int(patches.shape[0])
        if batch != self._batch:
            # Both eyes of a face go in one invoke; resizing reallocates, so only on change.
            self._interpreter.resize_tensor_input(self._input, [batch, self.size, self.size, 1])
            self._interpreter.allocate_tensors()
            self._batch = batch
        x = patches.astype(np.float32)[..., None] / np.float32(255.0)
        if self._in_dtype == np.float32:
            tensor = x
        else:
            info = np.iinfo(self._in_dtype)
            q = np.rint(x / np.float32(self._in_scale) + np.float32(self._in_zero))
            tensor = np.clip(q, info.min, info.max).astype(self._in_dtype)
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = np.asarray(self._interpreter.get_tensor(self._output), dtype=np.float32)
        if self._out_scale:
            raw = (raw - np.float32(self._out_zero)) * np.float32(self._out_scale)
        probs: FloatArray = raw.astype(np.float32)
        return probs

    def classify(self, pixels: npt.NDArray[np.uint8], face: Face) -> FaceEyes:
        """The state of both eyes of `face` in `pixels` (H x W x 3 RGB or H x W gray)."""
        return self.read(face_patches(pixels, face, self.size), eye_geometry(face))

    def read(self, patches: ByteArray, geometries: tuple[EyeGeometry, EyeGeometry]) -> FaceEyes:
        """Both eyes' states from their patches (2 x S x S, `face_patches`), in one invoke.

        Each eye is read once, centred on its keypoint. Reading four more shifted views and
        averaging helped while BlazeFace's keypoints were the only ones (validation recall 0.964
        to 0.971); since eyes that are not plainly open are read again where the face mesh puts
        them, the shifts changed no verdict's recall, natively or pasted at 22 and 30%, and cost
        eight more patches a face (2026-12-06, bench/accuracy.py; models/EYE_MODEL.md)."""
        probs = self.probabilities(patches)
        states = []
        for geometry, p in zip(geometries, probs, strict=True):
            hidden = float(p[2]) if self._classes > 2 else 0.0
            states.append(
                EyeState(
                    closed=min(1.0, max(0.0, float(p[1]))),
                    hidden=min(1.0, max(0.0, hidden)),
                    crop_box=geometry.corners(),
                    crop_px=geometry.side,
                )
            )
        return FaceEyes(right=states[0], left=states[1])
