"""route: a classified frame -> its files in the verdict's folder, never lost, never overwritten.

A frame travels as a group (`frame_group`): the photo, its RAW/JPEG/HEIC twin of the same stem, and
the sidecars of both naming forms (`IMG_0001.xmp` and `IMG_0001.CR3.xmp`). On a name collision the
whole group takes the first free stem `IMG_0001-1`, `-2`, ..., so twins and sidecars still match.

How a group is routed (`move`; `copy` and `hardlink` stop after step 2, `tag` moves nothing):

1. Plan: every member's source identity (device, inode, size, mtime) and its target name. The
   caller's `before(plan)` runs here, before any file is touched, so the ledger knows the intent.
2. Place every member at its target, the source untouched:
   - within a filesystem, `os.link(source, target)`: the same file under a second name; link fails
     when the target exists, so nothing can be overwritten (`os.rename` would replace it);
   - across filesystems, or where there are no hard links (exFAT cards, some shares), or for
     `copy`: copy to a hidden, locked temporary name in the destination, fsync it, read it back
     from the disk and compare size and sha256 with what was read from the source, then publish it
     under the target name without overwriting (a link, or where there are none, an exclusive
     empty reservation of the name that only the verified copy is renamed onto).
   Then fsync the destination folder, so the placed names are durable.
3. Only then remove the sources, each after checking it is still the planned file.

Guarantee: at every instant each member is whole in the inbox, at its target, or both; a kill
can leave both, never neither, and `record.recover` settles that at the next start. The group is
all-or-nothing as far as the filesystem allows: if any member cannot be placed, the members
already placed are withdrawn (they are copies or links of sources still in the inbox) and a
RouteError is raised with every source where it was. If removing the first source fails, the
placed files are withdrawn too. A failure to remove a later source (it would take a folder whose
permissions change mid-group) leaves a duplicate in the inbox, logged; the ledger skips it.

Stale temporary files of a killed process are removed at the first route into the folder after a
restart (and by `record.recover`); only our own names, and only when no living process holds their
lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eyespyd.decode import HEIF_SUFFIXES, JPEG_SUFFIXES, RAW_SUFFIXES, SUFFIXES
from eyespyd.durable import TEMP_SUFFIX, describe, fsync_dir, fsync_file, open_temp
from eyespyd.errors import EyespydError

log = logging.getLogger(__name__)

MOVE, COPY, HARDLINK, TAG = "move", "copy", "hardlink", "tag"
ACTIONS = (MOVE, COPY, HARDLINK, TAG)

# Adobe (Lightroom, Bridge), RawTherapee, DxO and Capture One sidecars. Each may be named after the
# stem (IMG_0001.xmp) or after the whole file name (IMG_0001.CR3.xmp).
SIDECAR_SUFFIXES = frozenset({".xmp", ".pp3", ".dop", ".cos"})

_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
_CHUNK = 1 << 20
_MAX_NUMBER = 9999  # IMG_0001-9999.CR3 is the last name tried

# os.link's errors that mean "no hard link here", not "something is wrong": across filesystems
# (EXDEV), filesystems without links or a protected_hardlinks policy (EPERM, ENOTSUP), a file
# already at the link limit (EMLINK). The copy path handles all of them.
_NO_LINK = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


class RouteError(EyespydError):
    """A frame could not be routed; every file of its group is still in the inbox."""

    def __init__(self, path: Path, destination: Path, reason: str) -> None:
        super().__init__(f"routing {path.name} to {destination}: {reason}")
        self.path = path
        self.destination = destination
        self.reason = reason


class _CollisionError(Exception):
    """A target name appeared after it was planned (another program wrote it meanwhile)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One file of a group: where it is, where it goes, and what it was when planned."""

    source: Path
    target: Path
    size: int
    mtime_ns: int
    device: int
    inode: int


@dataclass(frozen=True, slots=True)
class Plan:
    action: str
    destination: Path
    members: tuple[Member, ...]  # the primary first, as frame_group orders them

    @property
    def sources(self) -> tuple[Path, ...]:
        return tuple(m.source for m in self.members)

    @property
    def targets(self) -> tuple[Path, ...]:
        return tuple(m.target for m in self.members)


# --- which files make a frame ---------------------------------------------------------------


def frame_group(path: Path) -> tuple[Path, ...]:
    """`path` and the files of its folder that travel with it: photos of the same stem (a RAW and
    its JPEG or HEIC) and their sidecars in both naming forms. The stem must match exactly, the
    suffixes in any case. The primary comes first, then the other photos, then the sidecars."""
    path = Path(path)
    stem = path.stem
    photos: list[Path] = []
    sidecars: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        entries = []  # route reports a vanished folder with its reason
    for entry in entries:
        if not entry.name.startswith(stem + "."):
            continue
        kind = _member_kind(entry.name[len(stem) :])
        try:
            regular = entry.is_file(follow_symlinks=False)
        except OSError:
            regular = False
        if kind is None or not regular:
            continue
        (photos if kind == "photo" else sidecars).append(path.parent / entry.name)
    if path not in photos and path not in sidecars:
        photos.append(path)  # whatever the caller asked about travels, even if it is gone
    photos.sort(key=lambda p: (_rank(p), p.name))
    sidecars.sort(key=lambda p: p.name)
    return (*photos, *sidecars)


def primary(group: Sequence[Path]) -> Path:
    """The member to classify: the cheapest to decode that shows what the photographer saw.

    A JPEG first: a camera JPEG is what was seen on the back of the camera and has an MPF preview.
    Then a RAW: its embedded preview is found and read in about 10 ms. HEIC last, after RAW: it
    takes 0.4 to 0.7 s to decode, its thumbnails are too small for eyes, and pillow-heif is an
    optional extra that may not be installed. Sidecars are never classified.
    """
    if not group:
        raise ValueError("an empty group has no primary")
    return min(group, key=_rank)  # min keeps the first of equals, so the order is stable


def _member_kind(rest: str) -> str | None:
    """ "photo", "sidecar" or None for what follows the stem: ".CR3", ".xmp", ".CR3.xmp"."""
    rest = rest.lower()
    if rest in SUFFIXES:
        return "photo"
    if rest in SIDECAR_SUFFIXES:
        return "sidecar"
    photo_suffix, _, sidecar = rest.rpartition(".")
    if photo_suffix in SUFFIXES and "." + sidecar in SIDECAR_SUFFIXES:
        return "sidecar"
    return None


def _rank(path: Path) -> int:
    suffix = path.suffix.lower()
    if suffix in JPEG_SUFFIXES:
        return 0
    if suffix in RAW_SUFFIXES:
        return 1
    if suffix in HEIF_SUFFIXES:
        return 3
    if suffix in SUFFIXES:
        return 2  # PNG, TIFF, WebP: decoded whole, but no worse than HEIC
    return 9


# --- routing ----------------------------------------------------------------------------------

_folder_locks: dict[str, threading.Lock] = {}
_folder_locks_guard = threading.Lock()
_cleaned: set[str] = set()  # folders whose stale temporary files this process has removed


def route(
    group: Sequence[Path],
    destination: Path,
    action: str,
    *,
    before: Callable[[Plan], None] | None = None,
) -> tuple[Path, ...]:
    """Put the group in `destination` by `action` and return the new paths, in the group's order
    (for `tag`, the group as it is). `before(plan)` runs once the target names are chosen and
    before any file is touched; if it raises, nothing is touched and its exception propagates.

    Raises RouteError (what, which file, why) with every source still in the inbox."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    sources = tuple(Path(p) for p in group)
    if not sources:
        raise ValueError("an empty group has nothing to route")
    if len({p.parent for p in sources}) != 1:
        raise ValueError("a group's files must all be in one folder")
    destination = Path(destination)
    if action == TAG:
        plan = Plan(TAG, destination, _members(sources, sources, destination))
        if before is not None:
            before(plan)
        return sources
    with _folder_lock(destination):
        # Within this process the lock makes "choose free names, then place" one step; other
        # processes are kept from overwriting by link's and O_EXCL's refusal of existing names.
        _make_folder(destination, sources[0])
        key = str(destination.absolute())
        if key not in _cleaned:  # a kill means a new process: once per folder per process
            clean_temps(destination)
            _cleaned.add(key)
        plan = Plan(
            action, destination, _members(sources, _targets(sources, destination), destination)
        )
        if before is not None:
            before(plan)
        return _execute(plan)


def _folder_lock(folder: Path) -> threading.Lock:
    with _folder_locks_guard:
        return _folder_locks.setdefault(str(Path(folder).absolute()), threading.Lock())


def _make_folder(destination: Path, first: Path) -> None:
    """Create the destination if it is missing, but not its parents: a missing parent is most
    often a drive that is not mounted, and folders made in its mount point would fill the system
    disk. The daemon creates the configured folders, parents included, at start-up."""
    if destination.is_dir():
        return
    try:
        destination.mkdir()
    except FileExistsError:
        if not destination.is_dir():
            raise RouteError(first, destination, "it exists and is not a folder") from None
    except FileNotFoundError:
        raise RouteError(
            first,
            destination,
            f"its parent folder {destination.parent} does not exist (is the drive connected?)",
        ) from None
    except OSError as exc:
        raise RouteError(first, destination, f"cannot create the folder: {describe(exc)}") from exc
    else:
        fsync_dir(destination.parent, strict=False)


def _members(
    sources: tuple[Path, ...], targets: tuple[Path, ...], destination: Path
) -> tuple[Member, ...]:
    members = []
    for source, target in zip(sources, targets, strict=True):
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise RouteError(source, destination, "the file is no longer in the inbox") from None
        except OSError as exc:
            raise RouteError(source, destination, describe(exc)) from exc
        if not stat.S_ISREG(st.st_mode):
            raise RouteError(source, destination, "not a regular file")
        members.append(Member(source, target, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
    return tuple(members)


def _targets(sources: tuple[Path, ...], destination: Path) -> tuple[Path, ...]:
    """Target paths with one stem for the whole group: the first free of IMG_0001, IMG_0001-1..."""
    stem = primary(sources).stem
    rests = []
    for source in sources:
        rest = source.name[len(stem) :]
        if not source.name.startswith(stem) or (rest and not rest.startswith(".")):
            raise ValueError(f"{source.name} is not of the frame {stem}")
        rests.append(rest)
    for number in range(_MAX_NUMBER + 1):
        new_stem = stem if number == 0 else f"{stem}-{number}"
        targets = tuple(destination / (new_stem + rest) for rest in rests)
        if not any(os.path.lexists(t) for t in targets):
            return targets
    raise RouteError(sources[0], destination, f"no free name up to {stem}-{_MAX_NUMBER}")


def _execute(plan: Plan) -> tuple[Path, ...]:
    placed: list[tuple[Member, tuple[int, int]]] = []  # targets made here, with their identity
    try:
        for member in plan.members:
            placed.append((member, _place(member, plan)))
        fsync_dir(plan.destination, strict=True)
    except BaseException as exc:
        # Whatever stopped us (an error, a KeyboardInterrupt), the sources have not been touched:
        # withdraw what was placed so the group is in one place.
        _withdraw(placed)
        if isinstance(exc, OSError):  # only fsync_dir raises a bare OSError
            raise RouteError(plan.sources[0], plan.destination, describe(exc)) from exc
        raise
    if plan.action == MOVE:
        _remove_sources(plan, placed)
    return plan.targets


def _place(member: Member, plan: Plan) -> tuple[int, int]:
    """Create `member.target` as a complete copy or link of the source and return its identity
    (device, inode), or raise RouteError having created nothing."""
    if plan.action != COPY:  # a copy must be a file of its own, never a second name of the source
        try:
            _check_unchanged(member, plan.destination)
            os.link(member.source, member.target)
        except FileExistsError:
            raise _collision(member, plan.destination) from None
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise RouteError(member.source, plan.destination, _why(exc, member)) from exc
            log.debug("no hard link from %s to %s (%s): copying", member.source, member.target, exc)
        else:
            identity = _identity(member.target)
            if identity != (member.device, member.inode):
                # The source was replaced between the check and the link: not the planned file,
                # which is still in the inbox under the name we linked from.
                _unlink_quietly(member.target)
                raise _changed(member, plan.destination)
            return identity
    try:
        return _copy(member, plan.destination)
    except _CollisionError:
        raise _collision(member, plan.destination) from None
    except OSError as exc:
        raise RouteError(member.source, plan.destination, _why(exc, member)) from exc


def _copy(member: Member, destination: Path) -> tuple[int, int]:
    """Copy to a locked temporary name, fsync, verify against the source, publish; the
    identity of the published copy."""
    fd, temp = open_temp(destination, member.target.name, 0o600)
    published = False
    try:
        st = os.fstat(fd)
        size, digest = _copy_data(member, fd, destination)
        try:
            shutil.copystat(member.source, temp)  # dates and mode, as the photographer had them
        except OSError as exc:
            log.debug("cannot copy the dates and mode of %s: %s", member.source, exc)
        fsync_file(fd)
        if _read_back(fd) != (size, digest):
            raise RouteError(
                member.source, destination, "the copy does not match the original (sha256 differs)"
            )
        _publish(temp, member.target)
        published = True
    finally:
        if not published:
            _unlink_quietly(temp)
        os.close(fd)  # releases the lock
    return st.st_dev, st.st_ino


def _copy_data(member: Member, out: int, destination: Path) -> tuple[int, str]:
    """Copy the source into `out`; its size and sha256 as read, checked against the plan."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        source = member.source.open("rb", buffering=0)
    except FileNotFoundError:
        raise RouteError(member.source, destination, "the file is no longer in the inbox") from None
    with source:
        if _stat_key(os.fstat(source.fileno())) != _member_key(member):
            raise _changed(member, destination)
        while n := source.readinto(buffer):
            digest.update(view[:n])
            _write_all(out, view[:n])
            size += n
        if _stat_key(os.fstat(source.fileno())) != _member_key(member) or size != member.size:
            raise _changed(member, destination)
    return size, digest.hexdigest()


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_back(fd: int) -> tuple[int, str]:
    """Size and sha256 of what the disk holds: the page cache is dropped first where the system
    allows it, so this reads what was written, not what was meant to be."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    digest = hashlib.sha256()
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _publish(temp: Path, target: Path) -> None:
    """Give the verified copy its final name, never replacing an existing file."""
    try:
        os.link(temp, target)
    except FileExistsError:
        raise _CollisionError from None
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        # No hard links here: reserve the name exclusively, then rename the copy onto our own
        # empty reservation. A kill in between leaves an empty file, which recover removes.
        try:
            reservation = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise _CollisionError from None
        os.close(reservation)
        try:
            temp.rename(target)  # onto our own reservation only
        except OSError:
            _unlink_quietly(target)
            raise
        return
    _unlink_quietly(temp)


def _remove_sources(plan: Plan, placed: list[tuple[Member, tuple[int, int]]]) -> None:
    """Every member is durable at its target: remove the sources that are still the planned
    files. Nothing removed yet when the first fails: withdraw the targets and raise."""
    removed = 0
    for member in plan.members:
        problem: str | None = None
        try:
            if _stat_key(os.lstat(member.source)) != _member_key(member):
                problem = "the file changed while it was being routed"
            else:
                member.source.unlink()
        except FileNotFoundError:
            pass  # gone already: its target is complete, nothing is lost
        except OSError as exc:
            problem = f"cannot remove it from the inbox: {describe(exc)}"
        if problem is None:
            removed += 1
            continue
        if removed == 0:
            _withdraw(placed)
            raise RouteError(member.source, plan.destination, problem)
        log.warning(
            "routed %s to %s, but %s; the copy in the inbox will be skipped",
            member.source,
            member.target,
            problem,
        )
    fsync_dir(plan.members[0].source.parent, strict=False)


def _withdraw(placed: list[tuple[Member, tuple[int, int]]]) -> None:
    """Remove the targets made by this attempt, each only while it is provably a duplicate of a
    file still in the inbox: a second name of the source, or our verified copy of a source that
    has not changed since."""
    for member, identity in reversed(placed):
        target = _identity(member.target)
        if target is None:
            continue
        try:
            source = os.lstat(member.source)
        except OSError:
            source = None
        if target != identity or source is None:
            duplicate = False
        elif (source.st_dev, source.st_ino) == target:
            duplicate = True
        else:
            duplicate = _stat_key(source) == _member_key(member)
        if not duplicate:
            log.warning("left %s in place: its original in the inbox changed", member.target)
            continue
        try:
            member.target.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning(
                "cannot remove %s, a duplicate of %s: %s", member.target, member.source, exc
            )


def clean_temps(folder: Path) -> int:
    """Remove our temporary files left in `folder` by a killed process; how many were removed.
    A temporary file is a partial or unpublished copy whose source is still in the inbox, or a
    second name of a published target: never the only copy of anything."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a living router: leave it
            if os.fstat(fd).st_ino == os.lstat(entry.path).st_ino:
                Path(entry.path).unlink()
                removed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d unfinished temporary file(s) from %s", removed, folder)
    return removed


# --- small helpers ----------------------------------------------------------------------------


def is_duplicate(original: Path, other: Path) -> bool:
    """Whether `other` provably holds the same bytes as `original`: the same file (device and
    inode), or the same size and sha256. False when either cannot be read."""
    try:
        a, b = Path(original).stat(), Path(other).stat()
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
            return True
        return a.st_size == b.st_size and file_sha256(original) == file_sha256(other)
    except OSError:
        return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb", buffering=0) as f:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _member_key(member: Member) -> tuple[int, int, int, int]:
    return member.device, member.inode, member.size, member.mtime_ns


def _check_unchanged(member: Member, destination: Path) -> None:
    try:
        st = os.lstat(member.source)
    except FileNotFoundError:
        raise RouteError(member.source, destination, "the file is no longer in the inbox") from None
    if _stat_key(st) != _member_key(member):
        raise _changed(member, destination)


def _changed(member: Member, destination: Path) -> RouteError:
    return RouteError(member.source, destination, "the file changed while it was being routed")


def _collision(member: Member, destination: Path) -> RouteError:
    return RouteError(
        member.source,
        destination,
        f"another program created {member.target.name} there meanwhile; not overwritten",
    )


def _why(exc: OSError, member: Member) -> str:
    if exc.errno == errno.ENOENT:
        if not os.path.lexists(member.source):
            return "the file is no longer in the inbox"
        if not member.target.parent.is_dir():
            return "the folder is gone"
    return describe(exc)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
