"""A deleted or corrupted input artifact is an infrastructure failure, not a step crash.

A run is made in which ``middle`` failed, so its inputs are published and it may be
launched again in that run. Each test breaks one input file, launches ``middle``
directly through the step entrypoint with the command line the subprocess
orchestrator would build, and restores the file. The step process must exit 75
with the one-line ``stepwire: infrastructure: ...`` first, and write a
failure record saying so; the step's own code is never reached (about 12 s).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults_helpers import PIPELINE_NAME, FaultProject
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import explain

from stepwire.entrypoints.exit_codes import MAX_RECORD_BYTES

State = metadata_store_pb2.Execution.State
RUN = "corrupt"


@dataclass
class Launch:
    project: FaultProject
    command: list[str]
    record: Path

    def __call__(self) -> subprocess.CompletedProcess[str]:
        self.record.unlink(missing_ok=True)
        return self.project.run(
            self.command,
            self.project.root,
            PYTHONPATH=str(self.project.root),
            STEPWIRE_FAILURE_RECORD=str(self.record),
        )


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Launch:
    root = tmp_path_factory.mktemp("corrupt")
    project = FaultProject(root / "project")
    first = project.run_pipeline(RUN, FAULT_MIDDLE="raise")
    assert first.returncode == 1, explain(first)
    [failed] = project.executions(RUN, PIPELINE_NAME, "middle")
    assert failed.last_known_state == State.FAILED
    return Launch(project, project.step_command("middle", RUN), root / "record.json")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def broken_input(launch: Launch, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """Breaks one input file for the test and puts it back afterwards."""
    upstream, filename, how = request.param
    path = Path(launch.project.output_uri(RUN, upstream), filename)
    saved = path.read_bytes()
    if how == "deleted":
        path.unlink()
    else:
        _truncate(path)
    try:
        yield upstream, str(path.parent)
    finally:
        path.write_bytes(saved)


CASES = [
    ("source", "data.json", "deleted"),
    ("source", "data.json", "truncated"),
    ("array_source", "data.npy", "deleted"),
    ("array_source", "data.npy", "truncated"),
]


@pytest.mark.parametrize(
    "broken_input", CASES, ids=[f"{f}-{how}" for _, f, how in CASES], indirect=True
)
def test_broken_input_is_an_infrastructure_failure(
    launch: Launch, broken_input: tuple[str, str]
) -> None:
    upstream, uri = broken_input
    input_name = {"source": "value", "array_source": "table"}[upstream]
    proc = launch()

    assert proc.returncode == 75, explain(proc)
    first_line = proc.stderr.splitlines()[0]
    assert first_line.startswith("stepwire: infrastructure:"), explain(proc)
    assert f"input '{input_name}'" in first_line
    assert uri in first_line
    # Raised while reading the input, before the step function was called.
    assert "faults_user_pipeline.py" not in proc.stderr
    assert "The above exception was the direct cause" in proc.stderr

    data = launch.record.read_bytes()
    assert len(data) <= MAX_RECORD_BYTES
    record = json.loads(data)
    assert record["kind"] == "infrastructure"
    assert record["exit_code"] == 75
    assert record["retryable"] is True
    assert record["step"] == "middle"
    assert record["run"] == RUN
    assert record["pipeline"] == "faulty"
    assert uri in record["message"]

    [execution] = launch.project.executions(RUN, PIPELINE_NAME, "middle")
    assert execution.last_known_state == State.FAILED


def test_with_its_inputs_intact_the_step_completes_in_the_same_run(launch: Launch) -> None:
    # The same command line, inputs restored: the failure was the files', not the code's.
    proc = launch()
    assert proc.returncode == 0, explain(proc)
    [execution] = launch.project.executions(RUN, PIPELINE_NAME, "middle")
    assert execution.last_known_state == State.COMPLETE
