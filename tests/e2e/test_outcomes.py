"""Exit codes and failure records of real step processes: traps of the original made errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from stepwire_testkit import StackDir

from stepwire import constants
from stepwire.entrypoints.exit_codes import ExitCode

MODULE = """
import os

from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def produce() -> int:
    return 20


@step
def consume(value: int) -> int:
    return value + 1


@pipeline
def two_steps(produce, consume):
    consume(value=produce())


class EnvRunName(StepEntrypointConfiguration):
    def get_run_name(self, pipeline_name):
        return os.environ["TEST_RUN"]
"""


class Project(StackDir):
    """The user module ``outmod`` and its stack, under one folder."""

    def __init__(self, root: Path, produce: list[str], consume: list[str]) -> None:
        super().__init__(root, drop=("TEST_",), PYTHONPATH=str(root))
        self.produce = produce
        self.consume = consume

    def launch(self, argv: list[str], run: str, **env: str) -> subprocess.CompletedProcess[str]:
        record = self.root / f"record-{run}-{len(list(self.root.iterdir()))}.json"
        result = self.run(
            [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", *argv],
            self.root,
            STEPWIRE_FAILURE_RECORD=str(record),
            TEST_RUN=run,
            **env,
        )
        result.record = json.loads(record.read_bytes()) if record.exists() else None  # type: ignore[attr-defined]
        return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("outcomes")
    (root / "outmod.py").write_text(textwrap.dedent(MODULE))
    sys.path.insert(0, str(root))
    saved = constants.USER_MAIN_MODULE
    constants.USER_MAIN_MODULE = "outmod"
    try:
        import outmod

        p = outmod.two_steps(produce=outmod.produce(), consume=outmod.consume())
        ir = p.compile(pipeline_root=str(root / "artifacts"))
        build = outmod.EnvRunName.get_entrypoint_arguments
        yield Project(
            root,
            build(step=p.steps["produce"], pb2_pipeline=ir),
            build(step=p.steps["consume"], pb2_pipeline=ir),
        )
    finally:
        constants.USER_MAIN_MODULE = saved
        sys.path.remove(str(root))
        sys.modules.pop("outmod", None)


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.splitlines()[0] if result.stderr else ""


def test_upstream_outputs_missing_for_the_run_is_unresolvable_inputs(project: Project) -> None:
    assert project.launch(project.produce, "run-a").returncode == 0
    # Same pipeline, another run name: the upstream output is not in this run.
    result = project.launch(project.consume, "run-b")
    assert result.returncode == ExitCode.INPUTS_UNRESOLVABLE, result.stderr
    assert _first_line(result).startswith("stepwire: inputs_unresolvable: ")
    assert "run-b" in _first_line(result)
    record = result.record  # type: ignore[attr-defined]
    assert record["kind"] == "inputs_unresolvable"
    assert record["exit_code"] == 66
    assert record["retryable"] is False
    assert (record["pipeline"], record["step"], record["run"]) == ("two_steps", "consume", "run-b")


def test_a_step_that_already_succeeded_in_the_run_is_not_run_again(project: Project) -> None:
    assert project.launch(project.produce, "run-c").returncode == 0
    again = project.launch(project.produce, "run-c")
    assert again.returncode == ExitCode.ALREADY_SUCCEEDED, again.stderr
    assert _first_line(again).startswith("stepwire: already_succeeded: ")
    assert again.record["kind"] == "already_succeeded"  # type: ignore[attr-defined]

    tolerated = project.launch(project.produce, "run-c", STEPWIRE_TOLERATE_RERUN="1")
    assert tolerated.returncode == ExitCode.SUCCESS, tolerated.stderr
    output = tolerated.stdout + tolerated.stderr
    assert "already succeeded in run 'run-c': not executed again" in output
    assert "cached" not in output.lower()
    assert tolerated.record is None  # type: ignore[attr-defined]


def test_the_downstream_step_of_the_same_run_succeeds(project: Project) -> None:
    assert project.launch(project.produce, "run-d").returncode == 0
    result = project.launch(project.consume, "run-d")
    assert result.returncode == 0, result.stderr
    assert result.record is None  # type: ignore[attr-defined]
