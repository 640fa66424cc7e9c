"""faces: find faces and their eye centres with MediaPipe BlazeFace, run by LiteRT.

`FaceDetector.detect(pixels)` takes the upright RGB pixels from decode and returns every face
that matters, widest first, each with its box, score and BlazeFace's six keypoints (subject's right
eye first, which is on the image's left).

Each model is wrapped as preprocess -> infer -> postprocess (`BlazeFace.run`): `letterbox` a
square window of the image into the model's input in [-1, 1], run it, then `sigmoid` the scores,
`decode_boxes` against the SSD anchors from `generate_anchors` and merge with `weighted_nms`.
These are plain numpy functions, tested without a model. Options (input size, strides, anchors per
cell, [-1, 1] input, score clipping at 100, weighted NMS at IoU 0.3) are those of the
FaceDetectionShortRange and FaceDetectionFullRange graphs compiled into the mediapipe 0.10.14
wheel; the vendored models are from the same wheel (models/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from eyespyd.models import FACE_FULL_RANGE, FACE_SHORT_RANGE, ModelInfo, load_interpreter
from eyespyd.types import Face

FloatArray = npt.NDArray[np.float32]

NUM_KEYPOINTS = 6
NUM_COORDS = 4 + 2 * NUM_KEYPOINTS  # x0, y0, x1, y1, then x, y of each keypoint
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for both face detection graphs


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """One BlazeFace variant: its model file and the options of its MediaPipe graph."""

    model: ModelInfo
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    min_face: float  # narrowest face found reliably, as a fraction of the input's side


# Anchor options from the FaceDetectionShortRange / FaceDetectionFullRange graphs in the
# mediapipe 0.10.14 wheel. min_face was measured (bench/faces.py --floors): the width at which
# about 95% of pasted faces are found with a score >= 0.5.
SHORT_RANGE = DetectorSpec(
    FACE_SHORT_RANGE,
    input_size=128,
    strides=(8, 16, 16, 16),
    anchors_per_layer=2,
    min_face=24 / 128,
)
FULL_RANGE = DetectorSpec(
    FACE_FULL_RANGE, input_size=192, strides=(4,), anchors_per_layer=1, min_face=14 / 192
)


def generate_anchors(input_size: int, strides: Sequence[int], anchors_per_layer: int) -> FloatArray:
    """SSD anchor centres (N x 2, x then y, in [0, 1]) in the order the model's outputs use.

    Follows MediaPipe's SsdAnchorsCalculator with fixed_anchor_size: every anchor is 1 x 1, so
    only centres matter. Consecutive layers that share a stride share one feature map, and each
    contributes `anchors_per_layer` anchors to every cell.
    """
    centres: list[FloatArray] = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        shared = 1
        while layer + shared < len(strides) and strides[layer + shared] == stride:
            shared += 1
        cells = math.ceil(input_size / stride)
        coords = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(coords, coords, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, shared * anchors_per_layer, axis=0))
        layer += shared
    return np.concatenate(centres).astype(np.float32)


def sigmoid(logits: FloatArray, clip: float = 100.0) -> FloatArray:
    """Scores from logits, clipped first as MediaPipe does so exp never overflows."""
    # float64: exp(100) overflows float32.
    clipped = np.clip(logits.astype(np.float64), -clip, clip)
    return (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)


def decode_boxes(raw: FloatArray, anchors: FloatArray, scale: float) -> FloatArray:
    """Decode regressor rows (N x 16) into x0, y0, x1, y1 and six keypoints, in [0, 1] of the input.

    A row holds the box centre, width and height, then the keypoints, all as offsets in input
    pixels (`scale` is the input size) from the anchor centre.
    """
    offsets = raw / np.float32(scale)
    centre = offsets[:, 0:2] + anchors
    half = offsets[:, 2:4] / 2
    keypoints = offsets[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :]
    out = np.concatenate(
        [centre - half, centre + half, keypoints.reshape(-1, 2 * NUM_KEYPOINTS)], axis=1
    )
    return out.astype(np.float32)


def iou(box: FloatArray, boxes: FloatArray) -> FloatArray:
    """Intersection over union of one x0, y0, x1, y1 box with each of `boxes`."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(
    detections: FloatArray, scores: FloatArray, iou_threshold: float = NMS_IOU
) -> tuple[FloatArray, FloatArray]:
    """MediaPipe's weighted ("blending") non-maximum suppression.

    The best remaining detection and every other one overlapping it by more than `iou_threshold`
    become one: their coordinates averaged, weighted by score, under the best one's score. The
    many anchors that fire on one face each see it slightly differently, and their average is
    steadier than any one of them.
    """
    order = np.argsort(-scores, kind="stable")
    remaining_dets = detections[order]
    remaining_scores = scores[order]
    kept: list[FloatArray] = []
    kept_scores: list[float] = []
    while len(remaining_dets):
        overlap = iou(remaining_dets[0, :4], remaining_dets[:, :4]) > iou_threshold
        overlap[0] = True
        weights = remaining_scores[overlap]
        kept.append((weights[:, None] * remaining_dets[overlap]).sum(axis=0) / weights.sum())
        kept_scores.append(float(remaining_scores[0]))
        remaining_dets = remaining_dets[~overlap]
        remaining_scores = remaining_scores[~overlap]
    if not kept:
        return np.zeros((0, detections.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.stack(kept).astype(np.float32), np.array(kept_scores, np.float32)


@dataclass(frozen=True, slots=True)
class Window:
    """A square of the image, possibly reaching past its edges, that fills one model input."""

    x0: float
    y0: float
    side: float

    @classmethod
    def around(cls, width: int, height: int, pad: float = 1.0) -> Window:
        """The square centred on the whole image with side `pad` times its longer edge."""
        side = max(width, height) * pad
        return cls((width - side) / 2, (height - side) / 2, side)

    def to_image(self, coords: FloatArray) -> FloatArray:
        """Map interleaved x, y coordinates in [0, 1] of the window to image pixels."""
        origin = np.tile(np.array([self.x0, self.y0], np.float32), coords.shape[-1] // 2)
        pixels: FloatArray = (coords * np.float32(self.side) + origin).astype(np.float32)
        return pixels


def letterbox(image: Image.Image, window: Window, size: int) -> FloatArray:
    """The window's pixels as a 1 x size x size x 3 float32 tensor in [-1, 1], black outside.

    The part of the tensor the image covers is rounded inwards to whole tensor pixels and the
    source box is taken from those, so tensor and image coordinates are related by exactly
    `Window.to_image`; any sliver the rounding leaves at the image's edge stays black.
    """
    k = size / window.side
    dx0 = max(0, math.ceil(-window.x0 * k))
    dy0 = max(0, math.ceil(-window.y0 * k))
    dx1 = min(size, math.floor((image.width - window.x0) * k))
    dy1 = min(size, math.floor((image.height - window.y0) * k))
    canvas = np.zeros((size, size, 3), np.uint8)
    if dx1 > dx0 and dy1 > dy0:
        # Clamped: float rounding can put an edge a hair outside the image, which Pillow refuses.
        box = (
            max(0.0, window.x0 + dx0 / k),
            max(0.0, window.y0 + dy0 / k),
            min(float(image.width), window.x0 + dx1 / k),
            min(float(image.height), window.y0 + dy1 / k),
        )
        canvas[dy0:dy1, dx0:dx1] = np.asarray(_resized(image, box, (dx1 - dx0, dy1 - dy0)))
    # MediaPipe's graph converts to [-1, 1] (ImageToTensorCalculator output_tensor_float_range).
    tensor: FloatArray = (canvas.astype(np.float32) / np.float32(127.5) - 1)[None]
    return tensor


def _resized(
    image: Image.Image, box: tuple[float, float, float, float], size: tuple[int, int]
) -> Image.Image:
    """The box of the image resampled to size; a plain crop when that is all it takes (tiles)."""
    x0, y0, x1, y1 = (round(v) for v in box)
    if all(float(v).is_integer() for v in box) and size == (x1 - x0, y1 - y0):
        return image.crop((x0, y0, x1, y1))
    # reducing_gap lets Pillow shrink by whole factors first: 2 to 7 times faster, and finds the
    # same faces (recall on the shared faces unchanged).
    return image.resize(size, Image.Resampling.BILINEAR, box=box, reducing_gap=1.0)


def shrink(image: Image.Image, scale: float) -> Image.Image:
    """The image resampled by exactly `scale` in both directions (a sliver under one output pixel
    at the right and bottom is dropped), so that output coordinates are image ones times scale."""
    width, height = math.floor(image.width * scale), math.floor(image.height * scale)
    box = (0.0, 0.0, width / scale, height / scale)
    return image.resize((width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=1.0)


OVERVIEW = 4 * 192  # the whole-image passes read an image at least this long (and below twice)


class BlazeFace:
    """One BlazeFace interpreter with its anchors: preprocess -> infer -> postprocess."""

    def __init__(self, spec: DetectorSpec, *, models_dir: Path | None = None) -> None:
        self.spec = spec
        self.interpreter = load_interpreter(spec.model, models_dir=models_dir, num_threads=1)
        self.anchors = generate_anchors(spec.input_size, spec.strides, spec.anchors_per_layer)
        self.input_index = int(self.interpreter.get_input_details()[0]["index"])
        outputs = {
            int(d["shape"][-1]): int(d["index"]) for d in self.interpreter.get_output_details()
        }
        self.regressors_index = outputs[NUM_COORDS]
        self.scores_index = outputs[1]

    def run(
        self, image: Image.Image, window: Window, threshold: float
    ) -> tuple[FloatArray, FloatArray]:
        """Faces in the window: N x 16 in image pixels, and N scores."""
        self.interpreter.set_tensor(
            self.input_index, letterbox(image, window, self.spec.input_size)
        )
        self.interpreter.invoke()
        scores = sigmoid(self.interpreter.get_tensor(self.scores_index)[0, :, 0])
        hits = np.flatnonzero(scores >= threshold)
        raw = self.interpreter.get_tensor(self.regressors_index)[0, hits]
        decoded = decode_boxes(raw, self.anchors[hits], self.spec.input_size)
        # A box with no area cannot be a face, and would make a window of no size downstream.
        sound = (decoded[:, 2] > decoded[:, 0]) & (decoded[:, 3] > decoded[:, 1])
        detections, kept = weighted_nms(decoded[sound], scores[hits][sound])
        return window.to_image(detections), kept

    def unsure(self, window: Window, low: float, high: float) -> FloatArray:
        """Boxes (N x 4, image pixels) the last `run`, on `window`, scored from `low` up to
        `high`: what it half saw, merged by weighted NMS. Read from the interpreter's outputs,
        which stay until the next invoke."""
        boxes, scores = self._last_boxes(low, high)
        merged, _ = weighted_nms(boxes, scores)
        return window.to_image(merged)

    def glimpsed(self, window: Window, low: float) -> FloatArray:
        """Boxes (N x 4, image pixels) of every anchor the last `run`, on `window`, scored `low`
        or more, unmerged: a faint face's anchors are not averaged into a wider neighbour's."""
        boxes, _ = self._last_boxes(low, math.inf)
        return window.to_image(boxes)

    def _last_boxes(self, low: float, high: float) -> tuple[FloatArray, FloatArray]:
        """The last invoke's sound boxes (N x 4, in [0, 1] of its input) scoring from `low` up
        to `high`, with their scores."""
        scores = sigmoid(self.interpreter.get_tensor(self.scores_index)[0, :, 0])
        hits = np.flatnonzero((scores >= low) & (scores < high))
        raw = self.interpreter.get_tensor(self.regressors_index)[0, hits]
        boxes = decode_boxes(raw, self.anchors[hits], self.spec.input_size)[:, :4]
        sound = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return boxes[sound], scores[hits][sound]


def tile_windows(width: int, height: int, side: int, overlap: float) -> list[Window]:
    """Square windows of `side` covering the image, neighbours overlapping by at least `overlap`.

    Windows are spread evenly from edge to edge, at whole-pixel positions; along an edge shorter
    than `side` there is one, centred (its overhang is letterboxed black).
    """

    def starts(length: int) -> list[int]:
        if side >= length:
            return [(length - side) // 2]
        count = math.ceil((length - overlap) / (side - overlap))
        step = (length - side) / (count - 1)
        return [round(i * step) for i in range(count)]

    return [Window(x, y, side) for y in starts(height) for x in starts(width)]


def inside_inner_edges(
    boxes: FloatArray, window: Window, width: int, height: int
) -> npt.NDArray[np.bool_]:
    """Which boxes stay clear of the window's edges that lie inside the image.

    A face cut by a tile's inner edge is seen whole by a neighbouring tile (tiles overlap by more
    than the faces they look for), so the cut version, whose box and keypoints are guesses, is
    dropped. Edges on the image's border are the frame's own and cut faces there are kept.
    """
    margin = 0.01 * window.side
    x1, y1 = window.x0 + window.side, window.y0 + window.side
    clear = np.ones(len(boxes), dtype=bool)
    if window.x0 > 0:
        clear &= boxes[:, 0] > window.x0 + margin
    if window.y0 > 0:
        clear &= boxes[:, 1] > window.y0 + margin
    if x1 < width:
        clear &= boxes[:, 2] < x1 - margin
    if y1 < height:
        clear &= boxes[:, 3] < y1 - margin
    return clear


# A face that fills the frame, or is cut by it on every side, is found once there is a border
# around it: padding the square to 1.5 times the image found 53 of 60 faces cropped to 60% of
# their width, against 3 of 60 unpadded.
TIGHT_PAD = 1.5
# The full-range model all but never finds a face cut by the edge of its input (0 to 6 of 40
# faces 20 to 45% of the width, cut at 40 or 50% of theirs), and mostly does when black lies
# beyond the cut: with the image padded to 4/3 of its size, 35 to 39 of 40 faces cut at 40%,
# 13 to 34 of 40 cut in half.
EDGE_PAD = 4 / 3
# Tiles overlap by this much more than the widest face they are responsible for.
TILE_OVERLAP_MARGIN = 1.1
# Tiles run only if they are at least this much smaller than the image.
TILE_MIN_ZOOM = 1.5
# The short-range model sometimes sees one big face in a group of small ones (two faces for
# eyes, two for a mouth) with scores up to 0.71; real faces it finds at that size score 0.82 and
# up. Its faces scoring below CONFIDENT are kept only if the full-range model, on a window twice
# their size, sees them with at least CONFIRM_SCORE: that kept all 277 low-scoring real faces
# among 1,187 shared faces and none of 34 such phantoms.
CONFIDENT = 0.75
CONFIRM_SCORE = 0.3
# A face the padded full-range pass scores from this up to the threshold, and that is no face
# found, is half seen: when tiles would barely zoom in, the whole image is read again unpadded.
# A woman looking down in a real group photo, 8% wide beside faces of 10%, scored 0.45 there,
# and 0.79 unpadded; a single half-length portrait has nothing to look at again.
HALF_SEEN = 0.3
CONFIRM_WINDOW = 2.0
# A headshot's face found by the short-range pass leaves the faces from half its width up to that
# pass's floor (19% of the longer side) to the full-range pass. The short-range model already
# glimpses such faces: it scores some anchor on them FAINT or more (a second face 10 to 16% wide
# beside a 20 to 30% one: 330 of 400 found with the gate, 331 without). Away from the face, an
# anchor no wider than GLIMPSE_WIDTH times the floor scores that high in one of 12 frames on a
# studio backdrop, a quarter of bench/faces.py's gradients, and most busy backgrounds (an office,
# bench/pipeline.py's out-of-focus blotches), where nothing is saved. So the full-range pass runs
# only when the short pass glimpsed something apart from its faces, or when a face it found
# scored under CONFIDENT: the full-range pass's blend corrects such a hard face's keypoints, and
# without it two more of 138 validation blinks pasted at 22% went to review. Where the faces
# that matter may be under GLIMPSE_FLOOR of the longer side the full-range pass always looks: the
# glimpses were measured down to 8% (second faces 8 to 13% beside a 17 to 21% one: 245 of 400
# found with the gate, 246 without; the full-range pass itself misses half of those under 10%).
FAINT = 0.05
GLIMPSE_WIDTH = 1.5
GLIMPSE_FLOOR = 0.09


class FaceDetector:
    """BlazeFace short and full range, each loaded once with one thread.

    Not thread-safe: a LiteRT interpreter runs one call at a time. Use one detector per worker.

    Passes run cheapest first, and each runs only while a face that matters could still be
    missing. A face matters if it is at least `min_size` of the image's longer side wide, and at
    least `min_relative_size` of the widest face's width (the verdict ignores narrower faces, so a
    headshot never pays for a search for small ones). Costs are medians on a 1280 x 853 frame,
    one thread, preprocessing included, measured on the 2-core dev machine while a training job
    held the other core; "finds" means 93 to 97% of pasted faces (bench/faces.py --floors):

    1. short range on the whole image, letterboxed to 128 (2.5 to 3.5 ms): finds faces from 19%
       of the longer side up to the whole frame. A headshot whose face is 38% of the frame or
       more stops here, since half of it is still above the floor.
    2. full range on the whole image padded to 4/3 (EDGE_PAD), at 192 (5 to 6 ms): finds faces
       from 10% of the longer side, and faces cut by the frame. After a headshot's confident face
       (18 to 38%) it runs only if the short pass glimpsed something else (FAINT): a plain
       backdrop is all but always spared it, a busy background seldom.
    3. short range on the image padded to 1.5 times (TIGHT_PAD), only if nothing was found yet:
       a face that fills the frame or is cut by it on every side.
    4. full range on overlapping tiles small enough that the narrowest face that matters is 7.3%
       of a tile, from one shrunk copy of the image (3.5 ms, then 4 to 5 ms a tile). Faces at 5%
       of the width in a group photo mean 6 tiles; a frame with no face at all ends here too.
       Where tiles would be less than 1.5 times smaller than the image (the widest face 10 to 19%
       of the longer side), full range on the whole image unpadded instead (4 to 5 ms), only if
       the padded pass half saw a face it did not find (HALF_SEEN): shaded or downcast faces
       near its floor. In small groups (bench/faces.py: 2 to 4 faces, the widest 10 to 19%) it
       raises the faces found from 91 to 95% at the same median time. Run always, it found 97%,
       but a half-length portrait paid it too (7.6 -> 12.5 ms for faces + eyes).

    Full range first (short range only when it finds nothing) would spare a 20 to 38% headshot
    the short pass, but its eye keypoints alone are the worse ones. Measured again with the face
    mesh step (2026-12-06, bench/accuracy.py, one thread): the full-range model padded to 4/3
    finds 59 or 60 of 60 faces from 15 to 80% of the width, and that order brought faces + eyes
    from 7.5 to 6 ms on an open-eyed headshot and from 12.8 to 11.5 ms on a closed-eyed one, but
    blink recall fell from 0.957 to 0.942 on validation faces pasted at 22% and from 0.957 to
    0.949 at 30% (the same false blinks). Headshot-scale recall is worth more than 1.5 ms.

    Short-range faces scoring below CONFIDENT are checked with the full-range model (5 to 6.5 ms
    each). Faces seen by several passes or tiles merge by weighted NMS, as within a pass.
    Measured: a headshot (one face 35 to 45% of the width) takes about 4 ms, a group of 6 to 10
    faces at 4 to 6% about 40 to 55 ms.
    """

    def __init__(self, *, models_dir: Path | None = None) -> None:
        self._short = BlazeFace(SHORT_RANGE, models_dir=models_dir)
        self._full = BlazeFace(FULL_RANGE, models_dir=models_dir)

    def detect(
        self,
        pixels: np.ndarray,
        *,
        image: Image.Image | None = None,
        threshold: float = 0.5,
        min_relative_size: float = 0.5,
        min_size: float = 0.03,
    ) -> tuple[Face, ...]:
        """Faces in an upright H x W x 3 uint8 RGB image, widest first, in its pixel coordinates.

        Only faces scoring at least `threshold`, at least `min_size` of the image's longer side
        wide and at least `min_relative_size` times as wide as the widest are returned (0 and 0
        return all found). Boxes are clipped to the image; keypoints are not, so an eye of a face
        cut by the frame can lie outside it. `image`, when given, is the same pixels as a Pillow
        RGB image (decode's own, `Photo.image`), which saves converting them.
        """
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(
                f"expected H x W x 3 uint8 RGB pixels, got {pixels.shape} {pixels.dtype}"
            )
        if not pixels.size:
            return ()
        if image is None or image.mode != "RGB" or image.size != (pixels.shape[1], pixels.shape[0]):
            image = Image.fromarray(np.ascontiguousarray(pixels))
        width, height = image.size
        longest = max(width, height)
        found = _Found(width, height)

        def needed() -> float:
            return max(min_size * longest, min_relative_size * found.widest())

        # The whole-image passes see at most 192 px. A whole-factor box reduction to between four
        # and eight times that (1 ms on a 1620 px preview) then feeds both, instead of resampling
        # the full image in every pass (5 ms); a box reduction by k maps coordinates by exactly k.
        # (Two to four times lost one of four small faces in a square: test_faces.)
        factor = max(1, longest // OVERVIEW)
        overview = image.reduce(factor) if factor > 1 else image
        scale = 1.0 / factor

        def whole(model: BlazeFace, pad: float) -> tuple[FloatArray, FloatArray]:
            window = Window.around(overview.width, overview.height, pad)
            detections, scores = model.run(overview, window, threshold)
            return detections / np.float32(scale), scores

        short_window = Window.around(width, height)
        found.add(*self._confirmed(image, *whole(self._short, 1.0)))
        covered = SHORT_RANGE.min_face * short_window.side
        if GLIMPSE_FLOOR * longest <= needed() < covered and found.least_score() >= CONFIDENT:
            glimpses = self._short.glimpsed(
                Window.around(overview.width, overview.height), FAINT
            ) / np.float32(scale)
            glimpses = glimpses[glimpses[:, 2] - glimpses[:, 0] <= GLIMPSE_WIDTH * covered]
            if not found.any_apart(glimpses):
                covered = needed()  # nothing else there: the faces found are all that matter
        half_seen = np.zeros((0, 4), np.float32)
        if needed() < covered:
            found.add(*whole(self._full, EDGE_PAD))
            covered = FULL_RANGE.min_face * Window.around(width, height, EDGE_PAD).side
            padded = Window.around(overview.width, overview.height, EDGE_PAD)
            half_seen = self._full.unsure(padded, HALF_SEEN, threshold) / np.float32(scale)
        if not found.count:
            found.add(*self._confirmed(image, *whole(self._short, TIGHT_PAD)))
        # Tiles never zoom in past 1:1: a face too small to be found at its own resolution is too
        # small for its eyes to be judged. Where tiles would barely zoom in, the whole image
        # without padding, 4/3 closer than the padded pass, looks again at what that pass half
        # saw (HALF_SEEN), unless the image is so small that it was read nearly 1:1 already.
        if needed() < covered:
            side = max(needed() / FULL_RANGE.min_face, FULL_RANGE.input_size)
            if side * TILE_MIN_ZOOM <= longest:
                self._tiles(image, side, covered * TILE_OVERLAP_MARGIN, threshold, found)
            elif longest >= TILE_MIN_ZOOM * FULL_RANGE.input_size and found.any_new(
                half_seen, needed()
            ):
                found.add(*whole(self._full, 1.0))
        return found.faces(min_relative_size, min_size * longest)

    def _tiles(
        self, image: Image.Image, side: float, overlap: float, threshold: float, found: _Found
    ) -> None:
        """Run the full-range model on tiles of `side` image pixels, adding what they find.

        The image is shrunk once to the tiles' scale, so each tile is a plain crop: resampling
        every tile separately cost more than a third of the model's time.
        """
        size = FULL_RANGE.input_size
        scale = size / side
        scaled = shrink(image, scale)
        for window in tile_windows(scaled.width, scaled.height, size, overlap * scale):
            detections, scores = self._full.run(scaled, window, threshold)
            keep = inside_inner_edges(detections, window, scaled.width, scaled.height)
            found.add(detections[keep] / np.float32(scale), scores[keep])

    def _confirmed(
        self, image: Image.Image, detections: FloatArray, scores: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Short-range faces, less the unsure ones the full-range model does not see (CONFIDENT)."""
        keep = scores >= CONFIDENT
        for i in np.flatnonzero(~keep):
            box = detections[i, :4]
            side = CONFIRM_WINDOW * float(max(box[2] - box[0], box[3] - box[1]))
            centre_x, centre_y = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
            window = Window(centre_x - side / 2, centre_y - side / 2, side)
            seen, _ = self._full.run(image, window, CONFIRM_SCORE)
            keep[i] = bool((iou(box, seen[:, :4]) > NMS_IOU).any())
        return detections[keep], scores[keep]


class _Found:
    """Detections gathered across passes, in image pixels, merged into faces at the end."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self._detections: list[FloatArray] = []
        self._scores: list[FloatArray] = []

    @property
    def count(self) -> int:
        return sum(len(s) for s in self._scores)

    def add(self, detections: FloatArray, scores: FloatArray) -> None:
        self._detections.append(detections)
        self._scores.append(scores)

    def _clipped_boxes(self, detections: FloatArray) -> FloatArray:
        limits = np.array([self.width, self.height, self.width, self.height], np.float32)
        return np.clip(detections[:, :4], 0, limits)

    def any_new(self, boxes: FloatArray, min_width: float) -> bool:
        """Whether any of `boxes` (N x 4) is at least `min_width` wide and not one of the faces
        found so far."""
        boxes = self._clipped_boxes(boxes)
        wide = boxes[boxes[:, 2] - boxes[:, 0] >= min_width]
        if not self.count or not len(wide):
            return bool(len(wide))
        known = self._clipped_boxes(np.concatenate(self._detections))
        return any(not (iou(box, known) > NMS_IOU).any() for box in wide)

    def any_apart(self, boxes: FloatArray) -> bool:
        """Whether any of `boxes` (N x 4) is centred outside every face found so far."""
        if not len(boxes):
            return False
        known = self._clipped_boxes(np.concatenate(self._detections))
        cx = (boxes[:, 0] + boxes[:, 2]) / 2
        cy = (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (
            (cx[:, None] >= known[None, :, 0])
            & (cx[:, None] <= known[None, :, 2])
            & (cy[:, None] >= known[None, :, 1])
            & (cy[:, None] <= known[None, :, 3])
        )
        return bool((~inside.any(axis=1)).any())

    def least_score(self) -> float:
        """The lowest score among the faces so far, 0 when there is none."""
        if not self.count:
            return 0.0
        return float(np.concatenate(self._scores).min())

    def widest(self) -> float:
        """Width of the widest face so far, 0 when there is none."""
        if not self.count:
            return 0.0
        boxes = self._clipped_boxes(np.concatenate(self._detections))
        return float((boxes[:, 2] - boxes[:, 0]).max())

    def faces(self, min_relative_size: float, min_width: float) -> tuple[Face, ...]:
        """Merged faces at least `min_width` wide and `min_relative_size` times as wide as the
        widest, widest first."""
        if not self.count:
            return ()
        # A face seen by two passes or two tiles is one face; blend them as within a pass.
        detections, scores = weighted_nms(
            np.concatenate(self._detections), np.concatenate(self._scores)
        )
        boxes = self._clipped_boxes(detections)
        widths = boxes[:, 2] - boxes[:, 0]
        least = max(min_width, min_relative_size * float(widths.max()))
        order = [i for i in np.argsort(-widths, kind="stable") if widths[i] >= least]
        return tuple(_face(boxes[i], detections[i, 4:], float(scores[i])) for i in order)


def _face(box: FloatArray, keypoints: FloatArray, score: float) -> Face:
    """A Face from a clipped box and unclipped keypoints (an eye may lie outside a cut-off face)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    points = [(float(keypoints[2 * k]), float(keypoints[2 * k + 1])) for k in range(NUM_KEYPOINTS)]
    return Face(
        box=(x0, y0, x1, y1),
        score=score,
        keypoints=(points[0], points[1], points[2], points[3], points[4], points[5]),
    )
