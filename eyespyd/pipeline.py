"""The one place the stages join: decode -> faces -> eyes -> verdict.

`eyespyd classify` and `eyespyd eval` run exactly this; the daemon runs it and then routes. Models
load once, when the Pipeline is made; a Pipeline is not shared between threads (LiteRT interpreters
are not thread-safe), so each worker makes its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from eyespyd.config import DecodeSettings, ModelSettings, VerdictSettings
from eyespyd.decode import decode
from eyespyd.errors import DecodeError
from eyespyd.eyes import (
    EyeClassifier,
    FaceEyes,
    hide,
    mean_reading,
    missed_eyes,
    not_a_face,
    plainly_open,
)
from eyespyd.faces import FaceDetector
from eyespyd.landmarks import FaceMesh
from eyespyd.models import ModelInfo
from eyespyd.types import Face, Photo
from eyespyd.verdict import KEEP, Decision, decide

# Below this many source pixels across, an eye crop has too little detail to judge; the photo is
# decoded again at a higher scale (once) for its eyes. 24 px is about where the eye-state model's
# validation accuracy starts to fall.
MIN_EYE_PX = 24.0


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the face mesh puts a face's eyes: the face with those eye keypoints, and which eyes
    (right, left) it sees nearly edge-on, as in a face turned towards a profile."""

    face: Face
    edge_on: tuple[bool, bool]


@dataclass(frozen=True, slots=True)
class FaceResult:
    face: Face  # in the coordinates of the full upright image
    eyes: FaceEyes


@dataclass(frozen=True, slots=True)
class Result:
    path: Path
    verdict: str
    score: float
    reasons: tuple[str, ...]
    faces: tuple[FaceResult, ...]
    ms: float
    error: str | None = None  # why the file could not be read; the verdict is then keep
    source: str = ""  # which pixels were used, e.g. "MPF preview 1620x1080"

    @property
    def face_count(self) -> int:
        """The faces found, less detections the face mesh saw no face in (a glass, a lamp)."""
        return sum(f.eyes.is_face for f in self.faces)


class Pipeline:
    def __init__(
        self,
        decode_settings: DecodeSettings,
        verdict_settings: VerdictSettings,
        models_dir: Path | None = None,
        model: ModelSettings | None = None,
    ) -> None:
        self.decode_settings = decode_settings
        self.verdict_settings = verdict_settings
        self.detector = FaceDetector(models_dir=models_dir)
        self.mesh = FaceMesh(models_dir=models_dir)
        self.eyes = EyeClassifier(eye_model(model), models_dir=models_dir)
        # What XMP and the ledger name as the model behind a verdict: a user-trained model
        # differs by its hash even when its file name is the same.
        self.model_version = f"{self.eyes.model.name} {self.eyes.model.sha256[:12]}"

    def classify(self, path: Path) -> Result:
        """The verdict for one file; an unreadable file is kept, with its error."""
        return self.classify_photo(path)[0]

    def classify_photo(self, path: Path) -> tuple[Result, Photo | None]:
        """`classify`, with the decoded photo the eyes were read on (None when unreadable): the
        daemon draws a flagged frame's contact-sheet thumbnail from it instead of decoding again."""
        start = time.perf_counter()
        try:
            photo = decode(path, self.decode_settings)
        except DecodeError as exc:
            ms = (time.perf_counter() - start) * 1000
            return Result(path, KEEP, 0.0, (exc.reason,), (), round(ms, 1), error=exc.reason), None
        faces, readings, photo = self.read_faces(photo)
        decision = decide(faces, readings, self.verdict_settings)
        ms = (time.perf_counter() - start) * 1000
        return _result(photo, faces, readings, decision, ms), photo

    def read_faces(self, photo: Photo) -> tuple[tuple[Face, ...], tuple[FaceEyes, ...], Photo]:
        """Faces and their eyes; eyes too small to judge are read again from a larger decode,
        and eyes that are not plainly open are read again where the face mesh places them."""
        faces, readings, photo = self.find_faces(photo)
        faces, readings = self.look_closer(photo, faces, readings)
        return faces, readings, photo

    def find_faces(self, photo: Photo) -> tuple[tuple[Face, ...], tuple[FaceEyes, ...], Photo]:
        """The detector's faces and their eyes read at its keypoints, from a larger decode when
        the eyes are too small in this one (the photo returned is the one read)."""
        faces = self.detector.detect(
            photo.pixels, image=photo.image, min_relative_size=self.verdict_settings.min_face_size
        )
        readings = tuple(self.eyes.classify(photo.pixels, face) for face in faces)
        smallest = min((_eye_px(r) for r in readings), default=MIN_EYE_PX)
        if smallest >= MIN_EYE_PX or photo.scale >= 1.0:
            return faces, readings, photo
        larger = self._redecode(photo, MIN_EYE_PX / max(smallest, 1.0))
        if larger is None:
            return faces, readings, photo
        ratio = larger.scale / photo.scale
        faces = tuple(_scaled(face, ratio) for face in faces)
        readings = tuple(self.eyes.classify(larger.pixels, face) for face in faces)
        return faces, readings, larger

    def look_closer(
        self, photo: Photo, faces: tuple[Face, ...], readings: tuple[FaceEyes, ...]
    ) -> tuple[tuple[Face, ...], tuple[FaceEyes, ...]]:
        """Each face whose eyes are not plainly open, with its eyes placed by the face mesh and
        read there too (see `closer_look`); faces and readings stay in step, one for one.

        BlazeFace's eye keypoints drift off laughing, tilted and downcast eyes, and the crop then
        holds a cheek or a brow (bench/accuracy.py --paste: most missed blinks). The mesh and the
        second reading cost about 3 ms a face on a fast 2-core machine and 9 ms on a slow one
        (bench/pipeline.py), so plainly open faces, most of a session, never pay for them.
        """
        if all(plainly_open(reading) for reading in readings):
            return faces, readings
        image = photo.pillow()
        out = []
        for face, reading in zip(faces, readings, strict=True):
            placed = None if plainly_open(reading) else self.place_eyes(image, face)
            looked = closer_look(
                face, reading, placed, lambda f: self.eyes.classify(photo.pixels, f)
            )
            out.append((face if placed is None else placed.face, looked))
        return tuple(f for f, _ in out), tuple(r for _, r in out)

    def place_eyes(self, image: Image.Image, face: Face) -> Placement | None:
        """Where the face mesh puts the face's eyes; None when the mesh sees no face there."""
        centres = self.mesh.eyes(image, face)
        if centres is None:
            return None
        placed = replace(face, keypoints=(centres.right, centres.left, *face.keypoints[2:]))
        return Placement(placed, centres.edge_on)

    def _redecode(self, photo: Photo, factor: float) -> Photo | None:
        full_long = max(photo.original_size)
        long_side = min(full_long, int(max(photo.size) * factor) + 1)
        if long_side <= max(photo.size):
            return None
        settings = replace(self.decode_settings, long_side=long_side, min_preview_side=long_side)
        try:
            return decode(photo.path, settings)
        except DecodeError:
            return None  # the file changed under us; the first reading stands


def closer_look(
    detected: Face, first: FaceEyes, placed: Placement | None, read: Callable[[Face], FaceEyes]
) -> FaceEyes:
    """A face's reading once the mesh has looked: plainly open eyes stand as first read (at the
    `detected` keypoints); others are the mean of the first reading and a `read` where the mesh
    placed the eyes, or that second reading alone for an eye the first crop missed.

    What the eye model cannot judge gives no evidence, so it can never make a blink: a detection
    the mesh does not see as a face (a glass, a pattern) is marked as no face with neither eye
    visible (`not_a_face`; the verdict leaves it out beside real faces), and an eye the mesh sees
    nearly edge-on (a face turned towards a profile) counts as not visible. The mesh saw a face in
    every one of the 1,718 validation pictures, natively and pasted at 22% (bench/accuracy.py),
    and none of the 5,872 faces of the research data with an eye edge-on."""
    if plainly_open(first):
        return first
    if placed is None:
        return not_a_face(first)
    looked = mean_reading(first, read(placed.face), missed_eyes(detected, placed.face))
    return hide(looked, placed.edge_on)


def eye_model(settings: ModelSettings | None) -> ModelInfo | None:
    """The user's own eye-state model when configured (None: the shipped one)."""
    if settings is None or settings.path is None or settings.sha256 is None:
        return None
    return ModelInfo(name="eye_state (own)", filename=str(settings.path), sha256=settings.sha256)


def _eye_px(reading: FaceEyes) -> float:
    return min(reading.right.crop_px, reading.left.crop_px)


def _scaled(face: Face, ratio: float) -> Face:
    x0, y0, x1, y1 = face.box
    points = tuple((x * ratio, y * ratio) for x, y in face.keypoints)
    return Face(
        box=(x0 * ratio, y0 * ratio, x1 * ratio, y1 * ratio),
        score=face.score,
        keypoints=points,  # type: ignore[arg-type]
    )


def _result(
    photo: Photo,
    faces: tuple[Face, ...],
    readings: tuple[FaceEyes, ...],
    decision: Decision,
    ms: float,
) -> Result:
    # Report faces in the full image's coordinates, whatever size was decoded.
    to_full = 1.0 / photo.scale if photo.scale else 1.0
    return Result(
        path=photo.path,
        verdict=decision.verdict,
        score=decision.score,
        reasons=decision.reasons,
        faces=tuple(
            FaceResult(_scaled(face, to_full), eyes)
            for face, eyes in zip(faces, readings, strict=True)
        ),
        ms=round(ms, 1),
        source=photo.source,
    )
