"""`eyespyd train --keep DIR --blink DIR`: the eye-state model, trained on your own photos.

    read_archive -> pick_eyes -> fit.train -> export int8 -> held-back scores -> model + card

Labels come from where the photographer filed each photo, not from eye-level marking:

- a **keep** photo: every prominent face's eyes are open;
- a **blink** photo: the most-closed prominent face, as the shipped model reads it, gives its
  eyes as closed (`closed_picks`, the rule is there); its other faces are left out, since
  nobody said whether they blinked too.

Photos go through the run-time stages (`decode`, `FaceDetector`, the larger re-decode for small
eyes in `Pipeline.read_faces`) and eyes are cropped with `eyes.eye_geometry` and
`sample_square`, as `eyespyd.train.data` does for the research data, so the model learns from
the pixels it will judge. A fifth of the photos is held back (a hash of the file's name) and both
the new and the shipped model are scored there, eye by eye and photo by photo through
`verdict.decide` with the configured verdict settings.

The model is trained from scratch (the architecture and augmentation of the shipped one): its
float weights are not shipped, and starting from or distilling its int8 weights would carry its
research-only terms into a model that is meant to be free of them. The research data joins only
when `--data` is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import math
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from eyespyd import config, paths
from eyespyd.config import Settings
from eyespyd.decode import RAW_SUFFIXES, decode, is_photo_name
from eyespyd.errors import DecodeError, EyespydError
from eyespyd.eyes import EyeClassifier, FaceEyes, eye_geometry, face_patches, to_gray
from eyespyd.models import EYE_STATE, ModelInfo
from eyespyd.pipeline import Pipeline, Placement, closer_look
from eyespyd.train import data
from eyespyd.train.augment import AugmentConfig
from eyespyd.train.data import CLOSED, OPEN, SOURCE_FACE, EyeSet
from eyespyd.train.metrics import EyeMetrics, eye_metrics
from eyespyd.types import Face
from eyespyd.verdict import BLINK, HIDDEN_AT, KEEP, REVIEW, FaceReading, decide

log = logging.getLogger("eyespyd.train")

# The more closed eye of a blink photo's most-closed face is always a closed example; its
# partner joins when the shipped model gives it more than this (a blink shuts both lids, but a
# wink, or a lid the model reads wrong, should not teach "open eye = closed").
CLOSED_FLOOR = 0.2
HELD_BACK = 0.2
EPOCHS = 20
PER_CLASS = 4000
SIDES = ("R", "L")  # the subject's right eye, then the left, as in FaceEyes and data.EyeSet

ByteArray = npt.NDArray[np.uint8]


class TrainError(EyespydError):
    """The archive cannot make a model: too few faces, no blink photos, a missing folder."""


@dataclass(frozen=True, slots=True)
class EyePick:
    """One eye that becomes a training example: face index in the photo, "R" or "L"."""

    face: int
    side: str


def _eyes_of(reading: FaceReading) -> tuple[tuple[str, float, float], ...]:
    """(side, p(closed), p(hidden)) of the face's right, then left eye."""
    return (
        ("R", reading.right.closed, reading.right.hidden),
        ("L", reading.left.closed, reading.left.hidden),
    )


def open_picks(readings: Sequence[FaceReading], faces: Sequence[int]) -> tuple[EyePick, ...]:
    """A keep photo: every visible eye of the prominent `faces` is an open example.

    Eyes the shipped model calls hidden (dark glasses, a hand, the far eye of a turned face) are
    left out: labelling them open would teach the model that a lens is an open eye.
    """
    return tuple(
        EyePick(i, side)
        for i in faces
        for side, _, hidden in _eyes_of(readings[i])
        if hidden < HIDDEN_AT
    )


def closed_picks(
    readings: Sequence[FaceReading], faces: Sequence[int], floor: float = CLOSED_FLOOR
) -> tuple[EyePick, ...]:
    """A blink photo: which eyes of the prominent `faces` become closed examples.

    1. Only visible eyes count (p(hidden) below the verdict's HIDDEN_AT).
    2. The most-closed face is the one with the highest verdict score, the mean p(closed) of its
       visible eyes (ties: the higher single eye, then the first face).
    3. Its more closed visible eye is a closed example; the other visible eye too when its
       p(closed) is above `floor`.
    4. With several prominent faces, if even that face's more closed eye is not above `floor`,
       nothing is picked: the shipped model cannot tell who blinked, and a guess would label an
       open eye closed. A single prominent face is the one who blinked, whatever the model says.
    5. The other faces give nothing, open or closed: their state is unknown.
    """
    scored: list[tuple[int, list[tuple[float, str]]]] = []
    for i in faces:
        eyes = _eyes_of(readings[i])
        visible = [(closed, side) for side, closed, hidden in eyes if hidden < HIDDEN_AT]
        if visible:
            scored.append((i, visible))
    if not scored:
        return ()

    def rank(item: tuple[int, list[tuple[float, str]]]) -> tuple[float, float]:
        closed = [c for c, _ in item[1]]
        return (sum(closed) / len(closed), max(closed))

    face, visible = max(scored, key=rank)  # the first of equals
    if len(scored) > 1 and rank((face, visible))[1] <= floor:
        return ()
    ranked = sorted(visible, key=lambda eye: (-eye[0], SIDES.index(eye[1])))
    picks = [EyePick(face, ranked[0][1])]
    picks += [EyePick(face, side) for closed, side in ranked[1:] if closed > floor]
    return tuple(sorted(picks, key=lambda p: SIDES.index(p.side)))


def prominent(faces: Sequence[Face], min_face_size: float) -> tuple[int, ...]:
    """Indices of the faces the verdict counts (at least `min_face_size` of the widest)."""
    if not faces:
        return ()
    largest = max(face.width for face in faces)
    return tuple(i for i, face in enumerate(faces) if face.width >= min_face_size * largest)


def pick_eyes(
    label: str, readings: Sequence[FaceReading], faces: Sequence[int]
) -> tuple[EyePick, ...]:
    return closed_picks(readings, faces) if label == BLINK else open_picks(readings, faces)


# ---------------------------------------------------------------------------------------------
# Reading the archive


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    path: Path
    label: str  # KEEP or BLINK: the folder it was found in
    key: str  # what the split hashes: the name inside its folder, without the suffix


@dataclass(frozen=True, slots=True, eq=False)
class ArchivePhoto:
    """One photo with faces, as the pipeline read it with the shipped model."""

    file: ArchiveFile
    held_back: bool
    faces: tuple[Face, ...]  # every face the detector returned, as the verdict gets them
    shipped: tuple[FaceEyes, ...]  # the shipped model's reading of each
    picks: tuple[EyePick, ...]  # the eyes that are labelled examples
    # Held-back photos only, to read with the new model later as the pipeline would: each face
    # as detected with F x 2 x S x S patches at its eye keypoints, and with its eyes
    # placed by the face mesh (None: the mesh sees no face) with the patches there.
    detected: tuple[Face, ...] = ()
    patches: ByteArray | None = field(default=None, repr=False)
    placed: tuple[Placement | None, ...] = ()
    placed_patches: ByteArray | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class Archive:
    photos: tuple[ArchivePhoto, ...]
    train: EyeSet | None  # None: no labelled eye on that side
    held_back: EyeSet | None
    counts: Counter[str]


def list_archive(keep: Path, blink: Path) -> tuple[list[ArchiveFile], int]:
    """The photos under both folders (recursive, sorted) and how many RAW/JPEG twins were
    dropped: a shutter press that left IMG_0001.CR3 and IMG_0001.JPG counts once, read from the
    JPEG, so it can neither count twice nor land on both sides of the split."""
    files: list[ArchiveFile] = []
    twins = 0
    for label, root in ((KEEP, keep), (BLINK, blink)):
        if not root.is_dir():
            raise TrainError(f"cannot read the {label} photos: {root} is not a folder")
        chosen: dict[str, Path] = {}
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not is_photo_name(path):
                continue
            if not path.is_file():
                continue
            key = rel.with_suffix("").as_posix()
            if key in chosen:
                twins += 1
                if _is_raw(chosen[key]) and not _is_raw(path):
                    chosen[key] = path
                continue
            chosen[key] = path
        files += [ArchiveFile(p, label, k) for k, p in sorted(chosen.items())]
    return files, twins


def _is_raw(path: Path) -> bool:
    return path.suffix.lower() in RAW_SUFFIXES


def read_archive(
    files: Sequence[ArchiveFile],
    pipeline: Pipeline,
    size: int,
    held_back: float,
    seed: int,
) -> Archive:
    """Decode, detect, read with the shipped model, pick the labelled eyes and crop them."""
    counts: Counter[str] = Counter()
    photos: list[ArchivePhoto] = []
    rows: list[tuple[ByteArray, int, float, str, str, str, bool]] = []
    min_face_size = pipeline.verdict_settings.min_face_size
    start = time.monotonic()
    for n, item in enumerate(files, start=1):
        counts[f"{item.label} photos"] += 1
        if n % 100 == 0:
            log.info("read %d of %d photos (%.0f s)", n, len(files), time.monotonic() - start)
        try:
            photo = decode(item.path, pipeline.decode_settings)
        except DecodeError as exc:
            counts["unreadable"] += 1
            log.warning("%s", exc)
            continue
        detected, first, photo = pipeline.find_faces(photo)
        faces, readings = pipeline.look_closer(photo, detected, first)
        counted = prominent(faces, min_face_size)
        if not counted:
            counts[f"{item.label} no face"] += 1
            continue
        back = data.is_validation(item.key, held_back, seed)
        split = "held-back" if back else "train"
        picks = pick_eyes(item.label, readings, counted)
        counts[f"{split} {item.label} photos"] += 1
        counts[f"{item.label} faces"] += len(counted)
        visible = sum(
            e.hidden < HIDDEN_AT for i in counted for e in (readings[i].right, readings[i].left)
        )
        if item.label == BLINK:
            used = {p.face for p in picks}
            counts["blink faces not used"] += len(counted) - len(used)
            counts["blink photos with no closed eye"] += not picks
            counts["hidden eyes left out"] += sum(
                e.hidden >= HIDDEN_AT for i in used for e in (readings[i].right, readings[i].left)
            )
        else:
            counts["hidden eyes left out"] += 2 * len(counted) - visible
        # Context crops (twice the crop's side) as for the research data: training jitters the
        # final crop inside them; eye_geometry and sample_square are the run time's.
        label = CLOSED if item.label == BLINK else OPEN
        gray = to_gray(photo.pixels)
        for face_index in sorted({p.face for p in picks}):
            for side, context, side_px in data.context_crops(gray, faces[face_index], size):
                if EyePick(face_index, side) in picks:
                    name = f"{item.key}#{face_index}"
                    rows.append((context, label, side_px, item.key, name, side, back))
                    counts[f"{split} {'closed' if label == CLOSED else 'open'} eyes"] += 1
        if back:
            image = photo.pillow()
            placed = tuple(pipeline.place_eyes(image, face) for face in detected)
            blank = np.zeros((2, size, size), np.uint8)
            patches = np.stack([face_patches(photo.pixels, face, size) for face in detected])
            placed_patches = np.stack(
                [blank if p is None else face_patches(photo.pixels, p.face, size) for p in placed]
            )
            photos.append(
                ArchivePhoto(
                    item, back, faces, readings, picks, detected, patches, placed, placed_patches
                )
            )
        else:
            photos.append(ArchivePhoto(item, back, faces, readings, picks))
    log.info("read %d photos in %.0f s", len(files), time.monotonic() - start)
    return Archive(tuple(photos), _eye_set(rows, False), _eye_set(rows, True), counts)


def _eye_set(
    rows: Sequence[tuple[ByteArray, int, float, str, str, str, bool]], held_back: bool
) -> EyeSet | None:
    chosen = [r for r in rows if r[6] == held_back]
    if not chosen:
        return None
    return EyeSet(
        np.stack([r[0] for r in chosen]),
        np.array([r[1] for r in chosen], np.int64),
        np.full(len(chosen), SOURCE_FACE, np.int64),
        np.array([r[2] for r in chosen], np.float32),
        np.array([r[3] for r in chosen]),
        np.array([r[4] for r in chosen]),
        np.array([r[5] for r in chosen]),
    )


def concat(sets: Sequence[EyeSet]) -> EyeSet:
    return EyeSet(
        np.concatenate([s.context for s in sets]),
        np.concatenate([s.label for s in sets]),
        np.concatenate([s.source for s in sets]),
        np.concatenate([s.side_px for s in sets]),
        np.concatenate([s.picture for s in sets]),
        np.concatenate([s.path for s in sets]),
        np.concatenate([s.eye for s in sets]),
    )


def take(eyes: EyeSet, index: npt.NDArray[np.intp]) -> EyeSet:
    return EyeSet(
        eyes.context[index],
        eyes.label[index],
        eyes.source[index],
        eyes.side_px[index],
        eyes.picture[index],
        eyes.path[index],
        eyes.eye[index],
    )


def mix(archive: EyeSet, research: EyeSet) -> EyeSet:
    """Archive and research eyes, the archive's repeated so that it makes at least half of each
    class's draws (`fit.make_epoch` draws uniformly within a class)."""
    parts = [research]
    for label in (OPEN, CLOSED):
        mine = np.flatnonzero(archive.label == label)
        theirs = int((research.label == label).sum())
        if len(mine):
            repeats = max(1, math.ceil(theirs / len(mine)))
            parts.append(take(archive, np.tile(mine, repeats)))
    return concat(parts)


# ---------------------------------------------------------------------------------------------
# Scoring on the held-back photos


@dataclass(frozen=True, slots=True)
class PhotoMetrics:
    """Verdicts against the folder each photo was filed in, counted as `eyespyd eval` does:
    blink is the positive class, and a photo sent to review is not a blink call."""

    photos: int
    blink_photos: int
    keep_photos: int
    recall: float  # blink photos called blink
    false_blinks: int  # keep photos called blink
    false_blink_rate: float
    precision: float
    f1: float
    reviewed: int
    wrong: tuple[tuple[Path, str, str], ...]  # (file, filed as, called) where blink-ness differs


def photo_metrics(calls: Sequence[tuple[Path, str, str]]) -> PhotoMetrics:
    """From (file, filed as, verdict) triples; every ratio is 0 when its count is."""
    blinks = [verdict for _, truth, verdict in calls if truth == BLINK]
    keeps = [verdict for _, truth, verdict in calls if truth == KEEP]
    tp, fp = blinks.count(BLINK), keeps.count(BLINK)
    recall = tp / len(blinks) if blinks else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return PhotoMetrics(
        photos=len(calls),
        blink_photos=len(blinks),
        keep_photos=len(keeps),
        recall=recall,
        false_blinks=fp,
        false_blink_rate=fp / len(keeps) if keeps else 0.0,
        precision=precision,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        reviewed=sum(verdict == REVIEW for _, _, verdict in calls),
        wrong=tuple(c for c in calls if (c[1] == BLINK) != (c[2] == BLINK)),
    )


@dataclass(frozen=True, slots=True)
class Scores:
    """One model on the held-back photos: its labelled eyes and its photo verdicts."""

    model: str
    eye: EyeMetrics | None  # None: no labelled eye held back
    photo: PhotoMetrics


def read_patches(classifier: EyeClassifier, photo: ArchivePhoto) -> tuple[FaceEyes, ...]:
    """What the pipeline would read of each face with `classifier`, from the stored eye patches:
    at the detector's keypoints, then where the mesh placed the eyes if they are not plainly
    open (`pipeline.closer_look`, the run time's rule)."""
    assert photo.patches is not None, "patches are kept for held-back photos only"
    assert photo.placed_patches is not None
    readings = []
    for face, placed, patches, placed_patches in zip(
        photo.detected, photo.placed, photo.patches, photo.placed_patches, strict=True
    ):
        first = classifier.read(patches, eye_geometry(face))

        def again(f: Face, placed_patches: ByteArray = placed_patches) -> FaceEyes:
            return classifier.read(placed_patches, eye_geometry(f))

        readings.append(closer_look(face, first, placed, again))
    return tuple(readings)


def score(
    name: str,
    photos: Sequence[ArchivePhoto],
    readings: Sequence[tuple[FaceEyes, ...]],
    settings: Settings,
) -> Scores:
    """Eye accuracy on the labelled eyes and photo verdicts through `verdict.decide`."""
    probs: list[tuple[float, float, float]] = []
    labels: list[int] = []
    calls: list[tuple[Path, str, str]] = []
    for photo, faces_eyes in zip(photos, readings, strict=True):
        verdict = decide(photo.faces, faces_eyes, settings.verdict).verdict
        calls.append((photo.file.path, photo.file.label, verdict))
        for pick in photo.picks:
            eye = faces_eyes[pick.face].right if pick.side == "R" else faces_eyes[pick.face].left
            probs.append((max(0.0, 1.0 - eye.closed - eye.hidden), eye.closed, eye.hidden))
            labels.append(CLOSED if photo.file.label == BLINK else OPEN)
    em = eye_metrics(np.array(probs, np.float32), np.array(labels, np.int64)) if labels else None
    return Scores(name, em, photo_metrics(calls))


# ---------------------------------------------------------------------------------------------
# Writing the model, its card and the configuration


def models_folder() -> Path:
    return paths.data_dir() / "models"


def write_new(folder: Path, stem: str, content: bytes) -> Path:
    """`content` as folder/stem.tflite, or stem-2, stem-3... when that name or its card is taken.

    Never overwrites: a hard link from a temporary file claims the name atomically (the card's
    name is claimed the same way later, by exclusive creation).
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}.{os.getpid()}.partial"
    tmp.write_bytes(content)
    try:
        for n in range(1, 1000):
            path = folder / (f"{stem}.tflite" if n == 1 else f"{stem}-{n}.tflite")
            if path.with_suffix(".md").exists():
                continue
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue
            except OSError:  # a filesystem without hard links
                try:
                    with path.open("xb") as f:
                        f.write(content)
                except FileExistsError:
                    continue
            return path
        raise TrainError(f"cannot find a free name for {stem}.tflite in {folder}")
    finally:
        tmp.unlink(missing_ok=True)


def config_snippet(path: Path, sha256: str) -> str:
    import yaml

    text: str = yaml.safe_dump(
        {"model": {"path": str(path), "sha256": sha256}}, sort_keys=False, default_flow_style=False
    )
    return text


@dataclass(frozen=True, slots=True)
class Run:
    """What the card records about how the model was made."""

    keep: Path
    blink: Path
    research: Path | None
    size: int
    width: int
    epochs: int
    per_class: int
    held_back: float
    seed: int
    seconds: float
    train_open: int  # eyes drawn from, research data included
    train_closed: int


def command(run: Run) -> str:
    words = ["eyespyd", "train", "--keep", str(run.keep), "--blink", str(run.blink)]
    if run.research is not None:
        words += ["--data", str(run.research)]
    words += ["--size", str(run.size), "--width", str(run.width), "--epochs", str(run.epochs)]
    words += ["--per-class", str(run.per_class), "--val-fraction", str(run.held_back)]
    words += ["--seed", str(run.seed)]
    return shlex.join(words)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def eye_table(scores: Sequence[Scores]) -> list[str]:
    lines = [
        "| model | eyes | accuracy | open called closed | closed called open | called hidden |",
        "|---|---|---|---|---|---|",
    ]
    for s in scores:
        if s.eye is None:
            lines.append(f"| {s.model} | 0 | - | - | - | - |")
        else:
            e = s.eye
            lines.append(
                f"| {s.model} | {e.eyes} | {_pct(e.accuracy)} | {e.open_called_closed} "
                f"| {e.closed_called_open} | {e.called_hidden} |"
            )
    return lines


def photo_table(scores: Sequence[Scores]) -> list[str]:
    lines = [
        "| model | photos | blink recall | false blinks (of keep) | precision | F1 | to review |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        p = s.photo
        lines.append(
            f"| {s.model} | {p.photos} | {p.recall:.3f} | {p.false_blinks} of {p.keep_photos}"
            f" ({_pct(p.false_blink_rate)}) | {p.precision:.3f} | {p.f1:.3f} | {p.reviewed} |"
        )
    return lines


def model_card(
    path: Path,
    content: bytes,
    sha256: str,
    run: Run,
    counts: Counter[str],
    scores: Sequence[Scores],
    settings: Settings,
) -> str:
    c = counts
    v = settings.verdict
    if run.research is None:
        terms = (
            "Trained only on the photos in the two folders below, with labels from where they "
            "were filed. No research data and none of the shipped model's weights went into it; "
            "the shipped model only chose, in each blink photo, which face's eyes to label closed "
            "(see Labels), and is the baseline below. Its terms are those of your photos."
        )
    else:
        terms = (
            f"**Check the terms of `{run.research}`**: its pictures were mixed into training "
            "(`--data`) and this model inherits their terms. The project's research data (CEW, "
            "UTKFace, LFW) is for non-commercial research only; for commercial work, train "
            "again without `--data`."
        )
    new, shipped = scores
    lines = [
        f"# {path.name}: model card",
        "",
        "Per-eye classifier (open, closed, hidden) trained by `eyespyd train` on a "
        "photographer's own archive of kept and blink photos.",
        "",
        "| | |",
        "|---|---|",
        f"| file | `{path}`, {len(content):,} bytes |",
        f"| sha256 | `{sha256}` |",
        f"| made | {dt.datetime.now().astimezone().isoformat(timespec='seconds')}, "
        f"{run.seconds / 60:.1f} minutes |",
        f"| input | `N x {run.size} x {run.size} x 1` int8, as the shipped model "
        "(`models/EYE_MODEL.md`) |",
        "| output | `N x 3` int8 softmax: p(open), p(closed), p(hidden) |",
        f"| command | `{command(run)}` |",
        "",
        "## Terms",
        "",
        terms,
        "",
        "## Use it",
        "",
        "Put this in the configuration (`eyespyd check-config` names the file in use):",
        "",
        "```yaml",
        config_snippet(path, sha256).rstrip(),
        "```",
        "",
        "## Labels",
        "",
        "From where each photo was filed, not from marking eyes:",
        "",
        "- a photo in the keep folder: every prominent face's eyes are open (prominent: at least "
        f"{v.min_face_size:g} of the widest face, as the verdict counts faces);",
        "- a photo in the blink folder: the face the shipped model reads as most closed (highest "
        "mean p(closed) of its visible eyes) gives its more closed eye as closed, and its other "
        f"eye too if that one's p(closed) is above {CLOSED_FLOOR:g}. In a group photo where "
        f"no eye is above {CLOSED_FLOOR:g}, nobody is picked (who blinked is unknown). The "
        "other faces of a blink photo are not used at all;",
        "- eyes the shipped model calls hidden (p(hidden) >= 0.5: dark glasses, hands, turned "
        "faces) are left out of both;",
        "- photos without a prominent face, and unreadable files, are skipped; a RAW and a JPEG "
        "of one name count once.",
        "",
        "## Data",
        "",
        "| | keep | blink |",
        "|---|---|---|",
        f"| photos found | {c['keep photos']} | {c['blink photos']} |",
        f"| no face found | {c['keep no face']} | {c['blink no face']} |",
        f"| photos used: train | {c['train keep photos']} | {c['train blink photos']} |",
        f"| photos used: held back | {c['held-back keep photos']} "
        f"| {c['held-back blink photos']} |",
        f"| prominent faces | {c['keep faces']} | {c['blink faces']} |",
        f"| eyes labelled: train | {c['train open eyes']} open | {c['train closed eyes']} closed |",
        f"| eyes labelled: held back | {c['held-back open eyes']} open "
        f"| {c['held-back closed eyes']} closed |",
        "",
        f"Also: {c['unreadable']} unreadable files, {c['twins']} RAW/JPEG twins counted once, "
        f"{c['blink faces not used']} faces of blink photos not used, "
        f"{c['blink photos with no closed eye']} blink photos that gave no closed eye, "
        f"{c['hidden eyes left out']} eyes left out as hidden.",
    ]
    if run.research is not None:
        lines += [
            "",
            f"Research data from `{run.research}` joined the training side (label-noise list "
            "applied); the archive's eyes were repeated so they make at least half of each class. "
            f"Eyes drawn from: {run.train_open} open, {run.train_closed} closed.",
        ]
    lines += [
        "",
        '**Split** by photo: a photo is held back when `sha256(f"{seed}:{key}")` falls in the '
        f"first {_pct(run.held_back)} (seed {run.seed}), the key being its name inside its "
        "folder without the suffix; adding photos moves no others. Frames of one burst are "
        "near-copies and can fall on both sides, which flatters both models alike.",
        "",
        "## Training",
        "",
        "The shipped model's architecture (`eyespyd/train/fit.py`: five conv + batch norm + "
        f"ReLU blocks, first width {run.width}), trained **from scratch**: the shipped model's "
        "float weights are not distributed, and starting from (or distilling) its int8 weights "
        "would carry its research-only terms into this one. The shipped recipe otherwise: "
        "the same augmentation (`eyespyd/train/augment.py`: light, resolution, JPEG, noise, "
        "drawn glasses, drawn sunglasses and occluders as the hidden class, crop jitter), "
        f"{run.per_class} open and {run.per_class} closed draws per epoch, {run.epochs} epochs, "
        "Adam with cosine decay, then full-integer int8 export.",
        "",
        "## Metrics on the held-back photos",
        "",
        f"Both models read every held-back photo as the pipeline does (`{new.model}` is this "
        f"model, `{shipped.model}` the one shipped with eyespyd, sha256 "
        f"`{EYE_STATE.sha256[:12]}`).",
        "",
        "Eye level, closed when p(closed) > 0.5, on the labelled eyes. The shipped model chose "
        "which eyes of a blink photo are labelled closed, so its closed-eye numbers here are "
        "flattered:",
        "",
        *eye_table(scores),
        "",
        f"Photo level, through `eyespyd.verdict.decide` with the verdict settings of "
        f"`{settings.source}` (threshold {v.threshold:g}, review margin {v.review_margin:g}, "
        f"one eye is enough: {str(v.one_eye_is_enough).lower()}, min face size "
        f"{v.min_face_size:g}). Truth is the folder; a photo sent to review counts as not "
        "blink (as `eyespyd eval`):",
        "",
        *photo_table(scores),
    ]
    held = new.photo.photos
    if held < 50:
        lines += [
            "",
            f"Only {held} photos were held back: one photo moves these numbers by "
            f"{100 / max(held, 1):.0f} points or more. Treat them as a smoke test.",
        ]
    wrong = new.photo.wrong[:30]
    if wrong:
        lines += ["", "Held-back photos this model gets wrong (first 30):", ""]
        lines += [f"- `{p}`: filed {t}, called {v_}" for p, t, v_ in wrong]
    lines.append("")
    return "\n".join(lines)


def write_card(path: Path, text: str) -> Path:
    card = path.with_suffix(".md")
    with card.open("x", encoding="utf-8") as f:
        f.write(text)
    return card


# ---------------------------------------------------------------------------------------------
# The run


def run(
    keep: Path,
    blink: Path,
    *,
    research: Path | None,
    research_cache: Path,
    exclude: set[str],
    patches: bool,
    config_file: Path | None,
    size: int,
    width: int,
    epochs: int,
    per_class: int,
    held_back: float,
    seed: int,
) -> int:
    """Train on the archive, write the model and its card, print the configuration to use."""
    from eyespyd.train import fit

    start = time.monotonic()
    settings = config.load(config_file)
    files, twins = list_archive(keep, blink)
    log.info("%d photos in %s and %s", len(files), keep, blink)
    pipeline = Pipeline(settings.decode, settings.verdict)
    archive = read_archive(files, pipeline, size, held_back, seed)
    counts = archive.counts + Counter({"twins": twins})
    train_eyes = archive.train
    log.info("archive: %s", dict(sorted(counts.items())))
    if train_eyes is None or not (train_eyes.label == CLOSED).any():
        raise TrainError(
            f"no closed eye to learn from: none of the photos under {blink} gave a face on the "
            "training side; add blink photos with faces"
        )
    if not (train_eyes.label == OPEN).any():
        raise TrainError(
            f"no open eye to learn from: none of the photos under {keep} gave a face on the "
            "training side; add kept photos with faces"
        )
    closed_count = int((train_eyes.label == CLOSED).sum())
    if closed_count < 100:
        log.warning(
            "only %d closed eyes to learn from: expect a weak model (a few hundred blink "
            "photos make a useful one)",
            closed_count,
        )
    if research is not None:
        theirs, _ = data.load_eyes(research, research_cache, size, patches=patches)
        theirs = theirs.subset(np.array([str(p) not in exclude for p in theirs.path]))
        train_eyes = mix(train_eyes, theirs)
        log.info("with the research data of %s: %d eyes to draw from", research, len(train_eyes))

    cfg = AugmentConfig()
    val = archive.held_back
    if val is not None:
        val_x, val_y = fit.centre_crops(val, size), val.label
    else:
        val_x = np.zeros((0, size, size, 1), np.float32)
        val_y = np.zeros(0, np.int64)
    # Keras prints (the export's SavedModel signature); stdout is for the result.
    with contextlib.redirect_stdout(sys.stderr):
        model = fit.train(
            train_eyes,
            val_x,
            val_y,
            size=size,
            epochs=epochs,
            per_class=per_class,
            seed=seed,
            cfg=cfg,
            width=width,
        )
    rng = np.random.default_rng(seed + 1)
    rep_x, _ = fit.make_epoch(train_eyes, rng, size, 150, cfg)
    plain = take(train_eyes, rng.permutation(len(train_eyes))[:200])
    representative = np.concatenate([fit.centre_crops(plain, size), rep_x])

    folder = models_folder()
    scratch = folder / f".eye_state-{os.getpid()}.export.tflite"
    try:
        with contextlib.redirect_stdout(sys.stderr):
            content = fit.export_int8(model, representative, scratch)
    finally:
        scratch.unlink(missing_ok=True)
    sha = hashlib.sha256(content).hexdigest()
    stem = f"eye_state-{dt.date.today().isoformat()}-{sha[:8]}"
    path = write_new(folder, stem, content)
    log.info("wrote %s: %d bytes, sha256 %s", path, len(content), sha)

    mine = EyeClassifier(ModelInfo("eye_state (own)", str(path), sha))
    held = [p for p in archive.photos if p.held_back]
    new_scores = score("new", held, [read_patches(mine, p) for p in held], settings)
    shipped_scores = score("shipped", held, [p.shipped for p in held], settings)
    made = Run(
        keep=keep.absolute(),
        blink=blink.absolute(),
        research=research.absolute() if research is not None else None,
        size=size,
        width=width,
        epochs=epochs,
        per_class=per_class,
        held_back=held_back,
        seed=seed,
        seconds=time.monotonic() - start,
        train_open=int((train_eyes.label == OPEN).sum()),
        train_closed=int((train_eyes.label == CLOSED).sum()),
    )
    card = write_card(
        path,
        model_card(path, content, sha, made, counts, (new_scores, shipped_scores), settings),
    )
    print(summary(path, card, sha, (new_scores, shipped_scores)))
    return 0


def summary(path: Path, card: Path, sha256: str, scores: Sequence[Scores]) -> str:
    lines = [f"wrote {path}", f"model card {card}"]
    held = scores[0].photo.photos
    lines.append(f"on {held} held-back photos:")
    for s in scores:
        p = s.photo
        eye = f"eye accuracy {_pct(s.eye.accuracy)}, " if s.eye is not None else ""
        lines.append(
            f"  {s.model:8} {eye}blink recall {p.recall:.3f}, "
            f"false blinks {_pct(p.false_blink_rate)}, F1 {p.f1:.3f}"
        )
    lines += [
        "To use it, put this in the configuration (`eyespyd check-config` names the file):",
        "",
        config_snippet(path, sha256).rstrip(),
    ]
    return "\n".join(lines)
