"""record: the ledger round-trips, skips what it routed, recovers every crash state, reports."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from eyespyd.record import (
    FAILED,
    INTERRUPTED,
    ROUTED,
    ROUTING,
    SKIPPED,
    AlreadyRoutedError,
    Ledger,
    LedgerError,
    Tally,
    recover,
    report,
    report_json,
    route_and_record,
)
from eyespyd.route import TEMP_SUFFIX, Member, Plan, RouteError, frame_group, route
from eyespyd.types import Face
from tests.fakes import Eye, Eyes, FaceResult, Result

FACE = FaceResult(
    Face(box=(10.0, 20.0, 110.0, 140.0), score=0.97, keypoints=((40.0, 60.0),) * 6),
    Eyes(right=Eye(0.91), left=Eye(0.88, hidden=0.02)),
)


class StopError(Exception):
    """Raised by a before hook to stop route right after begin(): a kill's 'routing' row."""


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger.open(tmp_path / "state" / "ledger.sqlite3") as opened:
        opened.start_session("/etc/eyespyd.yaml")
        yield opened


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def blink(tmp_path: Path) -> Path:
    return tmp_path / "blink"


def shoot(inbox: Path, stem: str = "IMG_0001") -> tuple[Path, ...]:
    (inbox / f"{stem}.CR3").write_bytes(os.urandom(200_000))
    (inbox / f"{stem}.JPG").write_bytes(os.urandom(50_000))
    (inbox / f"{stem}.CR3.xmp").write_bytes(b"<x:xmpmeta/>")
    return frame_group(inbox / f"{stem}.CR3")


def key(path: Path) -> tuple[Path, int, int]:
    st = path.stat()
    return path, st.st_size, st.st_mtime_ns


def interrupted(ledger: Ledger, group: tuple[Path, ...], dest: Path, action: str = "move") -> Plan:
    """A 'routing' row as a kill right after begin() leaves it; the plan it recorded."""
    plans: list[Plan] = []

    def begin_then_die(plan: Plan) -> None:
        ledger.begin(Result(group[0]), plan)
        plans.append(plan)
        raise StopError

    with pytest.raises(StopError):
        route(group, dest, action, before=begin_then_die)
    return plans[0]


def status(ledger: Ledger) -> list[str]:
    return [f.status for f in ledger.frames()]


# --- rows -----------------------------------------------------------------------------------------


def test_a_routed_frame_round_trips(ledger: Ledger, inbox: Path, blink: Path) -> None:
    group = shoot(inbox)
    result = Result(group[0], "blink", 0.91, ("eyes closed: face 1",), (FACE,))
    outcome = route_and_record(ledger, result, group, blink, "move")
    assert outcome.status == ROUTED
    assert outcome.targets == tuple(blink / p.name for p in group)

    [frame] = ledger.frames()
    assert frame.session == ledger.session
    assert (frame.path, frame.verdict, frame.score) == (group[0], "blink", 0.91)
    assert frame.reasons == ("eyes closed: face 1",)
    assert frame.faces == (
        {
            "box": [10.0, 20.0, 110.0, 140.0],
            "score": 0.97,
            "keypoints": [[40.0, 60.0]] * 6,
            "eyes": {"left": 0.88, "right": 0.91, "left_hidden": 0.02, "right_hidden": 0.0},
            "is_face": True,
        },
    )
    assert (frame.ms, frame.pixels, frame.decode_error) == (61.5, "PRVW box 1620x1080", None)
    assert (frame.action, frame.destination, frame.status) == ("move", blink, ROUTED)
    assert frame.sources == group and frame.targets == outcome.targets
    assert frame.route_ms is not None and frame.route_ms >= 0
    assert ledger.frame(frame.id) == frame


def test_the_ledger_survives_reopening(tmp_path: Path, inbox: Path, blink: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    group = shoot(inbox)
    with Ledger.open(path) as ledger:
        ledger.start_session("first")
        route_and_record(ledger, Result(group[0]), group, blink, "copy")
        before = ledger.frames()
    with Ledger.open(path) as ledger:
        assert ledger.frames() == before
        assert [s.config for s in ledger.sessions()] == ["first"]
        assert ledger.already_routed(*key(group[0]))
        assert ledger.start_session("second") == 2


def test_default_location_is_the_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    with Ledger.open() as ledger:
        assert ledger.path == tmp_path / "state" / "ledger.sqlite3"
    assert ledger.path.is_file()
    with sqlite3.connect(ledger.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_missing_ledger_is_an_error_when_not_creating(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match=r"no ledger at .*has not routed anything yet"):
        Ledger.open(tmp_path / "none.sqlite3", create=False)


def test_a_ledger_from_a_newer_eyespyd_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(LedgerError, match="newer eyespyd"):
        Ledger.open(path)


# --- idempotence ----------------------------------------------------------------------------------


def test_already_routed_matches_path_size_and_mtime_of_any_member(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    assert not ledger.already_routed(*key(group[0]))
    route_and_record(ledger, Result(group[0]), group, blink, "copy")
    path, size, mtime_ns = key(group[0])
    assert ledger.already_routed(path, size, mtime_ns)
    assert ledger.already_routed(*key(group[1]))  # the CR3 twin, seen alone by a rescan
    assert not ledger.already_routed(path, size + 1, mtime_ns)
    assert not ledger.already_routed(path, size, mtime_ns + 1)
    assert not ledger.already_routed(inbox / "IMG_0002.JPG", size, mtime_ns)


def test_a_frame_is_never_routed_twice(ledger: Ledger, inbox: Path, blink: Path) -> None:
    group = shoot(inbox)
    assert route_and_record(ledger, Result(group[0]), group, blink, "copy").status == ROUTED
    assert route_and_record(ledger, Result(group[0]), group, blink, "copy").status == SKIPPED
    assert sorted(p.name for p in blink.iterdir()) == sorted(p.name for p in group)
    with pytest.raises(AlreadyRoutedError):
        interrupted(ledger, group, blink, "copy")


def test_a_changed_file_is_a_new_frame(ledger: Ledger, inbox: Path, blink: Path) -> None:
    group = shoot(inbox)
    route_and_record(ledger, Result(group[0]), group, blink, "tag")
    with group[0].open("ab") as f:
        f.write(b"re-exported")
    assert not ledger.already_routed(*key(group[0]))


def test_a_route_error_is_recorded_and_logged_once_per_session(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    real_link = os.link

    def full(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst).parent == blink:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", full)
    first = route_and_record(ledger, Result(group[0]), group, blink, "move")
    assert (first.status, first.log_error) == (FAILED, True)
    assert isinstance(first.error, RouteError)
    assert str(first.error) == f"routing IMG_0001.JPG to {blink}: no space left on device"
    assert not ledger.already_routed(*key(group[0]))  # so the next rescan retries it
    again = route_and_record(ledger, Result(group[0]), group, blink, "move")
    assert (again.status, again.log_error) == (FAILED, False)
    assert status(ledger) == [FAILED]
    ledger.start_session("restarted")
    assert route_and_record(ledger, Result(group[0]), group, blink, "move").log_error

    monkeypatch.setattr(os, "link", real_link)  # space was freed
    assert route_and_record(ledger, Result(group[0]), group, blink, "move").status == ROUTED
    assert status(ledger) == [ROUTED]
    assert report_json(ledger)["counts"]["errors"] == 0


def test_an_error_before_any_plan_is_recorded_too(
    ledger: Ledger, inbox: Path, tmp_path: Path
) -> None:
    group = shoot(inbox)
    outcome = route_and_record(ledger, Result(group[0]), group, tmp_path / "x" / "blink", "move")
    assert outcome.status == FAILED and outcome.log_error
    [frame] = ledger.frames()
    assert frame.status == FAILED and "does not exist" in (frame.route_error or "")


def test_concurrent_writes_from_four_threads_lose_no_row(ledger: Ledger, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                source = tmp_path / f"w{n}" / f"IMG_{i:04}.JPG"
                member = Member(
                    source, tmp_path / "keep" / source.name, 1000 + i, i, 1, n * 100 + i
                )
                plan = Plan("copy", tmp_path / "keep", (member,))
                ledger.finish(ledger.begin(Result(source), plan), route_ms=1.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert status(ledger) == [ROUTED] * 200
    assert len({f.path for f in ledger.frames()}) == 200


# --- recover: every state a kill can leave --------------------------------------------------------


def test_recover_a_kill_before_anything_was_placed(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    interrupted(ledger, group, blink)
    assert ledger.already_routed(*key(group[0]))  # 'routing' until recovered
    [settled] = recover(ledger)
    assert (settled.status, settled.removed) == (FAILED, ())
    assert str(settled) == f"recovered {group[0]}: interrupted, it will be routed again"
    assert all(p.exists() for p in group)
    assert ledger.frames()[0].route_error == INTERRUPTED
    assert route_and_record(ledger, Result(group[0]), group, blink, "move").status == ROUTED


def test_recover_a_kill_after_linking_before_removing_sources(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink)
    for m in plan.members:
        os.link(m.source, m.target)
    [settled] = recover(ledger)
    assert settled.status == ROUTED and settled.removed == group
    assert str(settled) == (
        f"recovered {group[0]}: it had been routed; removed 3 duplicate(s) from the inbox"
    )
    assert not any(p.exists() for p in group)
    assert all(p.exists() for p in plan.targets)
    assert status(ledger) == [ROUTED]


def test_recover_a_kill_after_copying_across_filesystems(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    contents = [p.read_bytes() for p in group]
    plan = interrupted(ledger, group, blink)
    for m in plan.members:
        m.target.write_bytes(m.source.read_bytes())  # a complete copy, another inode
    recover(ledger)
    assert not any(p.exists() for p in group)
    assert [p.read_bytes() for p in plan.targets] == contents
    assert status(ledger) == [ROUTED]


def test_recover_a_kill_after_the_sources_were_removed(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink)
    for m in plan.members:
        os.link(m.source, m.target)
        m.source.unlink()
    assert recover(ledger)[0].removed == ()
    assert all(p.exists() for p in plan.targets)
    assert status(ledger) == [ROUTED]


def test_recover_a_kill_in_the_middle_of_a_group_rolls_it_back(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink)
    os.link(plan.members[0].source, plan.members[0].target)  # the JPEG placed, not the CR3
    temp = blink / f".{group[1].name}.0123abcd{TEMP_SUFFIX}"
    temp.write_bytes(group[1].read_bytes()[:1000])  # the CR3 half copied
    [settled] = recover(ledger)
    assert (settled.status, settled.removed) == (FAILED, (plan.members[0].target,))
    assert all(p.exists() for p in group)
    assert list(blink.iterdir()) == []
    assert status(ledger) == [FAILED]


def test_recover_deletes_nothing_it_cannot_prove_a_duplicate(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink)
    for m in plan.members:
        os.link(m.source, m.target)
    plan.members[1].target.unlink()
    plan.members[1].target.write_bytes(b"same name, other bytes")  # not ours, not a duplicate
    recover(ledger)
    assert all(p.exists() for p in group)
    assert plan.members[1].target.read_bytes() == b"same name, other bytes"
    assert status(ledger) == [FAILED]


def test_recover_removes_an_empty_name_reservation(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink)
    plan.members[0].target.write_bytes(b"")  # killed between reserving the name and renaming
    recover(ledger)
    assert list(blink.iterdir()) == []
    assert all(p.exists() for p in group)


def test_recover_keeps_a_new_file_that_took_the_source_name(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink)
    for m in plan.members:
        os.link(m.source, m.target)
        m.source.unlink()
    group[0].write_bytes(b"a new photo with an old name")
    assert recover(ledger)[0].removed == ()
    assert group[0].read_bytes() == b"a new photo with an old name"
    assert all(p.exists() for p in plan.targets)
    assert status(ledger) == [ROUTED]
    assert not ledger.already_routed(*key(group[0]))  # the new photo will be routed


def test_recover_with_copy_action_leaves_the_sources(
    ledger: Ledger, inbox: Path, blink: Path
) -> None:
    group = shoot(inbox)
    plan = interrupted(ledger, group, blink, "copy")
    for m in plan.members:
        m.target.write_bytes(m.source.read_bytes())
    recover(ledger)
    assert all(p.exists() for p in group + plan.targets)
    assert status(ledger) == [ROUTED]
    assert ledger.already_routed(*key(group[0]))


# --- report ---------------------------------------------------------------------------------------


def session_of_four(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, inbox: Path, tmp_path: Path
) -> None:
    folders = {v: tmp_path / v for v in ("keep", "blink", "review")}
    shots = [shoot(inbox, f"IMG_000{i}") for i in range(1, 5)]
    results = [
        Result(shots[0][0], "keep", 0.05, ("eyes open",)),
        Result(shots[1][0], "blink", 0.93, ("eyes closed: face 1",), (FACE,)),
        Result(shots[2][0], "review", 0.55, ("one eye closed (a wink?)",)),
        Result(shots[3][0], "blink", 0.88, ("eyes closed: face 2",)),
    ]
    for group, result in zip(shots[:3], results, strict=False):
        route_and_record(ledger, result, group, folders[result.verdict], "move")
    real_link = os.link

    def denied(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "link", denied)
    route_and_record(ledger, results[3], shots[3], folders["blink"], "move")
    monkeypatch.setattr(os, "link", real_link)


def test_report_counts_verdicts_and_lists_blinks_reviews_and_errors(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, inbox: Path, tmp_path: Path
) -> None:
    session_of_four(monkeypatch, ledger, inbox, tmp_path)
    text = report(ledger)
    first, rest = text.split("\n", 1)
    assert re.fullmatch(
        r"Session 1, started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, configuration /etc/eyespyd.yaml", first
    )
    assert rest == (
        "4 frames: 1 keep, 1 blink, 1 review, 1 error\n"
        "\n"
        "blink (1):\n"
        f"  0.93  {tmp_path}/blink/IMG_0002.JPG  (eyes closed: face 1)\n"
        "\n"
        "review (1):\n"
        f"  0.55  {tmp_path}/review/IMG_0003.JPG  (one eye closed (a wink?))\n"
        "\n"
        "errors (1):\n"
        f"  routing IMG_0004.JPG to {tmp_path}/blink: permission denied\n"
    )


def test_report_json_carries_the_same_data(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, inbox: Path, tmp_path: Path
) -> None:
    session_of_four(monkeypatch, ledger, inbox, tmp_path)
    data = report_json(ledger)
    assert data["session"]["id"] == 1 and data["frames"] == 4
    assert data["counts"] == {"keep": 1, "blink": 1, "review": 1, "errors": 1, "in_progress": 0}
    assert data["blink"] == [
        {
            "path": str(inbox / "IMG_0002.JPG"),
            "destination": str(tmp_path / "blink" / "IMG_0002.JPG"),
            "score": 0.93,
            "reasons": ["eyes closed: face 1"],
            "action": "move",
        }
    ]
    assert data["errors"][0]["path"] == str(inbox / "IMG_0004.JPG")


def test_report_shows_the_latest_session_unless_told(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, inbox: Path, tmp_path: Path
) -> None:
    session_of_four(monkeypatch, ledger, inbox, tmp_path)
    ledger.start_session("/etc/eyespyd.yaml")
    assert report_json(ledger)["frames"] == 0
    assert "0 frames: 0 keep, 0 blink, 0 review, 0 errors" in report(ledger)
    assert report_json(ledger, 1)["frames"] == 4
    with pytest.raises(LedgerError, match="no session 7"):
        report(ledger, 7)


def test_report_before_any_session_says_so(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.sqlite3") as ledger, pytest.raises(LedgerError, match="not run"):
        report(ledger)


def test_routing_rows_count_as_in_progress(ledger: Ledger, inbox: Path, blink: Path) -> None:
    interrupted(ledger, shoot(inbox), blink)
    assert report_json(ledger)["counts"]["in_progress"] == 1
    assert ", 1 in progress" in report(ledger)
    assert status(ledger) == [ROUTING]


def test_tally_and_the_latest_flagged_frames_come_from_sqlite(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, inbox: Path, tmp_path: Path
) -> None:
    # What a contact sheet reads instead of every frame of a long session.
    session_of_four(monkeypatch, ledger, inbox, tmp_path)
    tally = ledger.tally(1)
    assert tally == Tally({"keep": 1, "blink": 1, "review": 1}, failed=1)
    assert tally.frames == 4
    blink = str(tmp_path / "blink")
    assert sorted(ledger.destinations(1)) == sorted(
        str(tmp_path / d) for d in ("blink", "keep", "review")
    )
    assert ledger.tally(1, [blink]) == Tally({"blink": 1}, failed=1)
    assert ledger.tally(2) == Tally({})

    flagged = ledger.frames(1, ROUTED, verdicts=("blink", "review"))
    assert [f.path.name for f in flagged] == ["IMG_0002.JPG", "IMG_0003.JPG"]
    latest = ledger.frames(1, ROUTED, verdicts=("blink", "review"), latest=1)
    assert [f.path.name for f in latest] == ["IMG_0003.JPG"]
    assert [f.path.name for f in ledger.frames(1, destinations=[blink])] == [
        "IMG_0002.JPG",
        "IMG_0004.JPG",
    ]
