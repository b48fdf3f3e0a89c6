"""Helpers of the fault tests: a user pipeline whose steps misbehave on request.

The user module is written to a temporary folder and run with the ``stepwire`` CLI
and the subprocess orchestrator, so every step is a real process against a SQLite
ML Metadata store in that folder. The middle step misbehaves according to the
environment variable ``FAULT_MIDDLE``:

* ``raise``: it raises ``RuntimeError``;
* ``sleep``: it writes its pid to ``$FAULT_MARKER`` and sleeps (to be killed).

Wiring::

    source ---> middle ---> sink ---> tail
     | \\                   ^
     |  array_source -------+
     +-----> side ----------+
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from stepwire.runs import RunReader

MODULE = "faults_user_pipeline"
PIPELINE_OBJECT = "faulty_pipeline"
PIPELINE_NAME = "faulty"

USER_MODULE = textwrap.dedent(
    '''
    """A pipeline whose middle step fails, or hangs, when told to."""

    import os
    import time
    from pathlib import Path

    import numpy as np

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step
    def source() -> dict:
        return {"value": 20, "label": "twenty"}


    @step
    def array_source() -> np.ndarray:
        return np.arange(6, dtype=np.float64).reshape(2, 3)


    @step
    def side(value: dict) -> int:
        return value["value"] - 1


    @step
    def middle(value: dict, table: np.ndarray) -> int:
        mode = os.environ.get("FAULT_MIDDLE", "")
        if mode == "raise":
            raise RuntimeError("middle failed on purpose")
        if mode == "sleep":
            Path(os.environ["FAULT_MARKER"]).write_text(str(os.getpid()))
            time.sleep(300)
        return value["value"] + int(table.sum())


    @step
    def sink(value: int, other: int) -> int:
        return value * 2 + other


    @step
    def tail(value: int) -> str:
        return f"result={value}"


    @pipeline
    def faulty(source, array_source, side, middle, sink, tail):
        number = source()
        table = array_source()
        total = sink(value=middle(value=number, table=table), other=side(value=number))
        tail(value=total)


    faulty_pipeline = faulty(
        source=source(),
        array_source=array_source(),
        side=side(),
        middle=middle(),
        sink=sink(),
        tail=tail(),
    )
    '''
)

STEPS = ("source", "array_source", "side", "middle", "sink", "tail")
EXPECTED_TAIL = "result=89"  # (20 + 15) * 2 + 19


class FaultProject:
    """The user module plus its artifact store and ML Metadata, under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.module_file = root / f"{MODULE}.py"
        self.module_file.write_text(USER_MODULE)
        self.artifacts = root / "artifacts"
        self.database = root / "metadata.db"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment with this project's stack."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("STEPWIRE_", "FAULT_", "PYTHONPATH"))
        }
        env.update(
            STEPWIRE_ARTIFACT_STORE=str(self.artifacts),
            STEPWIRE_METADATA_URI=str(self.database),
            STEPWIRE_ORCHESTRATOR="subprocess",
            STEPWIRE_MAX_PARALLEL="2",
            PATH=os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")]),
        )
        env.update(extra)
        return env

    def cli_command(self, run_name: str) -> list[str]:
        """``stepwire run`` of the faulty pipeline under ``run_name``."""
        return [
            sys.executable,
            "-m",
            "stepwire",
            "run",
            f"{self.module_file}:{PIPELINE_OBJECT}",
            "--run-name",
            run_name,
        ]

    def run(self, run_name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """Runs the pipeline to its end."""
        return subprocess.run(
            self.cli_command(run_name),
            cwd=self.root,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def store(self) -> Any:
        """The ML Metadata store (a new handle)."""
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(self.database)
        return metadata_store.MetadataStore(config)

    def executions(self, run_name: str, step: str) -> list[Any]:
        """The executions of a step in a run."""
        store = self.store()
        run = store.get_context_by_type_and_name("pipeline_run", run_name)
        node = store.get_context_by_type_and_name("node", f"{PIPELINE_NAME}.{step}")
        if run is None or node is None:
            return []
        in_run = {e.id for e in store.get_executions_by_context(run.id)}
        return [e for e in store.get_executions_by_context(node.id) if e.id in in_run]

    def statuses(self, run_name: str) -> dict[str, str]:
        """Step name to status, as ``stepwire runs show`` reports them."""
        return {s.step: s.status for s in RunReader(self.store()).get_run(run_name).steps}

    def output_uri(self, run_name: str, step: str, output: str = "output") -> str:
        """Where a step's published output of a run lives."""
        [record] = [s for s in RunReader(self.store()).get_run(run_name).steps if s.step == step]
        [uri] = [a.uri for a in record.outputs if a.output == output]
        return uri


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    """The end of a process's output, for assertion messages."""
    return (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-4000:]}"
    )


def step_command(project: FaultProject, step_name: str, run_name: str) -> list[str]:
    """The command line the subprocess orchestrator would launch a step of a run with.

    Built in this process exactly as the orchestrator builds it: the user module is
    imported by name from the project folder, the pipeline compiled against the
    project's stack, and the arguments made by
    ``SubprocessEntrypointConfiguration.get_entrypoint_arguments``.
    """
    import importlib

    from stepwire import constants
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration
    from stepwire.stack import get_active_stack

    saved_env = {k: os.environ.get(k) for k in ("STEPWIRE_ARTIFACT_STORE", "STEPWIRE_METADATA_URI")}
    saved_main = constants.USER_MAIN_MODULE
    os.environ["STEPWIRE_ARTIFACT_STORE"] = str(project.artifacts)
    os.environ["STEPWIRE_METADATA_URI"] = str(project.database)
    sys.path.insert(0, str(project.root))
    try:
        module = importlib.import_module(MODULE)
        constants.USER_MAIN_MODULE = MODULE
        pipeline = getattr(module, PIPELINE_OBJECT)
        pb2_pipeline = pipeline.compile(pipeline_root=get_active_stack().artifact_store.path)
        config = SubprocessEntrypointConfiguration
        arguments = config.get_entrypoint_arguments(
            step=pipeline.steps[step_name], pb2_pipeline=pb2_pipeline, run_name=run_name
        )
        return config.get_entrypoint_command() + arguments
    finally:
        constants.USER_MAIN_MODULE = saved_main
        sys.path.remove(str(project.root))
        sys.modules.pop(MODULE, None)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
