"""settle: a candidate path -> a complete file, or not yet.

A file is complete when its size and mtime have not changed for a quiet interval and it opens for
reading. A close-after-write event (Linux) or a rename into place shortens the interval, since the
writer said it is done; a created event (macOS FSEvents, polling, a byte-by-byte copy under the
final name) waits the full interval. A file closed and reopened for append simply starts again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class _Pending:
    size: int
    mtime_ns: int
    changed_at: float  # when size or mtime last changed (monotonic)
    quiet: float  # seconds without change that make it complete
    writing: bool  # seen being created where close events exist: wait for the close


@dataclass(frozen=True, slots=True)
class Settled:
    path: Path
    size: int
    mtime_ns: int


class Settler:
    """Tracks candidate files until they stop changing. Not thread-safe: one owner thread."""

    def __init__(
        self,
        quiet: float = 1.0,
        quiet_after_close: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        close_timeout: float = 30.0,
    ) -> None:
        self.quiet = quiet
        self.quiet_after_close = quiet_after_close
        # A writer can pause longer than `quiet` (a tethering tool waiting on the camera); where
        # close events exist we wait for the close, and only this long after the last change
        # do we assume the close event was lost.
        self.close_timeout = close_timeout
        self.clock = clock
        self._pending: dict[Path, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def note(self, path: Path, *, closed: bool = False, writing: bool = False) -> None:
        """A hint that `path` arrived or changed: `closed` when its writer closed it (or renamed
        it into place), `writing` when it was seen being created and a close event will follow."""
        quiet = self.quiet_after_close if closed else self.quiet
        entry = self._pending.get(path)
        if entry is not None:
            if closed:
                entry.quiet = min(entry.quiet, quiet)
                entry.writing = False
            elif writing:
                entry.writing = True
            return
        self._pending[path] = _Pending(-1, -1, self.clock(), quiet, writing and not closed)

    def forget(self, path: Path) -> None:
        self._pending.pop(path, None)

    def poll(self) -> list[Settled]:
        """The files that have been quiet long enough and open; they leave the pending set.
        Vanished files leave it silently: they were moved away or deleted by someone else."""
        now = self.clock()
        ready = []
        for path, entry in list(self._pending.items()):
            try:
                stat = path.stat()
            except FileNotFoundError:
                del self._pending[path]
                continue
            except OSError:
                continue  # try again next time
            if (stat.st_size, stat.st_mtime_ns) != (entry.size, entry.mtime_ns):
                entry.size, entry.mtime_ns, entry.changed_at = stat.st_size, stat.st_mtime_ns, now
                continue
            # An empty file is most likely a writer that has not started: give it longer.
            quiet = entry.quiet if stat.st_size else max(entry.quiet, 5 * self.quiet)
            if entry.writing:
                quiet = max(quiet, self.close_timeout)
            if now - entry.changed_at < quiet or not _opens(path):
                continue
            del self._pending[path]
            ready.append(Settled(path, stat.st_size, stat.st_mtime_ns))
        return ready


def _opens(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError:
        return False
    return True
