"""The daemon with real processes and real files: bursts, kills, slow writers, bad input, reloads.

Frames are made from the committed fixture faces (tests/data/faces): each open_*.jpg is a keeper
and each closed_*.jpg a blink, so "the correct folder" is known. Waiting is done by polling the
folders with a generous deadline; no test asserts on elapsed time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.photos import jpeg_bytes

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
DEADLINE = 120.0  # seconds; a burst of 600 takes about 15 s on two cores


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def files_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


class Service:
    """`python -m eyespyd run` in a subprocess, with its own config, state folder and log."""

    def __init__(self, root: Path, extra_config: str = "") -> None:
        self.root = root
        self.inbox, self.keep, self.blink, self.review = (
            root / "inbox",
            root / "keep",
            root / "blink",
            root / "review",
        )
        self.state = root / "state"
        self.config = root / "eyespyd.yaml"
        self.log = root / "eyespyd.log"
        self.write_config(extra_config)
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self, extra: str = "") -> None:
        self.config.write_text(
            f"folders:\n  - inbox: {self.inbox}\n    keep: {self.keep}\n"
            f"    blink: {self.blink}\n    review: {self.review}\n"
            "settle_seconds: 0.5\nrescan_seconds: 2\nworkers: 2\n" + extra,
            encoding="utf-8",
        )

    def start(self, *extra_args: str) -> Service:
        env = dict(os.environ, STATE_DIRECTORY=str(self.state))
        env.pop("JOURNAL_STREAM", None)
        env.pop("NOTIFY_SOCKET", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eyespyd", "run", "--config", str(self.config), *extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        wait_for(lambda: "eyespyd ready" in self.log_text(), "the service to be ready", 60)
        return self

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def lines_about(self, text: str) -> int:
        return sum(text in line for line in self.log_text().splitlines())

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # SIGUSR1 makes the daemon log every thread's stack: show where it is stuck.
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(2)
            tail = "\n".join(self.log_text().splitlines()[-120:])
            raise AssertionError(
                f"the service did not stop within 60 s; its log ends:\n{tail}"
            ) from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def routed(self) -> int:
        return sum(len(files_in(d)) for d in (self.keep, self.blink, self.review))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path)
    svc.inbox.mkdir()
    yield svc
    if svc.process is not None and svc.process.poll() is None:
        svc.kill()


def fixture_frames() -> tuple[list[bytes], list[bytes]]:
    if not FACES.is_dir():
        pytest.fail("tests/data/faces is part of the repository and must be present")
    opened = [p.read_bytes() for p in sorted(FACES.glob("open_*.jpg"))]
    closed = [p.read_bytes() for p in sorted(FACES.glob("closed_*.jpg"))]
    return opened, closed


def drop_burst(inbox: Path, count: int) -> dict[str, tuple[str, str]]:
    """`count` frames written as fast as possible; returns name -> (truth, sha256)."""
    opened, closed = fixture_frames()
    truth = {}
    for i in range(count):
        is_blink = i % 4 == 0
        pool = closed if is_blink else opened
        data = pool[i % len(pool)]
        name = f"IMG_{i:04d}.JPG"
        (inbox / name).write_bytes(data)
        truth[name] = ("blink" if is_blink else "keep", hashlib.sha256(data).hexdigest())
    return truth


@pytest.mark.slow
def test_a_burst_of_600_frames_is_routed_completely_and_correctly(service: Service) -> None:
    service.start()
    truth = drop_burst(service.inbox, 600)
    wait_for(lambda: service.routed() == 600 and not files_in(service.inbox), "600 frames")
    for verdict, folder in (("keep", service.keep), ("blink", service.blink)):
        for path in files_in(folder):
            expected, digest = truth[path.name]
            assert sha256(path) == digest
            assert expected == verdict, f"{path.name} went to {verdict}"
    assert not files_in(service.review)
    assert service.stop() == 0
    rows = ledger_rows(service)
    assert len(rows) == 600


def ledger_rows(service: Service) -> list[tuple[object, ...]]:
    (ledger,) = service.state.glob("*.sqlite3")
    with contextlib.closing(sqlite3.connect(ledger)) as db:
        return db.execute("select * from frames").fetchall()


@pytest.mark.slow
def test_kill_9_mid_burst_then_restart_loses_and_duplicates_nothing(service: Service) -> None:
    truth = drop_burst(service.inbox, 300)
    service.start()
    wait_for(lambda: service.routed() >= 60, "some frames routed")
    service.kill()
    service.start()
    wait_for(lambda: not files_in(service.inbox), "the inbox to empty after the restart")
    assert service.stop() == 0
    everywhere = [p for d in (service.keep, service.blink, service.review) for p in files_in(d)]
    assert sorted(p.name for p in everywhere) == sorted(truth), "each frame exactly once"
    for path in everywhere:
        assert sha256(path) == truth[path.name][1], f"{path} is damaged"
    assert len(ledger_rows(service)) >= 300


def test_a_slowly_written_file_is_classified_once_when_complete(service: Service) -> None:
    service.start()
    opened, _ = fixture_frames()
    data = opened[0]
    target = service.inbox / "IMG_SLOW.JPG"
    chunks = [data[i : i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)]
    with target.open("wb") as f:
        for chunk in chunks:  # over four seconds in all, pausing longer than settle_seconds
            f.write(chunk)
            f.flush()
            time.sleep(0.8)
    wait_for(lambda: (service.keep / "IMG_SLOW.JPG").exists(), "the slow file to be routed")
    assert sha256(service.keep / "IMG_SLOW.JPG") == hashlib.sha256(data).hexdigest()
    assert service.lines_about("IMG_SLOW.JPG") == 1, service.log_text()


def test_a_file_written_under_a_temporary_name_is_classified_after_the_rename(
    service: Service,
) -> None:
    service.start()
    _, closed = fixture_frames()
    temp = service.inbox / "tmpfileQ1w2E3"
    temp.write_bytes(closed[0][:100])
    time.sleep(1.5)  # longer than the settle interval: a temporary name is never taken
    with temp.open("ab") as f:
        f.write(closed[0][100:])
    temp.rename(service.inbox / "IMG_TETHER.JPG")
    wait_for(lambda: (service.blink / "IMG_TETHER.JPG").exists(), "the renamed file")
    assert not files_in(service.keep)
    assert service.lines_about("IMG_TETHER.JPG") == 1


def test_bad_files_are_reported_and_kept_and_the_service_stays_up(service: Service) -> None:
    service.start()
    good = jpeg_bytes(320, 240)
    bad = {
        "EMPTY.JPG": b"",
        "TRUNC.JPG": good[: len(good) // 3],
        "NOISE.JPG": os.urandom(5000),
        "PNG.CR2": (REPO / "tests" / "data" / "faces" / "open_01.jpg").read_bytes()[:0]
        + b"\x89PNG\r\n\x1a\n"
        + b"\0" * 100,
    }
    for name, data in bad.items():
        (service.inbox / name).write_bytes(data)
    vanishing = service.inbox / "VANISH.JPG"
    vanishing.write_bytes(good)
    vanishing.unlink()
    wait_for(
        lambda: sorted(p.name for p in files_in(service.keep)) == sorted(bad), "bad files kept"
    )
    assert not files_in(service.blink)
    log = service.log_text()
    for name in bad:
        assert name in log
    assert service.alive()
    assert service.stop() == 0


def test_sighup_with_a_broken_config_keeps_the_old_one_then_a_good_one_applies(
    service: Service,
) -> None:
    service.start()
    service.config.write_text("folders: [\n", encoding="utf-8")
    service.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in service.log_text(), "the refusal")
    _, closed = fixture_frames()
    (service.inbox / "IMG_A.JPG").write_bytes(closed[0])
    wait_for(lambda: (service.blink / "IMG_A.JPG").exists(), "routing under the old config")
    service.write_config("action: copy\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in service.log_text(), "the reload")
    (service.inbox / "IMG_B.JPG").write_bytes(closed[0])
    wait_for(lambda: (service.blink / "IMG_B.JPG").exists(), "routing under the new config")
    assert (service.inbox / "IMG_B.JPG").exists(), "copy leaves the original in the inbox"
    assert service.stop() == 0


def test_sigusr1_logs_every_thread_and_the_service_goes_on(service: Service) -> None:
    service.start()
    service.signal(signal.SIGUSR1)
    # faulthandler writes the dump thread by thread: wait for the main loop's stack itself, not
    # just the first header (reading between the two failed once on a loaded machine).
    wait_for(lambda: "most recent call first" in service.log_text(), "the stacks")
    wait_for(lambda: "eyespyd/daemon.py" in service.log_text(), "the main loop's stack")
    _, closed = fixture_frames()
    (service.inbox / "IMG_A.JPG").write_bytes(closed[0])
    wait_for(lambda: (service.blink / "IMG_A.JPG").exists(), "routing after the dump")
    assert service.stop() == 0


def test_inbox_deleted_and_recreated_is_watched_again(service: Service) -> None:
    import shutil

    service.start()
    shutil.rmtree(service.inbox)
    time.sleep(0.5)
    service.inbox.mkdir()
    opened, _ = fixture_frames()
    (service.inbox / "IMG_BACK.JPG").write_bytes(opened[0])
    wait_for(lambda: (service.keep / "IMG_BACK.JPG").exists(), "the frame in the new inbox")
    assert service.stop() == 0


def test_unwritable_destination_keeps_frames_in_the_inbox_until_fixed(service: Service) -> None:
    # Root ignores permissions, so the blink "folder" is a file: every move into it fails.
    service.blink.write_bytes(b"not a folder")
    service.start()
    _, closed = fixture_frames()
    (service.inbox / "IMG_WAIT.JPG").write_bytes(closed[0])
    wait_for(lambda: "IMG_WAIT.JPG" in service.log_text(), "the routing error")
    time.sleep(2)
    assert (service.inbox / "IMG_WAIT.JPG").exists()
    service.blink.unlink()
    service.blink.mkdir()
    wait_for(lambda: (service.blink / "IMG_WAIT.JPG").exists(), "the retry after the fix")
    assert not (service.inbox / "IMG_WAIT.JPG").exists()
    assert service.lines_about("will be retried") == 1, "the error is logged once"
    assert service.stop() == 0


def test_once_routes_what_is_there_and_exits(tmp_path: Path) -> None:
    svc = Service(tmp_path)
    svc.inbox.mkdir()
    truth = drop_burst(svc.inbox, 8)
    env = dict(os.environ, STATE_DIRECTORY=str(svc.state))
    done = subprocess.run(
        [sys.executable, "-m", "eyespyd", "run", "--config", str(svc.config), "--once"],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert svc.routed() == len(truth)
    assert not files_in(svc.inbox)


def test_xmp_verdicts_are_merged_into_the_sidecar_that_travels_with_the_frame(
    tmp_path: Path,
) -> None:
    from eyespyd.xmp import read_verdict

    svc = Service(tmp_path, "xmp: {enabled: true}\n")
    svc.inbox.mkdir()
    _, closed = fixture_frames()
    (svc.inbox / "IMG_0042.JPG").write_bytes(closed[0])
    lightroom = (REPO / "tests" / "data" / "xmp" / "lightroom_classic.xmp").read_text("utf-8")
    (svc.inbox / "IMG_0042.xmp").write_text(lightroom, encoding="utf-8")
    svc.start()
    try:
        wait_for(lambda: (svc.blink / "IMG_0042.JPG").exists(), "the frame")
        sidecar = svc.blink / "IMG_0042.xmp"
        wait_for(lambda: sidecar.exists() and read_verdict(sidecar) is not None, "the verdict")
        written = read_verdict(sidecar)
        assert written is not None
        assert (written.verdict, written.rating, written.label) == ("blink", -1, "Red")
        assert written.model_version.startswith("eye_state ")
        # The photographer's develop settings survive the merge.
        assert "crs:ToneCurvePV2012" in sidecar.read_text("utf-8")
        # The session's contact sheet beside the destinations lists the blink.
        wait_for(lambda: any(svc.root.glob("eyespyd-report-*.html")), "the contact sheet")
        (sheet,) = svc.root.glob("eyespyd-report-*.html")
        assert "IMG_0042.JPG" in sheet.read_text("utf-8")
    finally:
        assert svc.stop() == 0


def test_folders_on_an_unmounted_drive_are_not_created(tmp_path: Path) -> None:
    from eyespyd.daemon import not_mounted

    volumes, media = tmp_path / "Volumes", tmp_path / "media"
    (media / "ana").mkdir(parents=True)
    volumes.mkdir()
    roots = (volumes, media)
    assert not_mounted(volumes / "PhotoSSD" / "session" / "keep", roots)
    assert not_mounted(media / "ana" / "CARD" / "DCIM", roots)
    assert not not_mounted(tmp_path / "home" / "Pictures" / "eyespy" / "keep", roots)


def test_a_frame_moved_from_blink_to_keep_is_recorded_as_a_correction(service: Service) -> None:
    service.start()
    _, closed = fixture_frames()
    (service.inbox / "IMG_OOPS.JPG").write_bytes(closed[0])
    wait_for(lambda: (service.blink / "IMG_OOPS.JPG").exists(), "the blink")
    (service.blink / "IMG_OOPS.JPG").rename(service.keep / "IMG_OOPS.JPG")  # the photographer

    def corrected() -> bool:
        (ledger,) = service.state.glob("*.sqlite3")
        with contextlib.closing(sqlite3.connect(ledger)) as db:
            return bool(db.execute("select count(*) from corrections").fetchone()[0])

    wait_for(corrected, "the correction in the ledger")
    assert service.stop() == 0
    env = dict(os.environ, STATE_DIRECTORY=str(service.state))
    shown = subprocess.run(
        [sys.executable, "-m", "eyespyd", "calibrate", "--config", str(service.config)],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert "1 false blink" in shown.stdout.decode()


STORM = """
import os, signal, threading, time
from eyespyd.config import load
from eyespyd.daemon import Daemon

daemon = Daemon(load())  # queues and settler only: nothing starts
signal.signal(signal.SIGUSR2, lambda signum, frame: None)
last = [time.monotonic()]

def storm():
    for _ in range(8000):
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(0.0003)
        if time.monotonic() - last[0] > 2:
            print("stuck", flush=True)
            os._exit(1)
    print("ok", flush=True)
    os._exit(0)

threading.Thread(target=storm, daemon=True).start()
while True:
    daemon._take_hints()  # waits up to TICK for a hint
    last[0] = time.monotonic()
"""


def test_the_main_loop_wait_survives_a_storm_of_signals() -> None:
    # A SimpleQueue.get(timeout=...) interrupted by signals could block for ever (CPython 3.11):
    # the daemon then ignored SIGTERM. The main loop must come back every TICK regardless.
    done = subprocess.run(
        [sys.executable, "-c", STORM], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "ok", done.stdout + done.stderr
