"""Logging for the daemon: journald's native protocol under systemd, readable lines elsewhere.

Under systemd, stderr is a stream to journald, and `$JOURNAL_STREAM` ("device:inode") names it. Then
each record goes as one datagram to journald's native socket, carrying the message, its priority,
where in the code it came from and the structured fields a caller attaches:

    logger.info("...", extra={"journal": {"EYESPYD_FILE": path, "EYESPYD_VERDICT": "blink"}})

so that `journalctl -u eyespyd EYESPYD_VERDICT=blink` finds every blink. `log_frame` writes the one
line per frame with its fields; the daemon calls only that.

Logging never stops the daemon: the socket is non-blocking with a small timeout. When journald does
not take a datagram (socket missing, queue full, message too large) the line goes to stderr with a
`<N>` priority prefix, which journald also understands, again without waiting more than the
timeout; once journald has stalled, the next few seconds do not wait at all and lines that cannot be
written are counted and reported when it reads again. Nothing here raises.

Elsewhere (a terminal, launchd's log file) records are plain lines on stderr:
`2026-11-22 10:00:01 info IMG_0001.CR3 blink 0.93 2 faces 41 ms`.

No systemd-python: it needs libsystemd to build, and its sends hold the GIL while journald is slow.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import socket
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "eyespyd"
TIMEOUT = 0.05  # seconds a record may wait for journald, or for stderr, before it is given up
STALL_BACKOFF = 5.0  # after journald stalled, seconds in which no send waits at all
MAX_MESSAGE_BYTES = 64 * 1024  # journald takes more, but a datagram must fit the socket buffer
MAX_FIELD_BYTES = 4 * 1024  # any other field (paths, names)
TRUNCATED = b" [truncated]"
_PIPE_CHUNK = 4096  # a write this small to a writable pipe or socket does not block

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}
_FIELD_NAME = re.compile(r"[A-Z0-9_]")


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald stores for a Python log level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def stderr_is_journal(fd: int = 2, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `fd` is the journal stream systemd connected, per `$JOURNAL_STREAM`.

    Comparing device and inode, not just the variable's presence, matters: a child process started
    from a service inherits the variable but may have its stderr redirected elsewhere."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(fd)
        return st.st_dev == int(device) and st.st_ino == int(inode)
    except (OSError, ValueError):
        return False


def setup_logging(
    level: str,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    journal_socket: str = JOURNAL_SOCKET,
) -> None:
    """Send the process's log records to the journal or to stderr, at `level` and above.

    Configures the root logger, so that libraries' warnings (watchdog's "Inotify queue overflowed")
    land in the same place, and Python warnings too. Calling it again (a reload that changed
    `log_level`) replaces the handler it installed before and leaves other handlers alone."""
    levelno = LEVELS.get(level.lower())
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    out = sys.stderr if stream is None else stream
    handler: logging.Handler
    if stderr_is_journal(_fileno(out), environ):
        handler = JournalHandler(journal_socket, fallback=out)
    else:
        handler = PlainHandler(out)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, (JournalHandler, PlainHandler))]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    logging.captureWarnings(True)


def log_frame(
    logger: logging.Logger,
    path: Path | str,
    verdict: str,
    score: float,
    faces: int,
    ms: float,
    destination: Path | str | None = None,
) -> None:
    """The one info line per frame: `IMG_0001.CR3 blink 0.93 2 faces 41 ms`, with the journal
    fields EYESPYD_FILE, EYESPYD_VERDICT, EYESPYD_SCORE, EYESPYD_FACES, EYESPYD_MS and, when the
    frame was moved or copied, EYESPYD_DESTINATION."""
    noun = "face" if faces == 1 else "faces"
    message = f"{Path(path).name} {verdict} {score:.2f} {faces} {noun} {ms:.0f} ms"
    fields = {
        "EYESPYD_FILE": str(path),
        "EYESPYD_VERDICT": verdict,
        "EYESPYD_SCORE": f"{score:.3f}",
        "EYESPYD_FACES": str(faces),
        "EYESPYD_MS": f"{ms:.0f}",
    }
    if destination is not None:
        message += f" -> {destination}"
        fields["EYESPYD_DESTINATION"] = str(destination)
    logger.info("%s", message, extra={"journal": fields})


class PlainFormatter(logging.Formatter):
    """`2026-11-22 10:00:01 info message`: for a terminal or launchd's log file."""

    def __init__(self) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        stamp = self.formatTime(record, self.datefmt)
        return f"{stamp} {record.levelname.lower()} {record.message}"


class PlainHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Plain lines on stderr, for when stderr is not the journal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.setFormatter(PlainFormatter())


class JournalHandler(logging.Handler):
    """Writes records to journald's native socket; see the module's docstring.

    `extra={"journal": {...}}` adds fields. Names are upper-cased, characters other than A-Z, 0-9
    and _ become _, and leading underscores are dropped (those fields are journald's own)."""

    def __init__(
        self,
        socket_path: str = JOURNAL_SOCKET,
        *,
        identifier: str = IDENTIFIER,
        timeout: float = TIMEOUT,
        fallback: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.identifier = identifier
        self.timeout = timeout
        self._fallback = fallback
        self._sock: socket.socket | None = None
        self._stalled_until = 0.0
        self._dropped = 0  # records that reached neither the journal nor stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception:  # logging must never take the daemon down
            self._dropped += 1

    def _emit(self, record: logging.LogRecord) -> None:
        # Called under the handler's lock (Handler.handle), so the socket is never shared.
        message = self._message(record)
        priority = syslog_priority(record.levelno)
        datagram = self.datagram(record, message, priority)
        if self._dropped and self._send(self._dropped_note()):
            self._dropped = 0
        if self._send(datagram):
            return
        lines = "".join(f"<{priority}>{line}\n" for line in message.splitlines() or [""])
        if not self._write_fallback(lines):
            self._dropped += 1

    def _wait(self) -> float:
        """How long a write may wait: `timeout`, or nothing while journald is known to stall."""
        return 0.0 if time.monotonic() < self._stalled_until else self.timeout

    def _stalled(self) -> None:
        self._stalled_until = time.monotonic() + STALL_BACKOFF

    def datagram(self, record: logging.LogRecord, message: str, priority: int) -> bytes:
        """The native-protocol datagram for a record."""
        fields: list[tuple[str, object]] = [
            ("MESSAGE", message),
            ("PRIORITY", priority),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", record.lineno),
            ("CODE_FUNC", record.funcName),
            ("LOGGER", record.name),
            ("THREAD_NAME", record.threadName),
        ]
        if record.exc_info and isinstance(record.exc_info[1], OSError) and record.exc_info[1].errno:
            fields.append(("ERRNO", record.exc_info[1].errno))
        extra = getattr(record, "journal", None)
        if isinstance(extra, Mapping):
            fields += [(field_name(str(k)), v) for k, v in extra.items() if v is not None]
        return b"".join(
            encode_field(name, value, MAX_MESSAGE_BYTES if name == "MESSAGE" else MAX_FIELD_BYTES)
            for name, value in fields
            if name
        )

    def _message(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string still leaves a line
            message = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            message += "\n" + record.stack_info
        return message

    def _dropped_note(self) -> bytes:
        text = (
            f"{self._dropped} log message(s) were dropped: neither the journal nor stderr took"
            " them in time"
        )
        return encode_field("MESSAGE", text, MAX_FIELD_BYTES) + b"".join(
            encode_field(k, v, MAX_FIELD_BYTES)
            for k, v in (("PRIORITY", 4), ("SYSLOG_IDENTIFIER", self.identifier))
        )

    def _send(self, datagram: bytes) -> bool:
        """True once journald has the datagram; False, at most `timeout` later, when it has not."""
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    # Connected, so that waiting on a full queue is a poll, not a busy loop.
                    sock.connect(self.socket_path)
                except BaseException:
                    sock.close()
                    raise
                self._sock = sock
            self._sock.settimeout(self._wait())
            self._sock.send(datagram)
            return True
        except (TimeoutError, BlockingIOError):
            self._stalled()
            return False
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                self._stalled()
            elif exc.errno != errno.EMSGSIZE:
                self._close_socket()  # missing, refused, journald restarted: connect anew
            return False

    def _write_fallback(self, text: str) -> bool:
        """Writes to stderr (or the given stream) without waiting longer than `timeout`."""
        stream = sys.stderr if self._fallback is None else self._fallback
        if stream is None:
            return False
        fd = _fileno(stream)
        if fd < 0:
            stream.write(text)  # an in-memory stream: never blocks
            stream.flush()
            return True
        stream.flush()
        deadline = time.monotonic() + self._wait()
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        while data:
            remaining = max(0.0, deadline - time.monotonic())
            _, writable, _ = select.select([], [fd], [], remaining)
            if not writable:
                self._stalled()
                return False
            data = data[os.write(fd, data[:_PIPE_CHUNK]) :]
        return True

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self.acquire()
        try:
            self._close_socket()
        finally:
            self.release()
        super().close()


def field_name(name: str) -> str:
    """A valid journal field name: A-Z, 0-9 and _, not starting with _ or a digit, at most 64."""
    upper = "".join(c if _FIELD_NAME.fullmatch(c) else "_" for c in name.upper())
    return upper.lstrip("_0123456789")[:64]


def encode_field(name: str, value: object, limit: int) -> bytes:
    """One field in journald's native format: `NAME=value\\n`, or when the value holds a newline
    `NAME\\n` + its length as 64-bit little-endian + the value + `\\n`."""
    data = _encode(value)
    if len(data) > limit:
        data = _truncate(data, limit - len(TRUNCATED)) + TRUNCATED
    key = name.encode("ascii")
    if b"\n" in data:
        return key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key + b"=" + data + b"\n"


def _encode(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape")  # a path's undecodable bytes, as they were
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def _truncate(data: bytes, size: int) -> bytes:
    """At most `size` bytes of `data`, not cutting a UTF-8 character in two."""
    cut = data[: max(0, size)]
    if len(cut) == len(data):
        return cut
    start = len(cut)  # walk back over continuation bytes to the last character's lead byte
    while start and cut[start - 1] & 0xC0 == 0x80:
        start -= 1
    if not start or cut[start - 1] < 0xC0:
        return cut  # the last character is ASCII (complete), or this is not UTF-8 at all
    lead = cut[start - 1]
    need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return cut if len(cut) - (start - 1) >= need else cut[: start - 1]


def _fileno(stream: Any) -> int:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return -1
    return fd if isinstance(fd, int) else -1
