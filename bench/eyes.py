"""Time the eyes stage: cropping, one invoke per face (both eyes), and the model alone.

    python bench/eyes.py    # median ms: crop both eyes, classify a face, invoke 1 and 2 eyes

Faces are the shared faces/open pictures when present, otherwise tests/data/eyes; their eyes
come from the faces stage. One thread, as in the daemon.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eyespyd import models  # noqa: E402
from eyespyd.eyes import EyeClassifier, crop_eyes  # noqa: E402
from eyespyd.faces import FaceDetector  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "faces" / "open"
FIXTURES = ROOT / "tests" / "data" / "eyes"


def median_ms(fn: Callable[[], object], repeat: int = 300) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    pictures = sorted(SHARED.glob("*.jpg"))[:20] if SHARED.is_dir() else sorted(FIXTURES.glob("*"))
    info = getattr(models, "EYE_STATE", None)
    if info is None:
        path = ROOT / "models" / "eye_state.tflite"
        info = models.ModelInfo(
            "eye_state", path.name, hashlib.sha256(path.read_bytes()).hexdigest()
        )
    classifier = EyeClassifier(info)
    detector = FaceDetector()
    cases = []
    for path in pictures:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        faces = detector.detect(pixels)
        if faces:
            cases.append((pixels, faces[0]))
    pixels, face = cases[0]
    size = classifier.size
    print(f"model {info.filename}: input {size}x{size}x1 int8, {len(cases)} faces")
    print(f"crop both eyes:        {median_ms(lambda: crop_eyes(pixels, face, size)):.3f} ms")
    one = np.zeros((1, size, size), np.uint8)
    two = np.zeros((2, size, size), np.uint8)
    print(f"invoke, 1 eye:         {median_ms(lambda: classifier.probabilities(one)):.3f} ms")
    # Alternate batch sizes cost a reallocation each; the daemon always sends pairs.
    print(f"invoke, 2 eyes:        {median_ms(lambda: classifier.probabilities(two)):.3f} ms")
    print(f"classify (crop+infer): {median_ms(lambda: classifier.classify(pixels, face)):.3f} ms")


if __name__ == "__main__":
    main()
