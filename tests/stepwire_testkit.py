"""What tests that start real processes share: a stack folder, a clean environment, a store.

A test gives the processes it starts a stack of their own through the environment:
artifacts and a SQLite ML Metadata under one folder (:class:`StackDir`), nothing
inherited from the environment the tests run in (:func:`clean_environment`), and
reads back what they recorded with a raw ML Metadata handle (:func:`sqlite_store`)
or :class:`stepwire.runs.RunReader`.

``tests/`` is on ``sys.path`` (``tests/conftest.py`` lives there), so every tier
imports this module as ``stepwire_testkit``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from stepwire.artifacts import DataArtifact
from stepwire.materializers import BuiltInMaterializer
from stepwire.orchestrators import BaseOrchestrator, RuntimeConfiguration, StepOutcome
from stepwire.runs import RunReader, RunRecord, StepRecord
from stepwire.step_launcher import launch_step

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "python" / "examples"


def sqlite_config(path: Path | str) -> Any:
    """The ML Metadata ``ConnectionConfig`` of a SQLite file (created if missing).

    ``path`` may also be ``:memory:`` or a ``file:`` URI. Typed ``Any``, as in
    ``stepwire._protos``: the protobuf classes have no stubs.
    """
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return config


def sqlite_store(path: Path | str) -> metadata_store.MetadataStore:
    """A raw ML Metadata handle on a SQLite file: no guard, no retries."""
    return metadata_store.MetadataStore(sqlite_config(path))


def clean_environment(*drop_prefixes: str, **values: str | None) -> dict[str, str]:
    """This process's environment, cleaned for a process that must not inherit a stack.

    Args:
        drop_prefixes: Prefixes of more variables to leave out, besides every
            ``STEPWIRE_*`` variable and ``PYTHONPATH``.
        values: Variables to set last; None removes a variable.

    Returns:
        The environment, with the running interpreter's folder first on ``PATH``:
        the step entrypoint command is ``python -m ...``.
    """
    prefixes = ("STEPWIRE_", "PYTHONPATH", *drop_prefixes)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    path = [os.path.dirname(sys.executable), *filter(None, [env.get("PATH")])]
    env["PATH"] = os.pathsep.join(path)
    for key, value in values.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    """A process's exit code and the ends of its output, for assertion messages."""
    return (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-5000:]}"
    )


class StackDir:
    """A stack under one folder: ``artifacts/`` and the SQLite ML Metadata ``metadata.db``.

    Processes started through it (:meth:`run`, :meth:`cli`, or with :meth:`env`) use
    this stack, whatever ``stepwire.yaml`` or ``STEPWIRE_*`` variables they would
    otherwise find.

    Args:
        root: The folder (created by the processes that write to it).
        orchestrator: ``STEPWIRE_ORCHESTRATOR`` of those processes; None leaves it
            unset (stepwire's default).
        drop: Prefixes of more variables those processes do not inherit.
        values: More variables every one of those processes gets.
    """

    def __init__(
        self,
        root: Path,
        *,
        orchestrator: str | None = "local",
        drop: Sequence[str] = (),
        **values: str,
    ) -> None:
        self.root = root
        self.artifacts = root / "artifacts"
        self.metadata = root / "metadata.db"
        self.orchestrator = orchestrator
        self.drop = tuple(drop)
        self.values = values

    # ------------------------------------------------------------------ processes

    def env(self, **values: str | None) -> dict[str, str]:
        """A clean environment with this stack, then ``values`` (None removes a variable).

        ``STEPWIRE_CONFIG`` is empty, so no ``stepwire.yaml`` is read.
        """
        return clean_environment(
            *self.drop,
            **{
                "STEPWIRE_CONFIG": "",
                "STEPWIRE_ARTIFACT_STORE": str(self.artifacts),
                "STEPWIRE_METADATA_URI": str(self.metadata),
                "STEPWIRE_ORCHESTRATOR": self.orchestrator,
                **self.values,
                **values,
            },
        )

    def run(
        self, argv: Sequence[str], cwd: Path, *, timeout: float = 120, **values: str | None
    ) -> subprocess.CompletedProcess[str]:
        """Runs a command on this stack (environment: :meth:`env`), capturing its output."""
        return subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.env(**values),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli(
        self, args: Sequence[str], cwd: Path, *, timeout: float = 300, **values: str | None
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``python -m stepwire <args>`` on this stack, capturing its output."""
        return self.run([sys.executable, "-m", "stepwire", *args], cwd, timeout=timeout, **values)

    # ------------------------------------------------------------------ what they recorded

    def store(self) -> metadata_store.MetadataStore:
        """A new raw handle on this stack's ML Metadata."""
        return sqlite_store(self.metadata)

    def run_names(self) -> list[str]:
        """The names of all pipeline runs in ML Metadata, sorted."""
        return sorted(c.name for c in self.store().get_contexts_by_type("pipeline_run"))

    def run_record(self, run: str) -> RunRecord:
        """A pipeline run, as ``RunReader`` (and ``stepwire runs show``) reports it."""
        return RunReader(self.store()).get_run(run)

    def step_record(self, run: str, step: str) -> StepRecord:
        """The one record of a step in a run."""
        [record] = [s for s in self.run_record(run).steps if s.step == step]
        return record

    def statuses(self, run: str) -> dict[str, str]:
        """Step name to status in a run."""
        return {s.step: s.status for s in self.run_record(run).steps}

    def executions(self, run: str, pipeline: str, step: str) -> list[Any]:
        """The executions of the node ``pipeline.step`` in a run (none if either is unknown)."""
        store = self.store()
        run_context = store.get_context_by_type_and_name("pipeline_run", run)
        node = store.get_context_by_type_and_name("node", f"{pipeline}.{step}")
        if run_context is None or node is None:
            return []
        in_run = {e.id for e in store.get_executions_by_context(run_context.id)}
        return [e for e in store.get_executions_by_context(node.id) if e.id in in_run]

    def output_uri(self, run: str, step: str, output: str = "output") -> str:
        """Where an output of a step of a run was published."""
        [uri] = [a.uri for a in self.step_record(run, step).outputs if a.output == output]
        return uri

    def output(self, run: str, step: str, data_type: type, output: str = "output") -> Any:
        """An output of a step of a run, read back with the built-in materializer."""
        artifact = DataArtifact()
        artifact.uri = self.output_uri(run, step, output)
        return BuiltInMaterializer(artifact).handle_input(data_type)


class InProcessOrchestrator(BaseOrchestrator):
    """Runs every step in this process, in order, through the one launch path.

    Returns the outcomes by step name. Unlike ``local`` it prints nothing and
    raises the step's own exception.
    """

    def prepare_or_run_pipeline(
        self,
        sorted_list_of_steps: list[Any],
        pipeline: Any,
        pb2_pipeline: Any,
        stack: Any,
        runtime_configuration: RuntimeConfiguration,
    ) -> dict[str, StepOutcome]:
        return {
            s.name: launch_step(s, runtime_configuration.run_name, pb2_pipeline, stack).outcome
            for s in sorted_list_of_steps
        }
