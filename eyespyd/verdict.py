"""verdict: faces and their eye states -> keep, blink or review, with a score and the reasons.

A pure function: no I/O, no model. The rules a photographer expects:
- the worst prominent face decides a group photo; faces much smaller than the largest (people in
  the background) do not count, nor, beside real faces, a detection the face mesh saw no face in
  (a glass or a lamp: it could otherwise send a group to review, or be the "largest" face);
- a photo goes to blink only on positive evidence of closed eyes; no face, hidden eyes (sunglasses,
  profile) and scores close to the threshold go to keep or review as configured, never to blink;
- a face's score is the mean closed probability of its two eyes; it is a blink at the threshold,
  and a question for the photographer (review) in the margin just below it;
- a wink, or a closed eye whose partner cannot be seen, is a question for the photographer (review)
  unless one closed eye is configured to be enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eyespyd.config import VerdictSettings
from eyespyd.types import Face

KEEP, BLINK, REVIEW = "keep", "blink", "review"
HIDDEN_AT = 0.5  # an eye whose "not visible" probability reaches this gives no evidence


class EyeReading(Protocol):
    @property
    def closed(self) -> float: ...

    @property
    def hidden(self) -> float: ...


class FaceReading(Protocol):
    @property
    def right(self) -> EyeReading: ...

    @property
    def left(self) -> EyeReading: ...

    @property
    def is_face(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: str  # keep, blink or review
    score: float  # blink evidence of the deciding face, 0..1 (0 when no face counts)
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _FaceCall:
    verdict: str
    score: float
    reason: str


def decide(
    faces: Sequence[Face], eyes: Sequence[FaceReading], settings: VerdictSettings
) -> Decision:
    """The verdict for one photo; `eyes[i]` belongs to `faces[i]`."""
    if len(faces) != len(eyes):
        raise ValueError(f"{len(faces)} faces but {len(eyes)} eye readings")
    if not faces:
        return Decision(settings.no_face, 0.0, ("no face found",))

    # Detections the mesh saw no face in count only when nothing else does, and then as faces
    # whose eyes are not visible (the mesh can miss a real face turned towards a profile).
    counted = [i for i, reading in enumerate(eyes) if reading.is_face] or range(len(faces))
    largest = max(faces[i].width for i in counted)
    calls = []
    not_faces = []
    for number, (face, reading) in enumerate(zip(faces, eyes, strict=True), start=1):
        if number - 1 not in counted:
            not_faces.append(f"face {number}: not a face (the face mesh sees none there)")
            continue
        if face.width < settings.min_face_size * largest:
            continue  # a background face: not the subject of the photo
        call = _judge_face(reading, settings)
        share = f"{face.width / largest:.0%} of the largest" if len(counted) > 1 else "the face"
        calls.append(_FaceCall(call.verdict, call.score, f"face {number} ({share}): {call.reason}"))

    # The worst prominent face decides: blink over review over hidden-eyes over keep.
    for wanted in (BLINK, REVIEW, "hidden", KEEP):
        deciding = [c for c in calls if c.verdict == wanted]
        if deciding:
            worst = max(deciding, key=lambda c: c.score)
            verdict = settings.eyes_not_visible if wanted == "hidden" else wanted
            others = tuple(c.reason for c in calls if c is not worst)
            return Decision(verdict, round(worst.score, 4), (worst.reason, *others, *not_faces))
    raise AssertionError("the largest face is always prominent")  # pragma: no cover


def _judge_face(reading: FaceReading, settings: VerdictSettings) -> _FaceCall:
    eyes = [("right", reading.right), ("left", reading.left)]
    visible = [(side, eye.closed) for side, eye in eyes if eye.hidden < HIDDEN_AT]
    if not visible:
        return _FaceCall("hidden", 0.0, "eyes not visible")

    described = ", ".join(f"{side} eye {closed:.2f} closed" for side, closed in visible)
    review_from = settings.threshold - settings.review_margin

    if len(visible) == 1 and not settings.one_eye_is_enough:
        # One eye hidden (profile, hair, a hand): a closed visible eye is likely but unproven.
        closed = visible[0][1]
        if closed > review_from:
            return _FaceCall(REVIEW, closed, f"only one eye visible; {described}")
        return _FaceCall(KEEP, closed, f"only one eye visible; {described}")

    closed_probs = [closed for _, closed in visible]
    # The mean of the two eyes, not the more open one: a blink often leaves one lid a little
    # higher, and the model reads a half-closed eye near 0.5 (validation recall 0.93 -> 0.97 at
    # the same false blinks: bench/accuracy.py). With one eye enough, the more closed one counts.
    score = max(closed_probs) if settings.one_eye_is_enough else sum(closed_probs) / 2
    if score >= settings.threshold:
        return _FaceCall(BLINK, score, described)
    if score > review_from:
        return _FaceCall(REVIEW, score, f"uncertain: {described}")
    if max(closed_probs) >= settings.threshold:
        return _FaceCall(REVIEW, max(closed_probs), f"one eye closed: {described}")
    return _FaceCall(KEEP, score, described)
