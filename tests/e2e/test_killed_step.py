"""A step process killed with SIGKILL half way publishes nothing; the next run completes.

Real processes: the ``stepwire`` CLI with the subprocess orchestrator; the middle
step writes its pid to a marker file and sleeps, the test kills it (about 8 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from faults_helpers import EXPECTED_TAIL, PIPELINE_NAME, FaultProject
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import explain

from stepwire.materializers import value_codec

State = metadata_store_pb2.Execution.State
Event = metadata_store_pb2.Event
Artifact = metadata_store_pb2.Artifact

_OUTPUT_EVENTS = {Event.OUTPUT, Event.DECLARED_OUTPUT, Event.PENDING_OUTPUT}


def _wait_for_pid(marker: Path, cli: subprocess.Popen[str], timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = marker.read_text().strip() if marker.exists() else ""
        if text.isdigit():
            return int(text)
        if cli.poll() is not None:
            out, err = cli.communicate()
            raise AssertionError(f"the run ended before the step started:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"the middle step did not start within {timeout}s")


def test_killed_step_publishes_nothing_and_the_next_run_completes(tmp_path: Path) -> None:
    project = FaultProject(tmp_path / "project")
    marker = tmp_path / "middle.pid"
    cli = subprocess.Popen(
        project.cli_command("killed"),
        cwd=project.root,
        env=project.env(FAULT_MIDDLE="sleep", FAULT_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = _wait_for_pid(marker, cli)
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    run = subprocess.CompletedProcess(cli.args, cli.returncode, stdout, stderr)
    assert run.returncode != 0, explain(run)
    assert "middle        FAILED" in stdout, explain(run)
    # The step process's supervisor saw its child killed and says so.
    assert "step_failed: the step process was killed by signal SIGKILL (9)" in stdout, explain(run)
    assert "sink          skipped (upstream middle failed)" in stdout, explain(run)

    # The killed execution never completed and published no output.
    store = project.store()
    [killed] = project.executions("killed", PIPELINE_NAME, "middle")
    # ... and marked the execution FAILED instead of leaving it RUNNING.
    assert killed.last_known_state == State.FAILED
    events = store.get_events_by_execution_ids([killed.id])
    assert [e for e in events if e.type in _OUTPUT_EVENTS] == []
    run_context = store.get_context_by_type_and_name("pipeline_run", "killed")
    middle_outputs = [
        a for a in store.get_artifacts_by_context(run_context.id) if "/middle/" in a.uri
    ]
    assert [a for a in middle_outputs if a.state == Artifact.LIVE] == []
    assert project.executions("killed", PIPELINE_NAME, "sink") == []

    # The next run reuses what completed and finishes the rest.
    again = project.run_pipeline("after-kill")
    assert again.returncode == 0, explain(again)
    assert project.statuses("after-kill") == {
        "source": "cached",
        "array_source": "cached",
        "side": "cached",
        "middle": "completed",
        "sink": "completed",
        "tail": "completed",
    }
    result = Path(project.output_uri("after-kill", "tail"), "data.json").read_text()
    assert value_codec.loads(result) == EXPECTED_TAIL
