"""Logging: journald's native protocol through a real datagram socket, readable lines elsewhere."""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eyespyd import journal
from eyespyd.journal import JournalHandler, encode_field, log_frame, setup_logging


def parse(datagram: bytes) -> dict[str, list[bytes]]:
    """A native-protocol datagram as field -> values, reading both the KEY=value and the
    KEY\\n<le64 length><data>\\n forms."""
    fields: dict[str, list[bytes]] = {}
    rest = datagram
    while rest:
        line, sep, after = rest.partition(b"\n")
        assert sep, f"unterminated field {rest!r}"
        if b"=" in line:
            key, _, value = line.partition(b"=")
            rest = after
        else:
            key = line
            (size,) = struct.unpack("<Q", after[:8])
            value = after[8 : 8 + size]
            assert after[8 + size : 9 + size] == b"\n"
            rest = after[9 + size :]
        fields.setdefault(key.decode(), []).append(value)
    return fields


def one(fields: dict[str, list[bytes]], key: str) -> str:
    (value,) = fields[key]
    return value.decode()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """AF_UNIX paths are limited to about 100 bytes; pytest's tmp_path can be longer."""
    folder = Path(tempfile.mkdtemp(prefix="eyespyd-"))
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def journald(short_dir: Path) -> Iterator[socket.socket]:
    """A fake journald: a bound datagram socket the handler is pointed at."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(short_dir / "journal.socket"))
    sock.settimeout(5)
    yield sock
    sock.close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    # Outside logging's registry, so pytest's capture handlers (which re-raise formatting
    # errors) are not attached to it and nothing propagates to the root.
    log = logging.Logger("eyespyd.test_journal", logging.DEBUG)
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """setup_logging configures the root logger: put it back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def attach(
    logger: logging.Logger, journald: socket.socket, fallback: io.StringIO | None = None
) -> JournalHandler:
    handler = JournalHandler(journald.getsockname(), fallback=fallback or io.StringIO())
    logger.addHandler(handler)
    return handler


def test_record_reaches_the_journal_with_priority_identifier_and_code_location(
    logger: logging.Logger, journald: socket.socket
) -> None:
    attach(logger, journald)
    logger.warning("inbox %s is missing", "/photos/inbox")
    fields = parse(journald.recv(65536))
    assert one(fields, "MESSAGE") == "inbox /photos/inbox is missing"
    assert one(fields, "PRIORITY") == "4"
    assert one(fields, "SYSLOG_IDENTIFIER") == "eyespyd"
    assert one(fields, "CODE_FILE") == __file__
    assert one(fields, "CODE_FUNC") == (
        "test_record_reaches_the_journal_with_priority_identifier_and_code_location"
    )
    assert int(one(fields, "CODE_LINE")) > 0
    assert one(fields, "LOGGER") == "eyespyd.test_journal"


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_levels_map_to_syslog_priorities(level: int, priority: int) -> None:
    assert journal.syslog_priority(level) == priority


def test_log_frame_sends_the_frame_fields(logger: logging.Logger, journald: socket.socket) -> None:
    attach(logger, journald)
    log_frame(logger, Path("/photos/inbox/IMG_0001.CR3"), "blink", 0.934, 2, 41.2)
    fields = parse(journald.recv(65536))
    assert one(fields, "MESSAGE") == "IMG_0001.CR3 blink 0.93 2 faces 41 ms"
    assert one(fields, "PRIORITY") == "6"
    assert one(fields, "EYESPYD_FILE") == "/photos/inbox/IMG_0001.CR3"
    assert one(fields, "EYESPYD_VERDICT") == "blink"
    assert one(fields, "EYESPYD_SCORE") == "0.934"
    assert one(fields, "EYESPYD_FACES") == "2"
    assert one(fields, "EYESPYD_MS") == "41"
    assert "EYESPYD_DESTINATION" not in fields


def test_log_frame_names_the_destination_and_one_face(
    logger: logging.Logger, journald: socket.socket
) -> None:
    attach(logger, journald)
    log_frame(logger, "/in/a.jpg", "keep", 0.1, 1, 9.6, destination="/keep/a-1.jpg")
    fields = parse(journald.recv(65536))
    assert one(fields, "MESSAGE") == "a.jpg keep 0.10 1 face 10 ms -> /keep/a-1.jpg"
    assert one(fields, "EYESPYD_DESTINATION") == "/keep/a-1.jpg"


def test_a_traceback_travels_in_the_binary_form_with_its_errno(
    logger: logging.Logger, journald: socket.socket
) -> None:
    attach(logger, journald)
    try:
        raise FileNotFoundError(errno.ENOENT, "No such file", "/in/gone.jpg")
    except OSError:
        logger.exception("cannot read /in/gone.jpg")
    datagram = journald.recv(65536)
    assert b"\nMESSAGE\n" in b"\n" + datagram  # the length-prefixed form, not MESSAGE=
    fields = parse(datagram)
    message = one(fields, "MESSAGE")
    assert message.startswith("cannot read /in/gone.jpg\nTraceback (most recent call last):")
    assert "FileNotFoundError" in message
    assert one(fields, "ERRNO") == str(errno.ENOENT)
    assert one(fields, "PRIORITY") == "3"


def test_caller_fields_are_named_as_the_journal_requires(
    logger: logging.Logger, journald: socket.socket
) -> None:
    attach(logger, journald)
    fields_in = {"eyespyd_mode": "move", "_SYSTEMD_UNIT": "forged", "folder-index": 2, "none": None}
    logger.info("started", extra={"journal": fields_in})
    fields = parse(journald.recv(65536))
    assert one(fields, "EYESPYD_MODE") == "move"
    assert one(fields, "SYSTEMD_UNIT") == "forged"  # never a trusted _FIELD
    assert one(fields, "FOLDER_INDEX") == "2"
    assert "NONE" not in fields


def test_a_huge_message_is_truncated_to_fit_one_datagram(
    logger: logging.Logger, journald: socket.socket
) -> None:
    attach(logger, journald)
    logger.info("x" * 1_000_000)
    message = one(parse(journald.recv(2_000_000)), "MESSAGE")
    assert len(message.encode()) == journal.MAX_MESSAGE_BYTES
    assert message.endswith("x [truncated]")


def test_truncation_never_splits_a_character() -> None:
    field = encode_field("MESSAGE", "é" * 100, 51 + len(journal.TRUNCATED))
    value = field.removeprefix(b"MESSAGE=").removesuffix(b"\n")
    assert value.decode("utf-8") == "é" * 25 + " [truncated]"  # 50 bytes, not a half é


def test_an_undecodable_path_is_sent_as_its_bytes() -> None:
    path = os.fsdecode(b"/in/caf\xe9.jpg")  # Latin-1 name on a UTF-8 system
    assert encode_field("EYESPYD_FILE", path, 4096) == b"EYESPYD_FILE=/in/caf\xe9.jpg\n"


def test_a_bad_format_string_still_logs_and_never_raises(
    logger: logging.Logger, journald: socket.socket
) -> None:
    attach(logger, journald)
    logger.info("%d frames", "many")
    assert "many" in one(parse(journald.recv(65536)), "MESSAGE")


def test_without_a_journal_socket_lines_go_to_stderr_with_a_priority_prefix(
    logger: logging.Logger, short_dir: Path
) -> None:
    fallback = io.StringIO()
    logger.addHandler(JournalHandler(str(short_dir / "missing.socket"), fallback=fallback))
    logger.warning("first line\nsecond line")
    logger.error("broken")
    assert fallback.getvalue() == "<4>first line\n<4>second line\n<3>broken\n"


def test_a_journal_that_does_not_read_never_blocks_the_logger(
    logger: logging.Logger, journald: socket.socket
) -> None:
    fallback = io.StringIO()
    handler = attach(logger, journald, fallback)
    handler.timeout = 0.05

    def flood() -> None:
        for i in range(400):
            logger.info("frame %d %s", i, "x" * 4000)

    worker = threading.Thread(target=flood)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "logging blocked on a journal that does not read"
    assert "<6>frame 399 " in fallback.getvalue()  # the queue filled and lines went to stderr


def test_when_stderr_is_full_too_lines_are_dropped_counted_and_reported(
    logger: logging.Logger, journald: socket.socket
) -> None:
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(write_end, b"\0" * 65536)
    except BlockingIOError:
        pass
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)  # a blocking, full pipe, as a stalled stderr
    with os.fdopen(write_end, "w") as stderr, os.fdopen(read_end, "rb") as reader:
        handler = JournalHandler(journald.getsockname(), fallback=stderr, timeout=0.05)
        logger.addHandler(handler)

        def flood() -> None:
            for i in range(400):
                logger.info("frame %d %s", i, "x" * 4000)

        worker = threading.Thread(target=flood)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "logging blocked on a full stderr"
        received = 0
        journald.setblocking(False)
        try:
            while True:
                journald.recv(65536)
                received += 1
        except BlockingIOError:
            pass
        assert 0 < received < 400
        journald.setblocking(True)
        handler._stalled_until = 0.0  # as if the back-off had passed
        logger.info("journald reads again")
        note = one(parse(journald.recv(65536)), "MESSAGE")
        assert re.fullmatch(r"\d+ log message\(s\) were dropped: .*", note)
        assert int(note.split()[0]) == 400 - received
        assert one(parse(journald.recv(65536)), "MESSAGE") == "journald reads again"
        reader.close()


def test_stderr_is_the_journal_only_when_device_and_inode_match(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        stream = f"{st.st_dev}:{st.st_ino}"
        assert journal.stderr_is_journal(a.fileno(), {"JOURNAL_STREAM": stream})
        assert not journal.stderr_is_journal(b.fileno(), {"JOURNAL_STREAM": stream})
        assert not journal.stderr_is_journal(a.fileno(), {})
        assert not journal.stderr_is_journal(a.fileno(), {"JOURNAL_STREAM": "not:numbers"})
        assert not journal.stderr_is_journal(a.fileno(), {"JOURNAL_STREAM": "12345"})


def test_setup_logging_under_systemd_sends_to_the_journal(
    root_logger: logging.Logger, journald: socket.socket, tmp_path: Path
) -> None:
    with (tmp_path / "stderr").open("w") as stderr:
        st = os.fstat(stderr.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        setup_logging("info", stream=stderr, environ=env, journal_socket=journald.getsockname())
        logging.getLogger("eyespyd.daemon").debug("not at info")
        log_frame(logging.getLogger("eyespyd.daemon"), "/in/IMG_0002.JPG", "keep", 0.05, 1, 12)
        fields = parse(journald.recv(65536))
        assert one(fields, "MESSAGE") == "IMG_0002.JPG keep 0.05 1 face 12 ms"
        assert one(fields, "EYESPYD_VERDICT") == "keep"
    assert (tmp_path / "stderr").read_text() == ""


def test_setup_logging_elsewhere_writes_readable_lines(root_logger: logging.Logger) -> None:
    stderr = io.StringIO()
    setup_logging("info", stream=stderr, environ={})
    daemon = logging.getLogger("eyespyd.daemon")
    log_frame(daemon, Path("/in/IMG_0001.CR3"), "blink", 0.93, 2, 41)
    daemon.debug("not at info")
    line = stderr.getvalue()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.fullmatch(stamp + r" info IMG_0001\.CR3 blink 0\.93 2 faces 41 ms\n", line), line


def test_setup_logging_again_replaces_its_own_handler_only(root_logger: logging.Logger) -> None:
    other = logging.NullHandler()
    root_logger.addHandler(other)
    setup_logging("info", stream=io.StringIO(), environ={})
    setup_logging("debug", stream=io.StringIO(), environ={})
    ours = [h for h in root_logger.handlers if isinstance(h, journal.PlainHandler)]
    assert len(ours) == 1
    assert other in root_logger.handlers
    assert root_logger.level == logging.DEBUG


def test_an_unknown_level_is_refused(root_logger: logging.Logger) -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        setup_logging("loud", stream=io.StringIO(), environ={})
