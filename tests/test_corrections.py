"""corrections: frames the photographer moves between real folders are noticed and recorded once."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eyespyd.config import FolderSettings
from eyespyd.corrections import (
    FALSE_BLINK,
    LABEL,
    MISSED_BLINK,
    UNDONE,
    CorrectionWatcher,
    describe,
    destinations,
    kind,
    scan_for_corrections,
)
from eyespyd.record import Correction, Ledger, route_and_record
from eyespyd.route import frame_group
from tests.fakes import Result

WAIT = 10.0  # seconds to wait for the watcher before failing; it normally takes well under one


@pytest.fixture
def folder(tmp_path: Path) -> FolderSettings:
    f = FolderSettings(
        inbox=tmp_path / "inbox",
        keep=tmp_path / "keep",
        blink=tmp_path / "blink",
        review=tmp_path / "review",
        recursive=False,
        polling=False,
    )
    for path in (f.inbox, f.keep, f.blink, f.review):
        path.mkdir()
    return f


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.sqlite3") as opened:
        opened.start_session("test")
        yield opened


@pytest.fixture
def watcher(folder: FolderSettings, ledger: Ledger) -> Iterator[CorrectionWatcher]:
    running = CorrectionWatcher([folder], ledger)
    running.start()
    yield running
    running.stop()
    assert not running._thread.is_alive()


_sizes = iter(range(40_000, 10_000_000, 1_013))  # a different size for every photo


def routed(
    ledger: Ledger,
    folder: FolderSettings,
    stem: str,
    verdict: str,
    *suffixes: str,
    action: str = "move",
) -> Path:
    """Shoot a frame into the inbox and route it as eyespyd would; where its primary went."""
    for suffix in suffixes or (".JPG",):
        (folder.inbox / f"{stem}{suffix}").write_bytes(os.urandom(next(_sizes)))
    group = frame_group(folder.inbox / f"{stem}{(suffixes or ('.JPG',))[0]}")
    outcome = route_and_record(
        ledger, Result(group[0], verdict, 0.9), group, folder.destination(verdict), action
    )
    assert outcome.status == "routed"
    return outcome.targets[0]


def wait_for_corrections(ledger: Ledger, count: int) -> list[Correction]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = ledger.corrections()
        if len(found) >= count:
            return found
        time.sleep(0.02)
    return ledger.corrections()


# --- while running --------------------------------------------------------------------------------


def test_a_frame_moved_from_blink_to_keep_while_running_is_a_false_blink(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    photo = routed(ledger, folder, "IMG_0001", "blink")
    photo.rename(folder.keep / photo.name)
    [correction] = wait_for_corrections(ledger, 1)
    assert (correction.verdict, correction.from_verdict, correction.to_verdict) == (
        "blink",
        "blink",
        "keep",
    )
    assert correction.path == folder.keep / "IMG_0001.JPG"
    assert kind(correction) == FALSE_BLINK
    assert "IMG_0001.JPG moved from blink to keep (a false blink)" in describe(correction)


def test_frames_eyespyd_routes_while_watching_are_not_corrections(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    for number in range(5):
        routed(ledger, folder, f"IMG_{number:04d}", ("keep", "blink", "review")[number % 3])
    moved = routed(ledger, folder, "IMG_0100", "keep")
    moved.rename(folder.blink / moved.name)
    # The move's event comes after the routes' events: once it is resolved, so are they.
    found = wait_for_corrections(ledger, 1)
    assert [(c.path.name, kind(c)) for c in found] == [("IMG_0100.JPG", MISSED_BLINK)]


def test_a_frame_renamed_as_it_moves_is_found_by_its_inode(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    photo = routed(ledger, folder, "IMG_0002", "blink")
    photo.rename(folder.keep / "bride laughing.jpg")
    [correction] = wait_for_corrections(ledger, 1)
    assert correction.path == folder.keep / "bride laughing.jpg"
    assert kind(correction) == FALSE_BLINK


def test_a_deletion_is_not_a_correction_while_running(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    deleted = routed(ledger, folder, "IMG_0003", "blink")
    moved = routed(ledger, folder, "IMG_0004", "review")
    deleted.unlink()
    moved.rename(folder.keep / moved.name)  # noticed after the deletion: the barrier
    found = wait_for_corrections(ledger, 1)
    assert [(c.path.name, kind(c)) for c in found] == [("IMG_0004.JPG", LABEL)]
    assert scan_for_corrections(ledger, [folder]) == []


def test_moving_a_frame_back_undoes_the_correction(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    photo = routed(ledger, folder, "IMG_0005", "blink")
    photo.rename(folder.keep / photo.name)
    wait_for_corrections(ledger, 1)
    (folder.keep / photo.name).rename(photo)
    found = wait_for_corrections(ledger, 2)
    assert [(c.from_verdict, c.to_verdict, kind(c)) for c in found] == [
        ("blink", "keep", FALSE_BLINK),
        ("keep", "blink", UNDONE),
    ]


def test_a_destination_folder_replaced_is_watched_again(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    photo = routed(ledger, folder, "IMG_0006", "blink")
    shutil.rmtree(folder.keep)
    watcher.check()
    folder.keep.mkdir()
    photo.rename(folder.keep / photo.name)  # before the watch is back: the scan finds it
    watcher.check()
    [correction] = wait_for_corrections(ledger, 1)
    assert correction.path == folder.keep / photo.name
    other = routed(ledger, folder, "IMG_0007", "blink")
    other.rename(folder.keep / other.name)  # after: the watch finds it
    assert [c.path.name for c in wait_for_corrections(ledger, 2)] == [photo.name, other.name]


def test_a_twin_moved_alone_does_not_outvote_its_primary(
    folder: FolderSettings, ledger: Ledger, watcher: CorrectionWatcher
) -> None:
    jpeg = routed(ledger, folder, "IMG_0008", "blink", ".JPG", ".CR3")
    jpeg.rename(folder.keep / jpeg.name)
    wait_for_corrections(ledger, 1)
    jpeg.with_suffix(".CR3").rename(folder.review / "IMG_0008.CR3")
    barrier = routed(ledger, folder, "IMG_0009", "keep")
    barrier.rename(folder.blink / barrier.name)
    found = wait_for_corrections(ledger, 2)
    assert [(c.path.name, kind(c)) for c in found] == [
        ("IMG_0008.JPG", FALSE_BLINK),
        ("IMG_0009.JPG", MISSED_BLINK),
    ]


# --- at start-up ----------------------------------------------------------------------------------


def test_a_move_made_while_stopped_is_found_by_the_start_up_scan(
    folder: FolderSettings, ledger: Ledger
) -> None:
    photo = routed(ledger, folder, "IMG_0010", "keep")
    photo.rename(folder.blink / "IMG_0010 eyes shut.JPG")
    watcher = CorrectionWatcher([folder], ledger)
    watcher.start()
    try:
        [correction] = wait_for_corrections(ledger, 1)
    finally:
        watcher.stop()
    assert correction.path == folder.blink / "IMG_0010 eyes shut.JPG"
    assert kind(correction) == MISSED_BLINK


def test_scan_finds_each_kind_and_records_each_correction_once(
    folder: FolderSettings, ledger: Ledger
) -> None:
    false_blink = routed(ledger, folder, "IMG_0011", "blink")
    missed = routed(ledger, folder, "IMG_0012", "keep")
    label = routed(ledger, folder, "IMG_0013", "review")
    untouched = routed(ledger, folder, "IMG_0014", "blink")
    false_blink.rename(folder.keep / false_blink.name)
    missed.rename(folder.blink / missed.name)
    label.rename(folder.blink / "renamed.JPG")

    found = scan_for_corrections(ledger, [folder])
    assert sorted((c.path.name, kind(c)) for c in found) == [
        ("IMG_0011.JPG", FALSE_BLINK),
        ("IMG_0012.JPG", MISSED_BLINK),
        ("renamed.JPG", LABEL),
    ]
    assert scan_for_corrections(ledger, [folder]) == []
    assert len(ledger.corrections()) == 3
    assert untouched.exists()


def test_a_correction_noticed_twice_is_recorded_once(
    folder: FolderSettings, ledger: Ledger
) -> None:
    photo = routed(ledger, folder, "IMG_0015", "blink")
    moved = photo.rename(folder.keep / photo.name)
    frame = ledger.frame_at(moved)
    assert frame is not None
    first = ledger.record_correction(frame.id, "keep", moved)
    assert first is not None
    assert ledger.record_correction(frame.id, "keep", moved) is None
    assert scan_for_corrections(ledger, [folder]) == []
    assert ledger.corrections() == [first]


def test_a_deletion_is_not_a_correction(folder: FolderSettings, ledger: Ledger) -> None:
    routed(ledger, folder, "IMG_0016", "blink").unlink()
    routed(ledger, folder, "IMG_0017", "keep").unlink()
    assert scan_for_corrections(ledger, [folder]) == []


def test_a_frame_moved_back_into_the_inbox_or_elsewhere_is_not_a_correction(
    folder: FolderSettings, ledger: Ledger, tmp_path: Path
) -> None:
    to_inbox = routed(ledger, folder, "IMG_0018", "blink")
    to_inbox.rename(folder.inbox / to_inbox.name)
    elsewhere = routed(ledger, folder, "IMG_0019", "blink")
    elsewhere.rename(tmp_path / elsewhere.name)
    assert scan_for_corrections(ledger, [folder]) == []


def test_a_copy_to_another_filesystem_is_found_by_name_size_and_time(
    folder: FolderSettings, ledger: Ledger
) -> None:
    # A move across filesystems is a copy (mv and file managers keep the modification time)
    # and a deletion: a new inode, so the name, size and time must match.
    photo = routed(ledger, folder, "IMG_0020", "blink")
    shutil.copy2(photo, folder.keep / photo.name)
    photo.unlink()
    [correction] = scan_for_corrections(ledger, [folder])
    assert (correction.path, kind(correction)) == (folder.keep / photo.name, FALSE_BLINK)


def test_a_copy_with_a_new_name_and_time_is_not_guessed(
    folder: FolderSettings, ledger: Ledger
) -> None:
    photo = routed(ledger, folder, "IMG_0021", "blink")
    (folder.keep / photo.name).write_bytes(photo.read_bytes())  # same name and size, new time
    os.utime(folder.keep / photo.name, ns=(1_000_000_000, 1_000_000_000))
    photo.unlink()
    assert scan_for_corrections(ledger, [folder]) == []


def test_the_primary_decides_and_a_twin_only_when_the_primary_is_gone(
    folder: FolderSettings, ledger: Ledger
) -> None:
    jpeg = routed(ledger, folder, "IMG_0022", "blink", ".JPG", ".CR3")
    raw = jpeg.with_suffix(".CR3")
    assert raw.exists()
    raw.rename(folder.keep / raw.name)
    assert scan_for_corrections(ledger, [folder]) == []  # the JPEG is still in blink/
    jpeg.unlink()
    [correction] = scan_for_corrections(ledger, [folder])
    assert (correction.path, kind(correction)) == (folder.keep / raw.name, FALSE_BLINK)


def test_frame_at_finds_a_frame_by_inode_or_by_name_size_and_time(
    folder: FolderSettings, ledger: Ledger
) -> None:
    photo = routed(ledger, folder, "IMG_0023", "keep")
    renamed = photo.rename(folder.blink / "other name.JPG")
    frame = ledger.frame_at(renamed)
    assert frame is not None and frame.targets == (photo,)
    copied = folder.review / photo.name
    shutil.copy2(renamed, copied)
    assert ledger.frame_at(copied) == frame
    stranger = folder.keep / "IMG_9999.JPG"
    stranger.write_bytes(b"not routed by eyespyd")
    assert ledger.frame_at(stranger) is None
    assert ledger.frame_at(folder.keep / "missing.JPG") is None
    assert ledger.frame_at(folder.keep) is None


def test_a_folder_configured_for_two_verdicts_says_nothing(tmp_path: Path) -> None:
    shared = FolderSettings(
        inbox=tmp_path / "in",
        keep=tmp_path / "sorted",
        blink=tmp_path / "blink",
        review=tmp_path / "sorted",
        recursive=False,
        polling=False,
    )
    assert destinations([shared]) == {tmp_path / "blink": "blink"}


def test_corrections_survive_reopening_the_ledger(
    folder: FolderSettings, ledger: Ledger, tmp_path: Path
) -> None:
    photo = routed(ledger, folder, "IMG_0024", "blink")
    photo.rename(folder.keep / photo.name)
    found = scan_for_corrections(ledger, [folder])
    with Ledger.open(tmp_path / "ledger.sqlite3") as again:
        assert again.corrections() == found
        assert scan_for_corrections(again, [folder]) == []


@pytest.mark.parametrize("action", ["copy", "hardlink"])
def test_frames_copied_or_linked_into_the_folders_are_followed_too(
    folder: FolderSettings, ledger: Ledger, action: str
) -> None:
    moved = routed(ledger, folder, "IMG_0030", "blink", action=action)
    routed(ledger, folder, "IMG_0031", "blink", action=action)
    assert (folder.inbox / "IMG_0030.JPG").exists()  # the original stays in the inbox
    moved.rename(folder.keep / moved.name)
    [correction] = scan_for_corrections(ledger, [folder])
    assert (correction.path, kind(correction)) == (folder.keep / moved.name, FALSE_BLINK)


def test_tagged_frames_were_put_nowhere_and_are_not_followed(
    folder: FolderSettings, ledger: Ledger
) -> None:
    tagged = routed(ledger, folder, "IMG_0032", "blink", action="tag")
    assert tagged.parent == folder.inbox
    tagged.rename(folder.keep / tagged.name)
    assert scan_for_corrections(ledger, [folder]) == []
    assert ledger.frame_at(folder.keep / tagged.name) is not None  # known, but not followed
