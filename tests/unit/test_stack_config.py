"""Stack configuration from defaults, stepwire.yaml and STEPWIRE_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwire.exceptions import StackConfigError
from stepwire.metadata_store import (
    MySQLMetadataStore,
    PostgreSQLMetadataStore,
    SQLiteMetadataStore,
    metadata_store_from_config,
)
from stepwire.orchestrators import BaseOrchestrator, register_orchestrator
from stepwire.stack import stack_from_config
from stepwire.stack_config import MySQLConfig, PostgreSQLConfig, SQLiteConfig, load_stack_config


class NoopOrchestrator(BaseOrchestrator):
    def prepare_or_run_pipeline(self, *args: object, **kwargs: object) -> None:
        return None


def test_defaults_live_in_the_current_directory(tmp_path: Path) -> None:
    config = load_stack_config(environ={}, cwd=tmp_path)
    assert config.config_file is None
    assert config.project_root == tmp_path.resolve()
    assert config.orchestrator == "subprocess"
    assert config.artifact_store == str(tmp_path.resolve() / ".stepwire" / "artifacts")
    assert config.metadata_store == SQLiteConfig(str(tmp_path.resolve() / ".stepwire/metadata.db"))


def test_file_is_found_upwards_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "stepwire.yaml").write_text(
        "orchestrator: local\n"
        "artifact_store: store\n"
        "metadata_store:\n  type: sqlite\n  path: meta/md.db\n"
    )
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    config = load_stack_config(environ={}, cwd=nested)
    assert config.config_file == (tmp_path / "stepwire.yaml").resolve()
    assert config.project_root == tmp_path.resolve()
    assert config.orchestrator == "local"
    assert config.artifact_store == str(tmp_path.resolve() / "store")
    assert config.metadata_store == SQLiteConfig(str(tmp_path.resolve() / "meta" / "md.db"))


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("artifact_store: s3://bucket/prefix\n")
    config = load_stack_config(
        environ={
            "STEPWIRE_CONFIG": "other.yaml",
            "STEPWIRE_METADATA_URI": "md.db",
            "STEPWIRE_ORCHESTRATOR": "pkg.mod.Orchestrator",
        },
        cwd=tmp_path,
    )
    assert config.artifact_store == "s3://bucket/prefix"
    assert config.metadata_store == SQLiteConfig(str(tmp_path.resolve() / "md.db"))
    assert config.orchestrator == "pkg.mod.Orchestrator"
    config = load_stack_config(
        environ={"STEPWIRE_CONFIG": "other.yaml", "STEPWIRE_ARTIFACT_STORE": "gs://b/p"},
        cwd=tmp_path,
    )
    assert config.artifact_store == "gs://b/p"


def test_mysql_from_file_and_environment(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "stepwire.yaml").write_text(
        "metadata_store:\n  type: mysql\n  host: db\n  database: mlmd\n  user: me\n"
    )
    config = load_stack_config(
        environ={"STEPWIRE_METADATA_PASSWORD": "s3cret", "STEPWIRE_METADATA_PORT": "3307"},
        cwd=project,
    )
    assert config.metadata_store == MySQLConfig("db", 3307, "mlmd", "me", "s3cret")
    assert "s3cret" not in repr(config)
    from_env = load_stack_config(
        environ={
            "STEPWIRE_METADATA_TYPE": "mysql",
            "STEPWIRE_METADATA_HOST": "h",
            "STEPWIRE_METADATA_DATABASE": "d",
            "STEPWIRE_METADATA_USER": "u",
        },
        cwd=elsewhere,
    )
    assert from_env.metadata_store == MySQLConfig("h", 3306, "d", "u", "")


def test_postgresql_from_environment_and_back(tmp_path: Path) -> None:
    environ = {
        "STEPWIRE_METADATA_TYPE": "postgresql",
        "STEPWIRE_METADATA_HOST": "pg.internal",
        "STEPWIRE_METADATA_DATABASE": "mlmd",
        "STEPWIRE_METADATA_USER": "svc",
        "STEPWIRE_METADATA_PASSWORD": "pw-Secret-2",
    }
    config = load_stack_config(environ=environ, cwd=tmp_path)
    assert config.metadata_store == PostgreSQLConfig(
        "pg.internal", 5432, "mlmd", "svc", "pw-Secret-2"
    )
    assert config.metadata_store != MySQLConfig("pg.internal", 5432, "mlmd", "svc", "pw-Secret-2")
    assert "pw-Secret-2" not in repr(config)
    # The environment it hands to a step process resolves to the same store.
    assert load_stack_config(environ=config.to_environment(), cwd=tmp_path) == config
    store = metadata_store_from_config(config.metadata_store)
    assert isinstance(store, PostgreSQLMetadataStore)
    assert "pw-Secret-2" not in store.describe()
    assert store.describe() == "PostgreSQL database mlmd at svc@pg.internal:5432"
    pg = store.get_tfx_metadata_config().postgresql
    assert (pg.host, pg.port, pg.dbname, pg.user, pg.password) == (
        "pg.internal",
        "5432",
        "mlmd",
        "svc",
        "pw-Secret-2",
    )
    written = load_stack_config(
        environ={"STEPWIRE_CONFIG": str(config.to_file(tmp_path / "stepwire.yaml"))},
        cwd=tmp_path,
    )
    assert written.metadata_store == config.metadata_store


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("artifact_stor: x\n", "unknown keys"),
        ("- a\n", "mapping at the top level"),
        ("metadata_store:\n  type: postgres\n", r"one of \['sqlite', 'mysql', 'postgresql'\]"),
        (
            "metadata_store:\n  type: postgresql\n  host: h\n  database: d\n  user: u\n  port: 0\n",
            "1-65535",
        ),
        ("metadata_store:\n  type: mysql\n  host: h\n", r"needs \['database', 'user'\]"),
        ("metadata_store:\n  path: x\n  host: h\n", "unknown sqlite keys"),
        ("orchestrator: 3\n", "non-empty string"),
    ],
)
def test_invalid_configuration_is_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "stepwire.yaml").write_text(text)
    with pytest.raises(StackConfigError, match=message):
        load_stack_config(environ={}, cwd=tmp_path)


def test_stack_from_config_builds_components(tmp_path: Path) -> None:
    register_orchestrator("noop-for-test", NoopOrchestrator)
    stack = stack_from_config(
        load_stack_config(environ={"STEPWIRE_ORCHESTRATOR": "noop-for-test"}, cwd=tmp_path)
    )
    assert isinstance(stack.orchestrator, NoopOrchestrator)
    assert isinstance(stack.metadata_store, SQLiteMetadataStore)
    config = stack.metadata_store.get_tfx_metadata_config()
    assert config.sqlite.filename_uri == str(tmp_path.resolve() / ".stepwire" / "metadata.db")
    assert not stack.artifact_store.is_remote

    mysql = MySQLMetadataStore(MySQLConfig("h", 1, "d", "u", "p")).get_tfx_metadata_config()
    assert (mysql.mysql.host, mysql.mysql.port, mysql.mysql.user) == ("h", 1, "u")

    by_source = stack_from_config(
        load_stack_config(
            environ={"STEPWIRE_ORCHESTRATOR": f"{__name__}.NoopOrchestrator"}, cwd=tmp_path
        )
    )
    assert isinstance(by_source.orchestrator, NoopOrchestrator)
    with pytest.raises(StackConfigError, match="No orchestrator named 'nope'"):
        stack_from_config(
            load_stack_config(environ={"STEPWIRE_ORCHESTRATOR": "nope"}, cwd=tmp_path)
        )
