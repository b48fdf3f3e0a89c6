"""Each step's output kept with its run in the artifact store, and ``stepwire logs``.

Real processes: the ``stepwire`` CLI with the subprocess orchestrator, one process
per step, SQLite ML Metadata and a local artifact store in a temporary folder.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

PIPELINE = textwrap.dedent(
    """
    import os
    import pathlib
    import sys
    import time

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step
    def talk() -> int:
        print("hello from the step's stdout", flush=True)
        print("and from its stderr", file=sys.stderr, flush=True)
        print("x" * int(os.environ.get("TALK_BYTES", "0")), flush=True)
        # Held until the test lets it go, when it asks to (for --follow).
        gate = os.environ.get("TALK_GATE")
        if gate:
            print("waiting at the gate", flush=True)
            while not pathlib.Path(gate).exists():
                time.sleep(0.05)
            print("through the gate", flush=True)
        return 1


    @step(retries=1)
    def fail(value: int) -> int:
        marker = pathlib.Path(os.environ["FAIL_MARKER"])
        attempt = 2 if marker.exists() else 1
        marker.touch()
        print(f"attempt {attempt} starts", flush=True)
        if attempt == 1 or os.environ.get("ALWAYS_FAIL"):
            raise RuntimeError(f"attempt {attempt} failed on purpose")
        return value


    @pipeline
    def chatty(talk, fail):
        fail(value=talk())


    chatty_pipeline = chatty(talk=talk(), fail=fail())
    """
)


@pytest.fixture
def project(tmp_path: Path) -> StackDir:
    (tmp_path / "chatty_pipeline.py").write_text(PIPELINE)
    return StackDir(tmp_path, orchestrator="subprocess")


def _run(project: StackDir, run: str, **env: str) -> subprocess.CompletedProcess[str]:
    return project.cli(
        ["run", f"{project.root}/chatty_pipeline.py:chatty_pipeline", "--run-name", run],
        project.root,
        FAIL_MARKER=str(project.root / f"{run}.marker"),
        **env,
    )


def _logs(project: StackDir, *args: str) -> subprocess.CompletedProcess[str]:
    return project.cli(["logs", *args], project.root)


def test_each_step_and_attempt_has_its_log_in_the_store(project: StackDir) -> None:
    proc = _run(project, "r1")
    assert proc.returncode == 0, explain(proc)

    talk = _logs(project, "r1", "talk")
    assert talk.returncode == 0, explain(talk)
    assert "hello from the step's stdout" in talk.stdout
    assert "and from its stderr" in talk.stdout

    last = _logs(project, "r1", "fail")
    assert "attempt 2 starts" in last.stdout, explain(last)
    assert "failed on purpose" not in last.stdout
    first = _logs(project, "r1", "fail", "--attempt", "1")
    assert "attempt 1 starts" in first.stdout, explain(first)
    assert "stepwire: step_failed: attempt 1 failed on purpose" in first.stdout
    assert "Traceback (most recent call last)" in first.stdout

    folder = project.artifacts / ".stepwire" / "logs" / "r1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "fail.attempt-1.log",
        "fail.log",
        "talk.log",
    ]
    for path in folder.iterdir():
        assert not path.stat().st_mode & stat.S_IROTH, path  # not world-readable

    missing = _logs(project, "r1", "nosuch")
    assert missing.returncode == 1
    assert missing.stderr.startswith("stepwire: no log of step 'nosuch' of run 'r1' at ")


def test_a_failed_steps_summary_points_to_its_log(project: StackDir) -> None:
    proc = _run(project, "r2", ALWAYS_FAIL="1")
    assert proc.returncode == 1, explain(proc)
    assert "(kept with the run: stepwire logs r2 fail)" in proc.stderr, explain(proc)
    shown = _logs(project, "r2", "fail")
    assert "stepwire: step_failed: attempt 2 failed on purpose" in shown.stdout


def test_a_log_is_bounded_and_keeps_its_tail(project: StackDir) -> None:
    proc = _run(project, "r3", TALK_BYTES="50000", STEPWIRE_STEP_LOG_MAX_BYTES="2000")
    assert proc.returncode == 0, explain(proc)
    data = (project.artifacts / ".stepwire" / "logs" / "r3" / "talk.log").read_bytes()
    first_line, rest = data.split(b"\n", 1)
    assert first_line.startswith(b"[stepwire: the first ")
    assert first_line.endswith(b" bytes of this log were dropped]")
    assert len(rest) == 2000
    assert b"hello from the step" not in rest
    assert b"x" * 1000 in rest
    # The tail: the step's last lines, stepwire's own among them, are kept.
    assert rest.rstrip(b"\n").split(b"\n")[-1].startswith(b"INFO:stepwire.step_launcher:")


def test_follow_prints_a_running_steps_log_until_it_ends(project: StackDir) -> None:
    gate = project.root / "gate"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stepwire",
            "run",
            f"{project.root}/chatty_pipeline.py:chatty_pipeline",
            "--run-name",
            "r4",
        ],
        cwd=project.root,
        env=project.env(TALK_GATE=str(gate), FAIL_MARKER=str(project.root / "r4.marker")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        log = project.artifacts / ".stepwire" / "logs" / "r4" / "talk.log"
        deadline = time.monotonic() + 60
        while b"waiting at the gate" not in (log.read_bytes() if log.exists() else b""):
            assert time.monotonic() < deadline, "the step never reached its gate"
            time.sleep(0.05)
        follow = subprocess.Popen(
            [sys.executable, "-m", "stepwire", "logs", "r4", "talk", "--follow"],
            cwd=project.root,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        assert follow.poll() is None, "--follow ended while the step was running"
        gate.touch()
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err
        assert "waiting at the gate" in out
        assert "through the gate" in out
        assert run.wait(timeout=120) == 0
    finally:
        for process in (run,):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_local_orchestrator_keeps_each_steps_output_too(project: StackDir) -> None:
    proc = project.cli(
        [
            "run",
            f"{project.root}/chatty_pipeline.py:chatty_pipeline",
            "--run-name",
            "r5",
            "--orchestrator",
            "local",
        ],
        project.root,
        FAIL_MARKER=str(project.root / "r5.marker"),
        ALWAYS_FAIL="1",
    )
    assert proc.returncode == 1, explain(proc)
    # Still on the terminal, as before...
    assert "hello from the step's stdout" in proc.stdout
    # ...and in the store, the failed step's traceback included.
    talk = _logs(project, "r5", "talk")
    assert "hello from the step's stdout" in talk.stdout, explain(talk)
    assert "and from its stderr" in talk.stdout
    fail = _logs(project, "r5", "fail")
    assert "attempt 1 starts" in fail.stdout, explain(fail)
    assert "RuntimeError: attempt 1 failed on purpose" in fail.stdout
