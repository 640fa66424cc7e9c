"""Stand-ins for what the pipeline hands the ledger, so ledger, contact-sheet, correction and
calibration tests need no model: the same fields as pipeline.Result, FaceResult and eyes.FaceEyes,
with plain defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eyespyd.types import Face


@dataclass(frozen=True)
class Eye:
    closed: float
    hidden: float = 0.0


@dataclass(frozen=True)
class Eyes:
    right: Eye
    left: Eye
    is_face: bool = True


@dataclass(frozen=True)
class FaceResult:
    face: Face
    eyes: Eyes


@dataclass(frozen=True)
class Result:
    """The shape of pipeline.Result."""

    path: Path
    verdict: str = "keep"
    score: float = 0.1
    reasons: tuple[str, ...] = ("eyes open",)
    faces: tuple[FaceResult, ...] = field(default_factory=tuple)
    ms: float = 61.5
    error: str | None = None
    source: str = "PRVW box 1620x1080"
