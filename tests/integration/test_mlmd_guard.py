"""The ML Metadata guard: cross-process lock on SQLite, retries on a fresh store.

The first tests are in-process and take milliseconds; the stress test starts eight
writer processes against one SQLite file (about 10 s).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ml_metadata import errors
from ml_metadata.proto import metadata_store_pb2
from mlmd_stress import run_stress
from stepwire_testkit import sqlite_config

from stepwire import mlmd_guard
from stepwire.exceptions import InfrastructureError
from stepwire.mlmd_guard import GuardedMetadata, GuardedMetadataStore, RetryPolicy

FAST = RetryPolicy(attempts=4, first_delay=0.001, max_delay=0.002)


class _FlakyStore:
    """Stands in for ml_metadata's MetadataStore; its first calls fail, then it works."""

    instances: list[_FlakyStore]
    failures: int
    error: Exception

    def __init__(self, config: Any) -> None:
        self.config = config
        type(self).instances.append(self)

    def get_context_types(self) -> list[str]:
        if type(self).failures > 0:
            type(self).failures -= 1
            raise self.error
        return ["ok"]


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[_FlakyStore]:
    class Flaky(_FlakyStore):
        instances: list[_FlakyStore] = []  # noqa: RUF012
        failures = 1
        error: Exception = errors.AbortedError("Concurrent writes aborted")

    monkeypatch.setattr(mlmd_guard.metadata_store, "MetadataStore", Flaky)
    return Flaky


def test_lock_file_sits_next_to_the_sqlite_file(tmp_path: Path) -> None:
    assert mlmd_guard.sqlite_database_path(sqlite_config(tmp_path / "m.db")) == str(
        tmp_path / "m.db"
    )
    assert mlmd_guard.sqlite_database_path(sqlite_config(f"file:{tmp_path}/m.db?mode=rwc")) == str(
        tmp_path / "m.db"
    )
    assert mlmd_guard.sqlite_database_path(sqlite_config(":memory:")) is None
    mysql = metadata_store_pb2.ConnectionConfig()
    mysql.mysql.host = "127.0.0.1"
    assert mlmd_guard.sqlite_database_path(mysql) is None
    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"))
    assert store.lock_path == f"{tmp_path / 'm.db'}.lock"
    assert os.path.exists(store.lock_path)


def test_aborted_call_is_retried_on_a_fresh_store(tmp_path: Path, flaky: Any) -> None:
    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"), FAST)
    assert store.get_context_types() == ["ok"]
    # The handle that aborted is dropped; the retry ran on a new one.
    assert len(flaky.instances) == 2
    assert store.reconnects == 1
    # ML Metadata's own retry loop (2 s sleeps on the same handle) is switched off.
    assert flaky.instances[-1].config.retry_options.max_num_retries == 1


def test_database_is_locked_is_retried_too(tmp_path: Path, flaky: Any) -> None:
    flaky.error = errors.InternalError("database is locked")
    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"), FAST)
    assert store.get_context_types() == ["ok"]


def test_a_call_that_keeps_aborting_is_an_infrastructure_error(tmp_path: Path, flaky: Any) -> None:
    flaky.failures = 99
    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"), FAST)
    with pytest.raises(InfrastructureError, match="get_context_types failed 4 times") as caught:
        store.get_context_types()
    assert isinstance(caught.value.__cause__, errors.AbortedError)
    assert str(tmp_path / "m.db") in str(caught.value)


def test_other_errors_pass_through_unchanged(tmp_path: Path, flaky: Any) -> None:
    flaky.error = errors.AlreadyExistsError("exists")
    with pytest.raises(errors.AlreadyExistsError):
        GuardedMetadataStore(sqlite_config(tmp_path / "m.db"), FAST).get_context_types()
    assert len(flaky.instances) == 1


def test_calls_wait_for_the_lock_another_process_holds(tmp_path: Path) -> None:
    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"))
    assert store.lock_path is not None
    # A descriptor of our own stands for another process: flock locks belong to
    # open file descriptions, so it conflicts with the guard's.
    fd = os.open(store.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (store.get_context_types(), done.set()))
    try:
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    thread.join(10)
    assert done.is_set()


def test_a_forked_child_does_not_share_the_parents_lock(tmp_path: Path) -> None:
    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"))
    lock = mlmd_guard._file_lock(str(store.lock_path))
    with lock.hold():
        pid = os.fork()
        if pid == 0:  # the child: must wait for the parent, then succeed
            try:
                store.get_context_types()
            finally:
                os._exit(0)
        time.sleep(0.3)
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # still waiting for the lock
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_guarded_metadata_is_what_the_tfx_launcher_expects(tmp_path: Path) -> None:
    from tfx.orchestration import metadata

    connection = GuardedMetadata(sqlite_config(tmp_path / "m.db"))
    assert isinstance(connection, metadata.Metadata)
    with connection as m:
        first = m.store
        assert isinstance(first, GuardedMetadataStore)
        with connection as nested:
            assert nested.store is first
        assert m.store.get_context_types() == []
    with pytest.raises(RuntimeError, match="not in enter state"):
        _ = connection.store
    with connection as m:
        assert m.store is first  # one store (one SQLite connection) per launch


def test_eight_writer_processes_lose_nothing_through_the_guard(tmp_path: Path) -> None:
    # Without the guard the same load shows "Concurrent writes aborted" (retried by
    # ML Metadata with ~2 s sleeps, or lost when opening the store); see mlmd_stress.
    result = run_stress(tmp_path / "metadata.db", processes=8, steps_per_process=12, guard=True)
    assert result.errors == {}
    assert result.lost == 0
    assert result.aborts_retried == 0
    assert result.steps_complete == 8 * 12
    assert result.executions_complete == 8 * 12


def test_the_stack_store_opens_guarded(tmp_path: Path) -> None:
    from stepwire.metadata_store import SQLiteMetadataStore

    store = SQLiteMetadataStore(str(tmp_path / "m.db")).open_store()
    assert isinstance(store, GuardedMetadataStore)
    assert store.lock_path == f"{tmp_path / 'm.db'}.lock"
