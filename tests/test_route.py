"""route: groups travel whole, nothing is overwritten, and a failure leaves the inbox as it was."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eyespyd import route as route_module
from eyespyd.record import ROUTED, Ledger, recover
from eyespyd.route import TEMP_SUFFIX, Plan, RouteError, clean_temps, frame_group, primary, route

ROOT = Path(__file__).resolve().parents[1]


def put(folder: Path, name: str, data: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data if data is not None else f"contents of {name}".encode() * 100)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def keep(tmp_path: Path) -> Path:
    return tmp_path / "keep"


@pytest.fixture
def shot(inbox: Path) -> tuple[Path, ...]:
    """A RAW+JPEG shutter press with an Adobe and a darktable sidecar."""
    put(inbox, "IMG_0001.CR3", os.urandom(300_000))
    put(inbox, "IMG_0001.JPG", os.urandom(100_000))
    put(inbox, "IMG_0001.xmp")
    put(inbox, "IMG_0001.CR3.xmp")
    return frame_group(inbox / "IMG_0001.CR3")


def link_only_within_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the inbox and the destinations look like two filesystems."""
    real_link = os.link

    def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(src).parent != Path(dst).parent:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src), None, str(dst))
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)


def fail(monkeypatch: pytest.MonkeyPatch, name: str, code: int, when: Callable[..., bool]) -> None:
    """Make os.<name> raise OSError(code) for calls where `when(*args)` holds."""
    real = getattr(os, name)

    def failing(*args: Any, **kwargs: Any) -> Any:
        if when(*args):
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, failing)


# --- frame_group and primary ---------------------------------------------------------------------


def test_group_holds_twin_and_sidecars_of_both_naming_forms(inbox: Path) -> None:
    members = [
        "IMG_0001.CR3",
        "IMG_0001.JPG",
        "IMG_0001.xmp",
        "IMG_0001.CR3.xmp",
        "IMG_0001.CR3.pp3",
        "IMG_0001.CR3.dop",
        "IMG_0001.cos",
        "IMG_0001.jpg.XMP",
    ]
    strangers = [
        "IMG_00011.CR3",
        "img_0001.CR3",
        "IMG_0001.txt",
        "IMG_0001.CR3.bak",
        "IMG_0002.xmp",
        ".IMG_0001.CR3.0badc0de" + TEMP_SUFFIX,
    ]
    for name in members + strangers:
        put(inbox, name)
    (inbox / "IMG_0001.dop").mkdir()  # a folder never travels

    group = frame_group(inbox / "IMG_0001.CR3")

    assert [p.name for p in group] == [
        "IMG_0001.JPG",
        "IMG_0001.CR3",
        "IMG_0001.CR3.dop",
        "IMG_0001.CR3.pp3",
        "IMG_0001.CR3.xmp",
        "IMG_0001.cos",
        "IMG_0001.jpg.XMP",
        "IMG_0001.xmp",
    ]
    assert frame_group(inbox / "IMG_0001.JPG") == group


def test_a_lone_photo_is_a_group_of_one(inbox: Path) -> None:
    photo = put(inbox, "DSC_0042.NEF")
    put(inbox, "DSC_0043.NEF")
    assert frame_group(photo) == (photo,)


def test_a_vanished_photo_still_names_its_group(inbox: Path) -> None:
    assert frame_group(inbox / "IMG_0009.CR3") == (inbox / "IMG_0009.CR3",)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["IMG_0001.CR3", "IMG_0001.JPG"], "IMG_0001.JPG"),
        (["IMG_0001.HEIC", "IMG_0001.DNG"], "IMG_0001.DNG"),
        (["IMG_0001.HEIC", "IMG_0001.jpeg"], "IMG_0001.jpeg"),
        (["IMG_0001.xmp", "IMG_0001.HEIC"], "IMG_0001.HEIC"),
        (["IMG_0001.NEF"], "IMG_0001.NEF"),
    ],
)
def test_primary_is_the_cheapest_to_classify(names: list[str], expected: str) -> None:
    assert primary([Path(n) for n in names]).name == expected


# --- actions --------------------------------------------------------------------------------------


def test_move_takes_the_whole_group_and_leaves_the_inbox_empty(
    inbox: Path, keep: Path, shot: tuple[Path, ...]
) -> None:
    before = {p.name: sha(p) for p in shot}
    new = route(shot, keep, "move")
    assert [p.name for p in new] == [p.name for p in shot]
    assert all(p.parent == keep for p in new)
    assert {p.name: sha(p) for p in new} == before
    assert list(inbox.iterdir()) == []
    assert temps(keep) == []


def test_copy_makes_independent_files_and_leaves_the_sources(
    keep: Path, shot: tuple[Path, ...]
) -> None:
    new = route(shot, keep, "copy")
    for source, target in zip(shot, new, strict=True):
        assert source.exists()
        assert sha(source) == sha(target)
        assert source.stat().st_ino != target.stat().st_ino  # editing one leaves the other
        assert source.stat().st_mtime_ns == target.stat().st_mtime_ns


def test_hardlink_gives_the_same_files_a_second_name(keep: Path, shot: tuple[Path, ...]) -> None:
    new = route(shot, keep, "hardlink")
    for source, target in zip(shot, new, strict=True):
        assert source.exists()
        assert source.stat().st_ino == target.stat().st_ino


def test_tag_moves_nothing(keep: Path, shot: tuple[Path, ...]) -> None:
    plans: list[Plan] = []
    assert route(shot, keep, "tag", before=plans.append) == shot
    assert all(p.exists() for p in shot)
    assert not keep.exists()
    assert plans[0].targets == shot


def test_destination_folder_is_created_but_not_a_missing_parent(
    tmp_path: Path, shot: tuple[Path, ...]
) -> None:
    with pytest.raises(RouteError, match=r"parent folder .* does not exist"):
        route(shot, tmp_path / "unplugged" / "keep", "move")
    assert all(p.exists() for p in shot)


def test_an_unknown_action_is_a_programming_error(keep: Path, shot: tuple[Path, ...]) -> None:
    with pytest.raises(ValueError, match="unknown action"):
        route(shot, keep, "delete")


# --- never overwrite ------------------------------------------------------------------------------


def test_collision_renames_the_whole_group_and_never_overwrites(
    inbox: Path, keep: Path, shot: tuple[Path, ...]
) -> None:
    theirs = put(keep, "IMG_0001.CR3", b"another camera's IMG_0001")
    new = route(shot, keep, "move")
    assert [p.name for p in new] == [
        "IMG_0001-1.JPG",
        "IMG_0001-1.CR3",
        "IMG_0001-1.CR3.xmp",
        "IMG_0001-1.xmp",
    ]
    assert theirs.read_bytes() == b"another camera's IMG_0001"

    put(inbox, "IMG_0001.CR3", b"third")
    put(inbox, "IMG_0001.CR3.xmp", b"third's sidecar")
    again = route(frame_group(inbox / "IMG_0001.CR3"), keep, "move")
    assert [p.name for p in again] == ["IMG_0001-2.CR3", "IMG_0001-2.CR3.xmp"]
    assert (keep / "IMG_0001-1.CR3").read_bytes() != b"third"


def test_a_colliding_sidecar_alone_renames_the_group(keep: Path, shot: tuple[Path, ...]) -> None:
    put(keep, "IMG_0001.xmp", b"someone's ratings")
    new = route(shot, keep, "copy")
    assert {p.stem.split(".")[0] for p in new} == {"IMG_0001-1"}
    assert (keep / "IMG_0001.xmp").read_bytes() == b"someone's ratings"


def test_a_name_taken_after_planning_is_not_overwritten(keep: Path, shot: tuple[Path, ...]) -> None:
    def intruder(plan: Plan) -> None:
        plan.targets[1].write_bytes(b"written by another program meanwhile")

    with pytest.raises(RouteError, match="not overwritten"):
        route(shot, keep, "move", before=intruder)
    assert (keep / "IMG_0001.CR3").read_bytes() == b"written by another program meanwhile"
    assert all(p.exists() for p in shot)
    assert sorted(p.name for p in keep.iterdir()) == ["IMG_0001.CR3"]


# --- across filesystems, and without hard links ---------------------------------------------------


def test_across_filesystems_the_copy_is_byte_identical(
    monkeypatch: pytest.MonkeyPatch, inbox: Path, keep: Path, shot: tuple[Path, ...]
) -> None:
    link_only_within_a_folder(monkeypatch)
    before = {p.name: (sha(p), p.stat().st_mtime_ns) for p in shot}
    new = route(shot, keep, "move")
    assert {p.name: (sha(p), p.stat().st_mtime_ns) for p in new} == before
    assert list(inbox.iterdir()) == []
    assert temps(keep) == []


def test_hardlink_across_filesystems_falls_back_to_a_copy(
    monkeypatch: pytest.MonkeyPatch, keep: Path, shot: tuple[Path, ...]
) -> None:
    link_only_within_a_folder(monkeypatch)
    new = route(shot, keep, "hardlink")
    assert [sha(p) for p in new] == [sha(p) for p in shot]
    assert all(p.exists() for p in shot)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_a_real_second_filesystem(tmp_path: Path, shot: tuple[Path, ...]) -> None:
    if Path("/dev/shm").stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the tests' temporary folder")
    before = [sha(p) for p in shot]
    folder = Path("/dev/shm") / f"eyespyd-test-{os.getpid()}-{tmp_path.name}"
    try:
        new = route(shot, folder, "move")
        assert [sha(p) for p in new] == before
        assert not any(p.exists() for p in shot)
    finally:
        for p in folder.glob("*"):
            p.unlink()
        folder.rmdir()


def test_without_hard_links_a_copy_is_published_without_overwriting(
    monkeypatch: pytest.MonkeyPatch, inbox: Path, keep: Path, shot: tuple[Path, ...]
) -> None:
    # exFAT cards and some shares have no hard links at all: link fails with EPERM everywhere.
    fail(monkeypatch, "link", errno.EPERM, lambda *a: True)
    put(keep, "IMG_0001.JPG", b"theirs")
    before = [sha(p) for p in shot]
    new = route(shot, keep, "move")
    assert [p.name for p in new][:2] == ["IMG_0001-1.JPG", "IMG_0001-1.CR3"]
    assert [sha(p) for p in new] == before
    assert (keep / "IMG_0001.JPG").read_bytes() == b"theirs"
    assert list(inbox.iterdir()) == []
    assert temps(keep) == []


# --- failures leave the inbox as it was -----------------------------------------------------------


def assert_untouched(shot: tuple[Path, ...], hashes: list[str], keep: Path) -> None:
    assert [sha(p) for p in shot] == hashes
    assert not keep.exists() or list(keep.iterdir()) == []


def test_destination_unwritable_leaves_the_group_in_the_inbox(
    monkeypatch: pytest.MonkeyPatch, keep: Path, shot: tuple[Path, ...]
) -> None:
    hashes = [sha(p) for p in shot]
    keep.mkdir()
    # Tests run as root, whom chmod does not stop: make the folder refuse new names instead.
    fail(monkeypatch, "link", errno.EACCES, lambda src, dst, *a: Path(dst).parent == keep)
    with pytest.raises(RouteError) as caught:
        route(shot, keep, "move")
    assert str(caught.value) == f"routing IMG_0001.JPG to {keep}: permission denied"
    assert_untouched(shot, hashes, keep)


def test_copy_into_an_unwritable_folder_leaves_no_temporary_file(
    monkeypatch: pytest.MonkeyPatch, keep: Path, shot: tuple[Path, ...]
) -> None:
    hashes = [sha(p) for p in shot]
    keep.mkdir()
    fail(monkeypatch, "open", errno.EACCES, lambda path, *a: Path(path).parent == keep)
    with pytest.raises(RouteError, match="permission denied"):
        route(shot, keep, "copy")
    assert_untouched(shot, hashes, keep)


def test_disk_full_midway_withdraws_the_members_already_copied(
    monkeypatch: pytest.MonkeyPatch, keep: Path, shot: tuple[Path, ...]
) -> None:
    link_only_within_a_folder(monkeypatch)
    hashes = [sha(p) for p in shot]

    def writing_the_raw(fd: int, *args: Any) -> bool:
        # The JPEG (first in the group) fits; the disk fills up during the CR3.
        inode = os.fstat(fd).st_ino
        return keep.is_dir() and any(
            p.name.startswith(".IMG_0001.CR3.") and p.stat().st_ino == inode for p in keep.iterdir()
        )

    fail(monkeypatch, "write", errno.ENOSPC, writing_the_raw)
    with pytest.raises(RouteError) as caught:
        route(shot, keep, "move")
    assert str(caught.value) == f"routing IMG_0001.CR3 to {keep}: no space left on device"
    assert caught.value.path == shot[1]
    assert caught.value.reason == "no space left on device"
    assert_untouched(shot, hashes, keep)


def test_a_copy_that_reads_back_different_is_refused(
    monkeypatch: pytest.MonkeyPatch, keep: Path, shot: tuple[Path, ...]
) -> None:
    hashes = [sha(p) for p in shot]
    monkeypatch.setattr(route_module, "_read_back", lambda fd: (0, "bad sectors"))
    with pytest.raises(RouteError, match="does not match the original"):
        route(shot, keep, "copy")
    assert_untouched(shot, hashes, keep)


def test_a_vanished_source_is_a_clear_error(keep: Path, shot: tuple[Path, ...]) -> None:
    shot[2].unlink()
    with pytest.raises(RouteError) as caught:
        route(shot, keep, "move")
    assert str(caught.value) == (
        f"routing IMG_0001.CR3.xmp to {keep}: the file is no longer in the inbox"
    )
    assert all(p.exists() for p in shot if p != shot[2])


def test_a_source_that_changes_while_routing_is_not_removed(
    keep: Path, shot: tuple[Path, ...]
) -> None:
    def photographer_edits(plan: Plan) -> None:
        with shot[3].open("ab") as f:
            f.write(b"a rating added just now")

    with pytest.raises(RouteError, match="changed while it was being routed"):
        route(shot, keep, "move", before=photographer_edits)
    assert shot[3].read_bytes().endswith(b"a rating added just now")
    assert all(p.exists() for p in shot)
    assert list(keep.iterdir()) == []


def test_a_source_that_cannot_be_removed_withdraws_the_group(
    monkeypatch: pytest.MonkeyPatch, inbox: Path, keep: Path, shot: tuple[Path, ...]
) -> None:
    hashes = [sha(p) for p in shot]
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.parent == inbox:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(RouteError, match="cannot remove it from the inbox: permission denied"):
        route(shot, keep, "move")
    assert_untouched(shot, hashes, keep)


def test_a_failing_before_hook_touches_nothing(keep: Path, shot: tuple[Path, ...]) -> None:
    def refuse(plan: Plan) -> None:
        raise LookupError("already routed")

    with pytest.raises(LookupError):
        route(shot, keep, "move", before=refuse)
    assert all(p.exists() for p in shot)
    assert list(keep.iterdir()) == []


# --- temporary files ------------------------------------------------------------------------------


def test_stale_temporary_files_are_cleaned_but_not_live_or_foreign_ones(
    keep: Path, shot: tuple[Path, ...]
) -> None:
    stale = put(keep, ".IMG_0007.CR3.0123abcd" + TEMP_SUFFIX, b"half a copy")
    foreign = put(keep, ".IMG_0007.CR3" + TEMP_SUFFIX, b"not a name we make")
    dotfile = put(keep, ".DS_Store", b"finder")
    live = put(keep, ".IMG_0008.CR3.89abcdef" + TEMP_SUFFIX, b"being written")
    with live.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process is still writing it
        route(shot, keep, "move")
        assert not stale.exists()
        assert foreign.exists() and dotfile.exists() and live.exists()
    assert clean_temps(keep) == 1
    assert not live.exists()


# --- crash safety ---------------------------------------------------------------------------------

CHILD = """
import errno, os, sys
from dataclasses import dataclass
from pathlib import Path
from eyespyd.record import Ledger, route_and_record
from eyespyd.route import frame_group

real_link = os.link
def link(src, dst, *args, **kwargs):
    if Path(src).parent != Path(dst).parent:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
    return real_link(src, dst, *args, **kwargs)
os.link = link  # the inbox and keep/ on two filesystems

@dataclass(frozen=True)
class Result:
    path: Path
    verdict: str = "keep"
    score: float = 0.0
    reasons: tuple = ()
    faces: tuple = ()
    ms: float = 1.0
    error: None = None
    source: str = "test"

ledger = Ledger.open(Path(sys.argv[1]))
ledger.start_session("crash test")
group = frame_group(Path(sys.argv[2]))
print("ready", flush=True)
outcome = route_and_record(ledger, Result(group[0]), group, Path(sys.argv[3]), "move")
print(outcome.status, flush=True)
"""


@pytest.mark.slow
def test_killed_at_any_moment_no_frame_is_lost_and_recover_leaves_one(tmp_path: Path) -> None:
    contents = {
        "IMG_0001.JPG": os.urandom(3_000_000),
        "IMG_0001.CR3": os.urandom(24_000_000),
        "IMG_0001.xmp": b"<x:xmpmeta/>" * 100,
    }
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}

    def start(run: int) -> tuple[subprocess.Popen[str], Path, Path, Path]:
        inbox, keep = tmp_path / f"inbox{run}", tmp_path / f"keep{run}"
        for name, data in contents.items():
            put(inbox, name, data)
        keep.mkdir()
        db = tmp_path / f"ledger{run}.sqlite3"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), str(inbox / "IMG_0001.JPG"), str(keep)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        return child, inbox, keep, db

    # How long an uninterrupted route takes, so the kills land inside it.
    child, *_ = start(-1)
    began = time.monotonic()
    assert child.stdout is not None
    assert child.stdout.readline() == "routed\n"
    child.wait(timeout=60)
    child.stdout.close()
    duration = time.monotonic() - began

    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seen = set()
    for run in range(30):
        child, inbox, keep, db = start(run)
        time.sleep(rng.uniform(0, duration * 1.2))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert child.stdout is not None
        child.stdout.close()

        state = []
        for name, digest in hashes.items():
            whole = [p for p in (inbox / name, keep / name) if p.exists() and sha(p) == digest]
            assert whole, f"run {run}: {name} is nowhere whole"
            if (keep / name).exists():
                assert sha(keep / name) == digest, f"run {run}: a partial {name} in keep/"
            state.append(len(whole))
        seen.add((*state, len(temps(keep)) > 0))

        with Ledger.open(db) as ledger:
            recover(ledger)
            rows = ledger.frames()
        in_keep = sorted(p.name for p in keep.iterdir())
        in_inbox = sorted(p.name for p in inbox.iterdir())
        assert temps(keep) == [], f"run {run}"
        assert sorted([*in_keep, *in_inbox]) == sorted(contents), f"run {run}: not exactly one"
        assert in_keep == [] or in_inbox == [], f"run {run}: the group was split"
        for name, digest in hashes.items():
            assert sha(keep / name if in_keep else inbox / name) == digest
        if in_keep:
            assert [r.status for r in rows] == [ROUTED], f"run {run}"
        else:
            assert all(r.status != ROUTED for r in rows), f"run {run}"
            # What was rolled back is routed again, without a -1 name.
            with Ledger.open(db) as ledger:
                ledger.start_session("retry")
                group = frame_group(inbox / "IMG_0001.JPG")
                new = route(group, keep, "move")
                assert [p.name for p in new] == [p.name for p in group]  # no -1: nothing left
    # The kills landed in different phases of the route, not all before or all after it.
    assert len(seen) >= 2, seen
    print("kill outcomes (copies per member, temp left):", sorted(seen))
