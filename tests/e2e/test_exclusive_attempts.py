"""Two launches of one step in one run: exactly one runs it, the output stays whole.

Real step processes (the step entrypoint, its supervisor, SQLite ML Metadata and a
local artifact store in a temporary folder), launched with the command line the
subprocess orchestrator builds, at the interleavings the test can force: the step
holds at a gate until the test lets it go, and the test kills processes by id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb
from stepwire_testkit import StackDir

from stepwire.outputs import load_output
from stepwire.stack import stack_from_config
from stepwire.stack_config import load_stack_config

PIPELINE = textwrap.dedent(
    """
    import json
    import os
    import pathlib
    import time

    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator
    from stepwire.orchestrators.step_processes import plan_step_processes
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration
    from stepwire.pipelines import pipeline
    from stepwire.steps import step

    PAYLOAD = bytes(range(256)) * (32 * 1024)  # 8 MiB


    @step
    def slow() -> bytes:
        folder = pathlib.Path(os.environ["GATE_FOLDER"])
        (folder / f"started-{os.getpid()}").touch()
        deadline = time.monotonic() + 120
        while not (folder / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("nobody opened the gate")
            time.sleep(0.05)
        return PAYLOAD


    @pipeline
    def exclusive(slow):
        slow()


    exclusive_pipeline = exclusive(slow=slow())


    class Plan(BaseOrchestrator):
        # Writes every step's command line instead of running it.
        def prepare_or_run_pipeline(self, sorted_list_of_steps, pipeline, pb2_pipeline, stack,
                                    runtime_configuration):
            plan = plan_step_processes(
                SubprocessEntrypointConfiguration, sorted_list_of_steps, pb2_pipeline, stack,
                runtime_configuration.run_name,
            )
            pathlib.Path(os.environ["PLAN_OUT"]).write_text(json.dumps(plan.commands))
    """
)

PAYLOAD = bytes(range(256)) * (32 * 1024)


class Launches(StackDir):
    """The stack, the step's command line for one run, and the processes started."""

    def __init__(self, root: Path, run: str) -> None:
        super().__init__(root, orchestrator="subprocess")
        self.run_name = run
        self.gate = root / "gate"
        self.gate.mkdir()
        (root / "exclusive_pipeline.py").write_text(PIPELINE)
        plan = root / "plan.json"
        (root / "plan_it.py").write_text(
            "import exclusive_pipeline as m\n"
            f"m.exclusive_pipeline.run(run_name={run!r}, orchestrator=m.Plan())\n"
        )
        made = self.run(
            [sys.executable, "plan_it.py"], root, PLAN_OUT=str(plan), PYTHONPATH=str(root)
        )
        assert made.returncode == 0, made.stderr[-3000:]
        self.command: list[str] = json.loads(plan.read_text())["slow"]
        self.processes: list[subprocess.Popen[str]] = []

    def launch(self, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self.command,
            cwd=self.root,
            env=self.env(GATE_FOLDER=str(self.gate), PYTHONPATH=str(self.root), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def started(self, count: int = 1, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        while True:
            pids = [int(p.name.split("-")[1]) for p in self.gate.glob("started-*")]
            if len(pids) >= count:
                return pids
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)

    def open_gate(self) -> None:
        (self.gate / "go").touch()

    def executions(self) -> list[Any]:  # type: ignore[override]
        return super().executions(self.run_name, "exclusive", "slow")

    def check_one_whole_output(self) -> None:
        """Exactly one execution published, and its one live output is whole."""
        executions = self.executions()
        assert [e.last_known_state for e in executions].count(pb.Execution.COMPLETE) == 1
        store = self.store()
        [complete] = [e for e in executions if e.last_known_state == pb.Execution.COMPLETE]
        events = store.get_events_by_execution_ids([complete.id])
        outputs = store.get_artifacts_by_id(
            [e.artifact_id for e in events if e.type == pb.Event.OUTPUT]
        )
        live = [a for a in outputs if a.state == pb.Artifact.LIVE]
        assert len(live) == 1, outputs
        config = load_stack_config(environ=self.env(), cwd=self.root)
        value = load_output(self.run_name, "slow", stack=stack_from_config(config))
        assert value == PAYLOAD
        # No other artifact of the run is LIVE at the same URI.
        run = store.get_context_by_type_and_name("pipeline_run", self.run_name)
        at_uri = [
            a
            for a in store.get_artifacts_by_context(run.id)
            if a.uri == live[0].uri and a.state == pb.Artifact.LIVE
        ]
        assert len(at_uri) == 1

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            if process.stdout is not None and not process.stdout.closed:
                process.communicate()  # waits, and closes its output pipe


@pytest.fixture
def launches(tmp_path: Path) -> Any:
    made = Launches(tmp_path, "r")
    yield made
    made.stop_all()


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def test_a_second_launch_leaves_a_live_attempt_alone_and_exits_75(launches: Launches) -> None:
    first = launches.launch()
    launches.started()
    begun = time.monotonic()
    code, out = _finish(launches.launch(STEPWIRE_ATTEMPT_WAIT="2"))
    assert code == 75, out
    assert time.monotonic() - begun < 30
    assert "is being run by another attempt (attempt 1, " in out, out
    assert "; nothing was done" in out
    [running] = launches.executions()
    assert running.last_known_state == pb.Execution.RUNNING

    launches.open_gate()
    code, out = _finish(first)
    assert code == 0, out
    launches.check_one_whole_output()


def test_a_launch_that_waits_for_a_live_attempt_finds_it_done(launches: Launches) -> None:
    first = launches.launch()
    launches.started()
    second = launches.launch()
    time.sleep(2)
    assert second.poll() is None, "the second launch did not wait for the first"
    launches.open_gate()
    assert _finish(first)[0] == 0
    code, out = _finish(second)
    assert code == 67, out
    assert "already completed in that run" in out
    assert len(launches.started()) == 1  # the second never ran the step
    launches.check_one_whole_output()


def test_an_attempt_whose_processes_were_killed_is_taken_over_after_its_lease(
    launches: Launches,
) -> None:
    lease = {"STEPWIRE_ATTEMPT_LEASE": "2"}
    first = launches.launch(**lease)
    launches.started()
    os.killpg(first.pid, signal.SIGKILL)  # supervisor and step: nobody releases
    first.communicate()
    launches.open_gate()
    begun = time.monotonic()
    code, out = _finish(launches.launch(**lease))
    assert code == 0, out
    assert time.monotonic() - begun >= 0.5  # it waited for the lease
    assert "starting (attempt 2)" in out
    launches.check_one_whole_output()
    record = launches.step_record("r", "slow")
    assert record.attempt == 2


def test_a_killed_step_process_releases_its_claim_through_its_supervisor(
    launches: Launches,
) -> None:
    first = launches.launch()  # the default lease: 30 s
    [child] = launches.started()
    os.kill(child, signal.SIGKILL)  # the step, not its supervisor
    code, out = _finish(first)
    assert code == 70, out
    launches.open_gate()
    begun = time.monotonic()
    code, out = _finish(launches.launch())
    assert code == 0, out
    assert time.monotonic() - begun < 20  # not the 30 s lease
    assert "starting (attempt 2)" in out
    launches.check_one_whole_output()


def test_two_launches_at_once_run_the_step_once(launches: Launches) -> None:
    launches.open_gate()
    pair = [launches.launch(), launches.launch()]
    results = [_finish(process) for process in pair]
    assert sorted(code for code, _ in results) == [0, 67], results
    launches.check_one_whole_output()


def test_an_ended_attempt_releases_its_claim_and_records_its_number(launches: Launches) -> None:
    launches.open_gate()
    code, out = _finish(launches.launch())
    assert code == 0, out
    store = launches.store()
    [claim] = store.get_contexts_by_type("stepwire_attempt")
    assert claim.name.endswith("@r#1")
    assert claim.custom_properties["lease_until"].double_value == 0.0
    assert claim.custom_properties["state"].string_value == "completed"
    assert claim.custom_properties["owner"].string_value.count(":") == 2
    [execution] = launches.executions()
    assert execution.custom_properties["stepwire_attempt"].int_value == 1
    # The claim stays apart from the step's records: an execution's contexts are the
    # pipeline, the run and the node, as TFX made them.
    assert store.get_executions_by_context(claim.id) == []
