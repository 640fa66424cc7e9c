"""`eyespyd run`: watch -> settle -> (classify -> route -> record) in workers, until told to stop.

One main thread owns the watcher's hints, the settler and the bookkeeping of what is in flight;
worker threads each own a Pipeline (models load once per worker; LiteRT interpreters are not
shared) and do the expensive part. The work queue is bounded so a 600-file import never holds
more than a few decoded images at once; the rest wait as paths.

Crash safety lives in route (a file is whole in at least one place at every instant) and the
ledger (intent is recorded before a move, and `recover` settles what a kill interrupted), so
SIGKILL at any moment loses nothing and a restart routes nothing twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import fcntl
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from eyespyd import config, contact, xmp
from eyespyd.config import FolderSettings, Settings
from eyespyd.corrections import CorrectionWatcher
from eyespyd.errors import ConfigError, EyespydError
from eyespyd.journal import log_frame
from eyespyd.notify import Notifier
from eyespyd.pipeline import Pipeline, Result
from eyespyd.record import Ledger, faces_json, recover, route_and_record
from eyespyd.route import clean_temps, frame_group, primary
from eyespyd.settle import Settled, Settler
from eyespyd.sheets import SheetRefresher
from eyespyd.types import Photo
from eyespyd.watch import Hint, Watcher, scan

log = logging.getLogger("eyespyd")

TICK = 0.05  # seconds the main loop waits for a hint before looking at everything else
RETRY_AFTER = 30.0  # seconds before a frame whose routing failed is tried again
TRACE_STUCK_STOP_AFTER = 30.0  # seconds into a stop before every thread's stack is logged
EXIT_WITHIN = 10.0  # seconds the interpreter may take to exit once the daemon has stopped


@dataclass(frozen=True, slots=True)
class Job:
    folder: FolderSettings
    group: tuple[Path, ...]  # the frame, its RAW/JPEG twin and sidecars
    primary: Path  # the member that is classified
    settled: Settled


@dataclass(frozen=True, slots=True)
class Done:
    job: Job
    routed: bool
    error: str | None = None


@dataclass
class _State:
    """What the main thread knows; only the main thread touches it."""

    in_flight: set[Path] = field(default_factory=set)  # every member of every queued group
    retry_at: dict[Path, float] = field(default_factory=dict)
    last_progress: float = field(default_factory=time.monotonic)
    routed: int = 0


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        config_file: Path | None = None,
        watch: Path | None = None,
        once: bool = False,
        ledger_path: Path | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.config_file = config_file
        self.watch_override = watch
        self.once = once
        self.ledger_path = ledger_path
        self.models_dir = models_dir
        self.notifier = Notifier.from_environment()
        # queue.Queue, not SimpleQueue: the main thread waits on it with a timeout, and a
        # SimpleQueue.get(timeout=0.05) that SIGTERM interrupted never returned (CPython 3.11.7,
        # seen by py-spy in a daemon that ignored SIGTERM for an hour). Queue waits on a
        # threading lock, whose timed wait survives signals.
        self.hints: queue.Queue[Hint] = queue.Queue()
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=settings.worker_count)
        self.done: queue.Queue[Done] = queue.Queue()
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.state = _State()
        self.settler = Settler(
            quiet=settings.settle_seconds, quiet_after_close=settings.settle_seconds / 5
        )
        self.watcher: Watcher | None = None
        self.corrections: CorrectionWatcher | None = None
        self.sheets: SheetRefresher | None = None
        self.workers: list[threading.Thread] = []
        self.ledger: Ledger | None = None
        self._generation = 0  # bumped on reload; workers then take the new settings
        self._lock: IO[bytes] | None = None

    # --- the main thread ----------------------------------------------------------------------

    def run(self) -> int:
        self._install_signal_handlers()
        self.ledger = Ledger.open(self.ledger_path)
        # One daemon per ledger: a second one's recover() would take the first one's frames in
        # flight for interrupted ones.
        self._lock = _lock_beside(self.ledger.path)
        self.ledger.start_session(self.settings.source)
        for line in recover(self.ledger):
            log.info("%s", line)
        self._prepare_folders()
        for folder in self.settings.folders:
            clean_temps(folder.inbox)  # with action tag, XMP temporaries live in the inbox
        # Frames the photographer moves between keep/, blink/ and review/ are corrections: the
        # watcher records them (and those made while eyespyd was down) for `eyespyd calibrate`.
        if not self.once:
            self.corrections = CorrectionWatcher(self.settings.folders, self.ledger)
            self.corrections.start()
        self.sheets = SheetRefresher(self.ledger, self.settings.decode)
        self.sheets.start()
        self._start_workers()
        if not self.once:
            self.watcher = Watcher(self.settings.folders, self.hints)
            self.watcher.start()  # observer first, then scan: nothing slips between the two
        self._scan_all()
        self.notifier.ready()
        log.info(
            "eyespyd ready: watching %s (%s)",
            ", ".join(str(f.inbox) for f in self.settings.folders),
            self.settings.source,
        )
        try:
            self._loop()
        finally:
            self._shut_down()
        return 0

    def _loop(self) -> None:
        next_rescan = time.monotonic() + self.settings.rescan_seconds
        watchdog_every = self.notifier.watchdog_interval()
        next_ping = time.monotonic()
        while not self.stop_requested.is_set():
            self._take_hints()
            self._dispatch(self.settler.poll())
            self._collect()
            now = time.monotonic()
            if now >= next_rescan:
                self._scan_all()
                if self.watcher is not None:
                    self.watcher.check()
                if self.corrections is not None:
                    self.corrections.check()
                next_rescan = now + self.settings.rescan_seconds
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            if watchdog_every and now >= next_ping and self._making_progress(now, watchdog_every):
                self.notifier.watchdog()
                next_ping = now + watchdog_every
            if self.once and self._idle():
                break

    def _take_hints(self) -> None:
        try:
            hint = self.hints.get(timeout=TICK)
        except queue.Empty:
            return
        while True:
            if hint.folder:
                folder = self._folder_of(hint.path)
                if folder is not None:
                    for path in scan_under(hint.path, folder):
                        self._note(path, closed=False)
            else:
                self._note(hint.path, closed=hint.closed, writing=hint.writing)
            try:
                hint = self.hints.get_nowait()
            except queue.Empty:
                return

    def _note(self, path: Path, *, closed: bool, writing: bool = False) -> None:
        if path in self.state.in_flight:
            return
        if self.state.retry_at.get(path, 0.0) > time.monotonic():
            return
        self.settler.note(path, closed=closed, writing=writing)

    def _scan_all(self) -> None:
        for folder in self.settings.folders:
            for path in scan(folder):
                self._note(path, closed=False)

    def _dispatch(self, settled: Sequence[Settled]) -> None:
        assert self.ledger is not None
        for item in settled:
            if item.path in self.state.in_flight:
                continue
            folder = self._folder_of(item.path)
            if folder is None or not item.path.exists():
                continue
            if self.ledger.already_routed(item.path, item.size, item.mtime_ns):
                continue  # copy, hardlink and tag leave the frame in the inbox: done already
            group = frame_group(item.path)
            if any(member in self.settler for member in group if member != item.path):
                # Its twin is still being written: wait for it, so the pair travels together.
                self.settler.note(item.path)
                continue
            job = Job(folder, group, primary(group), item)
            self.state.in_flight.update(group)
            self._put(job)

    def _put(self, job: Job) -> None:
        # Blocks while every worker is busy and the queue is full: backpressure, not memory.
        while not self.stop_requested.is_set():
            try:
                self.jobs.put(job, timeout=TICK)
                return
            except queue.Full:
                self._collect()
        self.state.in_flight.difference_update(job.group)

    def _collect(self) -> None:
        while True:
            try:
                done = self.done.get_nowait()
            except queue.Empty:
                return
            self.state.in_flight.difference_update(done.job.group)
            self.state.last_progress = time.monotonic()
            if done.routed:
                self.state.routed += 1
                for member in done.job.group:
                    self.state.retry_at.pop(member, None)
            else:
                for member in done.job.group:
                    self.state.retry_at[member] = time.monotonic() + RETRY_AFTER

    def _idle(self) -> bool:
        """--once is finished: nothing settling, queued or in a worker's hands. Frames waiting to
        retry a failed route do not hold it up: they stay in the inbox for the next run."""
        return not len(self.settler) and not self.state.in_flight and self.jobs.empty()

    def _making_progress(self, now: float, interval: float) -> bool:
        # Ping systemd's watchdog only while work moves: idle, or a frame finished recently.
        # A worker stuck on one frame stops the pings and systemd restarts the service.
        return not self.state.in_flight or now - self.state.last_progress < 2 * interval

    def _folder_of(self, path: Path) -> FolderSettings | None:
        for folder in self.settings.folders:
            if folder.inbox == path or folder.inbox in path.parents:
                return folder
        return None

    def _prepare_folders(self) -> None:
        for folder in self.settings.folders:
            for where in (folder.inbox, folder.keep, folder.blink, folder.review):
                if where.is_dir():
                    continue
                if not_mounted(where):
                    log.error("folder %s is missing: is its drive mounted?", where)
                    continue
                try:
                    where.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    log.error("cannot create folder %s: %s", where, exc.strerror or exc)

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            new = config.load(self.config_file, self.watch_override)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                log.error("reload refused, keeping the running configuration: %s", line)
            self.notifier.ready()
            return
        folders_changed = new.folders != self.settings.folders
        self.settings = new
        self.settler.quiet = new.settle_seconds
        self.settler.quiet_after_close = new.settle_seconds / 5
        self._generation += 1
        logging.getLogger().setLevel(new.log_level.upper())
        if folders_changed:
            self._prepare_folders()
            if self.watcher is not None:
                self.watcher.stop()
                self.watcher = Watcher(new.folders, self.hints)
                self.watcher.start()
            if self.corrections is not None and self.ledger is not None:
                self.corrections.stop()
                self.corrections = CorrectionWatcher(new.folders, self.ledger)
                self.corrections.start()
            self._scan_all()
        log.info("configuration reloaded from %s", new.source)
        self.notifier.ready()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # tests may run a daemon in a thread; they stop it directly

        def stop(signum: int, frame: FrameType | None) -> None:
            self.stop_requested.set()
            # Should the stop hang anywhere from here on, log where every thread is.
            faulthandler.dump_traceback_later(TRACE_STUCK_STOP_AFTER, exit=False)

        def reload(signum: int, frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
        # `kill -USR1` prints every thread's stack to the log, even with the main thread stuck.
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _shut_down(self) -> None:
        # A stop that hangs is otherwise a mystery: print where every thread is, into the log.
        faulthandler.dump_traceback_later(TRACE_STUCK_STOP_AFTER, exit=False)
        self.notifier.stopping()
        self.stop_requested.set()
        # Jobs not yet started stay in the inbox for the next run; the frames in hand finish.
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self.state.in_flight.difference_update(job.group)
        for _ in self.workers:
            self.jobs.put(None)
        for worker in self.workers:
            worker.join()
        if self.sheets is not None:
            self.sheets.stop()
        if self.watcher is not None:
            _stop_within(self.watcher.stop, "the inbox watcher")
        if self.corrections is not None:
            _stop_within(self.corrections.stop, "the correction watcher")
        if self.ledger is not None:
            self.ledger.close()
        if self._lock is not None:
            self._lock.close()
        faulthandler.cancel_dump_traceback_later()
        log.info("eyespyd stopped after routing %d frame(s)", self.state.routed)

    # --- the workers --------------------------------------------------------------------------

    def _start_workers(self) -> None:
        # Load every worker's models before watching: a broken model stops start-up, loudly.
        pipelines = [
            Pipeline(
                self.settings.decode,
                self.settings.verdict,
                models_dir=self.models_dir,
                model=self.settings.model,
            )
            for _ in range(self.settings.worker_count)
        ]
        for number, pipeline in enumerate(pipelines, start=1):
            worker = threading.Thread(
                target=self._work, args=(pipeline,), name=f"eyespyd-worker-{number}", daemon=True
            )
            worker.start()
            self.workers.append(worker)

    def _work(self, pipeline: Pipeline) -> None:
        generation = self._generation
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if generation != self._generation:
                generation = self._generation
                pipeline.decode_settings = self.settings.decode
                pipeline.verdict_settings = self.settings.verdict
            try:
                self.done.put(self._handle(pipeline, job))
            except Exception as exc:  # one bad frame must never take the service down
                log.error("error handling %s: %s", job.primary, exc, exc_info=True)
                self.done.put(Done(job, routed=False, error=str(exc)))

    def _handle(self, pipeline: Pipeline, job: Job) -> Done:
        assert self.ledger is not None
        result, photo = pipeline.classify_photo(job.primary)
        if result.error is not None:
            log.warning("%s: %s; kept", job.primary, result.error)
        destination = job.folder.destination(result.verdict)
        outcome = route_and_record(
            self.ledger, result, job.group, destination, self.settings.action
        )
        if outcome.status == "failed":
            if outcome.log_error:
                log.error("%s; it stays in the inbox and will be retried", outcome.error)
            return Done(job, routed=False, error=str(outcome.error))
        if outcome.status == "routed":
            self._write_xmp(pipeline, result, outcome.targets)
            if result.verdict != "keep" and self.sheets is not None:
                # The session's contact sheet beside the destinations, for review in the studio;
                # its thumbnail drawn now, from the pixels in hand, not decoded again.
                if photo is not None:
                    self._prime_thumbnail(job, outcome.targets, result, photo)
                self.sheets.mark(job.folder)
            log_frame(
                log,
                path=job.primary,
                verdict=result.verdict,
                score=result.score,
                faces=result.face_count,
                ms=result.ms,
                destination=outcome.targets[0] if outcome.targets else None,
            )
        return Done(job, routed=True)

    def _prime_thumbnail(
        self, job: Job, targets: tuple[Path, ...], result: Result, photo: Photo
    ) -> None:
        """Cache the routed frame's contact-sheet thumbnail, drawn from the pixels it was judged
        on, where the sheet will look for it."""
        try:
            contact.prime_routed(job.primary, job.group, targets, faces_json(result), photo)
        except Exception as exc:  # a thumbnail is a convenience: the sheet can still decode
            log.debug("cannot draw the thumbnail of %s now: %s", job.primary, exc)

    def _write_xmp(self, pipeline: Pipeline, result: Result, targets: tuple[Path, ...]) -> None:
        """The verdict into the routed frame's sidecar, for the photographer's editor. Not for a
        file that could not be read: its "keep" is a default, not a verdict. A sidecar that
        cannot be written is logged; the frame stays routed."""
        if not self.settings.xmp.enabled or result.error is not None:
            return
        written = xmp.write_group(
            targets, result.verdict, result.score, pipeline.model_version, self.settings.xmp
        )
        for error in written.errors:
            log.error("%s", error)


MOUNT_ROOTS = (Path("/Volumes"), Path("/media"), Path("/mnt"), Path("/run/media"))


def not_mounted(folder: Path, roots: tuple[Path, ...] = MOUNT_ROOTS) -> bool:
    """Whether `folder` would be created on the system disk where a removable drive belongs: its
    nearest existing parent is a mount root (/Volumes, /media, /mnt, /run/media) or a user's
    folder right under one. Creating it would fill the system disk instead of the card."""
    existing = next((p for p in folder.parents if p.is_dir()), Path("/"))
    return any(existing == root or existing.parent == root for root in roots)


def _lock_beside(ledger: Path) -> IO[bytes]:
    """An exclusive lock held for the daemon's life; the kernel drops it if the process dies."""
    lock = (ledger.parent / (ledger.name + ".lock")).open("ab")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise EyespydError(
            f"another eyespyd is already running with the ledger {ledger}; stop it first"
        ) from None
    return lock


def scan_under(folder_path: Path, folder: FolderSettings) -> Iterator[Path]:
    """Candidates below a folder that appeared inside a recursive inbox (a DCIM tree)."""
    from eyespyd.watch import is_candidate

    for path in sorted(folder_path.rglob("*")):
        if path.is_file() and is_candidate(path, folder.inbox):
            yield path


STOP_WITHIN = 15.0  # seconds a watcher may take to stop before the daemon exits without it


def _stop_within(stop: Callable[[], None], what: str) -> None:
    """Stop a watcher, but never wait on it for more than STOP_WITHIN seconds.

    watchdog joins its inotify threads without a timeout, and a reader thread can stay blocked on
    a watch whose folder was deleted and recreated (a family of known watchdog bugs): the daemon
    then hung on SIGTERM. watchdog's threads are daemon threads, so exiting without them loses
    nothing; the frames in hand are already finished by then.
    """
    stopper = threading.Thread(target=stop, name=f"eyespyd-stop-{what}", daemon=True)
    stopper.start()
    stopper.join(STOP_WITHIN)
    if stopper.is_alive():
        log.warning("%s did not stop within %.0f s; exiting without it", what, STOP_WITHIN)


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(count: int = 2) -> None:
    """Let worker threads share `count` glibc malloc arenas instead of one each.

    glibc gives every thread that allocates its own arena; a decoded image freed in one arena is
    not reused by another, and the daemon's resident memory crept up by 16 MB per 1,000 frames.
    With two arenas: 139 -> 169 MB over 4,000 frames instead of 159 -> 241 (the soak in
    bench/daemon.py). Must run before the workers start. Other C libraries: nothing to tune.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, count)


def run(
    config_file: Path | None, watch: Path | None, once: bool, ledger_path: Path | None = None
) -> int:
    settings = config.load(config_file, watch)
    limit_malloc_arenas()
    try:
        status = Daemon(
            settings, config_file=config_file, watch=watch, once=once, ledger_path=ledger_path
        ).run()
    except EyespydError as exc:
        log.critical("eyespyd cannot start: %s", exc)
        return 1
    # Everything is finished and recorded; should the interpreter's exit hang on a thread of a
    # library, log where and exit rather than wait for the service manager's SIGKILL.
    faulthandler.dump_traceback_later(EXIT_WITHIN, exit=True)
    return status
