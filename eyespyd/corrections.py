"""corrections: a frame the photographer moved between keep/, blink/ and review/ -> a correction.

The ledger knows where eyespyd put every frame, so a frame found in another verdict's folder was
moved there by the photographer, and says what eyespyd got wrong:

- blink/ -> keep/ is a false blink (a keeper eyespyd would have thrown away);
- keep/ -> blink/ is a missed blink;
- review/ -> keep/ or blink/ is a label for a frame eyespyd was unsure of;
- keep/ or blink/ -> review/ says the photographer is unsure too (no label);
- back where eyespyd put it withdraws the earlier correction (the last one counts).

A frame deleted, or moved out of the three folders, is not a correction: deleting from blink/ is
agreeing with eyespyd. Each correction is recorded once: the ledger writes one only when the
folder differs from the one it last knew the frame in.

Which file is the frame: its primary, else (when the primary was deleted) its RAW or JPEG twin.
A member is found at its target, else by its identity (device and inode, which a move within a
filesystem keeps even when the photographer renames the file) with its size, else by its name
(as routed, or as in the inbox) with its size and modification time, which a move to another
filesystem keeps. The modification time is there because names repeat (two camera bodies, or a
counter past 9999) and uncompressed RAW files all have the same size.

Two ways of noticing, one rule (`_locate` and `_note`):
- `CorrectionWatcher` watches the three folders of every configured folder (not recursively). Its
  watchdog handler only filters and queues; a thread of its own takes what arrived in batches,
  finds each file's frame (`Ledger.frame_at`) and records what moved. Its first job is a scan.
- `scan_for_corrections` compares every routed frame with the folders as they are now, for the
  moves made while eyespyd was not running (or whose events were lost).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from eyespyd.config import FolderSettings
from eyespyd.decode import is_photo_name
from eyespyd.record import ROUTED, Correction, Ledger, Placement
from eyespyd.route import TAG, Member
from eyespyd.verdict import BLINK, KEEP, REVIEW
from eyespyd.watch import is_candidate

log = logging.getLogger(__name__)

__all__ = [
    "FALSE_BLINK",
    "LABEL",
    "MISSED_BLINK",
    "UNDONE",
    "UNSURE",
    "Correction",
    "CorrectionWatcher",
    "describe",
    "destinations",
    "kind",
    "scan_for_corrections",
]

FALSE_BLINK = "false blink"
MISSED_BLINK = "missed blink"
LABEL = "label"  # a review frame sorted by the photographer
UNSURE = "unsure"  # moved to review/
UNDONE = "undone"  # back in the folder of eyespyd's verdict

# Created: a move from another watched folder (inotify reports it to each folder's watch apart);
# moved: a rename within the folder; closed: the end of a copy from another filesystem.
EVENT_FILTER: list[type[FileSystemEvent]] = [FileCreatedEvent, FileMovedEvent, FileClosedEvent]
BATCH_QUIET = 0.2  # seconds without a new event that end a batch
BATCH_MAX = 2.0  # seconds a batch may gather during a burst (eyespyd's own routing)

_SCAN, _STOP = "scan", "stop"


def kind(correction: Correction) -> str:
    """What a correction says about eyespyd's verdict."""
    if correction.to_verdict == correction.verdict:
        return UNDONE
    if correction.to_verdict == REVIEW:
        return UNSURE
    if correction.verdict == REVIEW:
        return LABEL
    return FALSE_BLINK if correction.verdict == BLINK else MISSED_BLINK


def describe(correction: Correction) -> str:
    """One line for the log: what moved where, and what it means."""
    what = {
        FALSE_BLINK: "a false blink",
        MISSED_BLINK: "a missed blink",
        LABEL: f"a {correction.to_verdict} label for a review frame",
        UNSURE: "the photographer is unsure too",
        UNDONE: f"back in {correction.verdict}, eyespyd's verdict",
    }[kind(correction)]
    return (
        f"correction: {correction.path} moved from {correction.from_verdict} to"
        f" {correction.to_verdict} ({what})"
    )


def destinations(folders: Sequence[FolderSettings]) -> dict[Path, str]:
    """Every keep/, blink/ and review/ folder with its verdict. A folder configured for two
    verdicts is left out: a frame put there says nothing."""
    verdicts: dict[Path, set[str]] = {}
    for folder in folders:
        for verdict in (KEEP, BLINK, REVIEW):
            verdicts.setdefault(folder.destination(verdict), set()).add(verdict)
    return {path: next(iter(v)) for path, v in verdicts.items() if len(v) == 1}


# --- the rule -----------------------------------------------------------------------------------


class _Files:
    """Files that may be a frame's member, by identity and by name, size and mtime."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.by_identity: dict[tuple[int, int, int], list[Path]] = {}
        self.by_name: dict[tuple[str, int, int], list[Path]] = {}
        for path in paths:
            try:
                st = path.lstat()
            except OSError:
                continue  # gone again
            if stat.S_ISREG(st.st_mode):
                self.by_identity.setdefault((st.st_dev, st.st_ino, st.st_size), []).append(path)
                self.by_name.setdefault((path.name, st.st_size, st.st_mtime_ns), []).append(path)

    def find(self, member: Member) -> Path | None:
        found = self.by_identity.get((member.device, member.inode, member.size))
        if found:
            return found[0]
        names = {member.target.name, member.source.name}
        matches = {
            p for name in names for p in self.by_name.get((name, member.size, member.mtime_ns), [])
        }
        return matches.pop() if len(matches) == 1 else None  # two equal files: do not guess


def _listing(folders: Iterable[Path]) -> list[Path]:
    """The photos in the destination folders now (not hidden, not temporary)."""
    found = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # missing (not created yet, or a drive not connected)
        found += [Path(e.path) for e in entries if is_candidate(Path(e.path), folder)]
    return found


def _files_in(folders: Iterable[Path]) -> Callable[[], _Files]:
    """The photos in the folders, listed on the first call only (most frames are found where
    eyespyd put them, and need no listing)."""
    return functools.cache(lambda: _Files(_listing(folders)))


def _at_target(member: Member) -> bool:
    """The member is where eyespyd put it: the same file (and size: a deleted file's inode is
    soon given to a new one), or a copy (made when the folders are on two filesystems) of the
    same size and modification time."""
    try:
        st = member.target.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != member.size:
        return False
    return (st.st_dev, st.st_ino) == (member.device, member.inode) or (
        st.st_mtime_ns == member.mtime_ns
    )


def _locate(placement: Placement, files: Callable[[], _Files]) -> tuple[Path, bool] | None:
    """Where the frame is now, and whether that is where eyespyd put it; None when it is
    nowhere to be seen (deleted, or moved out of the folders). The primary decides; a twin only
    when the primary is gone. `files` gives the photos in the folders."""
    members = sorted(placement.members, key=lambda m: m.source != placement.path)
    photos = [m for m in members if is_photo_name(m.target)] or members[:1]
    for member in photos:
        if _at_target(member):
            return member.target, True
        found = files().find(member)
        if found is not None:
            return found, False
    return None


def _note(
    ledger: Ledger,
    placement: Placement,
    where: tuple[Path, bool] | None,
    folders: dict[Path, str],
) -> Correction | None:
    if where is None:
        return None
    path, at_target = where
    # At its target the frame is in its verdict's folder, whatever the configuration says now.
    verdict = placement.verdict if at_target else folders.get(path.parent)
    if verdict is None or verdict == placement.folder:
        return None  # outside the folders (the inbox, elsewhere), or not moved
    correction = ledger.record_correction(placement.frame, verdict, path)
    if correction is not None:
        log.info("%s", describe(correction))
    return correction


def scan_for_corrections(
    ledger: Ledger,
    folders: Sequence[FolderSettings],
    *,
    stop: threading.Event | None = None,
) -> list[Correction]:
    """Compare where the ledger put each routed frame with where it is now, and record each
    frame found in another verdict's folder; the corrections recorded now. Run it at start-up
    (CorrectionWatcher does, in its thread) and before calibrating. One stat per frame, and one
    listing of the folders if any frame is not where eyespyd put it."""
    where_to = destinations(folders)
    files = _files_in(where_to)
    found = []
    for placement in ledger.placements():
        if stop is not None and stop.is_set():
            break
        correction = _note(ledger, placement, _locate(placement, files), where_to)
        if correction is not None:
            found.append(correction)
    return found


def _resolve(ledger: Ledger, paths: Iterable[Path], folders: dict[Path, str]) -> list[Correction]:
    """The corrections that files which just appeared in the folders make. The files eyespyd
    routes itself are found where it put them, without listing the folders."""
    frames = set()
    for path in dict.fromkeys(paths):
        frame = ledger.frame_at(path)
        # A frame being routed is where eyespyd is putting it; a tagged one was put nowhere.
        if frame is not None and frame.status == ROUTED and frame.action != TAG:
            frames.add(frame.id)
    files = _files_in(folders)
    found = []
    for placement in ledger.placements(sorted(frames)):
        correction = _note(ledger, placement, _locate(placement, files), folders)
        if correction is not None:
            found.append(correction)
    return found


# --- the watcher --------------------------------------------------------------------------------


class _Handler(FileSystemEventHandler):
    """Filters and queues; never touches the ledger (watchdog's thread must not wait)."""

    def __init__(self, folder: Path, paths: queue.Queue[Path | str]) -> None:
        self.folder = folder
        self.paths = paths

    def on_created(self, event: DirCreatedEvent | FileCreatedEvent) -> None:
        if not event.is_directory:
            self._queue(event.src_path)

    def on_moved(self, event: DirMovedEvent | FileMovedEvent) -> None:
        if not event.is_directory:
            self._queue(event.dest_path)

    def on_closed(self, event: FileClosedEvent) -> None:
        self._queue(event.src_path)

    def _queue(self, raw: str | bytes) -> None:
        path = Path(os.fsdecode(raw))
        if path.parent == self.folder and is_candidate(path, self.folder):
            self.paths.put(path)


class CorrectionWatcher:
    """Notices frames moved into keep/, blink/ and review/ while it runs, and at start scans for
    those moved while eyespyd was not running. `start()` after the folders exist, `check()` on
    the daemon's rescan timer (re-watches a folder that went away and came back, and scans
    then), `stop()` on the way out."""

    def __init__(
        self,
        folders: Sequence[FolderSettings],
        ledger: Ledger,
        *,
        scan_at_start: bool = True,
    ) -> None:
        self.folders = tuple(folders)
        self.ledger = ledger
        self.destinations = destinations(self.folders)
        self._polled = {
            f.destination(v) for f in self.folders if f.polling for v in (KEEP, BLINK, REVIEW)
        }
        self.events: BaseObserver = Observer()
        self.polling: BaseObserver = PollingObserver(timeout=1.0)
        self._watches: dict[Path, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._paths: queue.Queue[Path | str] = queue.Queue()
        self._stopping = threading.Event()
        self._scan_at_start = scan_at_start
        self._thread = threading.Thread(target=self._run, name="eyespyd-corrections", daemon=True)

    def start(self) -> None:
        self.events.start()
        self.polling.start()
        self._schedule()  # watch first, then scan: a move during the scan is queued, not lost
        if self._scan_at_start:
            self._paths.put(_SCAN)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; a scan in progress stops at the next frame. What was queued and not
        resolved yet is found by the next start's scan."""
        self._stopping.set()
        self._paths.put(_STOP)
        for observer in (self.events, self.polling):
            observer.stop()
        for observer in (self.events, self.polling):
            if observer.is_alive():
                observer.join(timeout=5)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def check(self) -> None:
        """Watch folders not watched yet; re-watch those whose folder was replaced. Frames may
        have been moved into a folder while it was not watched: scan then."""
        if self._schedule():
            self._paths.put(_SCAN)

    def _schedule(self) -> bool:
        changed = False
        for folder in self.destinations:
            observer = self.polling if folder in self._polled else self.events
            try:
                st = folder.stat()
                identity = (st.st_dev, st.st_ino)
            except OSError:
                self._drop(folder, observer)
                continue
            current = self._watches.get(folder)
            if current is not None and current[1] == identity:
                continue
            self._drop(folder, observer)
            try:
                watch = observer.schedule(
                    _Handler(folder, self._paths),
                    str(folder),
                    recursive=False,
                    event_filter=EVENT_FILTER,
                )
            except OSError as exc:
                log.error("cannot watch %s for corrections: %s", folder, exc.strerror or exc)
                continue
            self._watches[folder] = (watch, identity)
            changed = True
            log.debug("watching %s for corrections", folder)
        return changed

    def _drop(self, folder: Path, observer: BaseObserver) -> None:
        current = self._watches.pop(folder, None)
        if current is not None:
            with contextlib.suppress(KeyError):  # watchdog may have dropped it already
                observer.unschedule(current[0])

    def _run(self) -> None:
        while True:
            batch = [self._paths.get()]
            deadline = time.monotonic() + BATCH_MAX
            while batch[-1] != _STOP and time.monotonic() < deadline:
                try:
                    batch.append(self._paths.get(timeout=BATCH_QUIET))
                except queue.Empty:
                    break
            if _STOP in batch or self._stopping.is_set():
                return
            try:
                if _SCAN in batch:  # a scan looks at every frame, these files' included
                    scan_for_corrections(self.ledger, self.folders, stop=self._stopping)
                else:
                    paths = [p for p in batch if isinstance(p, Path)]
                    _resolve(self.ledger, paths, self.destinations)
            except (
                Exception
            ) as exc:  # the thread outlives a bad batch; the next start's scan retries
                log.error("looking for corrections: %s: %s", type(exc).__name__, exc)
                log.debug("looking for corrections", exc_info=True)
