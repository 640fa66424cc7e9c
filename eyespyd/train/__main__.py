"""`python -m eyespyd.train`: train the eye-state model and write an int8 TFLite file.

    python -m eyespyd.train --data ../shared/data --out models/eye_state.tflite --report DIR

Needs TensorFlow (`pip install eyespyd[train]`). Face detections and eye crops are cached, so
only the first run pays for detection.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from eyespyd.train import data
from eyespyd.train.augment import AugmentConfig, clear_glasses, jittered_crop, sunglasses
from eyespyd.train.data import CLOSED, OPEN, EyeSet
from eyespyd.train.metrics import eye_metrics, face_pairs, format_table, photo_table

log = logging.getLogger("eyespyd.train")

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
LABEL_NOISE = Path(__file__).with_name("label_noise.txt")


def default_cache(size: int) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "eyespyd" / f"eye-crops-{size}.npz"


def read_exclusions(path: Path | None) -> set[str]:
    """File names (relative to the data folder) to leave out: labels found wrong by looking."""
    if path is None or not path.is_file():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m eyespyd.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="labelled data folder")
    p.add_argument("--out", type=Path, default=Path("models/eye_state.tflite"))
    p.add_argument("--cache", type=Path, help="crop cache (.npz); default under ~/.cache/eyespyd")
    p.add_argument("--report", type=Path, help="folder for metrics and contact sheets")
    p.add_argument("--size", type=int, default=48, help="model input side in pixels")
    p.add_argument("--width", type=int, default=16, help="filters of the first layer")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--per-class", type=int, default=5000, help="samples per class per epoch")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-patches", action="store_true", help="train on face crops only")
    p.add_argument(
        "--exclude", type=Path, default=LABEL_NOISE, help="file names to leave out (label noise)"
    )
    return p.parse_args(argv)


def synthetic(
    eyes: EyeSet, size: int, kind: str, seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Validation eyes behind drawn clear glasses or sunglasses: robustness, not accuracy."""
    rng = np.random.default_rng(seed)
    cfg = AugmentConfig()
    xs = []
    for ctx in eyes.context:
        ctx = clear_glasses(ctx, rng, size) if kind == "glasses" else sunglasses(ctx, rng, size)
        xs.append(jittered_crop(ctx, None, size, cfg))
    return np.stack(xs).astype(np.float32)[..., None] / 255.0, eyes.label


def contact_sheet(
    root: Path,
    paths: list[str],
    notes: list[str],
    out: Path,
    crops: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    cell: int = 128,
) -> None:
    """Faces with the two eye crops the model saw and a caption, to look at what went wrong."""
    from PIL import ImageDraw

    if not paths:
        return
    cols = 8
    eye = cell // 2
    height = cell + (eye if crops else 0) + 14
    rows = (len(paths) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * height), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (rel, note) in enumerate(zip(paths, notes, strict=True)):
        with Image.open(root / rel) as image:
            face = image.convert("RGB")
        scale = cell / max(face.size)
        face = face.resize((max(1, round(face.width * scale)), max(1, round(face.height * scale))))
        x, y = (n % cols) * cell, (n // cols) * height
        sheet.paste(face, (x, y))
        if crops and rel in crops:
            for k, patch in enumerate(crops[rel]):
                tile = Image.fromarray(patch).resize((eye, eye), Image.Resampling.NEAREST)
                sheet.paste(tile.convert("RGB"), (x + k * eye, y + cell))
        draw.text((x + 2, y + height - 13), note, fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def crops_by_path(
    eyes: EyeSet, x: npt.NDArray[np.float32]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each face's right and left crop as uint8, keyed by file."""
    found: dict[str, dict[str, np.ndarray]] = {}
    for i in range(len(eyes)):
        patch = np.rint(x[i, :, :, 0] * 255).astype(np.uint8)
        found.setdefault(str(eyes.path[i]), {})[str(eyes.eye[i])] = patch
    return {p: (e["R"], e["L"]) for p, e in found.items() if len(e) == 2}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        from eyespyd.train import fit
    except ImportError as exc:  # pragma: no cover - depends on the environment
        log.error("training needs TensorFlow: pip install 'eyespyd[train]' (%s)", exc)
        return 2
    cache = args.cache or default_cache(args.size)
    eyes, missed = data.load_eyes(args.data, cache, args.size, patches=not args.no_patches)
    if missed:
        log.info("no face found in %d files: %s", len(missed), ", ".join(missed[:20]))
    excluded = read_exclusions(args.exclude)
    keep = np.array([str(p) not in excluded for p in eyes.path])
    log.info("left out as label noise: %d eyes (%d files)", int((~keep).sum()), len(excluded))
    eyes = eyes.subset(keep)
    is_val = np.array(
        [data.is_validation(str(k), args.val_fraction, args.seed) for k in eyes.picture]
    )
    train_eyes, val_eyes = eyes.subset(~is_val), eyes.subset(is_val)
    # The patches are extra training data; validation is on the run-time crops of whole faces.
    val_eyes = val_eyes.subset(val_eyes.source == data.SOURCE_FACE)
    overlap = set(train_eyes.picture.tolist()) & set(val_eyes.picture.tolist())
    assert not overlap, f"pictures on both sides of the split: {sorted(overlap)[:5]}"
    counts = {
        "train_open": int((train_eyes.label == OPEN).sum()),
        "train_closed": int((train_eyes.label == CLOSED).sum()),
        "val_open": int((val_eyes.label == OPEN).sum()),
        "val_closed": int((val_eyes.label == CLOSED).sum()),
    }
    log.info("eyes: %s", counts)

    val_x = fit.centre_crops(val_eyes, args.size)
    cfg = AugmentConfig()
    model = fit.train(
        train_eyes,
        val_x,
        val_eyes.label,
        size=args.size,
        epochs=args.epochs,
        per_class=args.per_class,
        seed=args.seed,
        cfg=cfg,
        width=args.width,
    )
    rng = np.random.default_rng(args.seed + 1)
    rep_x, _ = fit.make_epoch(train_eyes, rng, args.size, 150, cfg)
    rep = np.concatenate(
        [fit.centre_crops(train_eyes.subset(rng.random(len(train_eyes)) < 0.03), args.size), rep_x]
    )
    content = fit.export_int8(model, rep, args.out)
    sha = hashlib.sha256(content).hexdigest()
    log.info("wrote %s: %d bytes, sha256 %s", args.out, len(content), sha)

    report: dict[str, object] = {
        "size": args.size,
        "bytes": len(content),
        "sha256": sha,
        "counts": counts,
        "missed_detection": missed,
        "excluded": sorted(excluded),
    }
    for name, predict in (
        ("float", fit.keras_predict(model)),
        ("int8", fit.tflite_predict(content)),
    ):
        probs = predict(val_x)
        em = eye_metrics(probs, val_eyes.label)
        paths, pairs, closed = face_pairs(val_eyes, probs)
        table = photo_table(pairs, closed, THRESHOLDS)
        glasses_x, glasses_y = synthetic(val_eyes, args.size, "glasses", args.seed)
        sun_x, _ = synthetic(val_eyes, args.size, "sunglasses", args.seed)
        sun = predict(sun_x)
        report[name] = result = {
            "eye": asdict(em),
            "photo": [asdict(r) for r in table],
            "faces": {"open": int((~closed).sum()), "closed": int(closed.sum())},
            "eye_with_drawn_glasses": asdict(eye_metrics(predict(glasses_x), glasses_y)),
            "sunglasses_hidden_rate": float((sun.argmax(axis=1) == 2).mean()),
            "sunglasses_closed_rate": float((sun[:, 1] > 0.5).mean()),
        }
        print(f"\n## {name}: eye accuracy {em.accuracy:.4f} on {em.eyes} eyes ({em})")
        print(f"faces: {int((~closed).sum())} open, {int(closed.sum())} closed")
        print(format_table(table))
        print({k: v for k, v in result.items() if k.startswith(("eye_with", "sun"))})
        if args.report is not None and name == "int8":
            args.report.mkdir(parents=True, exist_ok=True)
            crops = crops_by_path(val_eyes, val_x)
            write_errors(args.data, args.report, paths, pairs, closed, crops)
            # Open faces in training too: label noise hides wherever it likes.
            faces = eyes.subset(eyes.source == data.SOURCE_FACE)
            all_x = fit.centre_crops(faces, args.size)
            all_paths, all_pairs, all_closed = face_pairs(faces, predict(all_x))
            suspects = np.flatnonzero(~all_closed & (all_pairs.min(axis=1) > 0.5))
            order = suspects[np.argsort(-all_pairs[suspects].min(axis=1))]
            contact_sheet(
                args.data,
                [all_paths[i] for i in order],
                [f"{Path(all_paths[i]).stem} {all_pairs[i].min():.2f}" for i in order],
                args.report / "open_suspects.png",
                crops_by_path(faces, all_x),
            )
            report["open_suspects"] = [
                (all_paths[i], round(float(all_pairs[i].min()), 3)) for i in order
            ]
    if args.report is not None:
        (args.report / "report.json").write_text(json.dumps(report, indent=1))
    return 0


def write_errors(
    root: Path,
    out: Path,
    paths: list[str],
    pairs: npt.NDArray[np.float32],
    closed: npt.NDArray[np.bool_],
    crops: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    """Contact sheets of validation false blinks and missed blinks, for the rule "either > 0.5"
    (the loosest: every face that any rule could get wrong at 0.5 is on one of them)."""
    high = pairs.max(axis=1) > 0.5
    low = pairs.min(axis=1) > 0.5
    false_blinks = np.flatnonzero(~closed & high)
    missed = np.flatnonzero(closed & ~low)
    for name, idx in (("false_blinks", false_blinks), ("missed_blinks", missed)):
        contact_sheet(
            root,
            [paths[i] for i in idx],
            [f"{Path(paths[i]).stem[-14:]} {pairs[i, 0]:.2f}/{pairs[i, 1]:.2f}" for i in idx],
            out / f"{name}.png",
            crops,
        )


if __name__ == "__main__":
    sys.exit(main())
