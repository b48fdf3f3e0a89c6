"""Step processes forked from a warm parent: the same step process, without the cold start.

Real processes throughout: the ``stepwire`` CLI with the ``subprocess`` orchestrator
(warm by default), the warm parent it starts, and the same pipelines with
``STEPWIRE_WARM_PROCESSES=0`` (cold) for comparison. SQLite ML Metadata and a local
artifact store in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

from stepwire.orchestrators.warm_launch import WarmLauncher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and /proc")

PIPELINE = textwrap.dedent(
    """
    import ctypes
    import json
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    import helper_module  # importable only through the PYTHONPATH the step is given

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    def _ancestors():
        pids, pid = [], os.getpid()
        for _ in range(3):
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
            pids.append(pid)
        return pids


    def _children(pid):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


    def _disturb_the_spare(how):
        # The warm parent forks its next spare while this step runs: find it (the
        # warm parent's child that is not this step's supervisor) and its child.
        warm, deadline = _ancestors()[1], time.monotonic() + 20
        while time.monotonic() < deadline:
            spares = [p for p in _children(warm) if p != os.getppid()]
            if spares and _children(spares[0]):
                spare, [waiting] = spares[0], _children(spares[0])
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("no spare step process appeared")
        if how == "spare":
            os.kill(spare, signal.SIGKILL)
        elif how == "child":
            os.kill(waiting, signal.SIGKILL)
        elif how == "sigint":
            os.kill(spare, signal.SIGINT)
            os.kill(waiting, signal.SIGINT)
        time.sleep(0.2)


    @step
    def report() -> int:
        if os.environ.get("DISTURB_SPARE"):
            _disturb_the_spare(os.environ["DISTURB_SPARE"])
        with open(os.environ["REPORT_TO"], "w") as file:
            json.dump(
                {
                    "pid": os.getpid(),
                    # What runs beside the step's function, by thread name.
                    "threads": [
                        Path(f"/proc/self/task/{task}/comm").read_text().strip()
                        for task in os.listdir("/proc/self/task")
                    ],
                    "ancestors": _ancestors(),
                    # The warm parent (or, cold, the CLI) while a real step runs.
                    "grandparent_threads": len(os.listdir(f"/proc/{_ancestors()[1]}/task")),
                    "grandparent_files": [
                        os.readlink(f"/proc/{_ancestors()[1]}/fd/{fd}")
                        for fd in os.listdir(f"/proc/{_ancestors()[1]}/fd")
                    ],
                    "commands": [
                        Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\\0", " ")
                        for pid in _ancestors()
                    ],
                    "argv0": sys.argv[0],
                    "cwd": os.getcwd(),
                    "marker": os.environ.get("STEP_MARKER"),
                    "helper": helper_module.VALUE,
                    "main": sys.modules["__main__"].__name__,
                },
                file,
            )
        print("report was here", flush=True)
        return 1


    @step
    def end(value: int) -> int:
        how = os.environ.get("END_HOW", "")
        if how == "exit0":
            os._exit(0)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "segfault":
            ctypes.string_at(0)
        if how == "raise":
            raise ValueError("the end step raised on purpose")
        if how == "kill-warm-parent":
            # The supervisor's parent is the warm parent: it dies mid-step.
            os.kill(_ancestors()[1], signal.SIGKILL)
            time.sleep(0.5)
        return value + 1


    @step
    def after(value: int) -> int:
        return value + 1


    @pipeline
    def warm_pipeline(report, end, after):
        after(value=end(value=report()))


    the_pipeline = warm_pipeline(report=report(), end=end(), after=after())
    """
)


@pytest.fixture
def project(tmp_path: Path) -> StackDir:
    (tmp_path / "warm_pipeline.py").write_text(PIPELINE)
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "helper_module.py").write_text("VALUE = 'from PYTHONPATH'\n")
    return StackDir(
        tmp_path,
        orchestrator="subprocess",
        PYTHONPATH=str(helpers),
        REPORT_TO=str(tmp_path / "report.json"),
        STEP_MARKER="set-for-the-step",
    )


def _run(project: StackDir, run: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    return project.cli(
        ["run", f"{project.root}/warm_pipeline.py:the_pipeline", "--run-name", run],
        project.root,
        **env,
    )


def _report(project: StackDir) -> dict[str, object]:
    data: dict[str, object] = json.loads((project.root / "report.json").read_text())
    return data


def test_a_warm_step_is_the_step_a_cold_launch_would_run(project: StackDir) -> None:
    warm = _run(project, "warm")
    assert warm.returncode == 0, explain(warm)
    seen_warm = _report(project)
    # On a store of its own, so nothing is cached.
    cold = _run(
        project,
        "cold",
        STEPWIRE_WARM_PROCESSES="0",
        STEPWIRE_METADATA_URI=str(project.root / "cold.db"),
        STEPWIRE_ARTIFACT_STORE=str(project.root / "cold-artifacts"),
    )
    assert cold.returncode == 0, explain(cold)
    seen_cold = _report(project)

    # Forked from the warm parent (supervisor <- warm parent <- the CLI), or not.
    warm_commands = seen_warm["commands"]
    cold_commands = seen_cold["commands"]
    assert isinstance(warm_commands, list)
    assert isinstance(cold_commands, list)
    assert "-m stepwire.entrypoints.warm_parent" in warm_commands[1], warm_commands
    assert "-m stepwire run" in warm_commands[2], warm_commands
    assert "-m stepwire.entrypoints.step_entrypoint" in cold_commands[0], cold_commands
    assert "-m stepwire run" in cold_commands[1], cold_commands
    # While a step that uses ML Metadata runs, its warm parent is still one thread
    # holding no store: the connection is the step's own.
    assert seen_warm["grandparent_threads"] == 1
    files = seen_warm["grandparent_files"]
    assert isinstance(files, list)
    assert not [f for f in files if f.endswith(".db") or "artifacts" in f], files
    # Warm or cold, the step's function runs beside its lease's heartbeat only: the
    # launcher starts no gRPC server (TFX's ExecutionWatcher) around it.
    assert seen_warm["threads"] == seen_cold["threads"] == ["python", "python"]
    # What the step sees is the same either way.
    for key in ("argv0", "cwd", "marker", "helper"):
        assert seen_warm[key] == seen_cold[key], key
    assert seen_warm["helper"] == "from PYTHONPATH"
    assert seen_warm["marker"] == "set-for-the-step"
    log = project.artifacts / ".stepwire" / "logs" / "warm" / "report.log"
    assert "report was here" in log.read_text()
    assert project.output("warm", "after", int) == 3
    # Every execution is recorded, and a rerun is cached.
    rerun = _run(project, "warm-again")
    assert rerun.returncode == 0, explain(rerun)
    assert set(project.statuses("warm-again").values()) == {"cached"}


@pytest.mark.parametrize("how", ["exit0", "sigkill", "segfault", "raise"])
def test_a_step_that_ends_badly_is_reported_as_a_cold_one_is(project: StackDir, how: str) -> None:
    lines = {}
    for mode in ("1", "0"):
        run = f"{how}-{mode}"
        proc = _run(project, run, END_HOW=how, STEPWIRE_WARM_PROCESSES=mode)
        assert proc.returncode == 1, explain(proc)
        statuses = project.statuses(run)
        assert statuses["end"] == "failed", explain(proc)
        # "[   1.2s] end  FAILED in 0.4s: <why>": the why, as the CLI prints it.
        [why] = re.findall(r"\] end +FAILED in [0-9.]+s: (.*)", proc.stdout)
        lines[mode] = why
        # The log holds the supervisor's verdict either way.
        log = project.artifacts / ".stepwire" / "logs" / run / "end.log"
        assert "stepwire: " in log.read_text(), log.read_text()
    strip = [_without_numbers(text) for text in lines.values()]
    assert strip[0] == strip[1], lines


def _without_numbers(text: str) -> str:
    return "".join("#" if c.isdigit() else c for c in text)


def test_a_dead_warm_parent_is_started_again_and_the_step_judged_by_ml_metadata(
    project: StackDir,
) -> None:
    proc = _run(project, "orphaned", END_HOW="kill-warm-parent")
    # The step that killed its warm parent still ran to its end and published; the
    # next step got a new warm parent.
    assert proc.returncode == 0, explain(proc)
    assert project.statuses("orphaned") == {
        "report": "completed",
        "end": "completed",
        "after": "completed",
    }
    assert project.output("orphaned", "after", int) == 3


def test_the_warm_parent_has_one_thread_and_no_store_open(
    project: StackDir, tmp_path: Path
) -> None:
    env = project.env(PYTHONPATH=None)
    with WarmLauncher(env) as launcher:
        out = os.open(tmp_path / "out.log", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            # --help is the cheapest step process there is.
            command = [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", "--help"]
            assert launcher.call(command, env, out) == 0
            assert launcher.call(command, env, out) == 0
        finally:
            os.close(out)
        assert launcher.starts == 1  # one parent served both
        pid = launcher._process.pid  # type: ignore[union-attr]
        assert len(os.listdir(f"/proc/{pid}/task")) == 1
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert not [t for t in targets if t.endswith((".db", ".sqlite"))], targets
        # Its client's socket, and its spare's: a step process forked ahead, waiting
        # with its own child for the next step.
        assert len([t for t in targets if t.startswith("socket:")]) == 2, targets
        [spare] = _children(pid)
        [waiting] = _children(spare)
        assert [len(os.listdir(f"/proc/{p}/task")) for p in (spare, waiting)] == [1, 1]
        # A variable read while importing differs: that step starts cold (None).
        other = {**env, "STEPWIRE_FULL_TFX_IMPORTS": "1"}
        assert launcher.call(command, other, 1) is None
        # Not the step entrypoint of this interpreter: cold too.
        assert launcher.call(["python3", "-m", "x"], env, 1) is None
    assert (
        "usage: python -m stepwire.entrypoints.step_entrypoint"
        in (tmp_path / "out.log").read_text()
    )


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # ended, its parent not yet told


@pytest.mark.parametrize("how", ["spare", "child", "sigint"])
def test_a_spare_disturbed_while_it_waits_still_leaves_the_next_step_whole(
    project: StackDir, how: str
) -> None:
    # spare: killed, the next step is forked instead; child: its waiting child
    # killed, the spare starts a fresh one; sigint: a Ctrl-C while nothing runs
    # is not held for the next step.
    proc = _run(project, f"disturbed-{how}", DISTURB_SPARE=how)
    assert proc.returncode == 0, explain(proc)
    assert set(project.statuses(f"disturbed-{how}").values()) == {"completed"}
    assert project.output(f"disturbed-{how}", "after", int) == 3
    log = project.artifacts / ".stepwire" / "logs" / f"disturbed-{how}" / "end.log"
    assert "stepwire: " not in log.read_text()
    assert "Traceback" not in proc.stdout + proc.stderr, explain(proc)


def test_an_unsupervised_step_is_forked_for_its_request_not_taken_from_a_spare(
    project: StackDir,
) -> None:
    proc = _run(project, "unsupervised", STEPWIRE_SUPERVISE="0")
    assert proc.returncode == 0, explain(proc)
    commands = _report(project)["commands"]
    assert isinstance(commands, list)
    assert "-m stepwire.entrypoints.warm_parent" in commands[0], commands


def test_the_spare_and_its_child_end_with_the_warm_parent(project: StackDir) -> None:
    env = project.env(PYTHONPATH=None)
    with WarmLauncher(env) as launcher:
        command = [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", "--help"]
        assert launcher.call(command, env, os.open(os.devnull, os.O_WRONLY)) == 0
        warm = launcher._process.pid  # type: ignore[union-attr]
        [spare] = _children(warm)
        [waiting] = _children(spare)
    deadline = time.monotonic() + 20
    while not all(_gone(p) for p in (warm, spare, waiting)):
        assert time.monotonic() < deadline, "a spare outlived its warm parent"
        time.sleep(0.05)


def test_warm_processes_can_be_turned_off(project: StackDir) -> None:
    with WarmLauncher({**project.env(), "STEPWIRE_WARM_PROCESSES": "0"}) as launcher:
        command = [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", "--help"]
        assert launcher.call(command, project.env(), 1) is None
        assert launcher.starts == 0


def test_a_warm_parent_started_early_serves_the_first_call(
    project: StackDir, tmp_path: Path
) -> None:
    env = project.env(PYTHONPATH=None)
    with WarmLauncher(env) as launcher:
        launcher.start()
        launcher.start()  # one is starting already
        assert launcher.starts == 1
        command = [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", "--help"]
        assert launcher.call(command, env, os.open(os.devnull, os.O_WRONLY)) == 0
        assert launcher.starts == 1  # the first call waited for it, started no other


def test_a_warm_parent_started_and_never_called_ends_quietly(tmp_path: Path) -> None:
    # As when compiling the pipeline fails right after the run started it: the
    # warm parent finds its client gone, and says nothing.
    script = textwrap.dedent(
        """
        import os, sys
        from stepwire.orchestrators.warm_launch import WarmLauncher

        launcher = WarmLauncher(dict(os.environ))
        launcher.start()
        pid = launcher._starting[1].pid
        launcher.close()
        print(pid)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    pid = int(proc.stdout)
    assert not Path(f"/proc/{pid}").exists()
