"""sd_notify: real datagram sockets stand in for systemd, by path and in the abstract namespace."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eyespyd.notify import Notifier


@pytest.fixture
def systemd() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and the $NOTIFY_SOCKET value that names it (a short path: AF_UNIX
    paths are limited to about 100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="eyespyd-"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / "notify"))
    sock.settimeout(5)
    yield sock, str(folder / "notify")
    sock.close()
    shutil.rmtree(folder)


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().splitlines()


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = Notifier(environ={})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert not notifier.status("idle")


def test_ready_with_status_is_one_datagram(systemd: tuple[socket.socket, str]) -> None:
    sock, address = systemd
    notifier = Notifier(environ={"NOTIFY_SOCKET": address})
    assert notifier.ready("watching 1 folder")
    assert received(sock) == ["READY=1", "STATUS=watching 1 folder"]


def test_the_environment_is_read_by_default(
    systemd: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = systemd
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert Notifier().stopping()
    assert received(sock) == ["STOPPING=1"]
    assert Notifier.from_environment().ready()
    assert received(sock) == ["READY=1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux's")
def test_a_leading_at_sign_is_the_abstract_namespace() -> None:
    name = f"eyespyd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert received(sock) == ["WATCHDOG=1"]


def test_reloading_carries_the_monotonic_clock(systemd: tuple[socket.socket, str]) -> None:
    sock, address = systemd
    notifier = Notifier(environ={"NOTIFY_SOCKET": address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    reloading, monotonic = received(sock)
    assert reloading == "RELOADING=1"
    name, _, usec = monotonic.partition("=")
    assert name == "MONOTONIC_USEC"
    assert before <= int(usec) <= after


def test_status_and_timeout_extension(systemd: tuple[socket.socket, str]) -> None:
    sock, address = systemd
    notifier = Notifier(environ={"NOTIFY_SOCKET": address})
    assert notifier.status("scanning\n3 folders")
    assert received(sock) == ["STATUS=scanning 3 folders"]  # one line, always
    assert notifier.extend_timeout(90)
    assert received(sock) == ["EXTEND_TIMEOUT_USEC=90000000"]


def test_a_missing_socket_never_raises(tmp_path: Path) -> None:
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234", "@"])
def test_addresses_eyespyd_cannot_use_disable_it(value: str) -> None:
    assert not Notifier(environ={"NOTIFY_SOCKET": value}).enabled


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier(environ=env).watchdog_interval() == interval
