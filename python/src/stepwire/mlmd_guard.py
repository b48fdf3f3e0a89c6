"""ML Metadata that holds up when many step processes write to one SQLite file.

ML Metadata 1.17 on SQLite gives up under concurrent writers: a call fails with
``AbortedError: Concurrent writes aborted``, opening a store can fail with a
``RuntimeError`` of the same text (or "There are a subset of tables ...", two
processes creating the schema at once), and a store handle can stay broken after
such a failure. Its own client retries on the same handle, sleeping about two
seconds between attempts.

:class:`GuardedMetadataStore` stands in for ``ml_metadata.MetadataStore``:

* For SQLite, every call (and opening the store) holds an advisory lock,
  ``fcntl.flock`` on ``<database>.lock`` next to the database file, so the
  processes sharing the file take turns and SQLite never sees two writers. The
  kernel releases the lock of a process that dies, even by SIGKILL.
* A call that still fails with a transient error (aborted, "database is locked", a
  concurrent schema creation) is retried on a fresh store, after a bounded,
  jittered exponential backoff with the lock released; when it keeps failing, an
  :class:`~stepwire.exceptions.InfrastructureError` names the call and the store.

:class:`GuardedMetadata` is TFX's ``metadata.Metadata`` with that store behind
``m.store``, for TFX's portable launcher (``with mlmd_connection as m: m.store...``).

Listings are made complete too. ML Metadata 1.17 pages a listing ordered by a time
(``get_executions_by_context`` by default: newest first, 100 a page) with a token
that assumes ids grow with that time; when they do not (concurrent writers), the
row sitting across a page boundary is silently dropped. :func:`list_all` pages such
a listing by id instead, which is exact, and sorts the result as asked; the
guarded store routes the listing methods (:data:`LISTING_METHODS`) through it, so
TFX's calls through ``m.store`` (cache lookup, input resolution, the launcher's
execution lookup) get every row.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import logging
import os
import random
import re
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from stepwire import _protos, io_utils, redaction
from stepwire.exceptions import InfrastructureError

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

TFX_VERSION_WRITTEN_FOR = "1.21.0"
"""The ml-pipelines-sdk release whose private ``Metadata`` attributes this guard writes.

:class:`GuardedMetadata` sets ``_store``, ``_users`` and ``_connection_config`` of
``tfx.orchestration.metadata.Metadata`` (see tests/integration/test_mlmd_guard_pins.py);
another release may rename them, hence a warning when the installed one differs.
"""

LOCK_SUFFIX = ".lock"
"""The lock file is the SQLite file's path with this suffix."""

_TRANSIENT_MESSAGES = (
    # SQLite.
    "database is locked",
    "concurrent writes aborted",
    "concurrent connection to the empty database",
    "concurrent creation of the same context",
    # MySQL and MariaDB: writers of the same type rows deadlock (InnoDB rolls one
    # back), and a process that opens while another creates the schema sees it
    # half made.
    "deadlock found when trying to get lock",
    "lock wait timeout exceeded",
    "mlmdenv table exists but no schema_version",
    # PostgreSQL: two processes inserting the same type or the schema's rows.
    "duplicate key value violates unique constraint",
    "could not serialize access",
    "deadlock detected",
)

_CONCURRENT_DDL = re.compile(r'(?:database|relation|type) "[^"]+" already exists')
"""PostgreSQL's creation of a database and of tables "if not exists" is not safe
against itself: of two processes creating the store at once, one may fail on the
database, on a table (its relation) or on the row type PostgreSQL makes for it.
Only creating the store, when it is opened, runs DDL, so no other call can see it."""


@dataclass
class CallStats:
    """What the calls through one guarded store cost.

    Attributes:
        calls: Calls made (retries and opening the store included).
        seconds_in_calls: Time inside ML Metadata, i.e. holding the lock on SQLite.
        seconds_waiting: Time waiting for other processes to release the lock.
    """

    calls: int = 0
    seconds_in_calls: float = 0.0
    seconds_waiting: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing ML Metadata call is retried.

    Attributes:
        attempts: Tries in all, the first included.
        first_delay: Seconds before the second try; doubled for each further one.
        max_delay: Upper bound of one delay.
    """

    attempts: int = 8
    first_delay: float = 0.05
    max_delay: float = 2.0

    def delay(self, retry: int) -> float:
        """The jittered delay before retry number ``retry`` (1 for the second try).

        Args:
            retry: How many tries failed so far.

        Returns:
            Seconds to sleep, between half and all of the exponential delay.
        """
        ceiling = min(self.max_delay, self.first_delay * 2.0 ** (retry - 1))
        return float(ceiling * (0.5 + random.random() / 2))


DEFAULT_POLICY = RetryPolicy()
"""At most 8 tries, about 4.5 s of backoff in all."""


def is_transient(error: BaseException) -> bool:
    """Whether an ML Metadata failure is worth retrying on a fresh store.

    Args:
        error: What a store call (or opening the store) raised.

    Returns:
        True for aborted transactions, a locked database and concurrent schema
        creation, whatever exception class carries them.
    """
    if isinstance(error, MetadataClientError):
        return error.transient
    if isinstance(error, mlmd_errors.AlreadyExistsError):
        # TFX handles this one itself (it reads the row another process just
        # created); on a server its text quotes the database's "duplicate key",
        # which is transient only while the schema is created, at open.
        return "concurrent creation of the same context" in str(error).lower()
    if isinstance(error, mlmd_errors.AbortedError):
        return True
    if not isinstance(error, (mlmd_errors.StatusError, RuntimeError)):
        return False
    return _has_transient_message(str(error))


def _has_transient_message(text: str) -> bool:
    lowered = text.lower()
    return any(message in lowered for message in _TRANSIENT_MESSAGES) or bool(
        _CONCURRENT_DDL.search(lowered)
    )


def _open_store(config: Any) -> Any:
    """Opens ML Metadata; a SQLite file it creates is made owner-and-group only."""
    _refuse_an_empty_database(config)
    database = sqlite_database_path(config)
    new = database is not None and not os.path.exists(database)
    if database is not None and not new:
        _wait_for_other_writers(database)
    if database is None and is_database_server(config):
        return _open_server_store(config)
    if new and database is not None:
        # Says, until the schema exists, that an empty file here is one being
        # created (a creator killed before its first write leaves just that).
        with contextlib.suppress(OSError):
            os.close(os.open(_creating_marker(database), os.O_WRONLY | os.O_CREAT, 0o600))
    store = metadata_store.MetadataStore(config)
    if new and database is not None and os.path.exists(database):
        # The store holds every run's parameters and URIs: not world-readable.
        # SQLite gives its journal files the database's mode.
        with contextlib.suppress(OSError):
            os.chmod(database, io_utils.FILE_MODE)
    if database is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_creating_marker(database))
    return store


def _creating_marker(database: str) -> str:
    """The file that marks a SQLite store whose creation has not finished."""
    return f"{database}.creating"


class MetadataClientError(RuntimeError):
    """ML Metadata's client failed; the message holds what its C++ side logged.

    Attributes:
        transient: Whether retrying on a fresh connection may succeed.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def is_database_server(config: Any) -> bool:
    """Whether a connection configuration names a MySQL or PostgreSQL server.

    Args:
        config: An ML Metadata ``ConnectionConfig`` (or anything else).

    Returns:
        True for a MySQL (MariaDB) or PostgreSQL configuration.
    """
    return isinstance(config, _protos.ConnectionConfig) and (
        config.HasField("mysql") or config.HasField("postgresql")
    )


def _open_server_store(config: Any) -> Any:
    """Connects to a database server with the C++ client's stderr captured.

    On success its INFO lines are dropped; on failure its error lines become part
    of the exception, which otherwise says only "connection pointer is NULL".
    """
    from stepwire.native_log import capture_native_stderr

    with capture_native_stderr() as log:
        try:
            return metadata_store.MetadataStore(config)
        except Exception as error:
            failure = error
    native = log.errors()
    if not native:
        raise failure
    transient = is_transient(failure) or _has_transient_message(native)
    raise MetadataClientError(
        f"{_first_line(failure)} ({native})", transient=transient
    ) from failure


def _wait_for_other_writers(database: str) -> None:
    """Waits, at most the lock's deadline, for a write transaction not of stepwire's.

    ML Metadata's SQLite client waits without end for a process that holds the file
    in a transaction (``BEGIN EXCLUSIVE`` in a ``sqlite3`` shell, say). Taking and
    dropping a write lock with SQLite's own bounded busy wait first turns that into
    one clear failure.
    """
    import sqlite3

    deadline = lock_timeout()
    try:
        connection = sqlite3.connect(database, timeout=deadline, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            return  # not a wait (a damaged file, say): ML Metadata reports it itself
        holder = _lock_holder(os.stat(database).st_ino, "POSIX")
        who = f"process {holder}" if holder else "another process"
        raise InfrastructureError(
            f"waited {deadline:g} s for {who} to end its transaction on the ML Metadata "
            f"file {database}; {ENV_LOCK_TIMEOUT} sets the wait"
        ) from None


def sqlite_damage(database: str) -> str:
    """What SQLite's own ``quick_check`` finds wrong with a database file.

    Args:
        database: The file's path.

    Returns:
        The first problem reported, or "" when the file checks out.
    """
    import sqlite3

    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            rows = connection.execute("PRAGMA quick_check(1)").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        return str(error)
    answer = " ".join(str(rows[0][0]).split()) if rows else "no answer"
    return "" if answer == "ok" else answer


def _refuse_an_empty_database(config: Any) -> None:
    """An existing, empty SQLite file is never initialised anew.

    Checked with the lock held, so no other process is creating the schema right
    now: an empty file is a truncated store (or a stray file), and a fresh schema in
    it would silently lose every run it held. Unless a journal or the creation
    marker lies beside it: then a process was killed while it created the store
    (SQLite rolls a journal back when the file is next opened), and there was
    never anything in it to lose.
    """
    database = sqlite_database_path(config)
    if database and os.path.isfile(database) and os.path.getsize(database) == 0:
        leftovers = (f"{database}-journal", f"{database}-wal", _creating_marker(database))
        if any(os.path.exists(path) for path in leftovers):
            return
        raise InfrastructureError(
            f"the ML Metadata file {database} is empty (truncated?); it is not initialised "
            "anew: restore it, or delete it to start an empty store"
        )


def sqlite_database_path(config: Any) -> str | None:
    """The SQLite file a connection configuration points to.

    Args:
        config: An ML Metadata ``ConnectionConfig`` or ``MetadataStoreClientConfig``.

    Returns:
        The absolute path, or None for other databases, the gRPC client and
        in-memory SQLite.
    """
    if not isinstance(config, _protos.ConnectionConfig) or config.WhichOneof("config") != "sqlite":
        return None
    uri: str = config.sqlite.filename_uri
    if uri.startswith("file:"):
        parsed = urllib.parse.urlparse(uri)
        if "mode=memory" in parsed.query:
            return None
        uri = urllib.parse.unquote(parsed.path)
    if not uri or uri.startswith(":memory:"):
        return None
    return os.path.abspath(uri)


def _fail_fast(config: Any) -> Any:
    """A copy of a database configuration whose client does not retry by itself.

    ML Metadata's own retry sleeps about two seconds per attempt on the same,
    possibly broken, handle, and would do so while holding the lock.
    """
    if not isinstance(config, _protos.ConnectionConfig):
        return config
    copy = _protos.ConnectionConfig()
    copy.CopyFrom(config)
    copy.retry_options.max_num_retries = 1
    return copy


ENV_LOCK_TIMEOUT = "STEPWIRE_METADATA_LOCK_TIMEOUT"
"""Seconds a step waits for the SQLite lock before it fails with ``infrastructure``."""

DEFAULT_LOCK_TIMEOUT = 60.0


def lock_timeout() -> float:
    """The wait for the SQLite lock: ``$STEPWIRE_METADATA_LOCK_TIMEOUT`` or 60 s.

    Returns:
        Seconds, more than 0.
    """
    try:
        value = float(os.environ.get(ENV_LOCK_TIMEOUT, ""))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT
    return value if value > 0 else DEFAULT_LOCK_TIMEOUT


class _LockTimeoutError(Exception):
    """The lock was not had within the deadline."""


def _flock_within(fd: int, seconds: float) -> None:
    """Takes an exclusive ``flock`` on ``fd``, waiting at most ``seconds``.

    In the main thread a timer signal interrupts the kernel's wait, so waiters still
    wake the moment the lock is free; elsewhere (signals reach only the main thread)
    the lock is polled with a short, growing sleep.
    """
    if threading.current_thread() is not threading.main_thread():
        deadline = time.monotonic() + seconds
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _LockTimeoutError from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def expire(signum: int, frame: object) -> None:
        raise _LockTimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    earlier = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if earlier[0] > 0:  # give back a timer someone else had set
            signal.setitimer(signal.ITIMER_REAL, max(earlier[0] - seconds, 0.001), earlier[1])


def _lock_holder(inode: int, kind: str) -> int | None:
    """The pid holding a lock on the file of ``inode``, from ``/proc/locks`` (Linux).

    Args:
        inode: The locked file's inode.
        kind: ``FLOCK`` (stepwire's own lock) or ``POSIX`` (SQLite's locks).
    """
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
                fields = line.split()
                ours = len(fields) >= 6 and fields[1] == kind and fields[4].isdigit()
                if ours and fields[5].rsplit(":", 1)[-1] == str(inode):
                    holder = int(fields[4])
                    if holder != os.getpid():
                        return holder
    except OSError:
        return None
    return None


class _ProcessFileLock:
    """An exclusive ``flock`` on one file, shared by the threads of this process.

    ``flock`` locks belong to an open file description, so two threads using the
    same descriptor would both "hold" it; the re-entrant thread lock in front makes
    them take turns, and lets one thread nest (opening a store inside a call).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    def forget_after_fork(self) -> None:
        """In a forked child: drop the descriptor shared with the parent.

        A descriptor inherited through ``fork`` shares its lock with the parent's, so
        the child would not wait for the parent; the child opens its own instead.
        """
        self._thread_lock = threading.RLock()
        self._depth = 0
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _descriptor(self) -> int:
        if self._fd is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        return self._fd

    def _flock(self) -> None:
        # Blocking: the kernel wakes the next waiter at once (polling with sleeps
        # halved the throughput of 8 processes), and frees the lock of a process
        # that dies. It is held for one ML Metadata call at a time, so a wait past
        # the deadline means a holder that is stopped or not stepwire's.
        fd = self._descriptor()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as error:
            raise InfrastructureError(
                f"Cannot lock {self.path} to serialise ML Metadata calls: {error}"
            ) from error
        deadline = lock_timeout()
        try:
            _flock_within(fd, deadline)
        except _LockTimeoutError:
            holder = _lock_holder(os.fstat(fd).st_ino, "FLOCK")
            who = f"process {holder}" if holder else "another process"
            raise InfrastructureError(
                f"waited {deadline:g} s for the ML Metadata lock {self.path}, held by {who} "
                f"(is it stopped?); {ENV_LOCK_TIMEOUT} sets the wait"
            ) from None
        except OSError as error:
            raise InfrastructureError(
                f"Cannot lock {self.path} to serialise ML Metadata calls: {error}"
            ) from error

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Holds the lock for the ``with`` block.

        Yields:
            Nothing.
        """
        with self._thread_lock:
            if self._depth == 0:
                self._flock()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._descriptor(), fcntl.LOCK_UN)


_locks: dict[str, _ProcessFileLock] = {}
_locks_guard = threading.Lock()


def _file_lock(path: str) -> _ProcessFileLock:
    with _locks_guard:
        lock = _locks.get(path)
        if lock is None:
            lock = _locks[path] = _ProcessFileLock(path)
        return lock


def _after_fork_in_child() -> None:
    global _locks_guard  # noqa: PLW0603 - a lock held by another thread at fork time
    _locks_guard = threading.Lock()
    for lock in _locks.values():
        lock.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


LISTING_METHODS = frozenset(
    {
        "get_artifacts",
        "get_artifacts_by_context",
        "get_contexts",
        "get_executions",
        "get_executions_by_context",
    }
)
"""The ``MetadataStore`` methods that page their results (they take ``list_options``)."""

BY_ID_METHODS = frozenset(
    {
        "get_artifacts_by_id",
        "get_executions_by_id",
        "get_contexts_by_id",
        "get_artifact_types_by_id",
        "get_execution_types_by_id",
        "get_context_types_by_id",
    }
)
"""The ``MetadataStore`` methods whose result the guard puts in the order of the ids asked.

ML Metadata returns the rows in the database's order, not the request's; SQLite and
MariaDB happen to answer in id order, PostgreSQL does not. TFX zips such a result with
the list it asked for (its cache lookup pairs output events with
``get_artifacts_by_id`` of their artifact ids, then with ``get_artifact_types_by_id``
of their type ids): on PostgreSQL a cached step handed its outputs to the wrong keys.
"""


def in_order_asked(ids: Any, rows: list[Any]) -> list[Any]:
    """The rows of a ``get_*_by_id`` call, one per id asked, in the order asked.

    Args:
        ids: The ids passed to the call (duplicates allowed).
        rows: What ML Metadata returned, in any order.

    Returns:
        ``rows`` reordered (and repeated for a repeated id); an id ML Metadata found
        no row for is left out, as ML Metadata leaves it out.
    """
    by_id = {row.id: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


# What ML Metadata 1.17 orders by when the caller passes no list options (the other
# listings send no options then, and the server answers in one unpaged response).
_DEFAULT_ORDER: dict[str, tuple[metadata_store.OrderByField, bool]] = {
    "get_executions_by_context": (metadata_store.OrderByField.CREATE_TIME, False),
}

_TIME_FIELDS = {
    metadata_store.OrderByField.CREATE_TIME: "create_time_since_epoch",
    metadata_store.OrderByField.UPDATE_TIME: "last_update_time_since_epoch",
}


def list_all(store: Any, method: str, *args: Any, **kwargs: Any) -> list[Any]:
    """Calls one of :data:`LISTING_METHODS` so that it returns every matching row.

    A listing ordered by create or update time (asked for, or the default of
    ``get_executions_by_context``) that may span several pages is fetched in id
    order, the one order ML Metadata pages correctly, and sorted here by
    ``(time, id)`` in the direction asked, which is how ML Metadata breaks ties;
    a ``limit`` is applied after sorting. Listings ordered by id, or with no order
    (the server then uses id), and time-ordered ones that fit one page (a ``limit``
    of at most 100) are passed on unchanged.

    Args:
        store: An ``ml_metadata.MetadataStore`` or a :class:`GuardedMetadataStore`.
        method: The name of the listing method, e.g. ``"get_executions_by_context"``.
        *args: Its positional arguments, as ``MetadataStore`` declares them.
        **kwargs: Its keyword arguments, ``list_options`` included.

    Returns:
        The rows, in the order the call asked for (newest first by default for
        ``get_executions_by_context``).

    Raises:
        ValueError: If ``method`` is not a listing method.
    """
    if method not in LISTING_METHODS:
        raise ValueError(f"{method} is not a paged ML Metadata listing")
    bound = inspect.signature(getattr(metadata_store.MetadataStore, method)).bind(
        store, *args, **kwargs
    )
    requested = bound.arguments.get("list_options")
    if requested is None:
        if method not in _DEFAULT_ORDER:
            return list(getattr(store, method)(*bound.args[1:], **bound.kwargs))
        (order_by, is_asc), limit, filter_query = _DEFAULT_ORDER[method], None, None
    else:
        order_by, is_asc = requested.order_by, requested.is_asc
        limit, filter_query = requested.limit, requested.filter_query
    field = _TIME_FIELDS.get(order_by) if order_by is not None else None
    if field is None or (limit and limit <= metadata_store.MAX_NUM_RESULT):
        return list(getattr(store, method)(*bound.args[1:], **bound.kwargs))
    bound.arguments["list_options"] = metadata_store.ListOptions(
        order_by=metadata_store.OrderByField.ID, is_asc=True, filter_query=filter_query
    )
    rows = list(getattr(store, method)(*bound.args[1:], **bound.kwargs))
    rows.sort(key=lambda row: (getattr(row, field), row.id), reverse=not is_asc)
    return rows[:limit] if limit else rows


class GuardedMetadataStore:
    """``ml_metadata.MetadataStore`` with a cross-process lock (SQLite) and retries.

    Every public method of ``MetadataStore`` is available with the same signature.
    Non-transient errors (``NotFoundError``, ``AlreadyExistsError``, ...) pass
    through unchanged, so TFX's handling of them still works. The listing methods
    (:data:`LISTING_METHODS`) go through :func:`list_all` and so return every row;
    all pages of one listing are read in one turn of the lock, and a retry reads
    them again from the start.
    """

    def __init__(self, config: Any, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        """Opens the store (retried like any call).

        Args:
            config: An ML Metadata ``ConnectionConfig`` or ``MetadataStoreClientConfig``.
            policy: How failing calls are retried.

        Raises:
            InfrastructureError: If the store cannot be opened.
        """
        database = sqlite_database_path(config)
        self._config = _fail_fast(config)
        self._policy = policy
        self._lock = _file_lock(database + LOCK_SUFFIX) if database else None
        self._database = database
        self._where = f"SQLite file {database}" if database else _describe(config)
        self._store: Any = None
        #: Store handles dropped after a transient failure (each retry opens a new one).
        self.reconnects = 0
        #: The cost of the calls so far.
        self.stats = CallStats()
        self._call("open", lambda store: None)

    @property
    def lock_path(self) -> str | None:
        """The lock file, or None when calls are not serialised (not SQLite)."""
        return self._lock.path if self._lock else None

    def _held(self) -> contextlib.AbstractContextManager[None]:
        if self._lock is None:
            return contextlib.nullcontext()
        return self._lock.hold()

    def _call(self, name: str, function: Callable[[Any], _T]) -> _T:
        last: BaseException | None = None
        for attempt in range(1, self._policy.attempts + 1):
            if attempt > 1:
                time.sleep(self._policy.delay(attempt - 1))
            asked = time.perf_counter()
            with self._held():
                entered = time.perf_counter()
                self.stats.calls += 1
                self.stats.seconds_waiting += entered - asked
                try:
                    if self._store is None:
                        self._store = self._open()
                    return function(self._store)
                except Exception as error:
                    if not is_transient(error):
                        raise
                    self._raise_if_corrupt(error)
                    last = error
                    # The handle may stay broken after an abort: open a fresh one.
                    self._store = None
                    self.reconnects += 1
                finally:
                    self.stats.seconds_in_calls += time.perf_counter() - entered
        raise InfrastructureError(
            f"the metadata store {self._where}: {name} failed {self._policy.attempts} times, "
            f"last with {type(last).__name__}: {redact(_first_line(last), self._config)}"
        ) from (last if redact(str(last), self._config) == str(last) else None)

    def _open(self) -> Any:
        """Opens the store; a lasting failure is one line that names the server.

        A transient failure propagates for :meth:`_call` to retry. Any other one
        (wrong password, unknown host, refused connection) is infrastructure at
        once, without the client's exception attached: its text may hold the
        password, and a chained traceback would print it.
        """
        try:
            return _open_store(self._config)
        except Exception as error:
            if is_transient(error):
                raise
            if isinstance(error, InfrastructureError):
                raise
            raise InfrastructureError(
                f"the metadata store {self._where} cannot be opened: "
                f"{redact(' '.join(str(error).split()), self._config) or type(error).__name__}"
            ) from None

    def _raise_if_corrupt(self, error: BaseException) -> None:
        """A SQLite file that looks half-created, with the lock held, is checked at once.

        Every stepwire process opens the store under the lock, so none of them can be
        creating the schema right now: the "subset of tables" ML Metadata reports is
        then a damaged file, and retrying it only delays the one clear line.
        """
        if self._lock is None or "subset of tables" not in str(error).lower():
            return
        database = self._database
        if database is None:
            return
        problem = sqlite_damage(database)
        if problem:
            raise InfrastructureError(
                f"the ML Metadata file {database} is corrupt (SQLite's check: {problem}); "
                "restore it from a backup"
            ) from error

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(metadata_store.MetadataStore, name, None)
        if not callable(attribute):
            # A property (or something unknown): read it from a live store.
            return self._call(name, lambda store: getattr(store, name))

        if name in LISTING_METHODS:

            @functools.wraps(attribute)
            def listed(*args: Any, **kwargs: Any) -> Any:
                return self._call(name, lambda store: list_all(store, name, *args, **kwargs))

            return listed

        if name in BY_ID_METHODS:

            @functools.wraps(attribute)
            def by_id(ids: Any, *args: Any, **kwargs: Any) -> Any:
                ids = list(ids)
                rows = self._call(name, lambda store: getattr(store, name)(ids, *args, **kwargs))
                return in_order_asked(ids, rows)

            return by_id

        @functools.wraps(attribute)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if name.startswith("put_") and redaction.known():
                _redact_properties((args, kwargs))
            return self._call(name, lambda store: getattr(store, name)(*args, **kwargs))

        return guarded


def _redact_properties(value: Any) -> None:
    """Cuts the process's secrets out of the string properties of rows about to be written.

    TFX records a failed step's exception, message and traceback, on its execution;
    a secret the step read must not reach ML Metadata that way.
    """
    if isinstance(value, (list, tuple)):
        for item in value:
            _redact_properties(item)
    elif isinstance(value, dict):
        for item in value.values():
            _redact_properties(item)
    elif hasattr(value, "custom_properties") and hasattr(value, "properties"):
        for properties in (value.properties, value.custom_properties):
            for property_value in properties.values():
                if property_value.HasField("string_value"):
                    property_value.string_value = redaction.redact(property_value.string_value)


class GuardedMetadata(metadata.Metadata):
    """TFX's ``metadata.Metadata`` whose ``store`` is a :class:`GuardedMetadataStore`.

    One guarded store serves every ``with`` block of this object (it reconnects by
    itself after a failure), which spares the 5-15 ms of opening ML Metadata that
    TFX's class pays on each of the launcher's ``with mlmd_connection as m:``.
    """

    def __init__(self, connection_config: Any, policy: RetryPolicy = DEFAULT_POLICY) -> None:
        """Creates the connection; the store is opened on the first ``with``.

        Args:
            connection_config: An ML Metadata connection configuration.
            policy: How failing calls are retried.
        """
        warn_if_tfx_differs()
        super().__init__(connection_config)
        self._policy = policy
        self._guarded: GuardedMetadataStore | None = None
        self._guarded_lock = threading.Lock()

    @property
    def stats(self) -> CallStats:
        """The cost of the ML Metadata calls made through this connection so far."""
        return self._guarded.stats if self._guarded else CallStats()

    def __enter__(self) -> GuardedMetadata:
        with self._guarded_lock:
            if self._guarded is None:
                self._guarded = GuardedMetadataStore(self._connection_config, self._policy)
            # TFX declares the attribute as its MetadataStore; this stands in for one.
            self._store = self._guarded  # type: ignore[assignment]
            self._users += 1
        return self


_tfx_checked = False


@functools.cache
def installed_tfx_version() -> str | None:
    """The release of the TFX code this process runs (ml-pipelines-sdk or full tfx).

    Read from ``tfx.version``, which both distributions ship: asking
    ``importlib.metadata`` instead imports its e-mail parser and scans the installed
    packages, about 5 ms of every cold step process.

    Returns:
        Its version, or None if TFX cannot be imported.
    """
    try:
        from tfx import version
    except ImportError:
        return None
    found: str = version.__version__
    return found


def warn_if_tfx_differs() -> bool:
    """Logs one warning per process if TFX is not the release the guard was written for.

    A warning, not an error: a patch release rarely renames private attributes,
    and tests/integration/test_mlmd_guard_pins.py says precisely what changed.

    Returns:
        True if this call logged the warning.
    """
    global _tfx_checked  # noqa: PLW0603 - once per process
    if _tfx_checked:
        return False
    _tfx_checked = True
    installed = installed_tfx_version()
    if installed == TFX_VERSION_WRITTEN_FOR:
        return False
    logger.warning(
        "stepwire.mlmd_guard was written for ml-pipelines-sdk %s but %s is installed; "
        "it sets private attributes of tfx.orchestration.metadata.Metadata "
        "(run tests/integration/test_mlmd_guard_pins.py)",
        TFX_VERSION_WRITTEN_FOR,
        installed or "none",
    )
    return True


def _describe(config: Any) -> str:
    """Names a store as ``BaseMetadataStore.describe`` does, never with its password."""
    if isinstance(config, _protos.ConnectionConfig):
        if config.HasField("mysql"):
            c = config.mysql
            return f"MySQL database {c.database} at {c.user}@{c.host}:{c.port}"
        if config.HasField("postgresql"):
            p = config.postgresql
            return f"PostgreSQL database {p.dbname} at {p.user}@{p.host or p.hostaddr}:{p.port}"
    host, port = getattr(config, "host", ""), getattr(config, "port", "")
    return f"{host}:{port}" if host else type(config).__name__


def password_of(config: Any) -> str:
    """The password a connection configuration holds, or the empty string.

    Args:
        config: An ML Metadata ``ConnectionConfig`` (or anything else).

    Returns:
        The MySQL or PostgreSQL password.
    """
    if isinstance(config, _protos.ConnectionConfig):
        for kind in ("mysql", "postgresql"):
            if config.HasField(kind):
                return str(getattr(config, kind).password)
    return ""


def redact(text: str, config: Any) -> str:
    """Removes a configuration's password from a text, wherever it occurs.

    A database client may echo its connection string in an error; nothing stepwire
    prints, logs or records may carry the password.

    Args:
        text: An error message.
        config: The configuration whose password to remove.

    Returns:
        The text with the password replaced by ``***``.
    """
    password = password_of(config)
    return text.replace(password, "***") if password else text


def _first_line(error: BaseException | None) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
