"""The daemon's contact sheets, refreshed in the background at most every few seconds.

A refresh rewrites the whole page (every flagged frame's thumbnail), so refreshing after each
flagged frame, inside the worker that routed it, made a sheet of n frames cost O(n^2) and held up
the workers: a 600-frame import with a quarter blinks ran three times slower. Here workers only
mark a folder as changed; one thread rewrites each changed sheet at most every INTERVAL seconds,
and once more on the way out.
"""

from __future__ import annotations

import logging
import threading
import time

from eyespyd import contact
from eyespyd.config import DecodeSettings, FolderSettings
from eyespyd.record import Ledger

log = logging.getLogger(__name__)

INTERVAL = 5.0  # seconds between two rewrites of one sheet


class SheetRefresher:
    def __init__(
        self, ledger: Ledger, decode_settings: DecodeSettings, interval: float = INTERVAL
    ) -> None:
        self.ledger = ledger
        self.decode_settings = decode_settings
        self.interval = interval
        self._dirty: dict[FolderSettings, None] = {}  # insertion-ordered set
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eyespyd-sheets", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def mark(self, folder: FolderSettings) -> None:
        """A flagged frame was routed for `folder`: its sheet is out of date."""
        with self._lock:
            self._dirty[folder] = None
        self._wake.set()

    def stop(self) -> None:
        """Write what is still out of date, then end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)  # under systemd's default 90 s stop timeout

    def _run(self) -> None:
        last = 0.0
        while True:
            self._wake.wait()
            # Gather the frames of the next few seconds into one rewrite, unless stopping.
            self._stop.wait(max(0.0, last + self.interval - time.monotonic()))
            self._wake.clear()
            with self._lock:
                dirty, self._dirty = list(self._dirty), {}
            for folder in dirty:
                try:
                    contact.refresh_session_sheet(
                        self.ledger, folder, decode_settings=self.decode_settings
                    )
                except Exception as exc:  # a sheet must never take the service down
                    log.warning("cannot refresh the contact sheet: %s", exc)
            last = time.monotonic()
            if self._stop.is_set():
                with self._lock:
                    if not self._dirty:
                        return
