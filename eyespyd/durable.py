"""durable: the file primitives route and xmp share to put bytes on disk safely.

A new file is written under a hidden temporary name, locked while its writer lives, made durable
with fsync, and only then given its real name; the folder is fsynced so the name survives a power
cut. `route.clean_temps` removes temporaries whose writer was killed: the lock tells them apart.

    open_temp(folder, name, mode)   a new locked hidden file beside `name`
    fsync_file(fd), fsync_dir(dir)  as durable as the platform allows
    describe(exc)                   an OSError in words, for one-line messages
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".eyespyd-tmp"

# Filesystems that cannot fsync a folder say so with these; there is nothing more to do there.
_NO_DIR_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


def open_temp(folder: Path, name: str, mode: int) -> tuple[int, Path]:
    """A new hidden file in `folder` named after `name`, open for reading and writing and
    locked, so that clean_temps in another process leaves it alone while we live."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(10):
        temp = folder / f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            fd = os.open(temp, flags, mode)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ours = os.fstat(fd).st_ino == os.lstat(temp).st_ino
        except OSError:
            ours = False  # a cleaner took it between our create and our lock
        if ours:
            return fd, temp
        os.close(fd)
    raise OSError(errno.EEXIST, "cannot create a temporary file", str(folder))


def fsync_file(fd: int) -> None:
    full = getattr(fcntl, "F_FULLFSYNC", None)  # macOS: fsync alone stops at the drive's cache
    if full is not None:
        try:
            fcntl.fcntl(fd, full)
            return
        except OSError:
            pass
    os.fsync(fd)


def fsync_dir(folder: Path, *, strict: bool = False) -> None:
    """Make new names in `folder` durable. Not `strict`: a folder that cannot be opened or
    fsynced is left at that; `strict`: only filesystems that cannot fsync folders are."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if strict and exc.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(fd)


def describe(exc: OSError) -> str:
    """ "permission denied", "no space left on device": the OS's words, lower case."""
    text = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    return text[:1].lower() + text[1:]
