"""Faces and eyes after decode: median ms per photo, one thread, as a worker runs them.

    python -m bench.pipeline [--runs 50]

Photos are composed at the size decode hands on for a camera JPEG's MPF preview or a RAW's
embedded preview (1620 x 1080): a headshot (one fixture face at 35% of the width) and a group
(eight fixture faces at 6% of the width, some closed). Decode itself is measured by bench.decode.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from eyespyd.config import load
from eyespyd.pipeline import Pipeline
from eyespyd.types import Photo
from eyespyd.verdict import decide

FACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "faces"
SIZE = (1620, 1080)


def compose(faces: list[Path], width_share: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, size=(SIZE[1] // 60 + 2, SIZE[0] // 60 + 2, 3), dtype=np.uint8)
    canvas = Image.fromarray(small).resize(SIZE, Image.Resampling.BICUBIC)
    side = int(SIZE[0] * width_share)
    columns = max(1, min(len(faces), int(0.9 / width_share / 1.6)))
    for i, path in enumerate(faces):
        with Image.open(path) as face:
            face = face.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        x = int((i % columns + 0.5) * SIZE[0] / columns - side / 2)
        y = int(SIZE[1] / 3 + (i // columns) * side * 1.8 - side / 2)
        canvas.paste(face, (x, y))
    return np.asarray(canvas)


def time_it(pipeline: Pipeline, pixels: np.ndarray, runs: int) -> tuple[float, int, str]:
    photo = Photo(Path("composed.jpg"), pixels, "JPEG", "composed", SIZE, 1)
    times = []
    for _ in range(runs + 3):
        start = time.perf_counter()
        faces, eyes, _ = pipeline.read_faces(photo)
        decision = decide(faces, eyes, pipeline.verdict_settings)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[3:]), len(faces), decision.verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    settings = load()
    pipeline = Pipeline(settings.decode, settings.verdict, model=settings.model)
    headshot = compose([FACES / "open_03.jpg"], 0.35, 1)
    group = compose(
        [FACES / f"open_0{i}.jpg" for i in range(1, 7)] + [FACES / "closed_01.jpg"] * 2, 0.06, 2
    )
    for label, pixels in (
        ("headshot, face 35% of width", headshot),
        ("group, 8 faces at 6%", group),
    ):
        ms, found, verdict = time_it(pipeline, pixels, args.runs)
        print(f"{label:30} faces + eyes + verdict {ms:6.1f} ms  ({found} faces, {verdict})")


if __name__ == "__main__":
    main()
