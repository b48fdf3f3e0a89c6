"""SIGKILL a step at many moments of its life; relaunch it; check nothing is lost or doubled.

A real two-step pipeline (``produce`` writes a 4 MiB ``bytes`` output, ``consume``
reads it back and checks every byte) runs as the ``subprocess`` orchestrator runs it:
one step process per step (``python -m stepwire.entrypoints.step_entrypoint`` and
the command line ``plan_step_processes`` builds), on a SQLite ML Metadata and a local
artifact store in a temporary folder, a fresh one for every kill.

Calibration runs of the producer measure its life: from the process's start to its
exit, and when each event of it happens (the supervisor forks its child, the launch
creates the ML Metadata file and claims its attempt, logs ``starting``, the step
function is entered and returns, the output folder and file appear, the launch logs
``completed`` and its ML Metadata cost). Then, for each moment (the events
themselves, then time offsets spread over the whole life and a little past it, so
that some fall after the step published, each measured from the event before it),
the producer is launched and SIGKILLed at that moment:

* ``group``: its whole process group (supervisor and step: nobody releases the
  attempt's claim, which expires after ``STEPWIRE_ATTEMPT_LEASE``, 2 s here);
* ``child``: only the step process under the supervisor (see
  ``stepwire/entrypoints/supervisor.py``), which must mark the execution FAILED,
  release the claim and exit 70;
* ``supervisor`` (not by default): only the supervisor; its child dies with it.

``--warm`` launches every step process as the ``subprocess`` orchestrator now does,
forked by a warm parent (``stepwire/orchestrators/warm_launch.py``); a warm step
process shares its parent's process group, so the modes are then ``child`` and
``supervisor``.

Then the same step is launched again in the same run, then the consumer, and these
invariants are checked; any that fails is an **anomaly**:

* the relaunch exits 0, or 67 when the killed launch had already published;
* exactly one COMPLETE execution of the producer in the run, and no execution of
  the run left NEW or RUNNING;
* exactly one LIVE artifact per output URI, and the output reads back equal to what
  the step wrote;
* no attempt claim live after the run, and none left unreleased but the killed
  attempt's own after a group or supervisor kill (it expired);
* with ``child``: the killed launch exited 70 (0 if the child had already announced
  success), ML Metadata held no RUNNING execution right after it, and its failure
  record is bounded JSON;
* nothing of the killed launch is left running;
* the consumer exits 0 and reads the whole output.

``--concurrent R`` also runs R rounds of ``--launches K`` simultaneous launches of
the producer in one run (every other round with ``STEPWIRE_TOLERATE_RERUN=1``):
exactly one publishes (one exits 0, the others 67; tolerated, all exit 0 and one
runs the step), with the same invariants.

Run it::

    python tools/stress/sigkill_sweep.py --concurrent 10    # 69 moments x group, child
    python tools/stress/sigkill_sweep.py --warm --modes child,supervisor --concurrent 10
    python tools/stress/sigkill_sweep.py --moments 10 --modes child --keep /tmp/sweep

It prints each kill and its outcome, then ``N moments, K anomalies`` (and
``R concurrent rounds, K anomalies``), and exits 1 on any anomaly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bad_inputs import execution_state, python_env, readonly_store

RUN = "sweep"
PIPELINE = "sweep"
PAYLOAD_BYTES = 4 * 1024 * 1024
LEASE = "2"
MAX_RECORD_BYTES = 4096
MODES = ("group", "child", "supervisor")

STEPS_MODULE = '''
"""Two steps: the producer writes a few MiB, the consumer checks every byte of them."""

import os
import pathlib

from stepwire.pipelines import pipeline
from stepwire.steps import step

SIZE = int(os.environ.get("SWEEP_BYTES", str(4 * 1024 * 1024)))


def payload(size):
    pattern = bytes(range(251))  # a prime period: a shifted or cut copy does not match
    return (pattern * (size // len(pattern) + 1))[:size]


def mark(name):
    folder = os.environ.get("SWEEP_MARKS")
    if folder:
        pathlib.Path(folder, name).touch()


@step(enable_cache=False)
def produce() -> bytes:
    mark("entered")
    data = payload(SIZE)
    mark("returning")
    return data


@step(enable_cache=False)
def consume(data: bytes) -> int:
    if data != payload(SIZE):
        raise RuntimeError(f"the output read back is not what was written ({len(data)} bytes)")
    return len(data)


@pipeline
def sweep(produce, consume):
    consume(data=produce())


sweep_pipeline = sweep(produce=produce(), consume=consume())
'''

PLANNER = textwrap.dedent(
    """
    import json
    import pathlib
    import sys

    from stepwire import constants

    constants.USER_MAIN_MODULE = "sweep_steps"
    import sweep_steps
    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator
    from stepwire.orchestrators.step_processes import plan_step_processes
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration


    class Plan(BaseOrchestrator):
        # Writes every step's command line, as the subprocess orchestrator builds it.
        def prepare_or_run_pipeline(self, sorted_list_of_steps, pipeline, pb2_pipeline, stack,
                                    runtime_configuration):
            plan = plan_step_processes(
                SubprocessEntrypointConfiguration, sorted_list_of_steps, pb2_pipeline, stack,
                runtime_configuration.run_name,
            )
            pathlib.Path(sys.argv[1]).write_text(json.dumps(plan.commands))


    sweep_steps.sweep_pipeline.run(run_name=sys.argv[2], orchestrator=Plan())
    """
)

# Events of a producer's life, in the order they happen: (name, how it is seen).
EVENTS: list[tuple[str, str]] = [
    ("child forked", "child"),
    # The launch opens ML Metadata for the first time: its claim follows.
    ("metadata file created", "exists:stack/metadata.db"),
    # Read from the SQLite file while the step runs: only for the moment keyed on it.
    ("attempt claimed", "claim"),
    ("'starting' logged", "line:starting (attempt"),
    ("step function entered", "mark:entered"),
    ("output folder created", "glob:produce/output/*"),
    ("step function returning", "mark:returning"),
    ("output file written", "glob:produce/output/*/data.bin"),
    ("'completed' logged", "line: completed in "),
    ("ML Metadata cost logged", "line:ML Metadata: "),
]


PROBES = {"attempt claimed"}
"""Events seen by reading ML Metadata: moments are keyed on them, never measured from them."""

# --------------------------------------------------------------------------- the project


@dataclass
class Project:
    """The user module and the planned command lines."""

    root: Path
    code: Path
    commands: dict[str, list[str]]
    warm: Any = None  # a WarmLauncher: step processes forked from a warm parent
    # The threads that call it. They live as long as the sweep, as an orchestrator's
    # launching threads do: the warm parent dies with the thread that started it.
    pool: ThreadPoolExecutor | None = None

    @classmethod
    def create(cls, root: Path) -> Project:
        code = root / "code"
        code.mkdir(parents=True)
        (code / "sweep_steps.py").write_text(STEPS_MODULE)
        (code / "plan_it.py").write_text(PLANNER)
        plan = root / "plan.json"
        env = python_env([str(code)])
        env.update(
            STEPWIRE_CONFIG="",
            STEPWIRE_ARTIFACT_STORE=str(root / "plan-stack" / "artifacts"),
            STEPWIRE_METADATA_URI=str(root / "plan-stack" / "metadata.db"),
        )
        made = subprocess.run(
            [sys.executable, str(code / "plan_it.py"), str(plan), RUN],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if made.returncode != 0:
            raise RuntimeError(f"planning the pipeline failed:\n{made.stderr[-4000:]}")
        return cls(root, code, json.loads(plan.read_text()))


@dataclass
class Stack:
    """One fresh stack (artifacts and SQLite ML Metadata) under a folder."""

    folder: Path
    project: Project

    @property
    def artifacts(self) -> Path:
        return self.folder / "stack" / "artifacts"

    @property
    def metadata(self) -> Path:
        return self.folder / "stack" / "metadata.db"

    @property
    def marks(self) -> Path:
        return self.folder / "marks"

    def env(self, record: str = "record.json", **values: str) -> dict[str, str]:
        env = python_env([str(self.project.code)])
        env.update(
            HOME=str(self.folder),
            STEPWIRE_CONFIG="",
            STEPWIRE_ARTIFACT_STORE=str(self.artifacts),
            STEPWIRE_METADATA_URI=str(self.metadata),
            STEPWIRE_ATTEMPT_LEASE=LEASE,
            STEPWIRE_FAILURE_RECORD=str(self.folder / record),
            SWEEP_BYTES=str(PAYLOAD_BYTES),
            SWEEP_MARKS=str(self.marks),
        )
        env.update(values)
        return env

    def launch(self, step: str, name: str, **values: str) -> Launch:
        """Starts a step process (cold, or from the project's warm parent)."""
        self.marks.mkdir(parents=True, exist_ok=True)
        command = self.project.commands[step]
        env = self.env(f"{name}.record.json", **values)
        err = self.folder / f"{name}.err"
        if self.project.warm is not None and self.project.pool is not None:
            return WarmLaunch.start(
                self.project.warm, self.project.pool, command, self.folder, env, err
            )
        return ColdLaunch.start(command, self.folder, env, err)

    def run(self, step: str, name: str, timeout: float = 120, **values: str) -> Launch:
        """Runs a step process to its end."""
        launch = self.launch(step, name, **values)
        launch.finish(timeout)
        return launch


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _gone(pids: Sequence[int], timeout: float) -> bool:
    """Whether all these processes have ended (waiting for the dying to be reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                alive.append(pid)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


@dataclass
class Launch:
    """A step process: when it started, what it printed (timed), how it ended.

    Its stdout is read line by line as it comes (the events of its life); ``err``
    holds its stderr once it ended.
    """

    started: float
    err: Path
    lines: list[tuple[float, str]] = field(default_factory=list)
    code: int | None = None
    ended: float | None = None
    reader: threading.Thread | None = None
    seen: set[int] = field(default_factory=set)

    def supervisor(self) -> int | None:
        """The step process (the supervisor), once it exists."""
        raise NotImplementedError

    def running(self) -> bool:
        raise NotImplementedError

    def finish(self, timeout: float = 120) -> int | None:
        """Waits for the end (SIGKILLs what is left after ``timeout``); None if it hung."""
        raise NotImplementedError

    def kill_all(self) -> None:
        """SIGKILLs the step process and its child."""
        for pid in (self.child(), self.supervisor()):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def child(self) -> int | None:
        """The supervisor's child (where the step runs), once it has forked."""
        supervisor = self.supervisor()
        children = _children(supervisor) if supervisor is not None else []
        if children:
            self.seen.add(children[0])
        return children[0] if children else None

    def gone(self, timeout: float = 5.0) -> bool:
        """Whether the step process and every child seen of it have ended."""
        supervisor = self.supervisor()
        return _gone([*self.seen, *([supervisor] if supervisor else [])], timeout)

    def _read(self, stream: Any) -> None:
        with stream:
            for raw in stream:
                self.lines.append((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\n")))

    def saw(self, text: str) -> bool:
        return any(text in line for _, line in self.lines)

    def output(self) -> str:
        out = "\n".join(line for _, line in self.lines)
        err = self.err.read_text("utf-8", "replace") if self.err.exists() else ""
        return f"{out}\n{err}"


@dataclass
class ColdLaunch(Launch):
    """A step process started as ``python -m stepwire.entrypoints.step_entrypoint``, in a
    session of its own (so its whole group can be killed)."""

    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls, command: Sequence[str], cwd: Path, env: Mapping[str, str], err: Path
    ) -> ColdLaunch:
        with err.open("wb") as stderr:
            process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        launch = cls(time.monotonic(), err, process=process)
        launch.reader = threading.Thread(target=launch._read, args=(process.stdout,), daemon=True)
        launch.reader.start()
        return launch

    def supervisor(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def finish(self, timeout: float = 120) -> int | None:
        assert self.process is not None
        try:
            self.code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            self.process.wait()
            self.code = None
        self.ended = time.monotonic()
        if self.reader is not None:
            self.reader.join(timeout=10)
        return self.code

    def kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def gone(self, timeout: float = 5.0) -> bool:
        """Whether every process of its group has ended."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


@dataclass
class WarmLaunch(Launch):
    """A step process forked by the warm parent, as the ``subprocess`` orchestrator launches
    it (``stepwire.orchestrators.warm_launch``); stdout and stderr come on one pipe."""

    future: Future[None] | None = None
    parent: int | None = None
    pid: int | None = None
    output: str = ""  # the launch's pipe, as /proc/<pid>/fd/1 of its step process names it

    @classmethod
    def start(
        cls,
        launcher: Any,
        pool: ThreadPoolExecutor,
        command: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        err: Path,
    ) -> WarmLaunch:
        read_end, write_end = os.pipe()
        parent = _warm_parent(launcher)
        launch = cls(
            time.monotonic(),
            err,
            parent=parent,
            output=f"pipe:[{os.fstat(write_end).st_ino}]",
        )

        def call() -> None:
            try:
                launch.code = launcher.call(list(command), dict(env), write_end, str(cwd))
                if launch.code is None:
                    why = launcher.refused or "refused"
                    launch.lines.append((time.monotonic(), f"warm launch: started nothing ({why})"))
            except Exception as e:  # the warm parent died: its step's end is unknown
                launch.code = None
                launch.lines.append((time.monotonic(), f"warm launch failed: {e}"))
            finally:
                os.close(write_end)

        launch.reader = threading.Thread(
            target=launch._read, args=(os.fdopen(read_end, "rb"),), daemon=True
        )
        launch.reader.start()
        launch.future = pool.submit(call)
        return launch

    def supervisor(self) -> int | None:
        if self.pid is None:
            # The warm parent's child that writes to this launch's pipe: not its
            # spare, which waits for the next request.
            parent = self.parent or _warm_parent_now(self)
            ours = [p for p in (_children(parent) if parent else []) if _stdout(p) == self.output]
            self.pid = ours[0] if ours else None
        return self.pid

    def running(self) -> bool:
        return self.future is not None and not self.future.done()

    def finish(self, timeout: float = 120) -> int | None:
        assert self.future is not None
        try:
            self.future.result(timeout)
        except TimeoutError:
            self.kill_all()
            self.future.result()
            self.code = None
        self.ended = time.monotonic()
        if self.reader is not None:
            self.reader.join(timeout=10)
        self.err.write_text("\n".join(line for _, line in self.lines) + "\n")
        return self.code


def _stdout(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return ""


def _warm_parent(launcher: Any) -> int | None:
    """The warm parent's process id, if it runs (a private attribute of the launcher)."""
    process = getattr(launcher, "_process", None)
    return int(process.pid) if process is not None and process.poll() is None else None


def _warm_parent_now(launch: WarmLaunch) -> int | None:
    return launch.parent


# --------------------------------------------------------------------------- what ML Metadata holds


@dataclass
class Recorded:
    """What the store holds of the run after a launch."""

    producer_states: list[str]
    run_states: list[str]
    live_per_uri: dict[str, int]
    complete_outputs_live: int
    claims: list[tuple[str, float, str]]  # name, lease_until, state

    @property
    def published(self) -> bool:
        return "COMPLETE" in self.producer_states


def recorded(stack: Stack) -> Recorded:
    """Reads the run's executions, artifacts and claims with a read-only handle."""
    if not stack.metadata.is_file() or stack.metadata.stat().st_size == 0:
        return Recorded([], [], {}, 0, [])  # killed before ML Metadata's schema was made
    try:
        store = readonly_store(stack.metadata)
    except Exception:  # a schema left half made: read a copy, where it may be completed
        store = _store_of_a_copy(stack.metadata)
    run = store.get_context_by_type_and_name("pipeline_run", RUN)
    node = store.get_context_by_type_and_name("node", f"{PIPELINE}.produce")
    in_run = list(store.get_executions_by_context(run.id)) if run is not None else []
    run_ids = {e.id for e in in_run}
    producer = (
        [e for e in store.get_executions_by_context(node.id) if e.id in run_ids]
        if node is not None
        else []
    )
    pb: Any = importlib.import_module("ml_metadata.proto.metadata_store_pb2")
    live_state, output_event = pb.Artifact.LIVE, pb.Event.OUTPUT
    live: dict[str, int] = {}
    artifacts = list(store.get_artifacts_by_context(run.id)) if run is not None else []
    for artifact in artifacts:
        if artifact.state == live_state:
            live[artifact.uri] = live.get(artifact.uri, 0) + 1
    complete = [e for e in producer if execution_state(e.last_known_state) == "COMPLETE"]
    outputs_live = 0
    if len(complete) == 1:
        events = store.get_events_by_execution_ids([complete[0].id])
        ids = [e.artifact_id for e in events if e.type == output_event]
        outputs_live = sum(a.state == live_state for a in store.get_artifacts_by_id(ids))
    claims = [
        (
            c.name,
            c.custom_properties["lease_until"].double_value,
            c.custom_properties["state"].string_value,
        )
        for c in store.get_contexts_by_type("stepwire_attempt")
    ]
    return Recorded(
        [execution_state(e.last_known_state) for e in producer],
        [execution_state(e.last_known_state) for e in in_run],
        live,
        outputs_live,
        claims,
    )


def _store_of_a_copy(database: Path) -> Any:
    """A handle on a copy of the file (and its journal), which the original never sees."""
    from ml_metadata.metadata_store import metadata_store

    copies = database.parent.parent / "metadata-copy"
    shutil.rmtree(copies, ignore_errors=True)
    copies.mkdir()
    for suffix in ("", "-journal", "-wal"):
        source = Path(f"{database}{suffix}")
        if source.exists():
            shutil.copyfile(source, copies / f"metadata.db{suffix}")
    pb: Any = importlib.import_module("ml_metadata.proto.metadata_store_pb2")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(copies / "metadata.db")
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def read_output(stack: Stack, step: str) -> Any:
    """A step's output, read with the materializer recorded on it (in this process)."""
    from stepwire.outputs import load_output
    from stepwire.stack import stack_from_config
    from stepwire.stack_config import load_stack_config

    config = load_stack_config(environ=stack.env(), cwd=stack.folder)
    return load_output(RUN, step, stack=stack_from_config(config))


def payload(size: int = PAYLOAD_BYTES) -> bytes:
    """What the producer writes (the same function as in its module)."""
    pattern = bytes(range(251))
    return (pattern * (size // len(pattern) + 1))[:size]


def run_invariants(stack: Stack, relaunch: Launch | None, consumer: Launch) -> list[str]:
    """What must hold of a run once the producer and the consumer ended (see the module)."""
    problems = []
    state = recorded(stack)
    if state.producer_states.count("COMPLETE") != 1:
        problems.append(f"producer executions {state.producer_states}: not exactly one COMPLETE")
    unfinished = [s for s in state.run_states if s in {"NEW", "RUNNING"}]
    if unfinished:
        problems.append(f"executions left {unfinished} in the run")
    doubled = {uri: n for uri, n in state.live_per_uri.items() if n != 1}
    if doubled:
        problems.append(f"output URIs with several LIVE artifacts: {doubled}")
    if state.complete_outputs_live != 1:
        problems.append(f"the COMPLETE execution has {state.complete_outputs_live} LIVE outputs")
    now = time.time()
    live = [name for name, until, _ in state.claims if until > now]
    if live:
        problems.append(f"attempt claims still live after the run: {live}")
    try:
        value = read_output(stack, "produce")
        if value != payload():
            size = len(value) if isinstance(value, bytes) else type(value).__name__
            problems.append(f"the output reads back different ({size})")
    except Exception as e:
        problems.append(f"the output cannot be read back: {type(e).__name__}: {e}")
    if consumer.code != 0:
        problems.append(f"the consumer exited {consumer.code}: {_first_line(consumer)}")
    else:
        try:
            if read_output(stack, "consume") != PAYLOAD_BYTES:
                problems.append("the consumer's output is not the payload's size")
        except Exception as e:
            problems.append(f"the consumer's output cannot be read: {type(e).__name__}: {e}")
    for launch in (relaunch, consumer):
        if launch is not None and not launch.gone():
            problems.append("a process of a launch is left running")
            launch.kill_all()
    return problems


def _first_line(launch: Launch) -> str:
    text = launch.err.read_text("utf-8", "replace") if launch.err.exists() else ""
    return next((line for line in text.splitlines() if line.startswith("stepwire")), "")[:200]


def _record_problem(path: Path) -> str:
    if not path.exists():
        return "no failure record"
    data = path.read_bytes()
    if len(data) > MAX_RECORD_BYTES:
        return f"a failure record of {len(data)} bytes"
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "a failure record that is not UTF-8 JSON"
    if record.get("exit_code") != 70:
        return f"a failure record of exit code {record.get('exit_code')}"
    return ""


# --------------------------------------------------------------------------- moments


@dataclass(frozen=True)
class Moment:
    """When to kill: at an event, or ``offset`` seconds after ``anchor`` (an event; None: the
    process's start)."""

    label: str
    offset: float | None = None
    event: str | None = None
    anchor: str | None = None


@dataclass
class Calibration:
    """A producer's life measured once: its length and when each event happened."""

    seconds: float
    events: dict[str, float]


def _event_seen(launch: Launch, stack: Stack, how: str) -> bool:
    kind, _, what = how.partition(":")
    if kind == "child":
        return launch.child() is not None
    if kind == "line":
        return launch.saw(what)
    if kind == "mark":
        return (stack.marks / what).exists()
    if kind == "glob":
        return any(stack.artifacts.glob(what))
    if kind == "claim":
        return _claimed(stack.metadata)
    if kind == "exists":
        return (stack.folder / what).exists()
    raise ValueError(how)


def _claimed(database: Path) -> bool:
    """Whether an attempt claim exists yet (a read-only look at the SQLite file)."""
    import sqlite3

    if not database.exists():
        return False
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.05)
        ) as connection:
            row = connection.execute(
                "SELECT count(*) FROM Context JOIN Type ON Context.type_id = Type.id "
                "WHERE Type.name = 'stepwire_attempt'"
            ).fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


def calibrate(project: Project, root: Path, runs: int = 3) -> Calibration:
    """Runs the producer ``runs`` times to its end; the run of the median life.

    One run's timeline, not each event's median, so that the events stay in their
    order. The probes (:data:`PROBES`) are not timed: reading the SQLite file
    throughout would slow the run it times.
    """
    if project.warm is not None:  # the first warm launch starts the warm parent
        _calibrate_once(project, root / "calibration-warm-up")
    measured = [_calibrate_once(project, root / f"calibration-{k}") for k in range(runs)]
    measured.sort(key=lambda m: m.seconds)
    return measured[len(measured) // 2]


def _calibrate_once(project: Project, folder: Path) -> Calibration:
    stack = Stack(folder, project)
    launch = stack.launch("produce", "calibration")
    seen: dict[str, float] = {}
    while launch.running():
        for name, how in EVENTS:
            if name not in seen and name not in PROBES and _event_seen(launch, stack, how):
                seen[name] = time.monotonic() - launch.started
        time.sleep(0.002)
    launch.finish()
    if launch.code != 0:
        raise RuntimeError(f"the calibration run failed ({launch.code}):\n{launch.output()}")
    assert launch.ended is not None
    for name, how in EVENTS:  # what the last poll missed: at the end
        if name not in seen and how.startswith("line:") and launch.saw(how[5:]):
            seen[name] = launch.ended - launch.started
    return Calibration(launch.ended - launch.started, seen)


def moments(count: int, calibration: Calibration) -> list[Moment]:
    """``count`` moments: the events (one in eight, at most all), then offsets in time.

    A third of the offsets are spread evenly over the start of the process (imports,
    until the launch first opens ML Metadata: its claim follows), the rest over the
    launch itself up to 1.1 times the calibrated life, so the
    last of them fall after the step ended (a kill after it published). Each is measured
    from the last event the calibration saw before it (its anchor), so that a
    launch slower or faster than the calibration's (a busy machine) is still killed
    in the same phase of its life.
    """
    events = [name for name, _ in EVENTS if name in calibration.events or name in PROBES]
    chosen = events[: min(len(events), count // 8)]
    spread = count - len(chosen)
    found = [Moment(f"at {name}", event=name) for name in chosen]
    life = calibration.seconds * 1.1
    launch = calibration.events.get(
        "metadata file created", 0.8 * calibration.events.get("'starting' logged", 0.0)
    )
    early = spread // 3 if launch else 0
    offsets = [launch * (k + 0.5) / early for k in range(early)]
    late = spread - early
    offsets += [launch + (life - launch) * (k + 0.5) / late for k in range(late)]
    for offset in offsets:
        before = [(t, n) for n, t in calibration.events.items() if t <= offset and n not in PROBES]
        anchor_time, anchor = max(before) if before else (0.0, None)
        delay = offset - anchor_time
        where = f"{anchor} +{delay:.3f}s" if anchor else f"start +{delay:.3f}s"
        found.append(Moment(f"{offset:.3f}s ({where})", offset=delay, anchor=anchor))
    return found


@dataclass
class Kill:
    """One kill and what came of it."""

    moment: Moment
    mode: str
    killed_at: float | None  # seconds after the launch; None: it had already ended
    first_code: int | None
    published_before: bool
    relaunch_code: int | None
    consumer_code: int | None
    anomalies: list[str]
    seconds: float


def _wait_for(moment: Moment, launch: Launch, stack: Stack) -> bool:
    """Waits for the moment; False if the launch ended first."""
    how = dict(EVENTS).get(moment.event or moment.anchor or "")
    since = None if how is not None else launch.started
    while launch.running():
        if since is None and how is not None and _event_seen(launch, stack, how):
            since = time.monotonic()
            if moment.event is not None:
                return True
        if since is not None and time.monotonic() - since >= (moment.offset or 0.0):
            return True
        time.sleep(0.001)
    return False


def _kill(launch: Launch, mode: str) -> bool:
    """SIGKILLs what the mode says; False if nothing was left to kill."""
    if mode == "group":
        assert isinstance(launch, ColdLaunch), "a warm step process has no group of its own"
        launch.kill_group()
        return True
    while launch.running():
        if mode == "supervisor":
            supervisor = launch.supervisor()
            if supervisor is not None:
                launch.child()  # remembered: it must end with its supervisor
                with contextlib.suppress(ProcessLookupError):
                    os.kill(supervisor, signal.SIGKILL)
                return True
            time.sleep(0.001)
            continue
        # child: the step; before the fork there is none yet, so wait for it.
        child = launch.child()
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            return True
        time.sleep(0.001)
    return False


def kill_once(project: Project, folder: Path, moment: Moment, mode: str) -> Kill:
    """Kills the producer at one moment, relaunches it and the consumer, checks the run."""
    begun = time.monotonic()
    stack = Stack(folder, project)
    first = stack.launch("produce", "first")
    killed_at = None
    if _wait_for(moment, first, stack) and _kill(first, mode):
        killed_at = time.monotonic() - first.started
    first.finish()
    anomalies: list[str] = []
    if not first.gone():
        anomalies.append("a process of the killed launch is left running")
        first.kill_all()
    after_kill = recorded(stack)
    if mode == "child" and killed_at is not None:
        if first.code not in (70, 0):
            anomalies.append(f"the killed launch's supervisor exited {first.code}, not 70")
        if first.code == 70:
            problem = _record_problem(folder / "first.record.json")
            if problem:
                anomalies.append(f"the supervisor wrote {problem}")
        left = [s for s in after_kill.run_states if s in {"NEW", "RUNNING"}]
        if left:
            anomalies.append(f"the supervisor left executions {left}")
        held = [n for n, until, state in after_kill.claims if state == "running" and until > 0]
        if held and first.code == 70:
            anomalies.append(f"the supervisor did not release the claims {held}")
    published = after_kill.published
    relaunch = stack.run("produce", "relaunch")
    expected = 67 if published else 0
    if relaunch.code != expected:
        anomalies.append(
            f"the relaunch exited {relaunch.code}, expected {expected}: {_first_line(relaunch)}"
        )
    consumer = stack.run("consume", "consumer")
    anomalies += run_invariants(stack, relaunch, consumer)
    state = recorded(stack)
    unreleased = [n for n, _, s in state.claims if s == "running"]
    allowed = 1 if mode in {"group", "supervisor"} and killed_at is not None else 0
    if len(unreleased) > allowed:
        anomalies.append(f"claims never released: {unreleased}")
    return Kill(
        moment,
        mode,
        killed_at,
        first.code,
        published,
        relaunch.code,
        consumer.code,
        anomalies,
        time.monotonic() - begun,
    )


# --------------------------------------------------------------------------- concurrent launches


@dataclass
class Round:
    """One round of simultaneous launches."""

    index: int
    tolerate: bool
    codes: list[int | None]
    executed: int
    anomalies: list[str]
    seconds: float


def concurrent_round(project: Project, folder: Path, index: int, launches: int) -> Round:
    """Launches the producer ``launches`` times at once in one run, then the consumer."""
    begun = time.monotonic()
    stack = Stack(folder, project)
    tolerate = index % 2 == 1
    extra = {"STEPWIRE_TOLERATE_RERUN": "1"} if tolerate else {}
    # The default lease (30 s; waits of 60 s): the losers wait for the winner.
    started = [
        stack.launch("produce", f"launch-{k}", STEPWIRE_ATTEMPT_LEASE="30", **extra)
        for k in range(launches)
    ]
    codes = [launch.finish(180) for launch in started]
    executed = sum(launch.saw("starting (attempt") for launch in started)
    anomalies = []
    expected = [0] * launches if tolerate else [0] + [67] * (launches - 1)
    if sorted(c if c is not None else -1 for c in codes) != expected:
        anomalies.append(f"exit codes {codes}, expected {expected} in some order")
    if executed != 1:
        anomalies.append(f"{executed} launches ran the step, not one")
    consumer = stack.run("consume", "consumer")
    anomalies += run_invariants(stack, None, consumer)
    return Round(index, tolerate, codes, executed, anomalies, time.monotonic() - begun)


# --------------------------------------------------------------------------- the sweep


@dataclass
class Sweep:
    """Everything one run of the tool found."""

    calibration: Calibration
    kills: list[Kill]
    rounds: list[Round]

    @property
    def anomalies(self) -> int:
        return sum(bool(k.anomalies) for k in self.kills) + sum(
            bool(r.anomalies) for r in self.rounds
        )


def sweep(
    count: int,
    modes: Sequence[str],
    *,
    rounds: int = 0,
    launches: int = 3,
    calibration_runs: int = 3,
    warm: bool = False,
    events: Sequence[str] | None = None,
    root: Path | None = None,
    keep: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> Sweep:
    """Calibrates, kills at ``count`` moments in each mode, runs the concurrent rounds.

    Args:
        count: Moments per mode.
        modes: Kill modes (``group``, ``child``, ``supervisor``).
        rounds: Rounds of simultaneous launches.
        launches: Launches per round.
        calibration_runs: Calibration runs (the median of their times is used).
        warm: Launch every step process from a warm parent, as the ``subprocess``
            orchestrator does (``group`` kills are then not possible).
        events: Kill only at these events (names of :data:`EVENTS`), not at ``count``
            moments.
        root: The working folder (a temporary one, removed, when None).
        keep: Keep each kill's folder (else removed once it is judged clean).
        progress: Called with one line per kill or round.

    Returns:
        What was found.
    """
    with contextlib.ExitStack() as exits:
        if root is None:
            root = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="sigkill-sweep-")))
        project = Project.create(root)
        if warm:
            from stepwire.orchestrators.warm_launch import WarmLauncher

            env = python_env([str(project.code)])
            project.warm = exits.enter_context(WarmLauncher(env))
            project.pool = exits.enter_context(ThreadPoolExecutor(max(4, launches)))
        calibration = calibrate(project, root, calibration_runs)
        timeline = ", ".join(f"{name} {t:.3f}s" for name, t in calibration.events.items())
        progress(f"calibration: the producer lives {calibration.seconds:.3f}s; {timeline}")
        kills = []
        for mode in modes:
            unknown = set(events or ()) - {name for name, _ in EVENTS}
            assert not unknown, f"no such events: {sorted(unknown)}"
            chosen = (
                [Moment(f"at {name}", event=name) for name in events]
                if events is not None
                else moments(count, calibration)
            )
            for index, moment in enumerate(chosen):
                folder = root / "kills" / f"{mode}-{index:03d}"
                kill = kill_once(project, folder, moment, mode)
                kills.append(kill)
                progress(_kill_line(kill))
                if not keep and not kill.anomalies:
                    shutil.rmtree(folder, ignore_errors=True)
        done = []
        for index in range(rounds):
            folder = root / "rounds" / f"{index:03d}"
            result = concurrent_round(project, folder, index, launches)
            done.append(result)
            progress(_round_line(result))
            if not keep and not result.anomalies:
                shutil.rmtree(folder, ignore_errors=True)
    return Sweep(calibration, kills, done)


def _kill_line(kill: Kill) -> str:
    when = "after its end" if kill.killed_at is None else f"killed at {kill.killed_at:.3f}s"
    published = "published" if kill.published_before else "not published"
    verdict = "ok" if not kill.anomalies else "ANOMALY: " + "; ".join(kill.anomalies)
    return (
        f"{kill.mode:<10} {kill.moment.label:<32} {when:<20} first {kill.first_code!s:>4} "
        f"({published:<13}) relaunch {kill.relaunch_code!s:>3} consumer "
        f"{kill.consumer_code!s:>3} {kill.seconds:4.1f}s  {verdict}"
    )


def _round_line(result: Round) -> str:
    how = "tolerated" if result.tolerate else "plain"
    verdict = "ok" if not result.anomalies else "ANOMALY: " + "; ".join(result.anomalies)
    return (
        f"concurrent round {result.index} ({how}): codes {result.codes}, "
        f"{result.executed} ran the step, {result.seconds:.1f}s  {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the sweep and prints what it found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--moments", type=int, default=69, help="moments per mode (default 69)")
    parser.add_argument(
        "--modes", default="group,child", help="comma-separated: group, child, supervisor"
    )
    parser.add_argument(
        "--concurrent", type=int, default=0, metavar="R", help="rounds of simultaneous launches"
    )
    parser.add_argument("--launches", type=int, default=3, help="launches per concurrent round")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="fork the step processes from a warm parent, as the subprocess orchestrator does "
        "(modes child and supervisor)",
    )
    parser.add_argument("--keep", metavar="FOLDER", help="work in FOLDER and keep every run")
    options = parser.parse_args(argv)
    modes = [m for m in options.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")
    if options.warm and "group" in modes:
        parser.error("a warm step process shares its warm parent's group: use child,supervisor")
    root = None
    if options.keep:
        root = Path(options.keep).resolve()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
    started = time.monotonic()
    result = sweep(
        options.moments,
        modes,
        rounds=options.concurrent,
        launches=options.launches,
        warm=options.warm,
        root=root,
        keep=bool(options.keep),
        progress=lambda line: print(line, flush=True),
    )
    kill_anomalies = sum(bool(k.anomalies) for k in result.kills)
    killed = sum(k.killed_at is not None for k in result.kills)
    how = "warm step processes" if options.warm else "cold step processes"
    print(
        f"{len(result.kills)} moments ({how}, {options.moments} x {', '.join(modes)}; "
        f"{killed} killed while running, {len(result.kills) - killed} after the end), "
        f"{kill_anomalies} anomalies"
    )
    if options.concurrent:
        round_anomalies = sum(bool(r.anomalies) for r in result.rounds)
        print(
            f"{len(result.rounds)} concurrent rounds of {options.launches} launches, "
            f"{round_anomalies} anomalies"
        )
    print(f"({time.monotonic() - started:.0f} s)")
    return 0 if result.anomalies == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
