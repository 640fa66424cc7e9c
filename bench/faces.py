"""Time the faces stage on made-up frames, and measure what it finds on the shared face sets.

    python bench/faces.py              # median ms per detect() and share found, by scene
    python bench/faces.py --recall     # also: share of shared faces/open and faces/closed found
    python bench/faces.py --floors     # also: how small a face each model finds, per input pixel

Frames are made, not photographed: a 1280 x 853 background of gradients and noise with real faces
pasted in, scaled so that the detected face box has the wanted width. Faces come from
../shared/data/faces when present, otherwise from tests/data/faces. One thread, as in the daemon.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eyespyd.faces import FULL_RANGE, SHORT_RANGE, BlazeFace, FaceDetector, Window  # noqa: E402

SHARED_FACES = ROOT.parent / "shared" / "data" / "faces"
FIXTURE_FACES = ROOT / "tests" / "data" / "faces"
FRAME = (1280, 853)


def face_pictures() -> list[Path]:
    """Aligned eyes-open faces to paste: the shared set when present, else the fixtures."""
    if (SHARED_FACES / "open").is_dir():
        return sorted((SHARED_FACES / "open").glob("*.jpg"))
    return sorted(FIXTURE_FACES.glob("open_*.jpg"))


def background(rng: np.random.Generator, size: tuple[int, int] = FRAME) -> np.ndarray:
    """Smooth colour gradients with sensor-like noise: no faces, some texture."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    base = np.stack(
        [
            120 + 60 * np.sin(x / 210 + phase[0]),
            110 + 50 * np.cos(y / 160 + phase[1]),
            100 + 40 * np.sin((x + y) / 300 + phase[2]),
        ],
        axis=-1,
    )
    noise = rng.normal(0, 10, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def paste_face(
    frame: np.ndarray, picture: Image.Image, face_width: float, x: int, y: int
) -> tuple[int, int, int, int]:
    """Paste `picture` at (x, y), scaled so its face is about `face_width` px wide; its box."""
    # An aligned UTKFace face box is about as wide as the picture (measured: 0.97).
    scale = face_width / (0.97 * picture.width)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    scaled = np.asarray(picture.convert("RGB").resize(size, Image.Resampling.LANCZOS))
    height, width = frame.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + size[0], width), min(y + size[1], height)
    frame[y0:y1, x0:x1] = scaled[y0 - y : y1 - y, x0 - x : x1 - x]
    return x, y, x + size[0], y + size[1]


def headshot(rng: np.random.Generator, pictures: list[Path]) -> tuple[np.ndarray, int]:
    """One face 35 to 45% of the frame's width, somewhere in the upper two thirds."""
    frame = background(rng)
    face_width = rng.uniform(0.35, 0.45) * FRAME[0]
    picture = Image.open(pictures[rng.integers(len(pictures))])
    side = int(face_width / 0.97)
    paste_face(
        frame,
        picture,
        face_width,
        int(rng.integers(0, FRAME[0] - side)),
        int(rng.integers(0, FRAME[1] - side)),
    )
    return frame, 1


def group(rng: np.random.Generator, pictures: list[Path]) -> tuple[np.ndarray, int]:
    """6 to 10 faces 4 to 6% of the frame's width, in two loose rows like a team photo."""
    frame = background(rng)
    count = int(rng.integers(6, 11))
    per_row = (count + 1) // 2
    for i in range(count):
        row, col = divmod(i, per_row)
        face_width = rng.uniform(0.04, 0.06) * FRAME[0]
        cell = FRAME[0] / (per_row + 1)
        x = int(cell * (col + 0.6) + rng.uniform(-0.1, 0.1) * cell)
        y = int(FRAME[1] * (0.3 + 0.2 * row) + rng.uniform(-10, 10))
        paste_face(frame, Image.open(pictures[rng.integers(len(pictures))]), face_width, x, y)
    return frame, count


def small_group(rng: np.random.Generator, pictures: list[Path]) -> tuple[np.ndarray, int]:
    """2 to 4 faces in a row, the widest 10 to 19% of the frame's width and the others 65 to
    100% of it: a couple or a small family, where a face near the padded full-range pass's floor
    is found by a second, unpadded look (faces.HALF_SEEN)."""
    frame = background(rng)
    count = int(rng.integers(2, 5))
    widest = rng.uniform(0.10, 0.19) * FRAME[0]
    for i, x in enumerate(np.linspace(60, FRAME[0] - 1.2 * widest, count)):
        face_width = widest * (1.0 if i == 0 else rng.uniform(0.65, 1.0))
        y = int(rng.uniform(50, FRAME[1] - 1.3 * face_width))
        paste_face(frame, Image.open(pictures[rng.integers(len(pictures))]), face_width, int(x), y)
    return frame, count


def couple(rng: np.random.Generator, pictures: list[Path]) -> tuple[np.ndarray, int]:
    """A headshot-sized face, 20 to 38% of the frame's width, and a second face 50 to 95% of its
    width beside it (a parent and child, a couple a step apart): the short-range pass finds the
    first, and the second, often under its floor, only if the full-range pass is asked to look
    (faces.FAINT)."""
    frame = background(rng)
    first = rng.uniform(0.20, 0.38) * FRAME[0]
    second = rng.uniform(0.5, 0.95) * first
    x = int(rng.uniform(0, FRAME[0] - 1.05 * (first + second)))
    y = int(rng.uniform(0, FRAME[1] - 1.3 * first))
    paste_face(frame, Image.open(pictures[rng.integers(len(pictures))]), first, x, y)
    x2 = int(x + 1.05 * first + rng.uniform(0, FRAME[0] - x - 1.05 * (first + second)))
    y2 = int(rng.uniform(0, FRAME[1] - 1.3 * second))
    paste_face(frame, Image.open(pictures[rng.integers(len(pictures))]), second, x2, y2)
    return frame, 2


def time_detector(
    detector: FaceDetector,
    make: Callable[[np.random.Generator, list[Path]], tuple[np.ndarray, int]],
    counted_from: float = 0.0,
    frames: int = 30,
) -> tuple[float, float]:
    """Median ms per detect() over `frames` frames, and the share of pasted faces found.

    Timed with the defaults, as the daemon calls it; counted with min_relative_size=counted_from
    (0 for the group, since the default rightly drops a 4% face next to a 6% one with a wider
    box; the small group's faces are all above the default's 0.5; 0.45 for the couple, whose
    second face, pasted at 50% of the first or more, can come out a little under half its box,
    and whose count must still go through the glimpse gate, which 0 would bypass).
    """
    rng = np.random.default_rng(7)
    pictures = face_pictures()
    times, found, pasted = [], 0, 0
    for _ in range(frames):
        frame, count = make(rng, pictures)
        detector.detect(frame)  # warm caches so the median is steady-state
        start = time.perf_counter()
        detector.detect(frame)
        times.append((time.perf_counter() - start) * 1000)
        found += min(len(detector.detect(frame, min_relative_size=counted_from)), count)
        pasted += count
    return statistics.median(times), found / pasted


def shared_pictures(label: str) -> Iterator[Path]:
    yield from sorted((SHARED_FACES / label).glob("*.jpg"))


def recall(detector: FaceDetector) -> None:
    """How many shared face pictures give at least one face, and how many exactly one."""
    if not SHARED_FACES.is_dir():
        print("recall: ../shared/data/faces is absent, skipped")
        return
    for label in ("open", "closed"):
        counts, missed = [], []
        for path in shared_pictures(label):
            faces = detector.detect(np.asarray(Image.open(path).convert("RGB")))
            counts.append(len(faces))
            if not faces:
                missed.append(path.name)
        found = sum(1 for c in counts if c)
        single = sum(1 for c in counts if c == 1)
        print(
            f"recall faces/{label}: {found}/{len(counts)} = {found / len(counts):.2%} found, "
            f"{single} with exactly one face; missed: {', '.join(missed) or 'none'}"
        )


def floors() -> None:
    """Share of faces found per model, by face width in input pixels (one face per window)."""
    rng = np.random.default_rng(1)
    pictures = face_pictures()[300:360] or face_pictures()
    side = 640
    for spec in (SHORT_RANGE, FULL_RANGE):
        model = BlazeFace(spec)
        for face_px in (10, 12, 14, 16, 18, 20, 24, 28, 32):
            hits = 0
            for path in pictures:
                frame = background(rng, (side, side))
                face_width = face_px * side / spec.input_size
                x, y = (int(v) for v in rng.integers(0, side - face_width * 1.1, 2))
                x0, y0, x1, y1 = paste_face(frame, Image.open(path), face_width, x, y)
                detections, _ = model.run(Image.fromarray(frame), Window(0, 0, side), 0.5)
                centres = (detections[:, 0:2] + detections[:, 2:4]) / 2
                near = np.abs(centres - ((x0 + x1) / 2, (y0 + y1) / 2)).max(axis=1) < face_width / 3
                hits += bool(near.any())
            share = hits / len(pictures)
            print(
                f"floors {spec.model.name}: face {face_px:2d} px of {spec.input_size}: {share:.0%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recall", action="store_true", help="detection rate on the shared faces")
    parser.add_argument("--floors", action="store_true", help="smallest face each model finds")
    args = parser.parse_args()
    detector = FaceDetector()
    source = "shared data" if (SHARED_FACES / "open").is_dir() else "test fixtures"
    print(f"faces from {source}; frame {FRAME[0]} x {FRAME[1]}; 1 thread")
    for name, make, counted_from, frames in (
        ("headshot, face 35-45% of width", headshot, 0.0, 30),
        ("group, 6-10 faces at 4-6%", group, 0.0, 30),
        ("small group, 2-4 faces at 6.5-19%", small_group, 0.5, 200),
        ("couple, 20-38% and 50-95% of that", couple, 0.45, 200),
    ):
        ms, found = time_detector(detector, make, counted_from, frames)
        print(f"{name}: median {ms:.1f} ms per detect(), {found:.0%} of pasted faces found")
    if args.recall:
        recall(detector)
    if args.floors:
        floors()


if __name__ == "__main__":
    main()
