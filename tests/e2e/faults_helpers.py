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

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from stepwire_testkit import StackDir

from stepwire import constants

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


class FaultProject(StackDir):
    """The user module plus its stack, under one folder.

    Its processes run the subprocess orchestrator, two steps at a time, and do not
    inherit ``FAULT_*`` variables.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(
            root, orchestrator="subprocess", drop=("FAULT_",), STEPWIRE_MAX_PARALLEL="2"
        )
        root.mkdir(parents=True, exist_ok=True)
        self.module_file = root / f"{MODULE}.py"
        self.module_file.write_text(USER_MODULE)

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

    def run_pipeline(self, run_name: str, **values: str) -> subprocess.CompletedProcess[str]:
        """Runs the faulty pipeline to its end under ``run_name``."""
        return self.run(self.cli_command(run_name), self.root, timeout=300, **values)

    def step_command(self, step_name: str, run_name: str) -> list[str]:
        """The command line the subprocess orchestrator would launch a step of a run with.

        Built in this process exactly as the orchestrator builds it: the user module is
        imported by name from the project folder, the pipeline compiled against the
        project's stack, and the arguments made by
        ``SubprocessEntrypointConfiguration.get_entrypoint_arguments``.
        """
        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration as Config,
        )
        from stepwire.stack import get_active_stack

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("STEPWIRE_ARTIFACT_STORE", str(self.artifacts))
            patch.setenv("STEPWIRE_METADATA_URI", str(self.metadata))
            patch.setattr(constants, "USER_MAIN_MODULE", MODULE)
            patch.syspath_prepend(str(self.root))
            try:
                pipeline = getattr(importlib.import_module(MODULE), PIPELINE_OBJECT)
                pb2_pipeline = pipeline.compile(
                    pipeline_root=get_active_stack().artifact_store.path
                )
                arguments = Config.get_entrypoint_arguments(
                    step=pipeline.steps[step_name], pb2_pipeline=pb2_pipeline, run_name=run_name
                )
            finally:
                sys.modules.pop(MODULE, None)
        return Config.get_entrypoint_command() + arguments
