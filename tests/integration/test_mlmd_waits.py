"""Waiting for ML Metadata is bounded, and an empty SQLite file is never initialised anew."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from stepwire_testkit import sqlite_config

from stepwire.exceptions import InfrastructureError
from stepwire.mlmd_guard import LOCK_SUFFIX, GuardedMetadataStore

HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def held_lock(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A process outside stepwire holding the SQLite file's lock."""
    database = tmp_path / "metadata.db"
    GuardedMetadataStore(sqlite_config(database)).get_context_types()  # the schema exists
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, f"{database}{LOCK_SUFFIX}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        yield database, holder.pid
    finally:
        holder.kill()
        holder.communicate(timeout=30)  # reaps it and closes its pipe


def test_a_held_lock_fails_after_the_deadline_naming_its_holder(
    held_lock: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, pid = held_lock
    monkeypatch.setenv("STEPWIRE_METADATA_LOCK_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(InfrastructureError, match=rf"waited 1 s .* held by process {pid}"):
        GuardedMetadataStore(sqlite_config(database))
    assert 0.9 < time.monotonic() - started < 10


def test_the_deadline_holds_outside_the_main_thread_too(
    held_lock: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, pid = held_lock
    monkeypatch.setenv("STEPWIRE_METADATA_LOCK_TIMEOUT", "1")
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            GuardedMetadataStore(sqlite_config(database))
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=open_store)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive()
    [error] = errors
    assert isinstance(error, InfrastructureError)
    assert f"held by process {pid}" in str(error)


def test_a_freed_lock_is_taken_at_once(tmp_path: Path) -> None:
    database = tmp_path / "metadata.db"
    store = GuardedMetadataStore(sqlite_config(database))
    started = time.monotonic()
    for _ in range(20):
        store.get_context_types()
    assert time.monotonic() - started < 5


def test_an_empty_metadata_file_is_not_initialised_anew(tmp_path: Path) -> None:
    database = tmp_path / "metadata.db"
    database.write_bytes(b"")
    with pytest.raises(InfrastructureError, match="is empty"):
        GuardedMetadataStore(sqlite_config(database))
    assert database.stat().st_size == 0


def test_an_empty_file_whose_creation_was_killed_is_created_again(tmp_path: Path) -> None:
    # A creator killed after SQLite made the file and before its first write
    # leaves an empty file and the creation marker: nothing was ever in it.
    database = tmp_path / "metadata.db"
    database.write_bytes(b"")
    (tmp_path / "metadata.db.creating").write_bytes(b"")
    store = GuardedMetadataStore(sqlite_config(database))
    assert store.get_context_types() == []
    assert database.stat().st_size > 0
    assert not (tmp_path / "metadata.db.creating").exists()
    # A store created normally leaves no marker behind.
    other = tmp_path / "other.db"
    GuardedMetadataStore(sqlite_config(other)).get_context_types()
    assert other.stat().st_size > 0
    assert not (tmp_path / "other.db.creating").exists()


def test_corrupt_pages_are_reported_as_corrupt_at_once(tmp_path: Path) -> None:
    database = tmp_path / "metadata.db"
    GuardedMetadataStore(sqlite_config(database)).get_context_types()
    with database.open("r+b") as file:  # pages 3-5 overwritten, the header intact
        file.seek(2 * 4096)
        file.write(bytes(range(256)) * 48)
    started = time.monotonic()
    with pytest.raises(InfrastructureError, match=r"metadata.db is corrupt \(SQLite's check: "):
        GuardedMetadataStore(sqlite_config(database))
    # Before: about 4 s of retries, then "concurrent connection to the empty database".
    assert time.monotonic() - started < 2


def test_a_healthy_file_checks_out(tmp_path: Path) -> None:
    from stepwire.mlmd_guard import sqlite_damage

    database = tmp_path / "metadata.db"
    GuardedMetadataStore(sqlite_config(database)).get_context_types()
    assert sqlite_damage(str(database)) == ""
    database.write_bytes(b"not a database" * 100)
    assert sqlite_damage(str(database)) == "file is not a database"


TRANSACTION = textwrap.dedent(
    """
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    print("held", flush=True)
    time.sleep(120)
    """
)


def test_a_transaction_outside_stepwire_fails_after_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ML Metadata's own client would wait for it without end.
    database = tmp_path / "metadata.db"
    GuardedMetadataStore(sqlite_config(database)).get_context_types()
    holder = subprocess.Popen(
        [sys.executable, "-c", TRANSACTION, str(database)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("STEPWIRE_METADATA_LOCK_TIMEOUT", "1")
        started = time.monotonic()
        with pytest.raises(
            InfrastructureError, match=rf"waited 1 s for process {holder.pid} to end its"
        ):
            GuardedMetadataStore(sqlite_config(database))
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.communicate(timeout=30)
