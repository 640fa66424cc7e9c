"""Eye-level and photo-level numbers for the eye-state model (numpy only)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eyespyd.train.data import CLOSED, OPEN, SOURCE_FACE, EyeSet

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EyeMetrics:
    eyes: int
    accuracy: float  # closed iff p(closed) > 0.5, on real open and closed eyes
    open_called_closed: int
    closed_called_open: int
    called_hidden: int  # real, visible eyes the model calls hidden (argmax)


@dataclass(frozen=True, slots=True)
class PhotoRow:
    rule: str  # "both", "either" or "mean"
    threshold: float
    recall: float  # closed faces called blink
    false_blink_rate: float  # open faces called blink
    precision: float
    f1: float
    missed: int
    false_blinks: int


def eye_metrics(probs: FloatArray, labels: npt.NDArray[np.int64]) -> EyeMetrics:
    real = (labels == OPEN) | (labels == CLOSED)
    called = probs[real, 1] > 0.5
    truth = labels[real] == CLOSED
    return EyeMetrics(
        eyes=int(real.sum()),
        accuracy=float((called == truth).mean()),
        open_called_closed=int((called & ~truth).sum()),
        closed_called_open=int((~called & truth).sum()),
        called_hidden=int((probs[real].argmax(axis=1) == 2).sum()),
    )


def face_pairs(
    eyes: EyeSet, probs: FloatArray
) -> tuple[list[str], FloatArray, npt.NDArray[np.bool_]]:
    """Per face: its file, p(closed) of the right and left eye (F x 2), and whether it is closed."""
    by_path: dict[str, dict[str, float]] = defaultdict(dict)
    label: dict[str, int] = {}
    for i in np.flatnonzero(eyes.source == SOURCE_FACE):
        by_path[str(eyes.path[i])][str(eyes.eye[i])] = float(probs[i, 1])
        label[str(eyes.path[i])] = int(eyes.label[i])
    paths = sorted(p for p, e in by_path.items() if len(e) == 2)
    pairs = np.array([[by_path[p]["R"], by_path[p]["L"]] for p in paths], np.float32)
    closed = np.array([label[p] == CLOSED for p in paths], bool)
    return paths, pairs.reshape(-1, 2), closed


def photo_row(pairs: FloatArray, closed: npt.NDArray[np.bool_], rule: str, t: float) -> PhotoRow:
    # "both": the less closed eye decides; "either": the more closed one; "mean": the average.
    score = {"both": pairs.min(axis=1), "either": pairs.max(axis=1), "mean": pairs.mean(axis=1)}
    blink = score[rule] > t
    tp = int((blink & closed).sum())
    fp = int((blink & ~closed).sum())
    fn = int((~blink & closed).sum())
    recall = tp / max(1, tp + fn)
    precision = tp / max(1, tp + fp)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return PhotoRow(rule, t, recall, fp / max(1, int((~closed).sum())), precision, f1, fn, fp)


def photo_table(
    pairs: FloatArray, closed: npt.NDArray[np.bool_], thresholds: tuple[float, ...]
) -> list[PhotoRow]:
    rules = ("both", "either", "mean")
    return [photo_row(pairs, closed, rule, t) for rule in rules for t in thresholds]


def format_table(rows: list[PhotoRow]) -> str:
    lines = [
        "| rule | t | blink recall | false blinks (of open) | precision | F1 | missed | false |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.rule} | {r.threshold:.2f} | {r.recall:.4f} | {r.false_blink_rate:.4f} "
            f"| {r.precision:.4f} | {r.f1:.4f} | {r.missed} | {r.false_blinks} |"
        )
    return "\n".join(lines)
