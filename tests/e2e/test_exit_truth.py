"""The step process's exit code tells the truth whatever the step's code does.

Real processes: ``python -m stepwire.entrypoints.step_entrypoint`` with the command
lines the subprocess orchestrator builds, and the ``stepwire run`` CLI, against a
SQLite ML Metadata store in a temporary folder. The first step misbehaves as the
environment variable ``TRUTH_HOW`` says (``os._exit(0)``, ``sys.exit``, SIGKILL, a
segfault, or sleeping after writing its pid to ``$TRUTH_MARKER``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import StackDir, explain

from stepwire import constants

State = metadata_store_pb2.Execution.State
MODULE = "exit_truth_flow"
PIPELINE = "truth"
TIMEOUT = 120

USER_MODULE = textwrap.dedent(
    '''
    """Two steps; the first ends its process as TRUTH_HOW says."""

    import ctypes
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step(enable_cache=False)
    def first() -> int:
        how = os.environ.get("TRUTH_HOW", "")
        if how == "os_exit0":
            os._exit(0)
        if how == "sys_exit0":
            sys.exit(0)
        if how == "sys_exit3":
            sys.exit(3)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segv":
            ctypes.string_at(0)
        if how == "segv_at_exit":
            # The step succeeds; the process then crashes in its teardown.
            import atexit

            atexit.register(ctypes.string_at, 0)
        if how == "sigterm_raises":
            def stop(signum, frame):
                raise RuntimeError("stopped by the platform")

            signal.signal(signal.SIGTERM, stop)
        if how in ("sleep", "sigterm_raises"):
            marker = Path(os.environ["TRUTH_MARKER"])
            marker.with_suffix(".tmp").write_text(str(os.getpid()))
            marker.with_suffix(".tmp").rename(marker)
            time.sleep(300)
        return 20


    @step
    def second(value: int) -> int:
        return value + 1


    @pipeline
    def truth(first, second):
        second(value=first())


    truth_pipeline = truth(first=first(), second=second())
    '''
)


class Flow(StackDir):
    """The user module and its stack, under one folder; its processes import the module."""

    def __init__(self, root: Path, pipeline: Any, ir: Any) -> None:
        super().__init__(root, orchestrator=None, drop=("TRUTH_",), PYTHONPATH=str(root))
        self.pipeline = pipeline
        self.ir = ir

    def command(self, step: str, run: str) -> list[str]:
        """The command line the subprocess orchestrator launches ``step`` of ``run`` with."""
        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration as Config,
        )

        with _stack_env(self.root):
            arguments = Config.get_entrypoint_arguments(
                step=self.pipeline.steps[step], pb2_pipeline=self.ir, run_name=run
            )
        return Config.get_entrypoint_command() + arguments

    def record_file(self, step: str, run: str) -> Path:
        return self.root / f"record-{run}-{step}.json"

    def launch(self, step: str, run: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            self.command(step, run),
            self.root,
            timeout=TIMEOUT,
            STEPWIRE_FAILURE_RECORD=str(self.record_file(step, run)),
            **env,
        )

    def record(self, step: str, run: str) -> dict[str, Any] | None:
        path = self.record_file(step, run)
        return json.loads(path.read_bytes()) if path.exists() else None


@contextlib.contextmanager
def _stack_env(root: Path) -> Iterator[None]:
    """This project's stack and main module, while a pipeline is compiled or a command built."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STEPWIRE_ARTIFACT_STORE", str(root / "artifacts"))
        patch.setenv("STEPWIRE_METADATA_URI", str(root / "metadata.db"))
        patch.setattr(constants, "USER_MAIN_MODULE", MODULE)
        yield


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("exit_truth")
    (root / f"{MODULE}.py").write_text(USER_MODULE)
    sys.path.insert(0, str(root))
    try:
        with _stack_env(root):
            module = __import__(MODULE)
            pipeline = module.truth_pipeline
            ir = pipeline.compile(pipeline_root=str(root / "artifacts"))
        yield Flow(root, pipeline, ir)
    finally:
        sys.path.remove(str(root))
        sys.modules.pop(MODULE, None)


def first_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stderr.splitlines()[0] if proc.stderr else ""


def assert_marked_failed(flow: Flow, run: str, fragment: str) -> None:
    [execution] = flow.executions(run, PIPELINE, "first")
    assert State.Name(execution.last_known_state) == "FAILED"
    assert fragment in execution.custom_properties["stepwire_failure"].string_value


def test_os_exit_0_in_a_step_is_a_failure_marked_in_ml_metadata(flow: Flow) -> None:
    result = flow.launch("first", "os-exit", TRUTH_HOW="os_exit0")
    assert result.returncode == 70, explain(result)
    assert first_line(result).startswith(
        "stepwire: step_failed: the step process exited with code 0"
    ), explain(result)
    record = flow.record("first", "os-exit")
    assert record is not None
    assert (record["kind"], record["exit_code"], record["retryable"]) == ("step_failed", 70, True)
    assert (record["pipeline"], record["step"], record["run"]) == ("truth", "first", "os-exit")
    assert record["message"].startswith("the step process exited with code 0")
    assert_marked_failed(flow, "os-exit", "exited with code 0")

    # The downstream step of the run says why its input is missing.
    downstream = flow.launch("second", "os-exit")
    assert downstream.returncode == 66, explain(downstream)
    assert (
        "upstream step 'first' has an execution in run 'os-exit' that never completed "
        "(state FAILED)" in first_line(downstream)
    ), explain(downstream)


@pytest.mark.parametrize("code", [0, 3])
def test_sys_exit_in_a_step_is_a_failure(flow: Flow, code: int) -> None:
    run = f"sys-exit-{code}"
    result = flow.launch("first", run, TRUTH_HOW=f"sys_exit{code}")
    assert result.returncode == 70, explain(result)
    assert first_line(result) == (
        f"stepwire: step_failed: the step called sys.exit({code}) before it finished"
    ), explain(result)
    record = flow.record("first", run)
    assert record is not None
    assert (record["kind"], record["exit_code"], record["run"]) == ("step_failed", 70, run)
    [execution] = flow.executions(run, PIPELINE, "first")
    assert State.Name(execution.last_known_state) == "FAILED"


def test_sys_exit_without_the_supervisor_still_marks_the_execution_failed(flow: Flow) -> None:
    # TFX marks FAILED only for an Exception; the launcher does it for SystemExit.
    result = flow.launch("first", "sys-exit-alone", TRUTH_HOW="sys_exit0", STEPWIRE_SUPERVISE="0")
    assert result.returncode == 70, explain(result)
    [execution] = flow.executions("sys-exit-alone", PIPELINE, "first")
    assert State.Name(execution.last_known_state) == "FAILED"


def test_a_crash_after_the_step_succeeded_does_not_fail_it(flow: Flow) -> None:
    result = flow.launch("first", "crash-at-exit", TRUTH_HOW="segv_at_exit")
    assert result.returncode == 0, explain(result)
    [execution] = flow.executions("crash-at-exit", PIPELINE, "first")
    assert State.Name(execution.last_known_state) == "COMPLETE"
    assert flow.record("first", "crash-at-exit") is None


@pytest.mark.parametrize(
    ("how", "signal_text"), [("sigkill", "SIGKILL (9)"), ("segv", "SIGSEGV (11)")]
)
def test_a_step_killed_by_a_signal_is_a_failure(flow: Flow, how: str, signal_text: str) -> None:
    result = flow.launch("first", how, TRUTH_HOW=how)
    assert result.returncode == 70, explain(result)
    assert first_line(result).startswith(
        f"stepwire: step_failed: the step process was killed by signal {signal_text}"
    ), explain(result)
    assert first_line(result).endswith("marked FAILED in ML Metadata"), explain(result)
    assert flow.record("first", how)["exit_code"] == 70  # type: ignore[index]
    assert_marked_failed(flow, how, f"killed by signal {signal_text}")


def _wait_for_pid(marker: Path, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if marker.exists():
            return int(marker.read_text())
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the step ended before it slept:\n{out}\n{err}")
        time.sleep(0.05)
    raise AssertionError("the step did not start in time")


def _is_gone(pid: int) -> bool:
    """True when ``pid`` has ended: no such process, or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _is_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _is_gone(pid)


def _kill_if_alive(pid: int) -> None:
    if not _is_gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start_sleeping_step(
    flow: Flow, run: str, marker: Path, how: str = "sleep"
) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        flow.command("first", run),
        cwd=flow.root,
        env=flow.env(
            TRUTH_HOW=how,
            TRUTH_MARKER=str(marker),
            STEPWIRE_FAILURE_RECORD=str(flow.record_file("first", run)),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        child = _wait_for_pid(marker, proc)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
        raise
    return proc, child


def _terminate(
    proc: subprocess.Popen[str], child: int
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Sends SIGTERM to the step process; its output, and whether its child is gone."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
        gone = _wait_gone(child, 5.0)
        _kill_if_alive(child)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), gone


def test_sigterm_reaches_the_step_and_is_reported_as_infrastructure(
    flow: Flow, tmp_path: Path
) -> None:
    proc, child = _start_sleeping_step(flow, "sigterm", tmp_path / "pid")
    assert child != proc.pid  # the step runs in the supervisor's child
    result, gone = _terminate(proc, child)
    assert result.returncode == 75, explain(result)
    assert first_line(result).startswith(
        "stepwire: infrastructure: the step process was killed by signal SIGTERM (15) "
        "after this process received SIGTERM"
    ), explain(result)
    assert gone, f"the step's process {child} is still alive"
    assert flow.record("first", "sigterm")["kind"] == "infrastructure"  # type: ignore[index]
    assert_marked_failed(flow, "sigterm", "SIGTERM")


def test_a_stop_the_step_turns_into_an_error_is_still_infrastructure(
    flow: Flow, tmp_path: Path
) -> None:
    proc, child = _start_sleeping_step(flow, "sigterm-raises", tmp_path / "pid", "sigterm_raises")
    result, _ = _terminate(proc, child)
    assert result.returncode == 75, explain(result)
    assert "stepwire: infrastructure: the step was stopped: this process received SIGTERM" in (
        result.stderr
    ), explain(result)
    assert flow.record("first", "sigterm-raises")["kind"] == "infrastructure"  # type: ignore[index]
    [execution] = flow.executions("sigterm-raises", PIPELINE, "first")
    assert State.Name(execution.last_known_state) == "FAILED"


def test_the_step_dies_with_its_killed_supervisor(flow: Flow, tmp_path: Path) -> None:
    proc, child = _start_sleeping_step(flow, "parent-killed", tmp_path / "pid")
    try:
        assert child != proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == -signal.SIGKILL
        # PR_SET_PDEATHSIG: the kernel ends the orphan child.
        assert _wait_gone(child, 10.0), f"the step's process {child} outlived its supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
        _kill_if_alive(child)


def test_without_the_supervisor_os_exit_0_leaves_the_execution_running(flow: Flow) -> None:
    result = flow.launch("first", "unsupervised", TRUTH_HOW="os_exit0", STEPWIRE_SUPERVISE="0")
    # This is what the supervisor is for: exit 0, and an execution nothing runs.
    assert result.returncode == 0, explain(result)
    assert flow.record("first", "unsupervised") is None
    [execution] = flow.executions("unsupervised", PIPELINE, "first")
    assert State.Name(execution.last_known_state) == "RUNNING"

    downstream = flow.launch("second", "unsupervised")
    assert downstream.returncode == 66, explain(downstream)
    line = first_line(downstream)
    assert line.startswith("stepwire: inputs_unresolvable: "), explain(downstream)
    assert (
        "upstream step 'first' has an execution in run 'unsupervised' that never completed "
        "(state RUNNING)" in line
    ), explain(downstream)
    assert "Check that every step" not in line


def _cli(flow: Flow, run: str, **env: str) -> subprocess.CompletedProcess[str]:
    return flow.cli(
        [
            *("run", f"{MODULE}.py:truth_pipeline"),
            *("--orchestrator", "subprocess", "--run-name", run),
        ],
        flow.root,
        timeout=TIMEOUT,
        STEPWIRE_MAX_PARALLEL="1",
        TRUTH_HOW="os_exit0",
        **env,
    )


@pytest.mark.parametrize(
    ("supervise", "reason"),
    [
        # The supervisor turns os._exit(0) into 70; the orchestrator shows its line.
        ("1", r"step_failed: the step process exited with code 0 before the step finished"),
        # Without it the process exits 0: the orchestrator checks ML Metadata.
        ("0", r"exited 0, but its execution in run 'cli-0' is running, not completed or cached"),
    ],
)
def test_the_subprocess_orchestrator_reports_an_os_exit_0_step_failed(
    flow: Flow, supervise: str, reason: str
) -> None:
    run = f"cli-{supervise}"
    result = _cli(flow, run, STEPWIRE_SUPERVISE=supervise)
    assert result.returncode == 1, explain(result)
    assert re.search(rf"first +FAILED in [\d.]+s: {reason}", result.stdout), explain(result)
    assert re.search(r"second +skipped \(upstream first failed\)", result.stdout), explain(result)
    assert "0 completed, 0 cached, 1 failed, 1 skipped" in result.stdout, explain(result)
    assert flow.executions(run, PIPELINE, "second") == []


def test_tfx_info_logs_are_off_in_a_step_process_unless_asked_for(flow: Flow) -> None:
    quiet = flow.launch("first", "quiet")
    assert quiet.returncode == 0, explain(quiet)
    output = quiet.stdout + quiet.stderr
    assert "Step 'first' of run 'quiet' completed" in output, explain(quiet)
    for noise in ("INFO:absl", "node_info", "pipeline_node", "contexts {"):
        assert noise not in output, explain(quiet)
    assert len(output.splitlines()) < 40, explain(quiet)

    loud = flow.launch("first", "loud", STEPWIRE_TFX_LOGS="1")
    assert loud.returncode == 0, explain(loud)
    output = loud.stdout + loud.stderr
    assert "INFO:absl:Running launcher for node_info {" in output, explain(loud)
    assert len(output.splitlines()) > 40, explain(loud)
