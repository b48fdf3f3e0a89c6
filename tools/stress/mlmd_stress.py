"""Stress ML Metadata on SQLite with writer processes that do what a step launch does.

Each worker process "launches" steps in a loop: it opens a fresh store (as a step
process does), makes sure the execution, context and artifact types and the
pipeline / run / node contexts exist, registers a RUNNING execution with
``put_execution``, links it with ``put_attributions_and_associations``, and publishes
it COMPLETE with an output artifact and its event (``put_execution`` again), then
reads the run's executions back. Every failed call is counted as lost (the step
is then abandoned), and so is every ``AbortedError`` that ML Metadata's own client
retried on the same handle after a sleep of about 2 s (``aborts_retried``).
``--reuse-store`` keeps one handle per worker; ``--rounds`` repeats on fresh files.

Run it directly to see the failure rate of the bare store against the guarded one::

    python tools/stress/mlmd_stress.py --processes 8 --steps 25
    python tools/stress/mlmd_stress.py --processes 8 --steps 25 --guard

The tests import :func:`run_stress`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_PIPELINE = "stress_pipeline"


@dataclass
class WorkerResult:
    """What one worker process did."""

    calls: int = 0
    lost: int = 0
    aborts_retried: int = 0
    steps: int = 0
    steps_complete: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class StressResult:
    """What all workers did together."""

    processes: int
    steps_per_process: int
    guard: bool
    calls: int
    lost: int
    aborts_retried: int
    steps_complete: int
    executions_complete: int
    seconds: float
    errors: dict[str, int]

    @property
    def loss_rate(self) -> float:
        """Lost calls over all calls."""
        return self.lost / self.calls if self.calls else 0.0


def _config(database: str) -> Any:
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = database
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return config


def _open(database: str, guard: bool) -> Any:
    if guard:
        from stepwire.mlmd_guard import GuardedMetadataStore

        return GuardedMetadataStore(_config(database))
    from ml_metadata.metadata_store import metadata_store

    return metadata_store.MetadataStore(_config(database))


class _Worker:
    def __init__(
        self, database: str, guard: bool, worker: int, run_name: str, reuse_store: bool = False
    ) -> None:
        self.reuse_store = reuse_store
        self._store: Any = None
        self.database = database
        self.guard = guard
        self.worker = worker
        self.run_name = run_name
        self.result = WorkerResult()

    def call(
        self,
        store: Any,
        method: str,
        *args: Any,
        tolerated: tuple[type[BaseException], ...] = (),
        **kwargs: Any,
    ) -> Any:
        """One store call; a failure is counted and re-raised to abandon the step.

        A ``tolerated`` error is re-raised without being counted: the caller handles
        it as TFX does (another worker created the same context first).
        """
        self.result.calls += 1
        try:
            if method == "open":  # opening a store can fail too (schema creation)
                return _open(self.database, self.guard)
            return getattr(store, method)(*args, **kwargs)
        except tolerated:
            raise
        except Exception as error:
            self.result.lost += 1
            key = f"{method}: {type(error).__name__}: {str(error).splitlines()[0][:80]}"
            self.result.errors[key] = self.result.errors.get(key, 0) + 1
            raise

    def context(self, store: Any, type_id: int, type_name: str, name: str) -> Any:
        from ml_metadata import errors
        from ml_metadata.proto import metadata_store_pb2 as pb

        found = self.call(store, "get_context_by_type_and_name", type_name, name)
        if found is not None:
            return found
        context = pb.Context(type_id=type_id, name=name)
        try:
            [context.id] = self.call(
                store, "put_contexts", [context], tolerated=(errors.AlreadyExistsError,)
            )
        except errors.AlreadyExistsError:
            # Another worker created it between our read and our write, as TFX's
            # context_lib tolerates: not a lost call.
            return self.call(store, "get_context_by_type_and_name", type_name, name)
        return context

    def step(self, index: int) -> None:
        from ml_metadata.proto import metadata_store_pb2 as pb

        self.result.steps += 1
        if self._store is None or not self.reuse_store:
            self._store = None
            self._store = self.call(None, "open")
        store = self._store
        execution_type = pb.ExecutionType(name="stress.Step")
        execution_type_id = self.call(store, "put_execution_type", execution_type)
        context_type_ids = {
            name: self.call(store, "put_context_type", pb.ContextType(name=name))
            for name in ("pipeline", "pipeline_run", "node")
        }
        node = f"{_PIPELINE}.step_{self.worker}_{index}"
        contexts = [
            self.context(store, context_type_ids["pipeline"], "pipeline", _PIPELINE),
            self.context(store, context_type_ids["pipeline_run"], "pipeline_run", self.run_name),
            self.context(store, context_type_ids["node"], "node", node),
        ]
        execution = pb.Execution(type_id=execution_type_id, last_known_state=pb.Execution.RUNNING)
        execution.id, _, _ = self.call(
            store, "put_execution", execution, [], contexts, reuse_context_if_already_exist=True
        )
        self.call(
            store,
            "put_attributions_and_associations",
            [],
            [pb.Association(context_id=c.id, execution_id=execution.id) for c in contexts],
        )
        artifact_type_id = self.call(
            store,
            "put_artifact_type",
            pb.ArtifactType(name="stress.Data", properties={"materializer": pb.STRING}),
        )
        artifact = pb.Artifact(
            type_id=artifact_type_id,
            uri=f"/tmp/stress/{node}/output/{execution.id}",
            state=pb.Artifact.LIVE,
        )
        artifact.properties["materializer"].string_value = "stress"
        event = pb.Event(type=pb.Event.OUTPUT)
        event.path.steps.add().key = "output"
        event.path.steps.add().index = 0
        execution.last_known_state = pb.Execution.COMPLETE
        self.call(
            store,
            "put_execution",
            execution,
            [(artifact, event)],
            contexts,
            reuse_context_if_already_exist=True,
        )
        self.call(store, "get_executions_by_context", contexts[1].id)
        self.result.steps_complete += 1

    def _count_aborts(self) -> None:
        """Counts the AbortedErrors ML Metadata's own client retries (and hides)."""
        from ml_metadata import errors
        from ml_metadata.metadata_store import metadata_store

        original = metadata_store.MetadataStore._call_method
        result = self.result

        def counting(store: Any, *args: Any) -> Any:
            try:
                return original(store, *args)
            except errors.AbortedError:
                result.aborts_retried += 1
                raise

        metadata_store.MetadataStore._call_method = counting  # type: ignore[method-assign]

    def run(self, steps: int, start_at: float) -> WorkerResult:
        self._count_aborts()

        time.sleep(max(0.0, start_at - time.time()))
        start = time.monotonic()
        for index in range(steps):
            lost = self.result.lost
            try:
                self.step(index)
            except Exception as error:  # counted in call(); the step is abandoned
                if self.result.lost == lost:  # failed outside a store call
                    self.result.lost += 1
                    key = f"step: {type(error).__name__}: {str(error).splitlines()[0][:80]}"
                    self.result.errors[key] = self.result.errors.get(key, 0) + 1
        self.result.seconds = time.monotonic() - start
        return self.result


def _count_complete(database: str, run_name: str) -> int:
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = metadata_store.MetadataStore(_config(database))
    run = store.get_context_by_type_and_name("pipeline_run", run_name)
    if run is None:
        return 0
    executions = store.get_executions_by_context(run.id)
    return sum(e.last_known_state == pb.Execution.COMPLETE for e in executions)


def run_stress(
    database: str | Path,
    processes: int,
    steps_per_process: int,
    *,
    guard: bool,
    run_name: str = "stress-run",
    reuse_store: bool = False,
    timeout: float = 600.0,
) -> StressResult:
    """Runs writer processes against one SQLite store and adds up what was lost.

    Args:
        database: The SQLite file (created if missing).
        processes: Number of worker processes.
        steps_per_process: Step launches each worker makes.
        guard: Use :class:`stepwire.mlmd_guard.GuardedMetadataStore`, else the bare store.
        run_name: The pipeline run context the executions are attached to.
        reuse_store: Keep one store handle per worker instead of one per step.
        timeout: Seconds to wait for each worker.

    Returns:
        The totals.
    """
    database = os.fspath(database)
    # All workers start at once, after their imports.
    start_at = time.time() + 2.0 + 0.15 * processes
    command = [
        sys.executable,
        os.fspath(Path(__file__).resolve()),
        "worker",
        "--db",
        database,
        "--steps",
        str(steps_per_process),
        "--start-at",
        repr(start_at),
        "--run-name",
        run_name,
    ]
    if guard:
        command.append("--guard")
    if reuse_store:
        command.append("--reuse-store")
    children = [
        subprocess.Popen(
            [*command, "--worker", str(worker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(processes)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        if child.returncode != 0:
            raise RuntimeError(f"stress worker failed ({child.returncode}):\n{err[-3000:]}")
        results.append(WorkerResult(**json.loads(out.strip().splitlines()[-1])))
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.errors)
    return StressResult(
        processes=processes,
        steps_per_process=steps_per_process,
        guard=guard,
        calls=sum(r.calls for r in results),
        lost=sum(r.lost for r in results),
        aborts_retried=sum(r.aborts_retried for r in results),
        steps_complete=sum(r.steps_complete for r in results),
        executions_complete=_count_complete(database, run_name),
        # From the common start line to the last worker's end.
        seconds=max((r.seconds for r in results), default=0.0),
        errors=dict(errors),
    )


def main(argv: list[str] | None = None) -> int:
    """Runs a stress round (or, internally, one worker) and prints the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["run", "worker"], default="run")
    parser.add_argument("--db", help="SQLite file (default: a new temporary one)")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=25, help="step launches per process")
    parser.add_argument("--guard", action="store_true", help="go through stepwire.mlmd_guard")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--reuse-store", action="store_true", help="one store handle per worker, not per step"
    )
    parser.add_argument("--run-name", default="stress-run")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--start-at", type=float, default=0.0)
    options = parser.parse_args(argv)
    if options.mode == "worker":
        worker = _Worker(
            options.db, options.guard, options.worker, options.run_name, options.reuse_store
        )
        print(json.dumps(asdict(worker.run(options.steps, options.start_at))))
        return 0
    for round_ in range(options.rounds):
        with tempfile.TemporaryDirectory() as folder:
            database = options.db or os.path.join(folder, "metadata.db")
            result = run_stress(
                database,
                options.processes,
                options.steps,
                guard=options.guard,
                run_name=f"{options.run_name}-{round_}",
                reuse_store=options.reuse_store,
            )
            summary = {**asdict(result), "loss_rate": round(result.loss_rate, 4)}
            print(json.dumps(summary, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
