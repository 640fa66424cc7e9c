"""verdict: the rules a photographer expects, on hand-made faces and eye readings."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from eyespyd.config import VerdictSettings
from eyespyd.types import Face
from eyespyd.verdict import Decision, decide

SETTINGS = VerdictSettings(
    threshold=0.55,
    review_margin=0.15,
    one_eye_is_enough=False,
    min_face_size=0.5,
    no_face="keep",
    eyes_not_visible="review",
)


@dataclass(frozen=True)
class Eye:
    closed: float
    hidden: float = 0.0


@dataclass(frozen=True)
class Eyes:
    right: Eye
    left: Eye
    is_face: bool = True


def face(width: float, x: float = 0.0) -> Face:
    kp = ((x + 0.3 * width, 40.0),) * 6
    return Face(box=(x, 0.0, x + width, width), score=0.9, keypoints=kp)  # type: ignore[arg-type]


def eyes(right: float, left: float, hidden: tuple[float, float] = (0.0, 0.0)) -> Eyes:
    return Eyes(Eye(right, hidden[0]), Eye(left, hidden[1]))


def one(right: float, left: float, **changes: object) -> Decision:
    return decide([face(200)], [eyes(right, left)], replace(SETTINGS, **changes))  # type: ignore[arg-type]


def test_both_eyes_closed_is_a_blink_scored_by_their_mean() -> None:
    decision = one(0.97, 0.91)
    assert decision.verdict == "blink"
    assert decision.score == pytest.approx(0.94)
    assert decision.reasons == ("face 1 (the face): right eye 0.97 closed, left eye 0.91 closed",)


def test_one_closed_and_one_half_closed_eye_is_a_blink() -> None:
    assert one(0.96, 0.43).verdict == "blink"  # mean 0.695


def test_the_threshold_is_the_blink_line_and_the_margin_lies_below_it() -> None:
    assert one(0.55, 0.55).verdict == "blink"
    assert one(0.54, 0.54).verdict == "review"
    assert one(0.41, 0.41).verdict == "review"
    assert one(0.40, 0.40).verdict == "keep"
    assert one(0.54, 0.54, review_margin=0.0).verdict == "keep"


def test_open_eyes_are_kept() -> None:
    assert one(0.02, 0.1).verdict == "keep"


def test_scores_just_below_the_threshold_go_to_review() -> None:
    decision = one(0.45, 0.5)
    assert decision.verdict == "review"
    assert decision.reasons[0].startswith("face 1 (the face): uncertain")


def test_a_wink_is_reviewed_unless_one_eye_is_enough() -> None:
    assert one(0.95, 0.05).verdict == "review"  # mean 0.50: in the margin
    assert (
        one(0.95, 0.02, review_margin=0.0)
        .reasons[0]
        .startswith("face 1 (the face): one eye closed")
    )
    assert one(0.95, 0.05, one_eye_is_enough=True).verdict == "blink"


def test_no_face_goes_where_configured_and_never_to_blink() -> None:
    assert decide([], [], SETTINGS) == Decision("keep", 0.0, ("no face found",))
    assert decide([], [], replace(SETTINGS, no_face="review")).verdict == "review"


def test_hidden_eyes_go_where_configured_and_never_to_blink() -> None:
    sunglasses = eyes(0.99, 0.99, hidden=(0.9, 0.95))
    assert decide([face(200)], [sunglasses], SETTINGS).verdict == "review"
    keep_hidden = replace(SETTINGS, eyes_not_visible="keep")
    assert decide([face(200)], [sunglasses], keep_hidden).verdict == "keep"


def test_one_visible_closed_eye_is_reviewed_not_blinked() -> None:
    profile = eyes(0.98, 0.5, hidden=(0.0, 0.9))
    decision = decide([face(200)], [profile], SETTINGS)
    assert decision.verdict == "review"
    assert "only one eye visible" in decision.reasons[0]
    enough = replace(SETTINGS, one_eye_is_enough=True)
    assert decide([face(200)], [profile], enough).verdict == "blink"


def test_the_worst_prominent_face_decides_a_group_photo() -> None:
    group = [face(200, 0), face(180, 300), face(190, 600)]
    readings = [eyes(0.01, 0.02), eyes(0.95, 0.92), eyes(0.1, 0.05)]
    decision = decide(group, readings, SETTINGS)
    assert decision.verdict == "blink"
    assert decision.reasons[0].startswith("face 2 (90% of the largest)")
    assert len(decision.reasons) == 3


def test_background_faces_are_ignored() -> None:
    group = [face(400, 0), face(100, 500)]  # the second is a quarter of the largest
    readings = [eyes(0.01, 0.02), eyes(0.99, 0.99)]
    decision = decide(group, readings, SETTINGS)
    assert decision.verdict == "keep"
    assert len(decision.reasons) == 1
    assert decide(group, readings, replace(SETTINGS, min_face_size=0.2)).verdict == "blink"


def test_a_blink_outranks_another_face_with_sunglasses() -> None:
    group = [face(200, 0), face(200, 300)]
    readings = [eyes(0.9, 0.9, hidden=(0.99, 0.99)), eyes(0.96, 0.97)]
    assert decide(group, readings, SETTINGS).verdict == "blink"


def test_mismatched_inputs_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="2 faces but 1 eye readings"):
        decide([face(10), face(10)], [eyes(0, 0)], SETTINGS)


def not_a_face(right: float = 0.0, left: float = 0.0) -> Eyes:
    """What the pipeline reads of a detection the face mesh saw no face in (a glass)."""
    return Eyes(Eye(right, 1.0), Eye(left, 1.0), is_face=False)


def test_a_glass_detected_as_the_largest_face_neither_decides_nor_hides_the_subjects() -> None:
    # Without the mesh's word the glass, twice as wide, would make both people background
    # faces and send the photo to review for eyes not visible.
    faces = [face(400), face(190, x=500), face(180, x=800)]
    readings = [not_a_face(), eyes(0.95, 0.9), eyes(0.02, 0.03)]

    decision = decide(faces, readings, SETTINGS)  # type: ignore[arg-type]

    assert decision.verdict == "blink"
    assert decision.reasons[0].startswith("face 2 (100% of the largest)")
    assert decision.reasons[-1] == "face 1: not a face (the face mesh sees none there)"


def test_a_group_of_open_eyes_is_kept_whatever_else_was_detected() -> None:
    faces = [face(200), face(180, x=300), face(150, x=600)]
    readings = [eyes(0.02, 0.01), not_a_face(), eyes(0.05, 0.03)]
    assert decide(faces, readings, SETTINGS).verdict == "keep"  # type: ignore[arg-type]


def test_a_lone_detection_the_mesh_saw_no_face_in_goes_where_hidden_eyes_go() -> None:
    # It may be a real face turned towards a profile: never a blink, and not dropped unseen.
    for where in ("review", "keep"):
        settings = replace(SETTINGS, eyes_not_visible=where)
        decision = decide([face(200)], [not_a_face()], settings)  # type: ignore[list-item]
        assert decision.verdict == where
        assert decision.reasons == ("face 1 (the face): eyes not visible",)
