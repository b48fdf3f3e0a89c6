"""ML Metadata stores: where TFX records executions, artifacts and contexts."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from stepwire import _protos
from stepwire.stack_config import MySQLConfig, SQLiteConfig


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
class MySQLMetadataStore(BaseMetadataStore):
    """ML Metadata in a MySQL or MariaDB database.

    Attributes:
        config: Where the database is and how to log in.
    """

    config: MySQLConfig

    def describe(self) -> str:
        """Names the server and database, without the password.

        Returns:
            ``MySQL database <db> at <user>@<host>:<port>``.
        """
        c = self.config
        return f"MySQL database {c.database} at {c.user}@{c.host}:{c.port}"

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


def metadata_store_from_config(config: SQLiteConfig | MySQLConfig) -> BaseMetadataStore:
    """Builds the metadata store a stack configuration names.

    Args:
        config: The ``metadata_store`` part of a :class:`~stepwire.stack_config.StackConfig`.

    Returns:
        The store.
    """
    if isinstance(config, MySQLConfig):
        return MySQLMetadataStore(config)
    return SQLiteMetadataStore(config.path)
