"""watch: candidates are filtered by name, hints arrive from real events, inboxes come back."""

from __future__ import annotations

import os
import queue
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from eyespyd.config import FolderSettings
from eyespyd.watch import Hint, Watcher, is_candidate, scan

WAIT = 10.0  # seconds to wait for an event before failing; events normally take milliseconds


def folder(tmp_path: Path, *, recursive: bool = False, polling: bool = False) -> FolderSettings:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    return FolderSettings(
        inbox=inbox,
        keep=tmp_path / "keep",
        blink=tmp_path / "blink",
        review=tmp_path / "review",
        recursive=recursive,
        polling=polling,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_0001.CR3", True),
        ("IMG_0001.jpg", True),
        ("DCIM/100CANON/IMG_0001.CR2", True),
        ("IMG_0001.CR3.part", False),
        ("IMG_0001.JPG~", False),
        ("tmpfileAb12Cd", False),
        ("tmpfile123.jpg", False),
        (".IMG_0001.CR3.eyespyd-tmp", False),
        (".hidden/IMG_0001.JPG", False),
        ("IMG_0001.xmp", False),
        ("notes.txt", False),
    ],
)
def test_candidates_by_name(tmp_path: Path, name: str, expected: bool) -> None:
    assert is_candidate(tmp_path / name, tmp_path) is expected


def test_path_outside_the_inbox_is_not_a_candidate(tmp_path: Path) -> None:
    assert not is_candidate(tmp_path / "keep" / "IMG_0001.JPG", tmp_path / "inbox")


def test_scan_finds_photos_oldest_first_and_descends_only_when_recursive(tmp_path: Path) -> None:
    f = folder(tmp_path)
    (f.inbox / "b.jpg").write_bytes(b"1")
    (f.inbox / "a.jpg").write_bytes(b"2")
    os.utime(f.inbox / "b.jpg", ns=(1_000_000_000, 1_000_000_000))
    (f.inbox / "DCIM" / "100").mkdir(parents=True)
    (f.inbox / "DCIM" / "100" / "c.CR3").write_bytes(b"3")
    (f.inbox / ".trash").mkdir()
    (f.inbox / ".trash" / "d.jpg").write_bytes(b"4")
    assert [p.name for p in scan(f)] == ["b.jpg", "a.jpg"]
    recursive = folder(tmp_path, recursive=True)
    assert sorted(p.name for p in scan(recursive)) == ["a.jpg", "b.jpg", "c.CR3"]


def test_scan_of_a_missing_inbox_is_empty(tmp_path: Path) -> None:
    f = folder(tmp_path)
    shutil.rmtree(f.inbox)
    assert scan(f) == []


def next_hint(hints: queue.Queue[Hint], name: str) -> Hint:
    while True:
        hint = hints.get(timeout=WAIT)
        if hint.path.name == name:
            return hint


@pytest.fixture
def watching(tmp_path: Path) -> Iterator[tuple[FolderSettings, queue.Queue[Hint], Watcher]]:
    f = folder(tmp_path)
    hints: queue.Queue[Hint] = queue.Queue()
    watcher = Watcher([f], hints)
    watcher.start()
    yield f, hints, watcher
    watcher.stop()


def test_a_written_file_gives_a_hint(
    watching: tuple[FolderSettings, queue.Queue[Hint], Watcher],
) -> None:
    f, hints, _ = watching
    (f.inbox / "IMG_0001.JPG").write_bytes(b"data")
    assert next_hint(hints, "IMG_0001.JPG").path == f.inbox / "IMG_0001.JPG"


def test_a_temp_name_renamed_into_place_gives_the_final_name(
    watching: tuple[FolderSettings, queue.Queue[Hint], Watcher],
) -> None:
    f, hints, _ = watching
    temp = f.inbox / "tmpfileXy12Z9"
    temp.write_bytes(b"data")
    temp.rename(f.inbox / "IMG_0002.CR3")
    hint = next_hint(hints, "IMG_0002.CR3")
    assert hint.closed


def test_an_inbox_deleted_and_recreated_is_watched_again(
    watching: tuple[FolderSettings, queue.Queue[Hint], Watcher],
) -> None:
    f, hints, watcher = watching
    shutil.rmtree(f.inbox)
    watcher.check()
    f.inbox.mkdir()
    watcher.check()
    (f.inbox / "IMG_0003.JPG").write_bytes(b"data")
    assert next_hint(hints, "IMG_0003.JPG").path.parent == f.inbox


def test_a_polling_folder_is_watched_by_polling(tmp_path: Path) -> None:
    f = folder(tmp_path, polling=True)
    hints: queue.Queue[Hint] = queue.Queue()
    watcher = Watcher([f], hints)
    watcher.start()
    try:
        (f.inbox / "IMG_0004.NEF").write_bytes(b"data")
        assert next_hint(hints, "IMG_0004.NEF").path == f.inbox / "IMG_0004.NEF"
    finally:
        watcher.stop()
