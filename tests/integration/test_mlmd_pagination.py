"""ML Metadata's paged listings lose a row; the guarded store and RunReader do not.

ML Metadata 1.17 lists ``get_executions_by_context`` newest first, 100 a page, and
its page token assumes ids grow with creation time. Concurrent writers break that
assumption (a process stamps its creation time, another inserts first and gets the
smaller id), and the row across the page boundary is silently dropped: 199 of 200 on
MariaDB and PostgreSQL. Here the same disorder is made on SQLite by editing one
row's ``create_time_since_epoch``: the last execution created claims to be the
oldest, so it belongs on page 2 but has a larger id than the end of page 1.

Every test first shows the raw loss, so that a fixed ML Metadata makes them fail
and says so; the workaround (``stepwire.mlmd_guard.list_all``) can then go.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from stepwire_testkit import sqlite_config

from stepwire import mlmd_guard
from stepwire.mlmd_guard import GuardedMetadata, GuardedMetadataStore, list_all
from stepwire.runs import RunReader

TOTAL = 150
PIPELINE = "paged"
RUN = "paged-run"
NODE = "trainer"
MLMD_FIXED = (
    "ML Metadata no longer drops a row at a page boundary of {call}: returned {got} of "
    f"{TOTAL}. The workaround in stepwire.mlmd_guard.list_all may be unnecessary now; "
    "check other backends, then simplify it and this test."
)
Listing = Callable[[Any], list[Any]]


@dataclass
class Store:
    """A SQLite ML Metadata file with TOTAL executions (and artifacts) in one run."""

    config: Any
    run_id: int
    node_id: int
    pipeline_id: int
    moved_id: int  # the execution whose creation time was edited

    def raw(self) -> Any:
        return metadata_store.MetadataStore(self.config)

    def guarded(self) -> GuardedMetadataStore:
        return GuardedMetadataStore(self.config)


def _build(path: Path, *, one_node: bool) -> Store:
    """Records TOTAL executions of a run, then puts the newest one at the oldest time.

    Args:
        path: The SQLite file.
        one_node: All executions belong to one node (TFX's view: executions of a
            node in a run), else each is a step of its own (``stepwire runs``' view).
    """
    config = sqlite_config(path)
    store = metadata_store.MetadataStore(config)
    execution_type = store.put_execution_type(pb.ExecutionType(name="Step"))
    artifact_type = store.put_artifact_type(pb.ArtifactType(name="Data"))
    type_ids = {
        name: store.put_context_type(pb.ContextType(name=name))
        for name in ("pipeline", "pipeline_run", "node")
    }
    nodes = [NODE] * TOTAL if one_node else [f"step{i:03d}" for i in range(TOTAL)]
    pipeline_id, run_id, *node_ids = store.put_contexts(
        [
            pb.Context(type_id=type_ids["pipeline"], name=PIPELINE),
            pb.Context(type_id=type_ids["pipeline_run"], name=RUN),
            *(
                pb.Context(type_id=type_ids["node"], name=f"{PIPELINE}.{node}")
                for node in dict.fromkeys(nodes)
            ),
        ]
    )
    node_of = dict(zip(dict.fromkeys(nodes), node_ids, strict=True))
    # Half of them COMPLETE, for the filter_query cases.
    states = [pb.Execution.COMPLETE if i % 2 else pb.Execution.RUNNING for i in range(TOTAL)]
    execution_ids = store.put_executions(
        [pb.Execution(type_id=execution_type, last_known_state=state) for state in states]
    )
    artifact_ids = store.put_artifacts(
        [pb.Artifact(type_id=artifact_type, uri=f"/data/{i}") for i in range(TOTAL)]
    )
    associations = [
        pb.Association(execution_id=execution, context_id=context)
        for execution, node in zip(execution_ids, nodes, strict=True)
        for context in (pipeline_id, run_id, node_of[node])
    ]
    attributions = [pb.Attribution(artifact_id=a, context_id=run_id) for a in artifact_ids]
    store.put_attributions_and_associations(attributions, associations)
    del store

    moved = max(execution_ids)
    with sqlite3.connect(path) as db:
        # The newest execution claims the oldest creation time, as if its writer had
        # stamped the time before another writer inserted (and took a smaller id).
        for table, row in (("Execution", moved), ("Artifact", max(artifact_ids))):
            db.execute(
                f"UPDATE {table} SET create_time_since_epoch ="
                f" (SELECT MIN(create_time_since_epoch) FROM {table}) - 1000 WHERE id = ?",
                (row,),
            )
    return Store(config, run_id, node_of[nodes[-1]], pipeline_id, moved)


@pytest.fixture
def steps(tmp_path: Path) -> Store:
    """A run of TOTAL steps."""
    return _build(tmp_path / "steps.db", one_node=False)


@pytest.fixture
def node(tmp_path: Path) -> Store:
    """TOTAL executions of one node in a run."""
    return _build(tmp_path / "node.db", one_node=True)


def _ids(rows: list[Any]) -> list[int]:
    return [row.id for row in rows]


def _newest_first(rows: list[Any]) -> list[int]:
    return _ids(sorted(rows, key=lambda r: (r.create_time_since_epoch, r.id), reverse=True))


def test_raw_store_drops_one_execution_and_guarded_store_returns_all(steps: Store) -> None:
    raw = steps.raw().get_executions_by_context(steps.run_id)
    assert len(raw) == TOTAL - 1, MLMD_FIXED.format(call="get_executions_by_context", got=len(raw))
    assert steps.moved_id not in _ids(raw)

    guarded = steps.guarded().get_executions_by_context(steps.run_id)
    assert len(guarded) == TOTAL
    assert len(set(_ids(guarded))) == TOTAL
    # Still newest first, ties by id, as ML Metadata orders them: the raw result is
    # the guarded one without the lost row.
    assert _ids(guarded) == _newest_first(guarded)
    assert [i for i in _ids(guarded) if i != steps.moved_id] == _ids(raw)


def test_list_all_completes_a_raw_store_too(steps: Store) -> None:
    # What RunReader does when handed a raw ml_metadata store.
    rows = list_all(steps.raw(), "get_executions_by_context", steps.run_id)
    assert sorted(_ids(rows)) == sorted(_ids(steps.raw().get_executions(list_options=None)))
    assert len(rows) == TOTAL


_ORDER = metadata_store.OrderByField
_COMPLETE = "last_known_state = COMPLETE"
CASES: dict[str, tuple[metadata_store.ListOptions, Callable[[Any], bool], str, bool, int]] = {
    # name: (options, which rows match, time field, ascending, limit)
    "create-desc": (
        metadata_store.ListOptions(order_by=_ORDER.CREATE_TIME, is_asc=False),
        lambda e: True,
        "create_time_since_epoch",
        False,
        0,
    ),
    "create-asc": (
        metadata_store.ListOptions(order_by=_ORDER.CREATE_TIME, is_asc=True),
        lambda e: True,
        "create_time_since_epoch",
        True,
        0,
    ),
    "update-desc": (
        metadata_store.ListOptions(order_by=_ORDER.UPDATE_TIME, is_asc=False),
        lambda e: True,
        "last_update_time_since_epoch",
        False,
        0,
    ),
    "create-desc-limit-over-a-page": (
        metadata_store.ListOptions(order_by=_ORDER.CREATE_TIME, is_asc=False, limit=TOTAL),
        lambda e: True,
        "create_time_since_epoch",
        False,
        TOTAL,
    ),
    "create-desc-limit-one-page": (
        metadata_store.ListOptions(order_by=_ORDER.CREATE_TIME, is_asc=False, limit=30),
        lambda e: True,
        "create_time_since_epoch",
        False,
        30,
    ),
    "create-desc-filtered": (
        metadata_store.ListOptions(
            order_by=_ORDER.CREATE_TIME, is_asc=False, filter_query=_COMPLETE
        ),
        lambda e: e.last_known_state == pb.Execution.COMPLETE,
        "create_time_since_epoch",
        False,
        0,
    ),
    "filtered-no-order": (
        metadata_store.ListOptions(filter_query=_COMPLETE),
        lambda e: e.last_known_state == pb.Execution.COMPLETE,
        "id",
        True,
        0,
    ),
    "id-desc": (
        metadata_store.ListOptions(order_by=_ORDER.ID, is_asc=False),
        lambda e: True,
        "id",
        False,
        0,
    ),
}


@pytest.mark.parametrize("method", ["get_executions_by_context", "get_executions"])
@pytest.mark.parametrize("case", list(CASES))
def test_guarded_listing_honours_order_filter_and_limit(
    steps: Store, method: str, case: str
) -> None:
    options, matches, field, ascending, limit = CASES[case]
    every = steps.raw().get_executions_by_context(
        steps.run_id, list_options=metadata_store.ListOptions(order_by=_ORDER.ID)
    )
    assert len(every) == TOTAL  # id order: ML Metadata pages it correctly
    expected = _ids(
        sorted(
            (e for e in every if matches(e)),
            key=lambda e: (getattr(e, field), e.id),
            reverse=not ascending,
        )
    )
    expected = expected[:limit] if limit else expected
    args = (steps.run_id,) if method == "get_executions_by_context" else ()
    guarded = getattr(steps.guarded(), method)(*args, list_options=options)
    assert _ids(guarded) == expected


def test_raw_create_time_listing_of_all_executions_drops_one(steps: Store) -> None:
    options = metadata_store.ListOptions(order_by=_ORDER.CREATE_TIME, is_asc=False)
    raw = steps.raw().get_executions(list_options=options)
    assert len(raw) == TOTAL - 1, MLMD_FIXED.format(call="get_executions", got=len(raw))
    assert len(steps.guarded().get_executions(list_options=options)) == TOTAL


def test_artifacts_by_context_without_options_is_unpaged_and_complete(steps: Store) -> None:
    # With no options ML Metadata sends none and answers in one response, so the
    # guard leaves the call alone; if ML Metadata starts paging it by time, this
    # fails and get_artifacts_by_context needs a default in mlmd_guard too.
    raw = steps.raw().get_artifacts_by_context(steps.run_id)
    assert len(raw) == TOTAL
    assert _ids(steps.guarded().get_artifacts_by_context(steps.run_id)) == _ids(raw)


def test_list_all_rejects_calls_that_do_not_page(steps: Store) -> None:
    with pytest.raises(ValueError, match="get_context_types"):
        list_all(steps.raw(), "get_context_types")


# --- Through TFX: the launcher's "executions of this node in this run". ----------


def _contexts(store: Store) -> list[Any]:
    return store.raw().get_contexts_by_id([store.pipeline_id, store.run_id, store.node_id])


@pytest.fixture
def without_zetasql(monkeypatch: pytest.MonkeyPatch) -> None:
    """ML Metadata without filter queries (newer releases): TFX then falls back.

    TFX catches the error and lists each context with ``get_executions_by_context``
    at its defaults, the paged call that drops a row.
    """

    def no_filter_queries(self: Any, list_options: Any = None, extra_options: Any = None) -> Any:
        raise RuntimeError("ZetaSQL dependency removed (stepwire test)")

    monkeypatch.setattr(metadata_store.MetadataStore, "get_executions", no_filter_queries)


def _tfx_node_executions(connection: Any, store: Store) -> list[Any]:
    from tfx.orchestration.portable.mlmd import execution_lib

    with connection as m:
        return list(execution_lib.get_executions_associated_with_all_contexts(m, _contexts(store)))


def test_tfx_node_executions_with_filter_queries_are_complete(node: Store) -> None:
    from tfx.orchestration import metadata

    # ML Metadata 1.17 has filter queries: TFX lists by id (the default order) and
    # gets everything even from a raw store; through the guard it stays so.
    raw = _tfx_node_executions(metadata.Metadata(node.config), node)
    guarded = _tfx_node_executions(GuardedMetadata(node.config), node)
    assert len(raw) == TOTAL
    assert sorted(_ids(guarded)) == sorted(_ids(raw))


@pytest.mark.usefixtures("without_zetasql")
def test_tfx_fallback_node_executions_lose_one_raw_and_none_guarded(node: Store) -> None:
    from tfx.orchestration import metadata

    raw = _tfx_node_executions(metadata.Metadata(node.config), node)
    assert len(raw) == TOTAL - 1, MLMD_FIXED.format(
        call="TFX's get_executions_associated_with_all_contexts (fallback)", got=len(raw)
    )
    assert node.moved_id not in _ids(raw)

    guarded = _tfx_node_executions(GuardedMetadata(node.config), node)
    assert len(guarded) == TOTAL
    assert node.moved_id in _ids(guarded)


@pytest.mark.usefixtures("without_zetasql")
def test_tfx_store_ext_node_executions_fallback_is_complete_guarded(node: Store) -> None:
    from tfx.orchestration import metadata
    from tfx.orchestration.portable.mlmd import store_ext

    def node_executions(connection: Any) -> list[Any]:
        with connection as m:
            return list(
                store_ext.get_node_executions(
                    m.store, pipeline_id=PIPELINE, node_id=NODE, pipeline_run_id=RUN
                )
            )

    raw = node_executions(metadata.Metadata(node.config))
    assert len(raw) == TOTAL - 1, MLMD_FIXED.format(
        call="TFX's store_ext.get_node_executions (fallback)", got=len(raw)
    )
    assert len(node_executions(GuardedMetadata(node.config))) == TOTAL


# --- stepwire runs ---------------------------------------------------------------


def test_run_reader_shows_every_step_even_on_a_raw_store(steps: Store) -> None:
    raw = steps.raw()
    assert len(raw.get_executions_by_context(steps.run_id)) == TOTAL - 1, MLMD_FIXED.format(
        call="get_executions_by_context", got=len(raw.get_executions_by_context(steps.run_id))
    )
    for store in (raw, steps.guarded()):
        run = RunReader(store).get_run(RUN)
        assert len(run.steps) == TOTAL
        assert {s.step for s in run.steps} == {f"step{i:03d}" for i in range(TOTAL)}
        # The moved execution is the last step recorded.
        assert RunReader(store).step_status(RUN, PIPELINE, f"step{TOTAL - 1:03d}") == "completed"


def test_a_listing_is_retried_whole_after_a_transient_failure(
    steps: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_metadata import errors

    real = metadata_store.MetadataStore._call
    pages = {"seen": 0}

    def abort_on_the_second_page(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "GetExecutionsByContext":
            pages["seen"] += 1
            if pages["seen"] == 2:
                raise errors.AbortedError("Concurrent writes aborted")
        return real(self, method, *args, **kwargs)

    monkeypatch.setattr(metadata_store.MetadataStore, "_call", abort_on_the_second_page)
    store = GuardedMetadataStore(steps.config, mlmd_guard.RetryPolicy(3, 0.001, 0.002))
    rows = store.get_executions_by_context(steps.run_id)
    assert len(rows) == TOTAL
    assert len(set(_ids(rows))) == TOTAL  # the first attempt's page is not kept twice
    assert store.reconnects == 1
