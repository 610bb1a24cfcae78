"""Where a study lives: the embedded journal file, or an Optuna RDB URL.

=====================================  ================================================
``--storage``                          storage
=====================================  ================================================
(none)                                 ``runs/<study>/study.journal`` (JournalStorage)
``journal:PATH`` or ``PATH.journal``   JournalStorage on that file
``postgresql://user@host:5432/db``     RDBStorage with heartbeats (several nodes)
``sqlite:///path.db``, ``mysql://``    RDBStorage with heartbeats
=====================================  ================================================

The journal file is Optuna's append-only operation log (``JournalFileBackend``, each
append under a lock file and ``fsync``\\ ed): local worker processes share it safely and a
killed writer cannot corrupt what is already written. It has no heartbeat, so the
``goalbrake sweep`` process that starts the workers fails and retries a dead worker's trial
itself (:mod:`goalbrake.sweep.run.recovery`). RDB storages get Optuna's heartbeat
(``heartbeat_interval``, ``grace_period``) and ``RetryHeartbeatStaleTrialCallback``, which
covers a whole node going away.

The journal's append lock is :class:`JournalFlock` rather than Optuna's default symlink
lock: ``fcntl.flock`` is released by the kernel when its holder dies, so a SIGKILLed
worker never leaves a stale lock behind (Optuna's lock waits out a 30 s grace period, and
never does when the journal path is relative: its symlink then dangles and the grace check
is skipped), and a torn last record of a writer killed mid-append is cut off before the
next append, so the log stays parseable.

Two more locks keep concurrent workers exact:

* the *ask lock* (:func:`ask_lock`) serializes "count the trials, then start one", so a
  study stops at exactly ``n_trials`` complete trials and a grid never runs a point twice:
  ``fcntl.flock`` next to a journal or SQLite file, ``pg_advisory_lock`` on PostgreSQL;
* the *supervisor lock* (:func:`supervisor_lock`) lets one ``goalbrake sweep`` process
  drive a journal file at a time (a journal is one machine's storage; use PostgreSQL to
  spread a study over nodes).

A journal is checked before it is used (:func:`check_journal`): a line that is not a
record (a stray edit, a disk error) stops every command with one line naming the file and
the line, and nothing is appended after it (Optuna would read nothing past it). A last
line without its newline is a record torn by a writer killed mid-append: it was never
read, so it is not an error, and the next append (or :func:`repair_journal`) cuts it off.
:func:`repair_journal` (``goalbrake sweep --repair-journal PATH``) is the way back: it
keeps every record that parses, in order, drops the rest, and keeps the original as
``PATH.bak`` (``PATH.bak.1``, ... if that exists).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

__all__ = [
    "JournalFlock",
    "JournalRepair",
    "StorageError",
    "StorageURL",
    "ask_lock",
    "check_journal",
    "default_storage",
    "open_storage",
    "parse_storage",
    "repair_journal",
    "supervisor_lock",
]

_RDB_SCHEMES = ("postgresql", "sqlite", "mysql", "oracle", "mssql")


class StorageError(ValueError):
    """A storage URL that cannot be used; one line."""


@dataclass(frozen=True)
class StorageURL:
    """A parsed ``--storage`` value."""

    url: str
    kind: str  # "journal" | "rdb"
    path: Path | None = None  # the journal file or the SQLite database

    @property
    def dialect(self) -> str:
        return self.url.split(":", 1)[0].split("+", 1)[0] if self.kind == "rdb" else "journal"

    @property
    def shown(self) -> str:
        """The URL without a password, for messages."""
        if self.kind != "rdb" or "@" not in self.url:
            return self.url
        scheme, rest = self.url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"


def default_storage(runs_dir: str | Path, study: str) -> str:
    """The embedded storage of a study: ``journal:<runs_dir>/<study>/study.journal``."""
    return f"journal:{Path(runs_dir) / study / 'study.journal'}"


def parse_storage(url: str) -> StorageURL:
    """Classify a ``--storage`` value.

    Raises:
        StorageError: not a journal path and not an RDB URL of a known dialect.
    """
    if url.startswith("journal:"):
        path = url[len("journal:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise StorageError("invalid storage 'journal:' (journal:PATH)")
        return StorageURL(f"journal:{path}", "journal", Path(path))
    if "://" in url:
        scheme = url.split("://", 1)[0].split("+", 1)[0]
        if scheme not in _RDB_SCHEMES:
            raise StorageError(
                f"unknown storage scheme {scheme!r} in {url!r} (allowed: journal:PATH, "
                f"{', '.join(s + '://' for s in _RDB_SCHEMES)})"
            )
        path = None
        if scheme == "sqlite":
            rest = url.split("://", 1)[1]
            path = Path(rest[1:]) if rest.startswith("/") and rest != "/:memory:" else None
        return StorageURL(url, "rdb", path)
    if url.endswith((".journal", ".log")):
        return StorageURL(f"journal:{url}", "journal", Path(url))
    raise StorageError(
        f"invalid storage {url!r} (journal:PATH, PATH.journal, or an RDB URL like "
        "postgresql://user@host:5432/db)"
    )


def _driver_url(storage: StorageURL) -> str:
    """``postgresql://`` with the PostgreSQL driver that is installed.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; goalbrake's ``postgres``
    extra installs psycopg2. A URL that names its driver (``postgresql+psycopg2://``) is
    left alone.
    """
    scheme, rest = storage.url.split("://", 1)
    if scheme != "postgresql":
        return storage.url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://{rest}"
    raise StorageError(
        f"cannot open {storage.shown}: no PostgreSQL driver (pip install psycopg2-binary, "
        "or goalbrake[postgres])"
    )


#: Tries to open an RDB storage while another process creates its schema.
_SCHEMA_ATTEMPTS = 5


def _bad_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, why)`` of each line of the journal at ``path`` that is not a record.

    A last line without its newline (a torn append) is not reported.
    """
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return
            try:
                record = json.loads(line)
            except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
                yield number, str(err)
                continue
            if not isinstance(record, dict) or "op_code" not in record:
                yield number, "not an Optuna journal record (no op_code)"


def check_journal(path: str | Path) -> None:
    """Check that every line of the journal at ``path`` is a record (a missing file is fine).

    Raises:
        StorageError: the first line that is not, with the command that repairs the file.
    """
    path = Path(path)
    if not path.is_file():
        return
    for number, why in _bad_lines(path):
        raise StorageError(
            f"journal {path} line {number} is not a record ({why}); nothing was written to "
            f"it. Repair: goalbrake sweep --repair-journal {path}"
        )


@dataclass(frozen=True)
class JournalRepair:
    """What :func:`repair_journal` did."""

    path: Path
    kept: int
    dropped: list[int]  # line numbers of the lines that were not records
    torn: bool  # a last line without its newline was cut off
    backup: Path | None  # the original file, or None when nothing had to change


def _backup_path(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    n = 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.bak.{n}")
    return candidate


def repair_journal(path: str | Path) -> JournalRepair:
    """Rewrite the journal at ``path`` with only its records; the original becomes a backup.

    Holds the journal's append lock, so no worker appends meanwhile. The repaired file is
    written next to it and moved into place, so a crash leaves either file whole.

    Raises:
        StorageError: no file at ``path``, or what remains is not a journal Optuna reads.
    """
    path = Path(path)
    if not path.is_file():
        raise StorageError(f"no journal at {path}")
    lock = _FileLock(path.with_name(path.name + ".flock"))
    lock.acquire()
    try:
        lines = path.read_bytes().splitlines(keepends=True)
        torn = bool(lines) and not lines[-1].endswith(b"\n")
        dropped = [number for number, _ in _bad_lines(path)]
        if not dropped and not torn:
            return JournalRepair(path, len(lines), [], False, None)
        keep = [line for i, line in enumerate(lines, start=1) if i not in dropped]
        if torn:
            keep = keep[:-1]
        backup = _backup_path(path)
        fresh = path.with_name(path.name + ".repaired")
        with fresh.open("wb") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.link(path, backup)
        os.replace(fresh, path)
    finally:
        lock.release()
    try:
        optuna.get_all_study_summaries(JournalStorage(JournalFileBackend(str(path))))
    except Exception as err:
        raise StorageError(
            f"the records kept in {path} do not replay ({type(err).__name__}: {err}); the "
            f"original is {backup}"
        ) from None
    return JournalRepair(path, len(keep), dropped, torn, backup)


def _open_journal(storage: StorageURL) -> JournalStorage:
    assert storage.path is not None
    check_journal(storage.path)
    try:
        storage.path.parent.mkdir(parents=True, exist_ok=True)
        path = storage.path.resolve()
        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFlock(path)))
    except OSError as err:
        raise StorageError(f"cannot open journal {storage.path}: {err.strerror}") from None


def open_storage(
    storage: StorageURL,
    *,
    heartbeat_interval: int = 10,
    grace_period: int = 30,
    max_retry: int | None = 2,
) -> optuna.storages.BaseStorage:
    """Open (and create) the storage.

    RDB storages get Optuna's heartbeat and ``RetryHeartbeatStaleTrialCallback(max_retry)``:
    a trial whose process stopped beating for ``grace_period`` seconds is failed and
    re-queued with the same parameters when the next trial of the study starts.

    Raises:
        StorageError: the database cannot be reached or the file cannot be created.
    """
    if storage.kind == "journal":
        return _open_journal(storage)
    if storage.path is not None:
        storage.path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # heartbeat_interval and the retry callback are marked experimental in Optuna 5.
        warnings.simplefilter("ignore", ExperimentalWarning)
        try:
            for attempt in range(_SCHEMA_ATTEMPTS):
                try:
                    return RDBStorage(
                        _driver_url(storage),
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                            max_retry=max_retry
                        ),
                        engine_kwargs=(
                            {"pool_pre_ping": True} if storage.dialect != "sqlite" else {}
                        ),
                    )
                except IntegrityError:
                    # Two processes opening a fresh database race in Optuna's
                    # CREATE TABLE (PostgreSQL: a duplicate pg_type row). The winner
                    # created the schema; the loser only has to open it again.
                    if attempt == _SCHEMA_ATTEMPTS - 1:
                        raise
                    time.sleep(0.2 * (attempt + 1))
        except ImportError as err:
            raise StorageError(
                f"cannot open {storage.shown}: {err} (PostgreSQL needs a driver: "
                "pip install psycopg2-binary)"
            ) from None
        except Exception as err:  # sqlalchemy's OperationalError and friends
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StorageError(f"cannot open storage {storage.shown}: {first}") from None


def _rdb_of(storage: optuna.storages.BaseStorage) -> RDBStorage | None:
    if isinstance(storage, RDBStorage):
        return storage
    backend = getattr(storage, "_backend", None)
    return backend if isinstance(backend, RDBStorage) else None


class JournalFlock:
    """Append lock of a journal file: ``flock`` on ``<journal>.flock``, with tail repair.

    Implements the ``acquire``/``release`` interface ``JournalFileBackend`` expects of its
    ``lock_obj``. On acquiring, a last line without its newline (a writer killed between
    the write calls of one append) is truncated: no reader has used it, since Optuna's
    reader only takes newline-terminated records.
    """

    def __init__(self, journal: str | Path) -> None:
        self.journal = Path(journal)
        self._lock = _FileLock(self.journal.with_name(self.journal.name + ".flock"))

    def acquire(self) -> bool:
        self._lock.acquire()
        try:
            self._repair_tail()
        except BaseException:
            self._lock.release()
            raise
        return True

    def release(self) -> None:
        self._lock.release()

    def _repair_tail(self) -> None:
        try:
            f = self.journal.open("rb+")
        except FileNotFoundError:
            return
        with f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            end = size
            while end > 0:
                start = max(0, end - 65536)
                f.seek(start)
                chunk = f.read(end - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    keep = start + cut + 1
                    break
                end = start
            else:
                keep = 0
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())


class _FileLock:
    """An exclusive ``flock`` on a file; the kernel releases it if the holder dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class _AdvisoryLock:
    """``pg_advisory_lock`` on a key derived from the study name; released on disconnect."""

    def __init__(self, rdb: RDBStorage, key: int) -> None:
        self._engine = rdb.engine
        self._key = key
        self._conn: Connection | None = None

    def acquire(self, blocking: bool = True) -> bool:
        conn = self._engine.connect()
        if blocking:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        elif not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar():
            conn.close()
            return False
        conn.commit()
        self._conn = conn
        return True

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                conn.commit()
            finally:
                conn.close()


class _Lock(Protocol):
    def acquire(self, blocking: bool = True) -> bool: ...

    def release(self) -> None: ...


class _NoLock:
    def acquire(self, blocking: bool = True) -> bool:
        return True

    def release(self) -> None:
        pass


class AskLock:
    """The study's ask lock; ``release()`` may be called early and more than once."""

    def __init__(self, impl: _Lock) -> None:
        self._impl = impl
        self._held = False

    def acquire(self) -> None:
        self._impl.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._impl.release()

    def __enter__(self) -> AskLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def ask_lock(storage: StorageURL, backend: optuna.storages.BaseStorage, study: str) -> AskLock:
    """The lock held from "count the trials" until a started trial has its parameters.

    A journal or SQLite file gets ``<file>.ask.lock`` (flock); PostgreSQL an advisory lock
    keyed by the study name; other RDB dialects none (a study may then overshoot
    ``n_trials`` by up to one trial per extra worker).
    """
    if storage.path is not None:
        return AskLock(_FileLock(storage.path.with_name(storage.path.name + f".{study}.ask.lock")))
    rdb = _rdb_of(backend)
    if rdb is not None and storage.dialect == "postgresql":
        key = zlib.crc32(f"goalbrake-ask:{study}".encode()) & 0x7FFFFFFF
        return AskLock(_AdvisoryLock(rdb, key))
    return AskLock(_NoLock())


@contextlib.contextmanager
def supervisor_lock(storage: StorageURL, study: str) -> Iterator[None]:
    """Hold the journal's supervisor lock for the life of one ``goalbrake sweep`` process.

    Raises:
        StorageError: another ``goalbrake sweep`` drives this journal study right now.
    """
    if storage.kind != "journal":
        yield
        return
    assert storage.path is not None
    lock = _FileLock(storage.path.with_name(storage.path.name + f".{study}.supervisor.lock"))
    if not lock.acquire(blocking=False):
        raise StorageError(
            f"another goalbrake sweep is running study {study!r} on {storage.path}; a journal "
            "is driven by one sweep process (give it more --workers, or use PostgreSQL for "
            "several nodes)"
        )
    try:
        yield
    finally:
        lock.release()
