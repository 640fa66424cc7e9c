"""Labelled pictures -> faces -> eye context crops, cached so retraining skips detection.

A data folder holds `faces/open`, `faces/closed` (whole faces, any size) and optionally
`eyes/open`, `eyes/closed` (small single-eye patches named `<picture>_L.jpg` / `_R.jpg`). A
photographer's own archive only needs the `faces/` part.

Each eye is cached as a *context* crop: the square `eyespyd.eyes` would crop, but CONTEXT times
larger and at CONTEXT times the model's input size, made by the same `eye_geometry` and
`sample_square`. Training jitters the final crop inside it, and ends with the same
`sample_square` and `normalise` as run time.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from eyespyd.eyes import EyeGeometry, eye_geometry, sample_square, to_gray
from eyespyd.types import Face

log = logging.getLogger(__name__)

CONTEXT = 2  # context crop side, in crop sides
OPEN, CLOSED, HIDDEN = 0, 1, 2
SOURCE_FACE, SOURCE_PATCH = 0, 1
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
CACHE_VERSION = 1

Detect = Callable[[npt.NDArray[np.uint8]], Sequence[Face]]


@dataclass(frozen=True, slots=True)
class Picture:
    """One labelled file; `key` names the picture it shows (a face and its patches share one)."""

    path: Path
    label: int  # OPEN or CLOSED
    source: int  # SOURCE_FACE or SOURCE_PATCH
    key: str


@dataclass(frozen=True, slots=True, eq=False)
class EyeSet:
    """Cached eyes, one row per eye: context crops and what is known about each."""

    context: npt.NDArray[np.uint8] = field(repr=False)  # N x C x C, C = CONTEXT * size
    label: npt.NDArray[np.int64]  # OPEN / CLOSED
    source: npt.NDArray[np.int64]  # SOURCE_FACE / SOURCE_PATCH
    side_px: npt.NDArray[np.float32]  # native crop side in source pixels
    picture: npt.NDArray[np.str_]  # picture key
    path: npt.NDArray[np.str_]  # file name relative to the data folder
    eye: npt.NDArray[np.str_]  # "R" (subject's right) or "L"

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def subset(self, mask: npt.NDArray[np.bool_]) -> EyeSet:
        return EyeSet(
            self.context[mask],
            self.label[mask],
            self.source[mask],
            self.side_px[mask],
            self.picture[mask],
            self.path[mask],
            self.eye[mask],
        )


def picture_key(path: Path, source: int) -> str:
    """The picture a file shows: a CEW face and its eye patches give one key, LFW gives a person.

    Patches drop their `_L` / `_R`; LFW names (`Adam_Rich_0001`) drop the frame number so one
    person never lands on both sides of the split.
    """
    stem = path.stem
    if source != SOURCE_PATCH:
        return stem
    return re.sub(r"_\d{4}$", "", re.sub(r"_[LR]$", "", stem))


def list_pictures(root: Path, *, patches: bool = True) -> list[Picture]:
    """Every labelled file under `root`, sorted, so the same folder gives the same list."""
    out: list[Picture] = []
    folders: list[tuple[str, int]] = [("faces", SOURCE_FACE)]
    if patches:
        folders.append(("eyes", SOURCE_PATCH))
    for folder, source in folders:
        for name, label in (("open", OPEN), ("closed", CLOSED)):
            directory = root / folder / name
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                if path.suffix.lower() in SUFFIXES:
                    out.append(Picture(path, label, source, picture_key(path, source)))
    return out


def is_validation(key: str, fraction: float, seed: int) -> bool:
    """Deterministic split by picture: a hash, not a shuffle, so adding files moves no others."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def pad_for_detection(rgb: npt.NDArray[np.uint8], factor: float) -> tuple[np.ndarray, int, int]:
    """The image centred on a canvas `factor` times its longer side, filled with its mean colour.

    Tightly cropped faces fill the frame, and BlazeFace, trained on faces in scenes, misses many
    of them; a margin gives it the context it expects. Mean colour, not black: no hard border.
    """
    height, width = rgb.shape[:2]
    side = max(round(max(height, width) * factor), height, width)
    x0, y0 = (side - width) // 2, (side - height) // 2
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = rgb.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    canvas[y0 : y0 + height, x0 : x0 + width] = rgb
    return canvas, x0, y0


def detect_face(detect: Detect, rgb: npt.NDArray[np.uint8]) -> Face | None:
    """The best face of a one-face picture, trying a few margins; None when none is found."""
    best: Face | None = None
    for factor in (1.0, 1.5, 2.2):
        canvas, x0, y0 = pad_for_detection(rgb, factor)
        faces = detect(canvas)
        if not faces:
            continue
        # The subject is the largest face; on a tight crop any other face is a fragment.
        face = max(faces, key=lambda f: f.width * f.score)
        if best is None or face.score > best.score:
            box = (face.box[0] - x0, face.box[1] - y0, face.box[2] - x0, face.box[3] - y0)
            kps = tuple((x - x0, y - y0) for x, y in face.keypoints)
            best = Face(box, face.score, kps)  # type: ignore[arg-type]
        if best.score > 0.8:
            break
    return best


def default_detector() -> Detect:
    """BlazeFace as the pipeline runs it."""
    from eyespyd.faces import FaceDetector

    detector = FaceDetector()
    return detector.detect


def context_crops(
    gray: npt.NDArray[np.uint8], face: Face, size: int
) -> list[tuple[str, np.ndarray, float]]:
    """Both eyes' context crops ("R", then "L") with their native crop side."""
    out = []
    for name, geometry in zip(("R", "L"), eye_geometry(face), strict=True):
        big = replace(geometry, side=geometry.side * CONTEXT)
        patch = sample_square(gray, big, size * CONTEXT)
        out.append((name, np.clip(np.rint(patch), 0, 255).astype(np.uint8), geometry.side))
    return out


def patch_context(gray: npt.NDArray[np.uint8], size: int) -> np.ndarray:
    """A small eye patch as a context crop: scaled to the crop size and edge-padded around.

    The patches are tight crops of unknown geometry, close to ours (checked by eye), so the
    patch is taken as the crop square itself; there is no real context to add.
    """
    patch = np.asarray(Image.fromarray(gray).resize((size, size), Image.Resampling.BICUBIC))
    pad = (size * CONTEXT - size) // 2
    return np.pad(patch, pad, mode="edge")


def _mirror_patch(gray: np.ndarray, path: Path) -> np.ndarray:
    # Patches are named by the subject's eye; our crops mirror the left eye (see eyes.py).
    return gray[:, ::-1] if path.stem.endswith("_L") else gray


def build_eyes(
    root: Path, pictures: Iterable[Picture], size: int, detect: Detect | None = None
) -> tuple[EyeSet, list[str]]:
    """Detect, crop and collect every eye; also return the files where no face was found."""
    contexts: list[np.ndarray] = []
    rows: list[tuple[int, int, float, str, str, str]] = []
    missed: list[str] = []
    for picture in pictures:
        rel = str(picture.path.relative_to(root))
        with Image.open(picture.path) as image:
            rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        if picture.source == SOURCE_PATCH:
            gray = _mirror_patch(to_gray(rgb), picture.path)
            contexts.append(patch_context(np.ascontiguousarray(gray), size))
            eye = "L" if picture.path.stem.endswith("_L") else "R"
            rows.append((picture.label, picture.source, float(rgb.shape[1]), picture.key, rel, eye))
            continue
        if detect is None:
            detect = default_detector()
        face = detect_face(detect, rgb)
        if face is None:
            missed.append(rel)
            continue
        for eye, context, side in context_crops(to_gray(rgb), face, size):
            contexts.append(context)
            rows.append((picture.label, picture.source, side, picture.key, rel, eye))
    if not rows:
        raise ValueError(f"no eyes found under {root}")
    labels, sources, sides, keys, paths, eyes = zip(*rows, strict=True)
    return (
        EyeSet(
            np.stack(contexts),
            np.array(labels, np.int64),
            np.array(sources, np.int64),
            np.array(sides, np.float32),
            np.array(keys),
            np.array(paths),
            np.array(eyes),
        ),
        missed,
    )


def save_cache(path: Path, eyes: EyeSet, size: int, missed: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        version=CACHE_VERSION,
        size=size,
        context=eyes.context,
        label=eyes.label,
        source=eyes.source,
        side_px=eyes.side_px,
        picture=eyes.picture,
        path=eyes.path,
        eye=eyes.eye,
        missed=np.array(list(missed), dtype=np.str_),
    )
    tmp.replace(path)


def load_cache(path: Path, size: int) -> tuple[EyeSet, list[str]] | None:
    """The cached eyes, or None when there is no cache for this size and version."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        if int(z["version"]) != CACHE_VERSION or int(z["size"]) != size:
            return None
        # Picture keys are derived again, not trusted from the cache: the split follows the code.
        keys = np.array(
            [picture_key(Path(p), int(s)) for p, s in zip(z["path"], z["source"], strict=True)]
        )
        eyes = EyeSet(
            z["context"], z["label"], z["source"], z["side_px"], keys, z["path"], z["eye"]
        )
        return eyes, [str(m) for m in z["missed"]]


def load_eyes(
    root: Path, cache: Path, size: int, *, patches: bool = True, detect: Detect | None = None
) -> tuple[EyeSet, list[str]]:
    """Every eye under `root`, from the cache when it is there, else built and cached."""
    cached = load_cache(cache, size)
    if cached is not None:
        log.info("eyes from cache %s: %d", cache, len(cached[0]))
        eyes, missed = cached
    else:
        log.info("detecting faces under %s (cached to %s)", root, cache)
        eyes, missed = build_eyes(root, list_pictures(root, patches=True), size, detect)
        save_cache(cache, eyes, size, missed)
    if not patches:
        eyes = eyes.subset(eyes.source == SOURCE_FACE)
    return eyes, missed


def crop_geometry(size: int) -> EyeGeometry:
    """The crop square inside a context crop, before jitter."""
    c = size * CONTEXT / 2
    return EyeGeometry((c, c), 0.0, float(size), mirrored=False)
