"""Photo-level accuracy on the validation split that training never saw, through the real pipeline.

    python -m bench.accuracy [--data ../shared/data] [--grid] [--paste 0.3]

The split is the training's own (eyespyd.train.data.is_validation: a hash of each picture's name,
15%, seed 0), minus the label-noise files the model card lists. Every validation face goes through
decode -> faces -> eyes -> verdict as `eyespyd classify` runs it. Prints blink recall, false blinks
as a share of open faces, F1 and the review rate at the configured verdict settings, the eye-level
accuracy, and with --grid the same for other thresholds and margins (the eye probabilities are
computed once; the verdict is a pure function, so the grid is cheap).

With --paste SHARE, each face is first pasted into a 1620 x 1080 frame (portrait or landscape, in
turn) over a textured background, scaled to SHARE of the frame's longer side: the faces as a
headshot's preview shows them, through the same detector passes (upscaled from about 200 px, so
softer than a camera's).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench.faces import background, paste_face
from eyespyd.config import VerdictSettings, load
from eyespyd.decode import decode
from eyespyd.pipeline import Pipeline
from eyespyd.train import data
from eyespyd.verdict import decide

REPO = Path(__file__).resolve().parents[1]
NOISE = REPO / "eyespyd" / "train" / "label_noise.txt"


def validation_files(root: Path) -> list[tuple[Path, str]]:
    entries = (line.split("#")[0].strip() for line in NOISE.read_text().splitlines())
    noise_names = {Path(entry).name for entry in entries if entry}
    files = []
    for folder, truth in (("closed", "blink"), ("open", "keep")):
        for path in sorted((root / "faces" / folder).iterdir()):
            if path.name in noise_names:
                continue
            if data.is_validation(path.stem, 0.15, 0):
                files.append((path, truth))
    return files


def score(rows: list[tuple[str, str]]) -> dict[str, float]:
    tp = sum(t == "blink" and v == "blink" for t, v in rows)
    fp = sum(t == "keep" and v == "blink" for t, v in rows)
    fn = sum(t == "blink" and v != "blink" for t, v in rows)
    keepers = sum(t == "keep" for t, _ in rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "recall": recall,
        "false_blinks": fp / keepers if keepers else 0.0,
        "false_blink_count": fp,
        "f1": f1,
        "review": sum(v == "review" for _, v in rows) / len(rows),
    }


def line(label: str, m: dict[str, float]) -> str:
    return (
        f"{label:34} recall {m['recall']:.3f}  false blinks {m['false_blinks']:.2%} "
        f"({int(m['false_blink_count'])})  F1 {m['f1']:.3f}  review {m['review']:.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--grid", action="store_true", help="also try other verdict settings")
    parser.add_argument("--paste", type=float, help="paste faces into frames at this size")
    parser.add_argument("--long-side", type=int, help="decode to this long side (default: config)")
    args = parser.parse_args()
    settings = load()
    if args.long_side:
        settings = replace(settings, decode=replace(settings.decode, long_side=args.long_side))
    pipeline = Pipeline(settings.decode, settings.verdict, model=settings.model)
    files = validation_files(args.data)
    readings = []
    ms = []
    eye_right = eye_total = 0
    rng = np.random.default_rng(11)
    scratch = Path(tempfile.mkdtemp(prefix="eyespyd-paste-"))
    sizes: list[int] = []
    for n, (path, truth) in enumerate(files):
        if args.paste:
            size = (1620, 1080) if n % 2 else (1080, 1620)
            photo = decode(pasted(path, args.paste, size, rng, scratch), settings.decode)
            start = time.perf_counter()
            faces, eyes, photo = pipeline.read_faces(photo)
            ms.append((time.perf_counter() - start) * 1000)
        else:
            photo = decode(path, settings.decode)
            faces, eyes, photo = pipeline.read_faces(photo)
            ms.append(pipeline.classify(path).ms)
        readings.append((path, truth, faces, eyes))
        sizes.append(max(photo.size))
        if faces:  # eye level: every visible eye of the largest face against the photo's label
            for eye in (eyes[0].right, eyes[0].left):
                eye_total += 1
                eye_right += (eye.closed > 0.5) == (truth == "blink")
    shutil.rmtree(scratch)
    blinks = sum(t == "blink" for _, t in files)
    print(f"validation split: {blinks} closed-eye faces, {len(files) - blinks} open-eye faces")
    print(f"eye level: {eye_right / eye_total:.2%} of {eye_total} eyes right at p(closed) > 0.5")
    what = "faces + eyes" if args.paste else "whole pipeline"
    print(f"ms per photo, {what}: median {statistics.median(ms):.1f}")
    side = statistics.median(sizes)
    print(f"decoded long side: median {side:.0f} px (long_side {settings.decode.long_side})")

    def evaluate(verdict: VerdictSettings) -> dict[str, float]:
        rows = [(t, decide(f, e, verdict).verdict) for _, t, f, e in readings]
        return score(rows)

    print(line("configured " + _describe(settings.verdict), evaluate(settings.verdict)))
    # Every error at the configured settings, so the model card's list of them can be checked.
    for path, truth, faces, eyes in readings:
        decision = decide(faces, eyes, settings.verdict)
        if (truth == "blink") != (decision.verdict == "blink"):
            print(f"  {truth} -> {decision.verdict} {decision.score:.2f} {path.name}")
    if args.grid:
        for one_eye in (False, True):
            for margin in (0.0, 0.15):
                for threshold in (0.45, 0.5, 0.525, 0.55, 0.575, 0.6, 0.65, 0.7):
                    variant = replace(
                        settings.verdict,
                        threshold=threshold,
                        review_margin=margin,
                        one_eye_is_enough=one_eye,
                    )
                    print(line(_describe(variant), evaluate(variant)))


def pasted(
    path: Path, share: float, size: tuple[int, int], rng: np.random.Generator, folder: Path
) -> Path:
    """The face picture pasted into a frame of `size`, its face `share` of the longer side, saved
    in `folder` as a camera would save a preview (JPEG, quality 92)."""
    frame = background(rng, size)
    width = share * max(size)
    side = int(width / 0.97) + 2
    x = int(rng.integers(0, max(1, size[0] - side)))
    y = int(rng.integers(0, max(1, size[1] // 2 - side // 2)))
    paste_face(frame, Image.open(path), width, x, y)
    out = folder / f"{path.stem}.jpg"
    Image.fromarray(frame).save(out, quality=92)
    return out


def _describe(v: VerdictSettings) -> str:
    rule = "either" if v.one_eye_is_enough else "both"
    return f"t={v.threshold:.2f} m={v.review_margin:.2f} {rule}"


if __name__ == "__main__":
    main()
