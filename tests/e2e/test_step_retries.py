"""``@step(retries=N)`` on the default orchestrator, and every attempt in ML Metadata.

Real processes: the ``stepwire`` CLI with the subprocess orchestrator, one process
per step attempt, SQLite ML Metadata in a temporary folder.
"""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

PIPELINE = textwrap.dedent(
    """
    import os
    import pathlib

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    def _fail_first(marker_variable: str) -> None:
        marker = pathlib.Path(os.environ[marker_variable])
        if not marker.exists():
            marker.touch()
            raise RuntimeError("the first attempt fails on purpose")


    @step(retries=1)
    def flaky() -> int:
        _fail_first("FLAKY_MARKER")
        return 41


    @step
    def once(value: int) -> int:
        # No retries: a failure here ends the run.
        if os.environ.get("ONCE_FAILS"):
            raise RuntimeError("once failed on purpose")
        return value + 1


    @pipeline
    def retried(flaky, once):
        once(value=flaky())


    retried_pipeline = retried(flaky=flaky(), once=once())
    """
)


@pytest.fixture
def project(tmp_path: Path) -> StackDir:
    (tmp_path / "retried_pipeline.py").write_text(PIPELINE)
    return StackDir(tmp_path, orchestrator="subprocess")


def _run(project: StackDir, run: str, **env: str) -> tuple[int, str, str]:
    proc = project.cli(
        ["run", f"{project.root}/retried_pipeline.py:retried_pipeline", "--run-name", run],
        project.root,
        FLAKY_MARKER=str(project.root / f"{run}.marker"),
        **env,
    )
    return proc.returncode, proc.stdout, explain(proc)


def test_a_step_that_fails_once_is_retried_and_each_attempt_is_recorded(
    project: StackDir,
) -> None:
    code, stdout, why = _run(project, "r1")
    assert code == 0, why
    [line] = [x for x in stdout.splitlines() if "] flaky " in x and "started" not in x]
    assert "completed" in line, line
    assert "(attempt 2)" in line, line

    host = socket.gethostname()
    record = project.step_record("r1", "flaky")
    assert (record.status, record.attempt, record.node) == ("completed", 2, host)
    assert record.history == (f"1 on {host}: FAILED", f"2 on {host}: COMPLETE")
    once = project.step_record("r1", "once")
    assert (once.attempt, once.history) == (1, (f"1 on {host}: COMPLETE",))

    # The failed attempt's log is kept beside the last one's.
    logs = project.artifacts / ".logs" / "r1"
    assert "the first attempt fails on purpose" in (logs / "flaky.attempt-1.log").read_text()
    assert "the first attempt fails on purpose" not in (logs / "flaky.log").read_text()

    shown = project.cli(["runs", "show", "r1"], project.root)
    assert shown.returncode == 0, explain(shown)
    [line] = [x for x in shown.stdout.splitlines() if " flaky " in x]
    assert line.split()[-3:] == ["2", "on", host], line
    assert f"attempts: 1 on {host}: FAILED; 2 on {host}: COMPLETE" in shown.stdout


def test_a_step_without_retries_fails_at_its_first_attempt(project: StackDir) -> None:
    code, stdout, why = _run(project, "r2", ONCE_FAILS="1")
    assert code == 1, why
    [line] = [x for x in stdout.splitlines() if "] once " in x and "started" not in x]
    assert "FAILED" in line, line
    assert "attempt" not in line, line
    assert project.step_record("r2", "once").attempt == 1
    assert not list(project.root.rglob("once.attempt-*.log"))
