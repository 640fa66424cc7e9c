"""record: the ledger of every frame eyespyd handled, in SQLite; it makes restarts idempotent.

The protocol, in the order the daemon follows it:

1. At start-up, before any worker runs: `Ledger.open()`, `start_session(config source)`, then
   `recover(ledger)` settles the frames a kill left half-routed (see 5).
2. For each frame: skip it if `already_routed(path, size, mtime_ns)` (a member of a frame that
   is routed, or being routed, with the same size and mtime: `copy`, `hardlink` and `tag` leave
   the sources in the inbox, and rescans find them again).
3. `route_and_record(ledger, result, group, destination, action)` runs the route stage with
   `begin(result, plan)` as its `before` hook: one transaction refuses the frame if any member is
   already routed or being routed (two workers, one frame) and commits status 'routing' with
   every member's source, planned target and identity (device, inode, size, mtime) before any file
   is touched. After route returns, `finish()` commits 'routed'. On a RouteError,
   `record_error()` commits 'failed' with the reason, so the frame is routed again at a later
   rescan, and says whether the error is new in this session (log it) or a repeat (don't).
4. route places every member at its target and fsyncs the folder before it removes any source, so
   a kill leaves each member whole in the inbox, at its target, or both (see eyespyd.route).
5. `recover()` settles each 'routing' row. If every member is whole at its target (a second name
   of the source, the same size and sha256 as the source, or the source gone and the size right)
   it rolls forward: for `move` it removes the sources that are provable duplicates of their
   targets, and marks the row 'routed'. Otherwise it rolls back: it removes the targets that are
   provable duplicates of their sources and the empty names reserved on filesystems without hard
   links, and marks the row 'failed', so the frame is routed again. It deletes nothing else.

One row per frame, keyed by (path, size, mtime_ns) of the primary; a file that comes back changed
is a new frame. Writes go through one connection under a lock (the daemon's workers are threads;
SQLite serialises writers anyway); WAL lets `eyespyd report` read while the daemon writes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from eyespyd import __version__, paths
from eyespyd.errors import EyespydError
from eyespyd.route import MOVE, TAG, Member, Plan, RouteError, clean_temps, is_duplicate, route
from eyespyd.types import Face
from eyespyd.verdict import FaceReading

log = logging.getLogger(__name__)

LEDGER_NAME = "ledger.sqlite3"
SCHEMA_VERSION = 1
ROUTING, ROUTED, FAILED, SKIPPED = "routing", "routed", "failed", "skipped"
INTERRUPTED = "interrupted while routing; will be routed again"

_SCHEMA = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,             -- unix time
    config TEXT NOT NULL,              -- the configuration file, or "embedded default ..."
    pid INTEGER NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE frames (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions(id),
    path TEXT NOT NULL,                -- the primary, where it was in the inbox
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    score REAL NOT NULL,
    reasons TEXT NOT NULL,             -- JSON list of strings
    faces TEXT NOT NULL,               -- JSON: box, score and eye probabilities of each face
    ms REAL NOT NULL,                  -- classification time
    pixels TEXT NOT NULL,              -- which pixels were classified, e.g. "PRVW box"
    decode_error TEXT,                 -- why the file could not be read (then kept)
    action TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('routing', 'routed', 'failed')),
    route_error TEXT,
    route_ms REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (path, size, mtime_ns)
);
CREATE TABLE members (
    frame INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,         -- 0 is the primary
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    device TEXT NOT NULL,              -- text: st_dev and st_ino may not fit a signed 64 bits
    inode TEXT NOT NULL,
    PRIMARY KEY (frame, position)
);
CREATE INDEX members_by_source ON members (source, size, mtime_ns);
CREATE INDEX frames_by_session ON frames (session, status);
CREATE INDEX frames_by_status ON frames (status);
CREATE TABLE errors (                  -- what was logged, so a retry does not log it again
    session INTEGER NOT NULL,
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (session, path, reason)
);
"""


class LedgerError(EyespydError):
    """The ledger is missing, unreadable, from a newer eyespyd, or asked for what it lacks."""


class AlreadyRoutedError(LedgerError):
    """begin() refused a frame that is routed, or being routed by another worker."""


class Classified(Protocol):
    """What the ledger keeps of a pipeline.Result (structural, so recording needs no models)."""

    @property
    def path(self) -> Path: ...
    @property
    def verdict(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def reasons(self) -> Sequence[str]: ...
    @property
    def faces(self) -> Sequence[FaceWithEyes]: ...
    @property
    def ms(self) -> float: ...
    @property
    def error(self) -> str | None: ...
    @property
    def source(self) -> str: ...


class FaceWithEyes(Protocol):
    @property
    def face(self) -> Face: ...
    @property
    def eyes(self) -> FaceReading: ...


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    started: float
    config: str
    pid: int
    version: str


@dataclass(frozen=True, slots=True)
class Frame:
    """One ledger row, as read back."""

    id: int
    session: int
    path: Path
    size: int
    mtime_ns: int
    verdict: str
    score: float
    reasons: tuple[str, ...]
    faces: tuple[dict[str, Any], ...]
    ms: float
    pixels: str
    decode_error: str | None
    action: str
    destination: Path
    status: str
    route_error: str | None
    route_ms: float | None
    sources: tuple[Path, ...]
    targets: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Tally:
    """How a session's frames ended: routed (by verdict), failed, or still being routed."""

    routed: Mapping[str, int]
    failed: int = 0
    in_progress: int = 0

    @property
    def frames(self) -> int:
        return sum(self.routed.values()) + self.failed + self.in_progress


_FRAME_COLUMNS = (
    "id, session, path, size, mtime_ns, verdict, score, reasons, faces, ms, pixels,"
    " decode_error, action, destination, status, route_error, route_ms"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What route_and_record did: "routed", "skipped" (handled already, or by another worker)
    or "failed" (everything still in the inbox; `log_error` is True the first time)."""

    status: str
    targets: tuple[Path, ...] = ()
    error: RouteError | None = None
    log_error: bool = False


@dataclass(frozen=True, slots=True)
class Recovered:
    """How recover() settled one frame left 'routing' by a kill."""

    path: Path
    status: str  # routed or failed
    removed: tuple[Path, ...]  # provable duplicates deleted

    def __str__(self) -> str:
        if self.status == ROUTED:
            done = (
                f"; removed {len(self.removed)} duplicate(s) from the inbox" if self.removed else ""
            )
            return f"recovered {self.path}: it had been routed{done}"
        done = f"; removed {len(self.removed)} partial duplicate(s)" if self.removed else ""
        return f"recovered {self.path}: interrupted, it will be routed again{done}"


class Ledger:
    """The SQLite ledger. Thread-safe: one connection, one lock."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.RLock()
        self.path = path
        self.session: int | None = None

    @classmethod
    def open(cls, path: Path | None = None, *, create: bool = True) -> Ledger:
        """The ledger at `path` (default: the state folder's ledger.sqlite3). With create=False a
        missing ledger is a LedgerError (for `eyespyd report` before the daemon ever ran)."""
        path = Path(path) if path is not None else paths.state_dir() / LEDGER_NAME
        if not path.exists():
            if not create:
                raise LedgerError(f"no ledger at {path}: eyespyd has not routed anything yet")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
        try:
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        ledger = cls(db, path)
        try:
            ledger._prepare()
        except sqlite3.Error as exc:
            db.close()
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from exc
        except BaseException:
            db.close()  # e.g. a ledger from a newer eyespyd: refused, and not left open
            raise
        return ledger

    def _prepare(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across a kill
            self._db.execute("PRAGMA foreign_keys = ON")
            with self._write() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise LedgerError(
                        f"the ledger {self.path} was written by a newer eyespyd"
                        f" (schema {version}, this one reads {SCHEMA_VERSION})"
                    )
                if version == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._prepare_corrections()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock before the first read, so
        a check and the write it decides are one step."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one state of the ledger: this process's writers wait until the end."""
        with self._lock:
            yield

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- sessions -----------------------------------------------------------------------------

    def start_session(self, config_source: str) -> int:
        """A new session for this daemon start; frames recorded from now on belong to it."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO sessions (started, config, pid, version) VALUES (?, ?, ?, ?)",
                (time.time(), config_source, os.getpid(), __version__),
            )
        self.session = int(cursor.lastrowid or 0)
        return self.session

    def sessions(self) -> list[Session]:
        rows = self._read("SELECT id, started, config, pid, version FROM sessions ORDER BY id")
        return [Session(*row) for row in rows]

    def _current(self) -> int:
        if self.session is None:
            raise LedgerError("no session: call start_session() first")
        return self.session

    # --- the routing protocol -----------------------------------------------------------------

    def already_routed(self, path: Path, size: int, mtime_ns: int) -> bool:
        """Whether this file (same path, size and mtime) belongs to a frame that is routed or
        being routed: the daemon skips it."""
        return self._claimed(self._db, path, size, mtime_ns)

    def _claimed(self, db: sqlite3.Connection, path: Path, size: int, mtime_ns: int) -> bool:
        with self._lock:
            row = db.execute(
                "SELECT 1 FROM members JOIN frames ON frames.id = members.frame"
                " WHERE members.source = ? AND members.size = ? AND members.mtime_ns = ?"
                " AND frames.status IN ('routing', 'routed') LIMIT 1",
                (str(path), size, mtime_ns),
            ).fetchone()
        return row is not None

    def begin(self, result: Classified, plan: Plan) -> int:
        """Record the intent to route before any file is touched: status 'routing', with every
        member's source, target and identity. Raises AlreadyRoutedError, touching nothing, if a
        member is routed or being routed. Returns the frame's id for finish()."""
        session = self._current()
        primary = _primary_member(result, plan)
        now = time.time()
        with self._write() as db:
            for m in plan.members:
                if self._claimed(db, m.source, m.size, m.mtime_ns):
                    raise AlreadyRoutedError(f"{m.source} is already routed or being routed")
            values = (
                session,
                result.verdict,
                float(result.score),
                json.dumps(list(result.reasons)),
                json.dumps(faces_json(result)),
                float(result.ms),
                result.source,
                result.error,
                plan.action,
                str(plan.destination),
                now,
            )
            row = db.execute(
                "SELECT id FROM frames WHERE path = ? AND size = ? AND mtime_ns = ?",
                (str(primary.source), primary.size, primary.mtime_ns),
            ).fetchone()
            if row is None:
                frame_id = db.execute(
                    "INSERT INTO frames (session, verdict, score, reasons, faces, ms, pixels,"
                    " decode_error, action, destination, updated, path, size, mtime_ns, status,"
                    " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'routing', ?)",
                    (*values, str(primary.source), primary.size, primary.mtime_ns, now),
                ).lastrowid
            else:
                frame_id = row[0]
                db.execute(
                    "UPDATE frames SET session = ?, verdict = ?, score = ?, reasons = ?,"
                    " faces = ?, ms = ?, pixels = ?, decode_error = ?, action = ?,"
                    " destination = ?, updated = ?, status = 'routing', route_error = NULL,"
                    " route_ms = NULL WHERE id = ?",
                    (*values, frame_id),
                )
                db.execute("DELETE FROM members WHERE frame = ?", (frame_id,))
            db.executemany(
                "INSERT INTO members (frame, position, source, target, size, mtime_ns, device,"
                " inode) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        frame_id,
                        i,
                        str(m.source),
                        str(m.target),
                        m.size,
                        m.mtime_ns,
                        str(m.device),
                        str(m.inode),
                    )
                    for i, m in enumerate(plan.members)
                ],
            )
        return int(frame_id or 0)

    def finish(self, frame_id: int, *, route_ms: float | None = None) -> None:
        """The frame is routed. Earlier failed attempts at the same path, and their logged errors,
        are cleared: they are resolved."""
        with self._write() as db:
            row = db.execute("SELECT path FROM frames WHERE id = ?", (frame_id,)).fetchone()
            if row is None:
                raise LedgerError(f"no frame {frame_id} in the ledger")
            db.execute(
                "UPDATE frames SET status = 'routed', route_error = NULL, route_ms = ?,"
                " updated = ? WHERE id = ?",
                (route_ms, time.time(), frame_id),
            )
            db.execute(
                "DELETE FROM frames WHERE path = ? AND status = 'failed' AND id != ?",
                (row[0], frame_id),
            )
            db.execute("DELETE FROM errors WHERE path = ?", (row[0],))

    def record_error(
        self,
        result: Classified,
        error: RouteError | str,
        *,
        action: str,
        destination: Path,
        frame_id: int | None = None,
    ) -> bool:
        """The frame could not be routed: status 'failed' with the error, so a later rescan routes
        it again. True when this reason is new for this file in this session: log it; False for a
        repeat at a retry: don't. `frame_id` is begin()'s, when begin() ran."""
        session = self._current()
        message = str(error)
        reason = error.reason if isinstance(error, RouteError) else message
        path = Path(result.path)
        try:
            st = path.stat()
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, -1  # the file is gone; the row still tells the report
        now = time.time()
        with self._write() as db:
            if frame_id is None:
                row = db.execute(
                    "SELECT id FROM frames WHERE path = ? AND size = ? AND mtime_ns = ?",
                    (str(path), size, mtime_ns),
                ).fetchone()
                frame_id = row[0] if row else None
            if frame_id is None:
                db.execute(
                    "INSERT INTO frames (session, path, size, mtime_ns, verdict, score, reasons,"
                    " faces, ms, pixels, decode_error, action, destination, status, route_error,"
                    " created, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'failed', ?, ?, ?)",
                    (
                        session,
                        str(path),
                        size,
                        mtime_ns,
                        result.verdict,
                        float(result.score),
                        json.dumps(list(result.reasons)),
                        json.dumps(faces_json(result)),
                        float(result.ms),
                        result.source,
                        result.error,
                        action,
                        str(destination),
                        message,
                        now,
                        now,
                    ),
                )
            else:
                # A routed row is never marked failed: that would make it routed again.
                db.execute(
                    "UPDATE frames SET status = 'failed', route_error = ?, session = ?,"
                    " updated = ? WHERE id = ? AND status != 'routed'",
                    (message, session, now, frame_id),
                )
            db.execute(
                "INSERT INTO errors (session, path, reason, first, last, count)"
                " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (session, path, reason)"
                " DO UPDATE SET last = excluded.last, count = count + 1",
                (session, str(path), reason, now, now),
            )
            count = db.execute(
                "SELECT count FROM errors WHERE session = ? AND path = ? AND reason = ?",
                (session, str(path), reason),
            ).fetchone()[0]
        return bool(count == 1)

    # --- reading back -------------------------------------------------------------------------

    def frame(self, frame_id: int) -> Frame:
        frames = self._frames("frames.id = ?", (frame_id,))
        if not frames:
            raise LedgerError(f"no frame {frame_id} in the ledger")
        return frames[0]

    def frames(
        self,
        session: int | None = None,
        status: str | None = None,
        *,
        verdicts: Sequence[str] | None = None,
        destinations: Sequence[str] | None = None,
        latest: int | None = None,
    ) -> list[Frame]:
        """The frames of a session (all sessions when None), optionally of one status, of some
        verdicts and routed into some destinations (as stored: see `destinations`); with
        `latest`, only the last that many recorded. In the order they were recorded."""
        clauses: list[str] = []
        args: list[object] = []
        if session is not None:
            clauses.append("frames.session = ?")
            args.append(session)
        if status is not None:
            clauses.append("frames.status = ?")
            args.append(status)
        for column, values in (("verdict", verdicts), ("destination", destinations)):
            if values is not None:
                clauses.append(f"frames.{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        return self._frames(" AND ".join(clauses) or "1", args, latest=latest)

    def destinations(self, session: int) -> list[str]:
        """Every destination folder the session's frames were routed to, as stored."""
        rows = self._read("SELECT DISTINCT destination FROM frames WHERE session = ?", (session,))
        return [row[0] for row in rows]

    def tally(self, session: int, destinations: Sequence[str] | None = None) -> Tally:
        """How the session's frames (those for some destinations only, if given) ended, counted
        by SQLite: the header of a contact sheet without reading every frame of a long session."""
        where = "session = ?"
        args: list[object] = [session]
        if destinations is not None:
            where += f" AND destination IN ({', '.join('?' * len(destinations))})"
            args.extend(destinations)
        routed: dict[str, int] = {}
        failed = in_progress = 0
        for status, verdict, count in self._read(
            f"SELECT status, verdict, COUNT(*) FROM frames WHERE {where} GROUP BY status, verdict",
            args,
        ):
            if status == ROUTED:
                routed[verdict] = count
            elif status == FAILED:
                failed += count
            else:
                in_progress += count
        return Tally(routed, failed, in_progress)

    def _frames(
        self, where: str, args: Sequence[object], *, latest: int | None = None
    ) -> list[Frame]:
        if latest is None:
            rows = self._read(
                f"SELECT {_FRAME_COLUMNS} FROM frames WHERE {where} ORDER BY id", args
            )
        else:
            rows = self._read(
                f"SELECT {_FRAME_COLUMNS} FROM frames WHERE {where} ORDER BY id DESC LIMIT ?",
                [*args, latest],
            )[::-1]
        members: dict[int, list[tuple[str, str]]] = {}
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for frame_id, source, target in self._read(
                f"SELECT frame, source, target FROM members WHERE frame IN ({marks})"
                " ORDER BY frame, position",
                chunk,
            ):
                members.setdefault(frame_id, []).append((source, target))
        return [
            Frame(
                id=row[0],
                session=row[1],
                path=Path(row[2]),
                size=row[3],
                mtime_ns=row[4],
                verdict=row[5],
                score=row[6],
                reasons=tuple(json.loads(row[7])),
                faces=tuple(json.loads(row[8])),
                ms=row[9],
                pixels=row[10],
                decode_error=row[11],
                action=row[12],
                destination=Path(row[13]),
                status=row[14],
                route_error=row[15],
                route_ms=row[16],
                sources=tuple(Path(s) for s, _ in members.get(row[0], [])),
                targets=tuple(Path(t) for _, t in members.get(row[0], [])),
            )
            for row in rows
        ]

    def _routing(self) -> list[tuple[int, Path, str, list[_MemberRow]]]:
        rows = self._read("SELECT id, path, action FROM frames WHERE status = 'routing'")
        out = []
        for frame_id, path, action in rows:
            members = [
                _MemberRow(Path(s), Path(t), size, mtime_ns, int(device), int(inode))
                for s, t, size, mtime_ns, device, inode in self._read(
                    "SELECT source, target, size, mtime_ns, device, inode FROM members"
                    " WHERE frame = ? ORDER BY position",
                    (frame_id,),
                )
            ]
            out.append((frame_id, Path(path), action, members))
        return out

    def _settle(self, frame_id: int, status: str, error: str | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE frames SET status = ?, route_error = ?, updated = ? WHERE id = ?",
                (status, error, time.time(), frame_id),
            )

    # --- corrections: frames the photographer moved between folders (see eyespyd.corrections) ---

    def _prepare_corrections(self) -> None:
        with self._write() as db:
            for statement in _CORRECTIONS_SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def record_correction(self, frame_id: int, to_verdict: str, path: Path) -> Correction | None:
        """The photographer put the frame in the `to_verdict` folder, at `path`. Recorded only
        when that differs from the folder the ledger last knew it in (its verdict's, or the last
        correction's), checked and written in one transaction: a move noticed twice (by the
        watcher and by a scan, or by two processes) is recorded once. None when nothing changed."""
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT verdict FROM frames WHERE id = ?", (frame_id,)).fetchone()
            if row is None:
                raise LedgerError(f"no frame {frame_id} in the ledger")
            last = db.execute(
                "SELECT to_verdict FROM corrections WHERE frame = ? ORDER BY id DESC LIMIT 1",
                (frame_id,),
            ).fetchone()
            from_verdict = last[0] if last else row[0]
            if from_verdict == to_verdict:
                return None
            correction_id = db.execute(
                "INSERT INTO corrections (frame, from_verdict, to_verdict, path, noticed)"
                " VALUES (?, ?, ?, ?, ?)",
                (frame_id, from_verdict, to_verdict, str(path), now),
            ).lastrowid
        return Correction(
            int(correction_id or 0), frame_id, row[0], from_verdict, to_verdict, Path(path), now
        )

    def corrections(self, frame_id: int | None = None) -> list[Correction]:
        """Every correction (or one frame's) in the order they were noticed."""
        where, args = ("WHERE c.frame = ?", (frame_id,)) if frame_id is not None else ("", ())
        rows = self._read(
            "SELECT c.id, c.frame, f.verdict, c.from_verdict, c.to_verdict, c.path, c.noticed"
            f" FROM corrections c JOIN frames f ON f.id = c.frame {where} ORDER BY c.id",
            args,
        )
        return [Correction(r[0], r[1], r[2], r[3], r[4], Path(r[5]), r[6]) for r in rows]

    def frame_at(self, path: Path) -> Frame | None:
        """The routed (or being routed) frame the file at `path` belongs to: the same file
        (device and inode) and size as one of its members when it was routed, else a member's
        name (as routed, or as in the inbox) with the same size and modification time. Recent
        frames are looked at first: the files eyespyd is routing right now are found at once,
        without reading the whole ledger. The newest frame wins a tie."""
        try:
            st = Path(path).lstat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        query = (
            "SELECT m.frame, m.source, m.target, m.mtime_ns, m.device, m.inode FROM members m"
            " JOIN frames f ON f.id = m.frame WHERE m.size = ? AND m.frame > ?"
            " AND f.status IN ('routing', 'routed') ORDER BY m.frame DESC"
        )
        newest = self._read("SELECT COALESCE(MAX(id), 0) FROM frames")[0][0]
        name = Path(path).name
        windows = (newest - _RECENT_FRAMES, -1) if newest > _RECENT_FRAMES else (-1,)
        for after in windows:
            rows = self._read(query, (st.st_size, after))
            for row in rows:
                if (int(row[4]), int(row[5])) == (st.st_dev, st.st_ino):
                    return self.frame(row[0])
            for row in rows:
                names = (Path(row[1]).name, Path(row[2]).name)
                if row[3] == st.st_mtime_ns and name in names:
                    return self.frame(row[0])
        return None

    def placements(self, frame_ids: Sequence[int] | None = None) -> Iterator[Placement]:
        """Where eyespyd put each routed frame (all, or those of `frame_ids`) and the folder the
        ledger last knew it in; tagged frames were put nowhere and are left out. Read a page of
        frames at a time, so a scan of a large ledger holds a page, not the ledger."""
        if frame_ids is not None:
            ids = sorted(set(frame_ids))
            for start in range(0, len(ids), 500):
                yield from self._placed(ids[start : start + 500])
            return
        last = 0
        while page := [
            row[0]
            for row in self._read(
                "SELECT id FROM frames WHERE id > ? AND status = 'routed' AND action != 'tag'"
                " ORDER BY id LIMIT 500",
                (last,),
            )
        ]:
            yield from self._placed(page)
            last = page[-1]

    def _placed(self, ids: Sequence[int]) -> list[Placement]:
        marks = ", ".join("?" * len(ids))
        frames = self._read(
            f"SELECT id, path, verdict FROM frames WHERE id IN ({marks})"
            " AND status = 'routed' AND action != 'tag' ORDER BY id",
            ids,
        )
        members: dict[int, list[Member]] = {}
        for frame_id, source, target, size, mtime_ns, device, inode in self._read(
            "SELECT frame, source, target, size, mtime_ns, device, inode FROM members"
            f" WHERE frame IN ({marks}) ORDER BY frame, position",
            ids,
        ):
            members.setdefault(frame_id, []).append(
                Member(Path(source), Path(target), size, mtime_ns, int(device), int(inode))
            )
        folder = dict(
            self._read(
                f"SELECT frame, to_verdict FROM corrections c WHERE frame IN ({marks})"
                " AND id = (SELECT MAX(id) FROM corrections WHERE frame = c.frame)",
                ids,
            )
        )
        return [
            Placement(
                frame_id,
                verdict,
                folder.get(frame_id, verdict),
                Path(path),
                tuple(members[frame_id]),
            )
            for frame_id, path, verdict in frames
            if frame_id in members
        ]


# --- corrections' rows (the Ledger methods above; the logic is in eyespyd.corrections) -----------

_RECENT_FRAMES = 2000  # frame_at looks at these first: a routing burst is found without a full scan

_CORRECTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    frame INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    from_verdict TEXT NOT NULL,        -- the folder it left: the verdict's or last correction's
    to_verdict TEXT NOT NULL CHECK (to_verdict IN ('keep', 'blink', 'review')),
    path TEXT NOT NULL,                -- where the photographer put it (the primary, or a twin)
    noticed REAL NOT NULL              -- unix time
);
CREATE INDEX IF NOT EXISTS corrections_by_frame ON corrections (frame, id);
"""


@dataclass(frozen=True, slots=True)
class Correction:
    """The photographer moved a frame from one verdict's folder to another's."""

    id: int
    frame: int
    verdict: str  # eyespyd's verdict for the frame
    from_verdict: str  # the folder it was in: the verdict's, or the previous correction's
    to_verdict: str
    path: Path  # where it was found
    noticed: float  # unix time


@dataclass(frozen=True, slots=True)
class Placement:
    """Where eyespyd put a routed frame, and which verdict's folder the ledger last knew it in."""

    frame: int
    verdict: str
    folder: str  # the last correction's to_verdict, else the verdict
    path: Path  # the primary, where it was in the inbox
    members: tuple[Member, ...]  # every file with its target and identity when routed


@dataclass(frozen=True, slots=True)
class _MemberRow:
    source: Path
    target: Path
    size: int
    mtime_ns: int
    device: int
    inode: int


def _primary_member(result: Classified, plan: Plan) -> Member:
    for member in plan.members:
        if member.source == Path(result.path):
            return member
    raise ValueError(f"{result.path} is not in the plan it was classified for")


def faces_json(result: Classified) -> list[dict[str, Any]]:
    """Each face's box, score and eye probabilities, as `eyespyd classify --json` prints them."""
    return [
        {
            "box": [round(float(v), 1) for v in f.face.box],
            "score": round(float(f.face.score), 3),
            # The eye crop squares are rebuilt from these (eyes.eye_geometry) for drawing.
            "keypoints": [[round(float(x), 1), round(float(y), 1)] for x, y in f.face.keypoints],
            "eyes": {
                "left": round(float(f.eyes.left.closed), 4),
                "right": round(float(f.eyes.right.closed), 4),
                "left_hidden": round(float(f.eyes.left.hidden), 4),
                "right_hidden": round(float(f.eyes.right.hidden), 4),
            },
            # False: the face mesh saw no face there (a glass, a lamp); beside real faces the
            # verdict leaves it out.
            "is_face": bool(f.eyes.is_face),
        }
        for f in result.faces
    ]


# --- the protocol in one call -------------------------------------------------------------------


def route_and_record(
    ledger: Ledger,
    result: Classified,
    group: Sequence[Path],
    destination: Path,
    action: str,
) -> Outcome:
    """Route a classified frame under the ledger's protocol (begin, route, finish or
    record_error). A frame already routed, or being routed by another worker, is skipped."""
    claimed: list[int] = []

    def begin(plan: Plan) -> None:
        claimed.append(ledger.begin(result, plan))

    start = time.perf_counter()
    try:
        targets = route(group, destination, action, before=begin)
    except AlreadyRoutedError:
        return Outcome(SKIPPED)
    except RouteError as exc:
        frame_id = claimed[-1] if claimed else None
        new = ledger.record_error(
            result, exc, action=action, destination=destination, frame_id=frame_id
        )
        return Outcome(FAILED, error=exc, log_error=new)
    except BaseException as exc:
        # A bug or an interrupt: route has put the files back; let a later rescan retry.
        if claimed:
            ledger.record_error(
                result,
                f"{type(exc).__name__}: {exc}",
                action=action,
                destination=destination,
                frame_id=claimed[-1],
            )
        raise
    ledger.finish(claimed[-1], route_ms=round((time.perf_counter() - start) * 1000, 1))
    return Outcome(ROUTED, targets)


# --- recovery ------------------------------------------------------------------------------------


def recover(ledger: Ledger) -> list[Recovered]:
    """Settle every frame a kill left 'routing' (see the module's docstring). Run it at start-up,
    before any worker: a frame being routed right now would look interrupted."""
    settled = []
    for frame_id, path, action, members in ledger._routing():
        for folder in {m.target.parent for m in members}:
            if action != TAG:
                clean_temps(folder)
        if action == TAG or all(_placed(m) for m in members):
            removed = []
            if action == MOVE:
                for m in members:
                    # _placed proved the target a duplicate of a source that is still ours.
                    if _source_is_ours(m) and _remove(m.source):
                        removed.append(m.source)
            ledger._settle(frame_id, ROUTED, None)
            settled.append(Recovered(path, ROUTED, tuple(removed)))
        else:
            removed = []
            for m in members:
                if _withdrawable(m) and _remove(m.target):
                    removed.append(m.target)
            ledger._settle(frame_id, FAILED, INTERRUPTED)
            settled.append(Recovered(path, FAILED, tuple(removed)))
    return settled


def _remove(duplicate: Path) -> bool:
    try:
        duplicate.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning(
            "cannot remove %s, a duplicate left by an interrupted route: %s", duplicate, exc
        )
        return False
    return True


def _source_is_ours(m: _MemberRow) -> bool:
    """The source is still the planned file (a new file of the same name is not touched)."""
    try:
        st = m.source.lstat()
    except OSError:
        return False
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
        m.device,
        m.inode,
        m.size,
        m.mtime_ns,
    )


def _placed(m: _MemberRow) -> bool:
    """Whether the member is whole at its target."""
    try:
        target = m.target.lstat()
    except OSError:
        return False
    if (target.st_dev, target.st_ino) == (m.device, m.inode):
        return True  # the planned file itself, under its new name
    if _source_is_ours(m):
        return is_duplicate(m.source, m.target)
    # The source is gone (or another file took its name): route removes a source only once its
    # target is complete, and a target name only ever appears complete.
    return target.st_size == m.size


def _withdrawable(m: _MemberRow) -> bool:
    """Whether the target may go on a roll back: a provable duplicate of the source still in the
    inbox, or an empty name reservation (it holds no photograph)."""
    if not _source_is_ours(m):
        return False
    try:
        target = m.target.lstat()
    except OSError:
        return False
    if target.st_size == 0 and m.size > 0:
        return True
    return is_duplicate(m.source, m.target)


# --- the report ---------------------------------------------------------------------------------


def report_json(ledger: Ledger, session: int | None = None) -> dict[str, Any]:
    """A session's counts by verdict, errors, and the frames sent to blink and review; the latest
    session by default."""
    chosen = find_session(ledger, session)
    frames = ledger.frames(chosen.id)
    tally = ledger.tally(chosen.id)
    counts = {"keep": 0, "blink": 0, "review": 0, **tally.routed}
    counts["errors"] = tally.failed
    counts["in_progress"] = tally.in_progress

    def listed(verdict: str) -> list[dict[str, Any]]:
        return [
            {
                "path": str(f.path),
                "destination": str(f.targets[0]) if f.targets else str(f.destination),
                "score": f.score,
                "reasons": list(f.reasons),
                "action": f.action,
            }
            for f in frames
            if f.status == ROUTED and f.verdict == verdict
        ]

    return {
        "ledger": str(ledger.path),
        "session": {
            "id": chosen.id,
            "started": datetime.fromtimestamp(chosen.started)
            .astimezone()
            .isoformat("T", "seconds"),
            "config": chosen.config,
            "version": chosen.version,
        },
        "frames": len(frames),
        "counts": counts,
        "blink": listed("blink"),
        "review": listed("review"),
        "errors": [
            {"path": str(f.path), "error": f.route_error or ""}
            for f in frames
            if f.status == FAILED
        ],
    }


def report(ledger: Ledger, session: int | None = None) -> str:
    """report_json as text for a terminal."""
    data = report_json(ledger, session)
    s, counts = data["session"], data["counts"]
    started = s["started"].replace("T", " ")[:19]
    lines = [f"Session {s['id']}, started {started}, configuration {s['config']}"]
    parts = [f"{counts[v]} {v}" for v in counts if v not in ("errors", "in_progress")]
    parts.append(_plural(counts["errors"], "error"))
    if counts["in_progress"]:
        parts.append(f"{counts['in_progress']} in progress")
    lines.append(f"{_plural(data['frames'], 'frame')}: {', '.join(parts)}")
    for verdict in ("blink", "review"):
        entries = data[verdict]
        if entries:
            lines += ["", f"{verdict} ({len(entries)}):"]
            for e in entries:
                why = "; ".join(e["reasons"])
                lines.append(f"  {e['score']:4.2f}  {e['destination']}  ({why})")
    if data["errors"]:
        lines += ["", f"errors ({len(data['errors'])}):"]
        lines += [f"  {e['error']}" for e in data["errors"]]
    return "\n".join(lines) + "\n"


def find_session(ledger: Ledger, session: int | None) -> Session:
    """The session numbered `session`, or the latest when None; LedgerError if there is none."""
    sessions = ledger.sessions()
    if not sessions:
        raise LedgerError(f"no sessions in the ledger {ledger.path}: the daemon has not run yet")
    if session is None:
        return sessions[-1]
    for s in sessions:
        if s.id == session:
            return s
    raise LedgerError(f"no session {session} in the ledger {ledger.path} (1 to {sessions[-1].id})")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
