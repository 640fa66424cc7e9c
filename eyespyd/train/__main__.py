"""`eyespyd train`, `python -m eyespyd.train`: train the eye-state model as an int8 TFLite file.

Two modes, one command:

    eyespyd train --keep DIR --blink DIR [--data DIR]     on the photographer's own archive
    python -m eyespyd.train --data ../shared/data --out models/eye_state.tflite --report DIR

The first (`eyespyd.train.archive`) learns from photos filed as kept or blinked and writes the
model, with its model card, to the user's data folder; `--data` mixes in a labelled data folder
(research terms). The second trains the shipped model on a data folder (`faces/open`,
`faces/closed`, optional `eyes/` patches). Needs TensorFlow (`pip install 'eyespyd[train]'`).
Face detections and eye crops of a data folder are cached, so only the first run pays for
detection.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

# The training modules are imported where they are used: `eyespyd` builds its parser from
# `arguments()` at every start, and should not pay for them.
if TYPE_CHECKING:
    from eyespyd.train.data import EyeSet

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


def arguments() -> argparse.ArgumentParser:
    """The options of both modes, as a parent parser (`eyespyd train` reuses it)."""
    p = argparse.ArgumentParser(add_help=False)
    mine = p.add_argument_group("your archive (the model goes to the data folder, with a card)")
    mine.add_argument("--keep", type=Path, metavar="DIR", help="photos you kept (recursive)")
    mine.add_argument("--blink", type=Path, metavar="DIR", help="photos you set aside as blinks")
    mine.add_argument(
        "--config", type=Path, metavar="FILE", help="configuration whose verdict settings score"
    )
    shared = p.add_argument_group("a labelled data folder (faces/open, faces/closed)")
    shared.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="train on it (default ../shared/data without --keep/--blink); with --keep/--blink,"
        " mix it in (research terms)",
    )
    shared.add_argument("--out", type=Path, help="default models/eye_state.tflite; not with --keep")
    shared.add_argument("--cache", type=Path, help="crop cache (.npz); default ~/.cache/eyespyd")
    shared.add_argument("--report", type=Path, help="folder for metrics and contact sheets")
    shared.add_argument("--no-patches", action="store_true", help="train on face crops only")
    shared.add_argument(
        "--exclude", type=Path, default=LABEL_NOISE, help="file names to leave out (label noise)"
    )
    training = p.add_argument_group("training")
    training.add_argument("--size", type=int, default=48, help="model input side in pixels")
    training.add_argument("--width", type=int, default=16, help="filters of the first layer")
    training.add_argument("--epochs", type=int, help="default 30 (--data), 20 (archive)")
    training.add_argument(
        "--per-class", type=int, help="samples per class per epoch: 5000 (--data), 4000 (archive)"
    )
    training.add_argument(
        "--val-fraction", type=float, help="held back: 0.15 (--data), 0.2 of the archive"
    )
    training.add_argument("--seed", type=int, default=0)
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m eyespyd.train",
        description=__doc__.split("\n")[0],
        parents=[arguments()],
    )
    return p.parse_args(argv)


def synthetic(
    eyes: EyeSet, size: int, kind: str, seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Validation eyes behind drawn clear glasses or sunglasses: robustness, not accuracy."""
    from eyespyd.train.augment import AugmentConfig, clear_glasses, jittered_crop, sunglasses

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
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Either mode, from parsed arguments; 2 for a wrong command line or no TensorFlow."""
    if importlib.util.find_spec("tensorflow") is None:
        print("eyespyd: training needs TensorFlow: pip install 'eyespyd[train]'", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.keep is not None or args.blink is not None:
        return run_archive(args)
    args.data = args.data or Path("../shared/data")
    if not args.data.is_dir():
        print(
            f"eyespyd: no data folder {args.data}: give --keep DIR --blink DIR to train on your"
            " own photos, or --data DIR",
            file=sys.stderr,
        )
        return 2
    return train_shipped(args)


def run_archive(args: argparse.Namespace) -> int:
    from eyespyd.errors import ConfigError, EyespydError
    from eyespyd.train import archive

    if args.keep is None or args.blink is None:
        print("eyespyd: give both --keep DIR and --blink DIR", file=sys.stderr)
        return 2
    for option, folder in (("--keep", args.keep), ("--blink", args.blink)):
        if not folder.is_dir():
            print(f"eyespyd: {option} {folder}: not a folder", file=sys.stderr)
            return 2
    if args.out is not None or args.report is not None:
        print(
            "eyespyd: --out and --report are for training on --data alone; a model trained on"
            " your photos goes to the data folder, with its card",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    try:
        return archive.run(
            args.keep,
            args.blink,
            research=args.data,
            research_cache=args.cache or default_cache(args.size),
            exclude=read_exclusions(args.exclude),
            patches=not args.no_patches,
            config_file=args.config,
            size=args.size,
            width=args.width,
            epochs=args.epochs or archive.EPOCHS,
            per_class=args.per_class or archive.PER_CLASS,
            held_back=args.val_fraction if args.val_fraction is not None else archive.HELD_BACK,
            seed=args.seed,
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # one line per problem, each naming the file
        return 2
    except EyespydError as exc:
        print(f"eyespyd: {exc}", file=sys.stderr)
        return 1


def train_shipped(args: argparse.Namespace) -> int:
    """The shipped model's training on a labelled data folder (models/EYE_MODEL.md)."""
    from eyespyd.train import data, fit
    from eyespyd.train.augment import AugmentConfig
    from eyespyd.train.data import CLOSED, OPEN
    from eyespyd.train.metrics import eye_metrics, face_pairs, format_table, photo_table

    args.out = args.out or Path("models/eye_state.tflite")
    args.epochs = args.epochs or 30
    args.per_class = args.per_class or 5000
    args.val_fraction = args.val_fraction if args.val_fraction is not None else 0.15
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
