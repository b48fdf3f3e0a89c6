"""ML Metadata stores: where TFX records executions, artifacts and contexts."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from stepwire import _protos
from stepwire.stack_config import (
    DatabaseServerConfig,
    MetadataConfig,
    MySQLConfig,
    PostgreSQLConfig,
)


class BaseMetadataStore(ABC):
    """An ML Metadata database a stack's steps record their executions in."""

    @abstractmethod
    def get_tfx_metadata_config(self) -> _protos.ConnectionConfig:
        """Returns the connection configuration for TFX's ``metadata.Metadata``.

        Returns:
            An ML Metadata ``ConnectionConfig``.
        """

    @abstractmethod
    def describe(self) -> str:
        """Names the store for a person, never with its password.

        Returns:
            One short phrase, for example ``SQLite file /data/metadata.db``.
        """

    def initialize(self) -> None:
        """Creates the database and ML Metadata's schema if they are missing.

        Opening a store creates both; doing it once, before any step process opens
        the store, spares the steps a race on an empty database (on a server,
        concurrent first openings fail while another creates the schema). Calling
        it on a ready store only connects.

        Raises:
            InfrastructureError: If the store cannot be reached or created.
        """
        self.open_store()

    def open_store(self) -> Any:
        """Opens the store for reading or writing outside TFX's launcher.

        Returns:
            A :class:`stepwire.mlmd_guard.GuardedMetadataStore`: the methods of
            ``ml_metadata.MetadataStore``, taking turns with step processes on a
            SQLite file and retried when ML Metadata aborts a call.
        """
        from stepwire.mlmd_guard import GuardedMetadataStore

        return GuardedMetadataStore(self.get_tfx_metadata_config())


@dataclass(frozen=True)
class SQLiteMetadataStore(BaseMetadataStore):
    """ML Metadata in a SQLite file, created on first use.

    Step processes that share the file take turns through an advisory lock on
    ``<path>.lock`` next to it (see :mod:`stepwire.mlmd_guard`), which is why the
    file must be on a local disk: one machine, any number of processes.

    Attributes:
        path: Path of the database file.
    """

    path: str

    def describe(self) -> str:
        """Names the store.

        Returns:
            ``SQLite file <path>``.
        """
        return f"SQLite file {self.path}"

    def get_tfx_metadata_config(self) -> _protos.ConnectionConfig:
        """Returns a SQLite connection configuration (read-write, create if missing).

        Returns:
            An ML Metadata ``ConnectionConfig``.
        """
        from tfx.orchestration import metadata

        # TFX's helper also creates the parent directory.
        return metadata.sqlite_metadata_connection_config(os.fspath(self.path))


@dataclass(frozen=True)
class DatabaseServerMetadataStore(BaseMetadataStore):
    """ML Metadata in a database on a server, shared by steps on any machine.

    The database and ML Metadata's schema are created by the first connection;
    ``stepwire metadata init`` (or an orchestrator, before its first step) does that
    once, so that concurrent step processes never race to create them.

    Attributes:
        config: Where the database is and how to log in.
    """

    config: DatabaseServerConfig

    #: How a person calls this kind of server.
    label: ClassVar[str] = "database"

    def describe(self) -> str:
        """Names the server and database, without the password.

        Returns:
            For example ``MySQL database mlmd at svc@db.internal:3306``.
        """
        c = self.config
        return f"{self.label} database {c.database} at {c.user}@{c.host}:{c.port}"


@dataclass(frozen=True)
class MySQLMetadataStore(DatabaseServerMetadataStore):
    """ML Metadata in a MySQL or MariaDB database.

    Attributes:
        config: Where the database is and how to log in.
    """

    config: MySQLConfig
    label: ClassVar[str] = "MySQL"

    def get_tfx_metadata_config(self) -> _protos.ConnectionConfig:
        """Returns a MySQL connection configuration.

        Returns:
            An ML Metadata ``ConnectionConfig``.
        """
        from tfx.orchestration import metadata

        return metadata.mysql_metadata_connection_config(
            host=self.config.host,
            port=self.config.port,
            database=self.config.database,
            username=self.config.user,
            password=self.config.password,
        )


@dataclass(frozen=True)
class PostgreSQLMetadataStore(DatabaseServerMetadataStore):
    """ML Metadata in a PostgreSQL database.

    Attributes:
        config: Where the database is and how to log in.
    """

    config: PostgreSQLConfig
    label: ClassVar[str] = "PostgreSQL"

    def get_tfx_metadata_config(self) -> _protos.ConnectionConfig:
        """Returns a PostgreSQL connection configuration.

        Returns:
            An ML Metadata ``ConnectionConfig``.
        """
        config = _protos.ConnectionConfig()
        postgresql = config.postgresql
        postgresql.host = self.config.host
        # ML Metadata passes these to libpq as strings.
        postgresql.port = str(self.config.port)
        postgresql.dbname = self.config.database
        postgresql.user = self.config.user
        postgresql.password = self.config.password
        return config


def metadata_store_from_config(config: MetadataConfig) -> BaseMetadataStore:
    """Builds the metadata store a stack configuration names.

    Args:
        config: The ``metadata_store`` part of a :class:`~stepwire.stack_config.StackConfig`.

    Returns:
        The store.
    """
    if isinstance(config, MySQLConfig):
        return MySQLMetadataStore(config)
    if isinstance(config, PostgreSQLConfig):
        return PostgreSQLMetadataStore(config)
    return SQLiteMetadataStore(config.path)
