"""Telling systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

A notification is one datagram of `NAME=value` lines to the AF_UNIX socket named by
`$NOTIFY_SOCKET` (a leading `@` is the abstract namespace). When the variable is unset (a terminal,
launchd) every method is a no-op. Nothing here raises: a lost notification must not stop the
daemon, and systemd's own timeouts report what went wrong.

The daemon's sequence: `ready()` after the start-up scan; `watchdog()` every `watchdog_interval()`
seconds while work makes progress; `reloading()` then `ready()` around a configuration reload;
`stopping()` on the way out; `status(text)` for what `systemctl status` shows.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

TIMEOUT = 1.0  # seconds a notification may wait; PID 1 reads its socket promptly


class Notifier:
    def __init__(
        self, address: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> None:
        """`address` defaults to `$NOTIFY_SOCKET`; unset or unusable means every call is a no-op."""
        env = os.environ if environ is None else environ
        self._env = env
        raw = env.get("NOTIFY_SOCKET", "") if address is None else address
        self.address = _socket_address(raw)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd asked for through `$NOTIFY_SOCKET` (the same as `Notifier()`)."""
        return cls(environ=environ)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str | None = None) -> bool:
        """The service is up: systemd marks a Type=notify unit started (or reloaded)."""
        return self.notify("READY=1", *_status(status))

    def reloading(self) -> bool:
        """A configuration reload begins; `ready()` ends it. MONOTONIC_USEC is what newer systemd
        requires for Type=notify-reload, and older versions ignore it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Still alive and making progress: resets systemd's WatchdogSec= timer."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status for `systemctl status`."""
        return self.notify(*_status(text))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before systemd gives up on a start, reload or stop in progress
        (a long start-up scan)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    def watchdog_interval(self) -> float | None:
        """Seconds between `watchdog()` calls: half of `$WATCHDOG_USEC`, when systemd asked this
        process (`$WATCHDOG_PID` unset or ours) for them; else None."""
        pid = self._env.get("WATCHDOG_PID")
        if pid is not None and pid.strip() != str(os.getpid()):
            return None
        try:
            usec = int(self._env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 2 / 1_000_000 if usec > 0 else None

    def notify(self, *assignments: str) -> bool:
        """Send `NAME=value` lines in one datagram; True when the socket took it."""
        if self.address is None or not assignments:
            return False
        data = "\n".join(assignments).encode("utf-8", "backslashreplace") + b"\n"
        try:
            # A socket per message, as sd_notify does: one every half watchdog period is cheap,
            # and there is nothing to close or to share between threads.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(TIMEOUT)
                sock.sendto(data, self.address)
            return True
        except OSError as exc:
            log.debug("could not notify the service manager at %r: %s", self.address, exc)
            return False


def _socket_address(raw: str) -> str | None:
    """The address to send to: a path, or `@name` as the abstract name `\\0name`. Other forms
    (vsock:, relative paths) are not for us."""
    if raw.startswith("/"):
        return raw
    if raw.startswith("@") and len(raw) > 1:
        return "\0" + raw[1:]
    return None


def _status(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.split()),)
