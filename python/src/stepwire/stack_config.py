"""Reading the stack configuration: ``stepwire.yaml`` plus ``STEPWIRE_*`` variables.

With no configuration at all, the stack is embedded: the ``subprocess`` orchestrator,
artifacts under ``.stepwire/artifacts`` and an ML Metadata SQLite file
``.stepwire/metadata.db``, both in the project root (the directory holding
``stepwire.yaml``, else the current directory).

The file is ``$STEPWIRE_CONFIG`` if set (set but empty: no file), else the first
``stepwire.yaml`` found from the current directory upwards. Every key is optional::

    orchestrator: subprocess            # a registered name, or pkg.module.Class
    artifact_store: .stepwire/artifacts # a path (relative to this file) or an fsspec URI
    metadata_store:
      type: sqlite                      # or mysql (MySQL, MariaDB) or postgresql
      path: .stepwire/metadata.db       # sqlite only, relative to this file
      host: 127.0.0.1                   # servers only: host, port, database, user, password
      port: 3306                        # default 3306 for mysql, 5432 for postgresql
      database: stepwire
      user: stepwire
      password: ""                      # better given as STEPWIRE_METADATA_PASSWORD

Environment variables override the file (relative paths are relative to the current
directory): ``STEPWIRE_ORCHESTRATOR``, ``STEPWIRE_ARTIFACT_STORE`` (path or URI),
``STEPWIRE_METADATA_URI`` (SQLite path; selects SQLite), ``STEPWIRE_METADATA_TYPE``,
``STEPWIRE_METADATA_HOST``, ``STEPWIRE_METADATA_PORT``, ``STEPWIRE_METADATA_DATABASE``,
``STEPWIRE_METADATA_USER``, ``STEPWIRE_METADATA_PASSWORD``.

Precedence: a variable beats the file, the file beats the defaults, and an explicit
setting is never overridden by a less specific one. Two variables that contradict each
other (``STEPWIRE_METADATA_URI`` selects SQLite, ``STEPWIRE_METADATA_TYPE=mysql``) are
an error naming both, never a silent choice. The password of a database server is read
from ``STEPWIRE_METADATA_PASSWORD`` or the file; it never travels in a command line.

:meth:`StackConfig.to_environment` is the inverse of :func:`load_stack_config`: the
variables that make another process resolve exactly this stack, whatever file or
variables it finds. Orchestrators hand the whole stack to their step processes with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from stepwire.exceptions import StackConfigError

CONFIG_FILENAME = "stepwire.yaml"
ENV_CONFIG = "STEPWIRE_CONFIG"
ENV_ORCHESTRATOR = "STEPWIRE_ORCHESTRATOR"
ENV_ARTIFACT_STORE = "STEPWIRE_ARTIFACT_STORE"
ENV_METADATA_URI = "STEPWIRE_METADATA_URI"
ENV_METADATA_TYPE = "STEPWIRE_METADATA_TYPE"
_ENV_SERVER_PREFIX = "STEPWIRE_METADATA_"

DEFAULT_ORCHESTRATOR = "subprocess"
DEFAULT_ARTIFACT_STORE = ".stepwire/artifacts"
DEFAULT_METADATA_PATH = ".stepwire/metadata.db"
DEFAULT_MYSQL_PORT = 3306
DEFAULT_POSTGRESQL_PORT = 5432

_TOP_LEVEL_KEYS = frozenset({"orchestrator", "artifact_store", "metadata_store"})
_SQLITE_KEYS = frozenset({"type", "path"})
_SERVER_FIELDS = ("host", "port", "database", "user", "password")
_SERVER_KEYS = frozenset({"type", *_SERVER_FIELDS})


@dataclass(frozen=True)
class SQLiteConfig:
    """An ML Metadata store in a SQLite file.

    Attributes:
        path: Absolute path of the database file.
    """

    path: str


@dataclass(frozen=True)
class DatabaseServerConfig:
    """An ML Metadata store in a database on a server.

    Attributes:
        host: Server host name or address.
        port: Server port.
        database: Database name.
        user: User name.
        password: Password (kept out of ``repr``).
    """

    #: The ``metadata_store.type`` that selects this kind of server.
    kind: ClassVar[str] = ""
    #: The port used when none is given.
    default_port: ClassVar[int] = 0

    host: str
    port: int
    database: str
    user: str
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class MySQLConfig(DatabaseServerConfig):
    """An ML Metadata store in a MySQL or MariaDB database."""

    kind: ClassVar[str] = "mysql"
    default_port: ClassVar[int] = DEFAULT_MYSQL_PORT


@dataclass(frozen=True)
class PostgreSQLConfig(DatabaseServerConfig):
    """An ML Metadata store in a PostgreSQL database."""

    kind: ClassVar[str] = "postgresql"
    default_port: ClassVar[int] = DEFAULT_POSTGRESQL_PORT


MetadataConfig = SQLiteConfig | MySQLConfig | PostgreSQLConfig
"""Where a stack's ML Metadata lives."""

_SERVER_CONFIGS: dict[str, type[MySQLConfig] | type[PostgreSQLConfig]] = {
    MySQLConfig.kind: MySQLConfig,
    PostgreSQLConfig.kind: PostgreSQLConfig,
}


@dataclass(frozen=True)
class StackConfig:
    """The resolved stack configuration.

    Attributes:
        project_root: Directory holding the config file, else the current directory.
        config_file: The file read, if any.
        orchestrator: Registered orchestrator name or class source.
        artifact_store: Absolute local path or fsspec URI of the artifact store.
        metadata_store: Where ML Metadata lives.
    """

    project_root: Path
    config_file: Path | None
    orchestrator: str
    artifact_store: str
    metadata_store: MetadataConfig

    def to_environment(self) -> dict[str, str]:
        """The ``STEPWIRE_*`` variables that resolve to exactly this stack.

        Every setting is given explicitly, so neither a ``stepwire.yaml`` the other
        process finds nor the defaults can change it; ``STEPWIRE_CONFIG`` is set to
        the file this configuration was read from (or to nothing), so the other
        process reads the same file, if any, and no other.

        Returns:
            Variable names to values. A database server's password is among them:
            pass the result as an environment, never as command-line arguments.
        """
        env = {
            ENV_CONFIG: str(self.config_file) if self.config_file else "",
            ENV_ORCHESTRATOR: self.orchestrator,
            ENV_ARTIFACT_STORE: self.artifact_store,
        }
        store = self.metadata_store
        if isinstance(store, SQLiteConfig):
            env[ENV_METADATA_TYPE] = "sqlite"
            env[ENV_METADATA_URI] = store.path
            return env
        env[ENV_METADATA_TYPE] = store.kind
        for name in _SERVER_FIELDS:
            env[f"{_ENV_SERVER_PREFIX}{name.upper()}"] = str(getattr(store, name))
        return env

    @staticmethod
    def environment_names() -> frozenset[str]:
        """Every variable :func:`load_stack_config` reads.

        Returns:
            The names; a process that hands its stack across removes these from the
            environment it inherits before adding :meth:`to_environment`'s.
        """
        return frozenset(
            {ENV_CONFIG, ENV_ORCHESTRATOR, ENV_ARTIFACT_STORE, ENV_METADATA_URI, ENV_METADATA_TYPE}
            | {f"{_ENV_SERVER_PREFIX}{name.upper()}" for name in _SERVER_FIELDS}
        )

    def to_file(self, path: Path) -> Path:
        """Writes this configuration as a ``stepwire.yaml`` that loads back to it.

        The file is created readable by its owner only, since it may hold a password.

        Args:
            path: The file to write.

        Returns:
            The path written.
        """
        store = self.metadata_store
        metadata: dict[str, Any]
        if isinstance(store, SQLiteConfig):
            metadata = {"type": "sqlite", "path": store.path}
        else:
            metadata = {"type": store.kind, **{k: getattr(store, k) for k in _SERVER_FIELDS}}
        data = {
            "orchestrator": self.orchestrator,
            "artifact_store": self.artifact_store,
            "metadata_store": metadata,
        }
        # A new file in the same folder, owner-only from its first byte, then renamed
        # over the target: an existing file's wider mode never holds the password.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                import yaml  # only where a stepwire.yaml is read or written

                yaml.safe_dump(data, file, sort_keys=False)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return path


def find_config_file(start: Path, environ: Mapping[str, str]) -> Path | None:
    """Finds the stack configuration file.

    Args:
        start: Directory to search from, upwards.
        environ: Environment variables.

    Returns:
        ``$STEPWIRE_CONFIG`` if set, else the nearest ``stepwire.yaml``, else None.
        ``STEPWIRE_CONFIG`` set to the empty string means no file at all.

    Raises:
        StackConfigError: If ``STEPWIRE_CONFIG`` names a missing file.
    """
    explicit = environ.get(ENV_CONFIG)
    if explicit == "":
        return None
    if explicit:
        path = (start / explicit).resolve()
        if not path.is_file():
            raise StackConfigError(f"{ENV_CONFIG}={explicit}: no such file.")
        return path
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILENAME
        if candidate.is_file():
            return candidate.resolve()
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only where a stepwire.yaml is read or written

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise StackConfigError(f"Cannot read {path}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackConfigError(f"{path}: expected a mapping at the top level.")
    unknown = set(data) - _TOP_LEVEL_KEYS
    if unknown:
        raise StackConfigError(
            f"{path}: unknown keys {sorted(unknown)}; known: {sorted(_TOP_LEVEL_KEYS)}."
        )
    return data


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise StackConfigError(f"{where} must be a non-empty string, got {value!r}.")
    return value


def _location(value: str, base: Path) -> str:
    """Makes a path absolute against ``base``; URIs are returned unchanged."""
    if "://" in value:
        return value
    return str((base / Path(value).expanduser()).resolve())


def _metadata_config(
    section: Any, root: Path, cwd: Path, environ: Mapping[str, str], where: str
) -> MetadataConfig:
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise StackConfigError(f"{where}: metadata_store must be a mapping.")
    env_uri = environ.get(ENV_METADATA_URI) or None
    env_kind = environ.get(ENV_METADATA_TYPE) or None
    if env_uri and env_kind not in (None, "sqlite"):
        # Both are explicit and at the same level: neither may silently win.
        raise StackConfigError(
            f"{ENV_METADATA_URI} selects a SQLite metadata store but "
            f"{ENV_METADATA_TYPE}={env_kind}; unset one of them."
        )
    kind = env_kind or ("sqlite" if env_uri else None) or section.get("type", "sqlite")
    if kind == "sqlite":
        return _sqlite_config(section, root, cwd, env_uri, where)
    server = _SERVER_CONFIGS.get(kind)
    if server is not None:
        return _server_config(server, section, environ, where)
    raise StackConfigError(
        f"{where}: metadata_store type must be one of {['sqlite', *_SERVER_CONFIGS]}, got {kind!r}."
    )


def _sqlite_config(
    section: dict[str, Any], root: Path, cwd: Path, env_uri: str | None, where: str
) -> SQLiteConfig:
    # The file's keys are checked only if the file itself chose sqlite: when the
    # environment overrides a mysql section, its mysql keys are simply unused.
    if section.get("type", "sqlite") == "sqlite":
        unknown = set(section) - _SQLITE_KEYS
        if unknown:
            raise StackConfigError(f"{where}: unknown sqlite keys {sorted(unknown)}.")
    if env_uri:
        return SQLiteConfig(_location(env_uri, cwd))
    path = _string(section.get("path", DEFAULT_METADATA_PATH), f"{where}: metadata_store.path")
    return SQLiteConfig(_location(path, root))


def _server_config(
    server: type[MySQLConfig] | type[PostgreSQLConfig],
    section: dict[str, Any],
    environ: Mapping[str, str],
    where: str,
) -> MySQLConfig | PostgreSQLConfig:
    kind = server.kind
    values: dict[str, Any] = {}
    # The file's keys count only if the file chose the same kind of server.
    if section.get("type") == kind:
        unknown = set(section) - _SERVER_KEYS
        if unknown:
            raise StackConfigError(f"{where}: unknown {kind} keys {sorted(unknown)}.")
        values.update({k: section[k] for k in _SERVER_FIELDS if k in section})
    for name in _SERVER_FIELDS:
        env_value = environ.get(f"{_ENV_SERVER_PREFIX}{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    missing = [name for name in ("host", "database", "user") if not values.get(name)]
    if missing:
        raise StackConfigError(
            f"{where}: the {kind} metadata store needs {missing} (in the file or as "
            f"{[_ENV_SERVER_PREFIX + m.upper() for m in missing]})."
        )
    try:
        port = int(values.get("port", server.default_port))
    except (TypeError, ValueError):
        raise StackConfigError(f"{where}: {kind} port must be an integer.") from None
    if not 0 < port < 65536:
        raise StackConfigError(f"{where}: {kind} port must be 1-65535, got {port}.")
    return server(
        host=str(values["host"]),
        port=port,
        database=str(values["database"]),
        user=str(values["user"]),
        password=str(values.get("password", "")),
    )


def load_stack_config(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> StackConfig:
    """Resolves the stack configuration from the file, the environment and defaults.

    Args:
        environ: Environment variables; defaults to ``os.environ``.
        cwd: Current directory; defaults to ``Path.cwd()``.

    Returns:
        The configuration, with absolute paths.

    Raises:
        StackConfigError: If the file or a variable is invalid.
    """
    environ = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).resolve()
    config_file = find_config_file(cwd, environ)
    data = _read_yaml(config_file) if config_file else {}
    root = config_file.parent if config_file else cwd
    where = str(config_file) if config_file else "stack configuration"

    orchestrator = environ.get(ENV_ORCHESTRATOR) or _string(
        data.get("orchestrator", DEFAULT_ORCHESTRATOR), f"{where}: orchestrator"
    )
    env_store = environ.get(ENV_ARTIFACT_STORE)
    if env_store:
        artifact_store = _location(env_store, cwd)
    else:
        store = data.get("artifact_store", DEFAULT_ARTIFACT_STORE)
        artifact_store = _location(_string(store, f"{where}: artifact_store"), root)
    metadata_store = _metadata_config(data.get("metadata_store"), root, cwd, environ, where)
    return StackConfig(
        project_root=root,
        config_file=config_file,
        orchestrator=orchestrator,
        artifact_store=artifact_store,
        metadata_store=metadata_store,
    )
