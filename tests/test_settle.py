"""settle: a file is handed on only once it has stopped changing and opens."""

from __future__ import annotations

from pathlib import Path

from eyespyd.settle import Settler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def settler() -> tuple[Settler, Clock]:
    clock = Clock()
    return Settler(quiet=1.0, quiet_after_close=0.2, clock=clock), clock


def test_a_file_is_settled_after_a_quiet_interval(tmp_path: Path) -> None:
    s, clock = settler()
    path = tmp_path / "IMG_0001.JPG"
    path.write_bytes(b"x" * 100)
    s.note(path)
    assert s.poll() == []  # first look: the size is new
    clock.now += 0.5
    assert s.poll() == []
    clock.now += 0.6
    (done,) = s.poll()
    assert (done.path, done.size) == (path, 100)
    assert path not in s


def test_a_growing_file_is_not_settled(tmp_path: Path) -> None:
    s, clock = settler()
    path = tmp_path / "IMG_0002.CR3"
    path.write_bytes(b"x")
    s.note(path)
    for i in range(10):  # written slowly, a chunk every 0.5 s
        s.poll()
        clock.now += 0.5
        with path.open("ab") as f:
            f.write(b"y" * (i + 1))
        assert s.poll() == []
    clock.now += 1.1
    (done,) = s.poll()
    assert done.size == 1 + sum(range(1, 11))


def test_a_close_event_shortens_the_wait(tmp_path: Path) -> None:
    s, clock = settler()
    path = tmp_path / "IMG_0003.JPG"
    path.write_bytes(b"x" * 10)
    s.note(path)
    s.poll()
    s.note(path, closed=True)
    clock.now += 0.25
    assert [d.path for d in s.poll()] == [path]


def test_an_empty_file_waits_longer(tmp_path: Path) -> None:
    s, clock = settler()
    path = tmp_path / "IMG_0004.JPG"
    path.touch()
    s.note(path, closed=True)
    s.poll()
    clock.now += 1.5
    assert s.poll() == []  # a writer that has not started yet
    clock.now += 4.0
    assert [d.path for d in s.poll()] == [path]


def test_a_vanished_file_is_dropped(tmp_path: Path) -> None:
    s, _ = settler()
    path = tmp_path / "IMG_0005.JPG"
    path.write_bytes(b"x")
    s.note(path)
    path.unlink()
    assert s.poll() == []
    assert len(s) == 0


def test_a_file_that_does_not_open_waits(tmp_path: Path) -> None:
    s, clock = settler()
    folder = tmp_path / "IMG_0006.JPG"  # a folder cannot be opened for reading as a file
    folder.mkdir()
    s.note(folder)
    s.poll()
    clock.now += 2
    assert s.poll() == []
    assert folder in s


def test_a_file_seen_being_created_waits_for_its_close_through_long_pauses(tmp_path: Path) -> None:
    s, clock = settler()
    path = tmp_path / "IMG_0007.CR3"
    path.write_bytes(b"x" * 10)
    s.note(path, writing=True)  # inotify: created, a close event will follow
    s.poll()
    clock.now += 5.0  # the writer pauses far longer than the quiet interval
    assert s.poll() == []
    s.note(path, closed=True)
    clock.now += 0.25
    assert [d.path for d in s.poll()] == [path]


def test_a_lost_close_event_does_not_strand_a_file(tmp_path: Path) -> None:
    s, clock = settler()
    path = tmp_path / "IMG_0008.CR3"
    path.write_bytes(b"x" * 10)
    s.note(path, writing=True)
    s.poll()
    clock.now += s.close_timeout + 0.1
    assert [d.path for d in s.poll()] == [path]
