"""Helpers of the entrypoint tests: a stack in a temporary directory, reading runs back.

Processes started by these tests get a stack of their own through the environment:
artifacts and a SQLite ML Metadata under a temporary directory, the ``local``
orchestrator (a step process only needs ``run_step``, which every orchestrator has),
and the interpreter running the tests first on ``PATH``, because the entrypoint
command is ``python -m stepwire.entrypoints.step_entrypoint``.
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
from stepwire.runs import RunReader, RunRecord, StepRecord

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "python" / "examples"


class StackDir:
    """A stack (artifact store and ML Metadata) under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.artifacts = root / "artifacts"
        self.metadata = root / "metadata.db"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process that uses this stack and nothing inherited."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("STEPWIRE_", "MY_ENGINE_", "PYTHON"))
        }
        env.update(
            STEPWIRE_ARTIFACT_STORE=str(self.artifacts),
            STEPWIRE_METADATA_URI=str(self.metadata),
            STEPWIRE_ORCHESTRATOR="local",
            PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]),
        )
        env.update(extra)
        return env

    def run(self, argv: Sequence[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        """Runs a command with this stack's environment, capturing its output."""
        return subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def store(self) -> Any:
        """The ML Metadata store (read with RunReader or directly)."""
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(self.metadata)
        return metadata_store.MetadataStore(config)

    def run_names(self) -> list[str]:
        """The names of all pipeline runs in ML Metadata."""
        return sorted(c.name for c in self.store().get_contexts_by_type("pipeline_run"))

    def run_record(self, run_name: str) -> RunRecord:
        """A pipeline run, as RunReader reports it."""
        return RunReader(self.store()).get_run(run_name)

    def step_record(self, run_name: str, step_name: str) -> StepRecord:
        """The one execution of a step in a run, as RunReader reports it."""
        [record] = [s for s in self.run_record(run_name).steps if s.step == step_name]
        return record

    def output(self, run_name: str, step_name: str, data_type: type, output: str = "output") -> Any:
        """A step output read back with the built-in materializer that wrote it."""
        [uri] = [a.uri for a in self.step_record(run_name, step_name).outputs if a.output == output]
        artifact = DataArtifact()
        artifact.uri = uri
        return BuiltInMaterializer(artifact).handle_input(data_type)


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    """The end of a process's output, for assertion messages."""
    return (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
        f"--- stderr\n{proc.stderr[-5000:]}"
    )
