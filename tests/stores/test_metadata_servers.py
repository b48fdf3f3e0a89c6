"""stepwire's guarded ML Metadata store on MariaDB and PostgreSQL servers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2

from stepwire.metadata_store import metadata_store_from_config
from stepwire.mlmd_guard import GuardedMetadataStore, in_order_asked
from stepwire.stack_config import load_stack_config


@pytest.fixture(params=["mariadb", "postgresql"])
def server(request: pytest.FixtureRequest) -> Any:
    """The session's MariaDB or PostgreSQL server."""
    return request.getfixturevalue(request.param)


def _store(server: Any, database: str) -> GuardedMetadataStore:
    config = load_stack_config(environ={"STEPWIRE_CONFIG": "", **server.environment(database)})
    store = metadata_store_from_config(config.metadata_store).open_store()
    assert isinstance(store, GuardedMetadataStore)
    return store


def test_rows_by_id_come_in_the_order_asked(server: Any) -> None:
    store = _store(server, server.unique_database_name())
    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Thing"))
    ids = store.put_artifacts(
        [metadata_store_pb2.Artifact(type_id=type_id, uri=f"u{i}") for i in range(6)]
    )
    asked = [ids[3], ids[0], ids[5], ids[0], ids[1]]
    assert [a.id for a in store.get_artifacts_by_id(asked)] == asked
    # TFX asks for the type of every artifact, repeats included, and zips the answer.
    assert [t.id for t in store.get_artifact_types_by_id([type_id, type_id])] == [type_id] * 2


def test_in_order_asked_leaves_out_what_was_not_found() -> None:
    class Row:
        def __init__(self, id_: int) -> None:
            self.id = id_

    rows = [Row(2), Row(1)]
    assert [r.id for r in in_order_asked([1, 9, 2, 1], rows)] == [1, 2, 1]


OPEN_AND_WRITE = textwrap.dedent(
    """
    import sys
    from ml_metadata.proto import metadata_store_pb2 as pb
    from stepwire.stack import get_active_stack

    store = get_active_stack().metadata_store.open_store()
    for i in range(5):
        store.put_execution_type(pb.ExecutionType(name=f"E{i}"))
        store.put_context_type(pb.ContextType(name=f"C{i}"))
    print("reconnects", store.reconnects)
    """
)


def test_8_processes_opening_a_new_database_at_once_all_succeed(server: Any) -> None:
    # No `metadata init` first: the processes race to create the database and the
    # schema, and write the same types; the guard retries what the race aborts.
    database = server.unique_database_name()
    env = {"STEPWIRE_CONFIG": "", "PATH": "/usr/bin:/bin", **server.environment(database)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_WRITE],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, out + err
        assert out.startswith("reconnects "), out + err
        # The C++ client's glog lines never reach the step's stderr.
        assert "metadata_source.cc" not in err, err
    names = {t.name for t in _store(server, database).get_execution_types()}
    assert names == {f"E{i}" for i in range(5)}
