"""Malformed inputs through real step processes: is each one handled cleanly?

Every case starts from the command line the ``subprocess`` orchestrator builds for a
small real pipeline (``produce -> consume``, planned with ``plan_step_processes``
and ``SubprocessEntrypointConfiguration``, the pipeline root left to the step's
stack) and breaks one thing: an option (missing, empty, repeated, unknown, not
UTF-8, not base64, not JSON, the wrong JSON shape, a broken zlib stream, too big), a
by-reference value (outside the store, a link, a FIFO, a device, missing, the wrong
sha256), the contract version, the pipeline IR (a custom driver, another step's
executor, a root outside the store, an output key ``../../x``, an undeclared or
non-JSON parameter), the user's code (does not import, raises at import, raises,
``os._exit(0)``, segfaults, kills itself, an exception whose ``__str__`` raises, lone
surrogates, a 10 KB step name) or the stack's environment (a bad metadata path, an
empty metadata file, an unknown store type, a held lock). Each case runs
``python -m stepwire.entrypoints.step_entrypoint`` in a folder of its own, with a
SQLite ML Metadata and an artifact store there, and is **handled cleanly** when:

* the exit code is the one the case expects (README, "When a step fails");
* for a failure, stderr's first line is ``stepwire: <kind>: ...``; for bad arguments
  (64) it is the only line (no traceback);
* for a failure, ``$STEPWIRE_FAILURE_RECORD`` holds UTF-8 JSON of at most 4096 bytes
  whose kind and exit code are the process's; for a success there is no record;
* the process ended within the timeout;
* nothing was created outside the case's artifact store and metadata file (the rest
  of its folder, the rest of the temporary folder and the paths a hostile input
  aims at outside it are compared before and after);
* ML Metadata holds no execution left NEW or RUNNING and no attempt claim left
  unreleased.

Run it::

    python tools/stress/bad_inputs.py               # every case
    python tools/stress/bad_inputs.py --only zlib --only 'IR:' --jobs 2
    python tools/stress/bad_inputs.py --list

It prints a table (case, expected, got, clean?, why not) and ``N inputs, M handled
cleanly``, and exits 1 when a case was not handled cleanly.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepwire.entrypoints import codec

KINDS = {
    64: "bad_arguments",
    65: "user_code_not_loadable",
    66: "inputs_unresolvable",
    67: "already_succeeded",
    70: "step_failed",
    75: "infrastructure",
}
ARGS, LOAD, INPUTS, DONE, STEP, INFRA = 64, 65, 66, 67, 70, 75
MAX_RECORD_BYTES = 4096
MAX_NAME_BYTES = 256
RUN = "bi-run"
LONG_RUN = "bi-long"
LONG_STEP = "s" * 10240
PIPELINE = "bad_inputs"

# --------------------------------------------------------------------------- user code

STEPS_MODULE = '''
"""The pipeline every case starts from; the producer misbehaves as $BI_HOW says."""

import ctypes
import os
import signal
import subprocess
import sys

from stepwire.artifacts import DataArtifact
from stepwire.pipelines import pipeline
from stepwire.steps import step


class Hostile(Exception):
    def __str__(self):
        raise RuntimeError("str() itself fails")


class NotAMaterializer:
    pass


class NotAnArtifact:
    pass


def _recurse(n):
    return _recurse(n + 1) + 1


def misbehave():
    how = os.environ.get("BI_HOW", "")
    if how == "raise":
        raise RuntimeError("the step raised on purpose")
    if how == "os_exit0":
        os._exit(0)
    if how == "os_exit3":
        os._exit(3)
    if how == "sys_exit0":
        sys.exit(0)
    if how == "sys_exit_text":
        sys.exit("a message instead of a code")
    if how == "segv":
        ctypes.string_at(0)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    if how == "abort":
        os.abort()
    if how == "hostile_str":
        raise Hostile()
    if how == "surrogates":
        raise ValueError("lone surrogates: \\ud800 \\udcff \\udfff end")
    if how == "huge_message":
        raise RuntimeError("line\\n" * 200_000)
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt()
    if how == "base_exception":
        raise BaseException("a BaseException that is not an Exception")
    if how == "recursion":
        _recurse(0)
    if how == "cyclic_cause":
        first, second = RuntimeError("first"), RuntimeError("second")
        first.__cause__, second.__cause__ = second, first
        raise first
    if how == "close_fds":
        os.close(1)
        os.close(2)
        raise RuntimeError("raised with stdout and stderr closed")
    if how == "print_flood":
        chunk = "x" * 1023 + "\\n"
        for _ in range(5 * 1024):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    if how == "daemon_child":
        # A grandchild that keeps the step's stdout and stderr open after it ends.
        subprocess.Popen(["sleep", "20"])
    if how == "wrong_type":
        return "not an int"
    if how == "no_materializer":
        return object()
    return None


@step
def produce(start: int = 1) -> int:
    value = misbehave()
    return start if value is None else value


@step
def consume(value: int) -> int:
    return value + 1


@pipeline
def bad_inputs(produce, consume):
    consume(value=produce())


@pipeline
def single(produce):
    produce()


bad_inputs_pipeline = bad_inputs(produce=produce(), consume=consume())
long_name_pipeline = single(produce=produce().named("s" * 10240))
'''

OTHER_MODULES = {
    "bi_raises_at_import.py": 'raise RuntimeError("raised at import on purpose")\n',
    "bi_syntax_error.py": "def broken(:\n    pass\n",
    "bi_exits_at_import.py": "import sys\nsys.exit(3)\n",
    "bi_os_exit_at_import.py": "import os\nos._exit(0)\n",
    "bi_notsteps.py": "class produce:\n    pass\n",
    "bi_configs.py": textwrap.dedent(
        """
        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration,
        )


        class NotAConfig:
            pass


        class Cfg(SubprocessEntrypointConfiguration):
            pass
        """
    ),
}

PLANNER = textwrap.dedent(
    """
    import json
    import pathlib
    import sys

    from stepwire import constants

    constants.USER_MAIN_MODULE = "bi_steps"
    import bi_steps
    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator
    from stepwire.orchestrators.step_processes import plan_step_processes
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration

    plans = {}


    class Plan(BaseOrchestrator):
        # Keeps every step's command line, as the subprocess orchestrator builds it.
        def prepare_or_run_pipeline(self, sorted_list_of_steps, pipeline, pb2_pipeline, stack,
                                    runtime_configuration):
            plan = plan_step_processes(
                SubprocessEntrypointConfiguration, sorted_list_of_steps, pb2_pipeline, stack,
                runtime_configuration.run_name,
            )
            plans.update(plan.commands)


    bi_steps.bad_inputs_pipeline.run(run_name=sys.argv[2], orchestrator=Plan())
    bi_steps.long_name_pipeline.run(run_name=sys.argv[3], orchestrator=Plan())
    pathlib.Path(sys.argv[1]).write_text(json.dumps(plans))
    """
)

# --------------------------------------------------------------------------- the project


def stepwire_source() -> str:
    """The folder this process imports stepwire from: the step processes import it too."""
    import stepwire

    return str(Path(stepwire.__file__).resolve().parents[1])


def python_env(extra_path: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment without any stack, with the user's code importable.

    The step processes import the same stepwire as this process (a checkout given
    with ``PYTHONPATH`` included), then the folders of ``extra_path``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPWIRE_", "PYTHON", "BI_"))}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([stepwire_source(), *extra_path])
    return env


@dataclass
class Project:
    """The user modules and the planned command lines, under one temporary folder."""

    root: Path
    code: Path
    commands: dict[str, list[str]]

    @classmethod
    def create(cls, root: Path) -> Project:
        code = root / "code"
        code.mkdir(parents=True)
        (code / "bi_steps.py").write_text(STEPS_MODULE)
        for name, text in OTHER_MODULES.items():
            (code / name).write_text(text)
        (code / "plan_it.py").write_text(PLANNER)
        plan = root / "plan.json"
        env = python_env([str(code)])
        env.update(
            STEPWIRE_CONFIG="",
            STEPWIRE_ARTIFACT_STORE=str(root / "plan-stack" / "artifacts"),
            STEPWIRE_METADATA_URI=str(root / "plan-stack" / "metadata.db"),
        )
        made = subprocess.run(
            [sys.executable, str(code / "plan_it.py"), str(plan), RUN, LONG_RUN],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if made.returncode != 0:
            raise RuntimeError(f"planning the pipeline failed:\n{made.stderr[-4000:]}")
        commands: dict[str, list[str]] = json.loads(plan.read_text())
        return cls(root, code, commands)

    def command(self, step: str) -> list[str]:
        return self.commands[step][:3]

    def args(self, step: str) -> list[str]:
        return list(self.commands[step][3:])


# --------------------------------------------------------------------------- one case

Arg = str | bytes


@dataclass
class Ctx:
    """What a case's builders see: the project and the case's own folder."""

    project: Project
    folder: Path
    # Paths outside the whole temporary folder that a hostile input aims at.
    escapes: list[Path] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def stack(self) -> Path:
        return self.folder / "stack"

    @property
    def artifacts(self) -> Path:
        return self.stack / "artifacts"

    @property
    def metadata(self) -> Path:
        return self.stack / "metadata.db"

    @property
    def references(self) -> Path:
        return self.artifacts / ".references"

    @property
    def outside(self) -> Path:
        """A path beside the temporary folder: nothing may ever be created there."""
        path = self.project.root.parent / f"{self.project.root.name}-outside-{self.folder.name}"
        self.escapes.append(path)
        return path

    def args(self, step: str = "produce") -> list[str]:
        return self.project.args(step)

    def decoded(self, step: str = "produce") -> Any:
        return codec.decode(self.args(step)).args

    def ir(self, step: str = "produce") -> dict[str, Any]:
        ir: dict[str, Any] = json.loads(self.decoded(step).pipeline_json)
        return ir

    def payload(self, step: str = "produce") -> bytes:
        """The canonical JSON payload of the step's ``--pipeline_json``."""
        return base64.b64decode(value_of(self.args(step), "pipeline_json"))

    def reference(self, payload: bytes, *, sha: str | None = None, name: str | None = None) -> str:
        """Stores ``payload`` in this case's references folder; returns the ``ref:`` value."""
        digest = hashlib.sha256(payload).hexdigest()
        self.references.mkdir(parents=True, exist_ok=True)
        path = self.references / (name or digest)
        path.write_bytes(payload)
        return f"ref:sha256:{sha or digest}:{path}"


@dataclass(frozen=True)
class Before:
    """A launch in the case's stack before the case's own, and the code it must end with."""

    step: str
    expect: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One malformed input and the exit code it must give.

    Attributes:
        name: What is broken.
        expect: The documented exit code.
        argv: Builds the arguments after the command.
        env: More variables (``{case}`` is the case's folder).
        setup: Prepares files in the case's folder before the launch.
        step: Which step's command it launches (``argv`` builds its arguments).
        before: Launches in the same stack first.
        store_broken: The metadata store is meant to be unusable: not read afterwards.
        error_kind: For bad arguments, the contract's error kind the record must name.
        fragment: Text the first line must hold.
        record: Whether a failure record can be written (False when the case breaks it).
    """

    name: str
    expect: int
    argv: Callable[[Ctx], Sequence[Arg]]
    env: Mapping[str, str] = field(default_factory=dict)
    setup: Callable[[Ctx], None] | None = None
    step: str = "produce"
    before: tuple[Before, ...] = ()
    store_broken: bool = False
    error_kind: str | None = None
    fragment: str = ""
    record: bool = True


@dataclass
class Result:
    """How one case went."""

    case: Case
    got: int | None
    seconds: float
    problems: list[str]
    first_line: str = ""

    @property
    def clean(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- argv helpers


def value_of(args: Sequence[Arg], flag: str) -> str:
    index = list(args).index(f"--{flag}")
    value = args[index + 1]
    assert isinstance(value, str)
    return value


def replace(args: Sequence[Arg], flag: str, value: Arg) -> list[Arg]:
    """The arguments with ``--flag``'s value replaced (written ``--flag=value`` if it is -x)."""
    result = list(args)
    index = result.index(f"--{flag}")
    starts_with_dash = value.startswith(b"-") if isinstance(value, bytes) else value[:1] == "-"
    if starts_with_dash:
        joined = f"--{flag}=".encode() + value if isinstance(value, bytes) else f"--{flag}={value}"
        result[index : index + 2] = [joined]
    else:
        result[index + 1] = value
    return result


def drop(args: Sequence[Arg], flag: str) -> list[Arg]:
    result = list(args)
    index = result.index(f"--{flag}")
    del result[index : index + 2]
    return result


def b64(data: bytes | str) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def b64_json(value: Any) -> str:
    return b64(json.dumps(value))


def deflate(data: bytes, *, wbits: int) -> bytes:
    """``data`` compressed with a header other than zlib's (raw deflate, gzip)."""
    compressor = zlib.compressobj(9, wbits=wbits)
    return compressor.compress(data) + compressor.flush()


def zlib_value(data: bytes) -> str:
    return "zlib:" + b64(data)


def with_ir(
    edit: Callable[[dict[str, Any]], Any], *, step: str = "produce", step_source: str | None = None
) -> Callable[[Ctx], list[Arg]]:
    """Re-encodes the step's arguments with its IR edited (``edit`` may return a new IR)."""

    def build(ctx: Ctx) -> list[Arg]:
        decoded = ctx.decoded(step)
        ir = json.loads(decoded.pipeline_json)
        changed = edit(ir)
        args = codec.EntrypointArgs()
        args.CopyFrom(decoded)
        args.pipeline_json = json.dumps(ir if changed is None else changed)
        if step_source is not None:
            args.step_source = step_source
        return list(codec.encode(args))

    return build


def renamed_pipeline(ir: Any) -> Any:
    """The IR with its pipeline named ``p`` * 10240, wherever the name appears."""
    long = "p" * 10240

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if value == PIPELINE:
            return long
        if isinstance(value, str) and value.startswith(f"{PIPELINE}."):
            return long + value[len(PIPELINE) :]
        return value

    return walk(ir)


def node(ir: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = ir["nodes"][0]["pipelineNode"]
    return found


def executor(ir: dict[str, Any], step: str = "produce") -> dict[str, Any]:
    found: dict[str, Any] = ir["deploymentConfig"]["executorSpecs"][step]
    return found


def moved_to(module: str) -> Callable[[Ctx], list[Arg]]:
    """The producer's arguments with its step (and so its executor) in ``module``."""

    def edit(ir: dict[str, Any]) -> None:
        executor(ir)["classPath"] = f"{module}.produce_Executor"

    return with_ir(edit, step_source=f"{module}.produce")


def per(value: str, make: Callable[[Ctx, str], list[Arg]]) -> Callable[[Ctx], list[Arg]]:
    """A builder of one option's (or value's) case."""
    return lambda ctx: make(ctx, value)


def same(ctx: Ctx) -> list[Arg]:
    return list(ctx.args())


def consumer(ctx: Ctx) -> list[Arg]:
    return list(ctx.args("consume"))


# --------------------------------------------------------------------------- the corpus

PLAIN = ["entrypoint_config_source", "main_module_source", "step_source", "run_name"]
JSON_OPTIONS = ["pipeline_json", "input_artifact_sources", "materializer_sources"]
ALL_OPTIONS = [
    "entrypoint_config_source",
    "main_module_source",
    "step_source",
    "pipeline_json",
    "input_artifact_sources",
    "materializer_sources",
    "contract_version",
    "run_name",
]
PYTHON_CLASS = "type.googleapis.com/tfx.orchestration.executable_spec.PythonClassExecutableSpec"
BEAM = "type.googleapis.com/tfx.orchestration.executable_spec.BeamExecutableSpec"
ZLIB_BOMB_BYTES = 65 * 1024 * 1024
MAX_INFLATED_BYTES = 4 * 1024 * 1024


def padded(payload: bytes, size: int) -> bytes:
    """The JSON payload with whitespace after its first ``{``, ``size`` bytes in all."""
    return payload[:1] + b" " * (size - len(payload)) + payload[1:]


def _option_cases() -> list[Case]:
    cases: list[Case] = []
    for flag in ALL_OPTIONS:
        missing_code = 0 if flag == "contract_version" else ARGS
        cases.append(
            Case(
                f"--{flag}: missing",
                missing_code,
                per(flag, lambda c, f: drop(c.args(), f)),
                error_kind=None if missing_code == 0 else "missing_option",
            )
        )
        empty_kind = {"contract_version": "bad_value"}.get(flag, "empty_value")
        if flag in JSON_OPTIONS:
            empty_kind = "bad_json"
        cases += [
            Case(
                f"--{flag}: empty",
                ARGS,
                per(flag, lambda c, f: replace(c.args(), f, "")),
                error_kind=empty_kind,
            ),
            Case(
                f"--{flag}=: empty, one element",
                ARGS,
                per(flag, lambda c, f: [*drop(c.args(), f), f"--{f}="]),
                error_kind=empty_kind,
            ),
            Case(
                f"--{flag}: repeated",
                ARGS,
                per(flag, lambda c, f: [*c.args(), f"--{f}", value_of(c.args(), f)]),
                error_kind="repeated_option",
            ),
            Case(
                f"--{flag}: repeated as --{flag}=value",
                ARGS,
                per(flag, lambda c, f: [f"--{f}={value_of(c.args(), f)}", *c.args()]),
                error_kind="repeated_option",
            ),
            Case(
                f"--{flag}: no value, last",
                ARGS,
                per(flag, lambda c, f: [*drop(c.args(), f), f"--{f}"]),
                error_kind="missing_value",
            ),
            Case(
                f"--{flag}: no value, followed by another option",
                ARGS,
                per(flag, lambda c, f: [f"--{f}", *drop(c.args(), f)]),
                error_kind="missing_value",
            ),
        ]
    for flag in PLAIN:
        cases.append(
            Case(
                f"--{flag}: not UTF-8 (byte 0xff)",
                ARGS,
                per(
                    flag,
                    lambda c, f: replace(c.args(), f, value_of(c.args(), f).encode() + b"\xff"),
                ),
                error_kind="bad_utf8",
            )
        )
    cases.append(
        Case(
            "--run_name: overlong UTF-8 (0xc0 0xaf)",
            ARGS,
            lambda c: replace(c.args(), "run_name", b"run\xc0\xafname"),
            error_kind="bad_utf8",
        )
    )
    for flag in JSON_OPTIONS:
        cases.append(
            Case(
                f"--{flag}: payload not UTF-8",
                ARGS,
                per(flag, lambda c, f: replace(c.args(), f, b64(b'{"a": "\xff\xfe"}'))),
                error_kind="bad_utf8",
            )
        )
    cases.append(
        Case(
            "--contract_version: not UTF-8",
            ARGS,
            lambda c: replace(c.args(), "contract_version", b"1\xff"),
            error_kind="bad_value",
        )
    )
    return cases


def _unknown_and_stray_cases() -> list[Case]:
    return [
        Case(
            "unknown option with a value, first", 0, lambda c: ["--no_such_option", "x", *c.args()]
        ),
        Case("unknown option without a value, last", 0, lambda c: [*c.args(), "--no_such_option"]),
        Case("unknown option --x=--y", 0, lambda c: ["--x=--y", *c.args()]),
        Case("---triple-dash option", 0, lambda c: ["---x", *c.args()]),
        Case("undeclared custom option --attempt 1", 0, lambda c: [*c.args(), "--attempt", "1"]),
        Case(
            "10,000 unknown options",
            0,
            lambda c: [*c.args(), *[w for i in range(10_000) for w in (f"--u{i}", "v")]],
        ),
        Case(
            "command line of 1.6 MB (16 unknown values of 100 KB)",
            0,
            lambda c: [*c.args(), *[w for i in range(16) for w in (f"--big{i}", "v" * 100_000)]],
        ),
        Case("-- alone", ARGS, lambda c: ["--", *c.args()], error_kind="unexpected_argument"),
        Case(
            "a stray word",
            ARGS,
            lambda c: [*c.args()[:2], "stray", *c.args()[2:]],
            error_kind="unexpected_argument",
        ),
        Case("-x, one dash", ARGS, lambda c: ["-x", *c.args()], error_kind="unexpected_argument"),
        Case("no arguments at all", ARGS, lambda c: [], error_kind="missing_option"),
    ]


def _encoding_cases() -> list[Case]:
    mats = "materializer_sources"
    pj = "pipeline_json"

    def zlib_of(edit: Callable[[bytes], bytes]) -> Callable[[Ctx], list[Arg]]:
        return lambda c: replace(c.args(), pj, zlib_value(edit(c.payload())))

    return [
        # base64
        Case(
            "base64: not base64",
            ARGS,
            lambda c: replace(c.args(), mats, "not*base64!"),
            error_kind="bad_base64",
        ),
        Case(
            "base64: URL-safe alphabet",
            ARGS,
            lambda c: replace(c.args(), mats, "ab-_"),
            error_kind="bad_base64",
        ),
        Case(
            "base64: a space inside",
            ARGS,
            lambda c: replace(
                c.args(), mats, value_of(c.args(), mats)[:8] + " " + value_of(c.args(), mats)[8:]
            ),
            error_kind="bad_base64",
        ),
        Case(
            "base64: a newline inside",
            ARGS,
            lambda c: replace(
                c.args(), mats, value_of(c.args(), mats)[:8] + "\n" + value_of(c.args(), mats)[8:]
            ),
            error_kind="bad_base64",
        ),
        Case(
            "base64: length 4n+1",
            ARGS,
            lambda c: replace(c.args(), mats, "e30=A"),
            error_kind="bad_base64",
        ),
        Case(
            "base64: misplaced =",
            ARGS,
            lambda c: replace(c.args(), mats, "e3=0"),
            error_kind="bad_base64",
        ),
        Case(
            "base64: non-zero padding bits",
            ARGS,
            lambda c: replace(c.args(), mats, "e31="),
            error_kind="bad_base64",
        ),
        Case(
            "base64: unpadded {} for --input_artifact_sources",
            0,
            lambda c: replace(c.args(), "input_artifact_sources", "e30"),
        ),
        # JSON
        Case(
            "JSON: truncated",
            ARGS,
            lambda c: replace(c.args(), mats, b64("{")),
            error_kind="bad_json",
        ),
        Case(
            "JSON: NaN",
            ARGS,
            lambda c: replace(c.args(), mats, b64('{"output": NaN}')),
            error_kind="bad_json",
        ),
        Case(
            "JSON: duplicate names",
            ARGS,
            lambda c: replace(c.args(), mats, b64('{"output": "a", "output": "b"}')),
            error_kind="bad_json",
        ),
        Case(
            "JSON: lone surrogate escape",
            ARGS,
            lambda c: replace(c.args(), mats, b64('{"output": "\\ud800"}')),
            error_kind="bad_json",
        ),
        Case(
            "JSON: number that overflows a double",
            ARGS,
            lambda c: replace(c.args(), pj, b64('{"a": 1e999}')),
            error_kind="bad_json",
        ),
        # Not canonical and not a string: the contract (section 3.3) checks the syntax
        # and the canonical form ("else bad_json") before "any other" wrong shape.
        Case(
            "JSON: a map value that overflows a double",
            ARGS,
            lambda c: replace(c.args(), mats, b64('{"output": 1e999}')),
            error_kind="bad_json",
        ),
        Case(
            "JSON: nested 501 deep",
            ARGS,
            lambda c: replace(c.args(), pj, b64('{"a":' * 501 + "1" + "}" * 501)),
            error_kind="bad_json",
        ),
        Case(
            "JSON: nested 500 deep (the limit) in a map option",
            ARGS,
            lambda c: replace(c.args(), mats, b64('{"a":' * 499 + "{}" + "}" * 499)),
            error_kind="wrong_json_shape",
        ),
        Case(
            "JSON: two texts",
            ARGS,
            lambda c: replace(c.args(), mats, b64("{}{}")),
            error_kind="bad_json",
        ),
        Case(
            "JSON: trailing garbage",
            ARGS,
            lambda c: replace(c.args(), mats, b64("{} x")),
            error_kind="bad_json",
        ),
        Case(
            "JSON: a byte order mark",
            ARGS,
            lambda c: replace(c.args(), mats, b64("\ufeff{}")),
            error_kind="bad_json",
        ),
        # shape
        Case(
            "shape: --pipeline_json is a list",
            ARGS,
            lambda c: replace(c.args(), pj, b64("[]")),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: --pipeline_json is null",
            ARGS,
            lambda c: replace(c.args(), pj, b64("null")),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: --pipeline_json is a string",
            ARGS,
            lambda c: replace(c.args(), pj, b64('"text"')),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: --pipeline_json nodes is a number",
            ARGS,
            lambda c: replace(c.args(), pj, b64_json({"nodes": 5})),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: --pipeline_json has an unknown field",
            ARGS,
            lambda c: replace(c.args(), pj, b64_json({"noSuchField": 1})),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: a map value that is a number",
            ARGS,
            lambda c: replace(c.args(), mats, b64_json({"output": 5})),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: a map that is a list",
            ARGS,
            lambda c: replace(c.args(), mats, b64_json(["output"])),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: a map value that is null",
            ARGS,
            lambda c: replace(c.args(), "input_artifact_sources", b64_json({"a": None})),
            error_kind="wrong_json_shape",
        ),
        Case(
            "shape: a map value holding U+0000",
            ARGS,
            lambda c: replace(c.args(), mats, b64('{"output": "a\\u0000b"}')),
            error_kind="bad_value",
        ),
        # zlib
        Case("zlib: the IR compressed (valid)", 0, zlib_of(lambda p: zlib.compress(p, 9))),
        Case(
            "zlib: not a zlib stream",
            ARGS,
            zlib_of(lambda p: b"garbage, not zlib"),
            error_kind="bad_compressed",
        ),
        Case(
            "zlib: truncated stream",
            ARGS,
            zlib_of(lambda p: zlib.compress(p)[:-10]),
            error_kind="bad_compressed",
        ),
        Case(
            "zlib: bytes after the stream",
            ARGS,
            zlib_of(lambda p: zlib.compress(p) + b"tail"),
            error_kind="bad_compressed",
        ),
        Case(
            "zlib: raw deflate, no header",
            ARGS,
            zlib_of(lambda p: deflate(p, wbits=-15)),
            error_kind="bad_compressed",
        ),
        Case(
            "zlib: gzip instead",
            ARGS,
            zlib_of(lambda p: deflate(p, wbits=31)),
            error_kind="bad_compressed",
        ),
        Case(
            "zlib: prefix alone",
            ARGS,
            lambda c: replace(c.args(), pj, "zlib:"),
            error_kind="bad_compressed",
        ),
        Case(
            "zlib: not base64 after the prefix",
            ARGS,
            lambda c: replace(c.args(), pj, "zlib:***"),
            error_kind="bad_base64",
        ),
        Case(
            "zlib: 65 MiB bomb",
            ARGS,
            lambda c: replace(c.args(), pj, zlib_value(zlib.compress(b" " * ZLIB_BOMB_BYTES, 9))),
            error_kind="payload_too_large",
        ),
        Case(
            "zlib: the IR inflating to exactly 4 MiB (the limit)",
            0,
            zlib_of(lambda p: zlib.compress(padded(p, MAX_INFLATED_BYTES), 9)),
        ),
        Case(
            "zlib: the IR inflating to 4 MiB + 1 byte",
            ARGS,
            zlib_of(lambda p: zlib.compress(padded(p, MAX_INFLATED_BYTES + 1), 9)),
            error_kind="payload_too_large",
        ),
        Case(
            "JSON: 1,000,003 values by reference",
            ARGS,
            lambda c: replace(c.args(), pj, c.reference(b'{"a":[' + b"0," * 1_000_000 + b"0]}")),
            error_kind="payload_too_large",
        ),
        Case(
            "zlib: payload not UTF-8",
            ARGS,
            lambda c: replace(c.args(), mats, zlib_value(zlib.compress(b'{"a":"\xff"}'))),
            error_kind="bad_utf8",
        ),
        # size
        Case(
            "size: --pipeline_json padded to 95 KB inline (not canonical)",
            0,
            lambda c: replace(c.args(), pj, b64(c.payload()[:1] + b" " * 70_000 + c.payload()[1:])),
        ),
        Case(
            "size: --pipeline_json of 10 MB by reference (whitespace)",
            0,
            lambda c: replace(
                c.args(), pj, c.reference(c.payload()[:1] + b" " * 10_000_000 + c.payload()[1:])
            ),
        ),
        Case(
            "size: --step_source module of 100 KB",
            ARGS,
            lambda c: replace(c.args(), "step_source", "m" * 100_000 + ".produce"),
        ),
        Case(
            "size: --step_source class of 100 KB",
            ARGS,
            lambda c: replace(c.args(), "step_source", "bi_steps." + "p" * 100_000),
        ),
        Case(
            "size: --main_module_source of 100 KB",
            LOAD,
            lambda c: replace(c.args(), "main_module_source", "m" * 100_000),
        ),
        Case(
            "size: --run_name of 100 KB", 0, lambda c: replace(c.args(), "run_name", "r" * 100_000)
        ),
    ]


def _reference_cases() -> list[Case]:
    pj = "pipeline_json"

    def ref(make: Callable[[Ctx], str], expect: int = ARGS, kind: str | None = None) -> Any:
        return expect, (lambda c: replace(c.args(), pj, make(c))), kind

    def outside_file(c: Ctx) -> str:
        target = c.folder / "elsewhere.json"
        target.write_bytes(c.payload())
        return f"ref:sha256:{hashlib.sha256(c.payload()).hexdigest()}:{target}"

    def traversal(c: Ctx) -> str:
        target = c.folder / "elsewhere.json"
        target.write_bytes(c.payload())
        c.references.mkdir(parents=True, exist_ok=True)
        uri = f"{c.references}/../../../elsewhere.json"
        return f"ref:sha256:{hashlib.sha256(c.payload()).hexdigest()}:{uri}"

    def linked(c: Ctx, target: str) -> str:
        digest = hashlib.sha256(c.payload()).hexdigest()
        c.references.mkdir(parents=True, exist_ok=True)
        if target == "outside":
            elsewhere = c.folder / "elsewhere.json"
            elsewhere.write_bytes(c.payload())
            target = str(elsewhere)
        os.symlink(target, c.references / digest)
        return f"ref:sha256:{digest}:{c.references / digest}"

    def fifo(c: Ctx) -> str:
        digest = hashlib.sha256(c.payload()).hexdigest()
        c.references.mkdir(parents=True, exist_ok=True)
        os.mkfifo(c.references / digest)
        return f"ref:sha256:{digest}:{c.references / digest}"

    def folder(c: Ctx) -> str:
        digest = hashlib.sha256(c.payload()).hexdigest()
        (c.references / digest).mkdir(parents=True)
        return f"ref:sha256:{digest}:{c.references / digest}"

    def missing(c: Ctx) -> str:
        digest = hashlib.sha256(c.payload()).hexdigest()
        return f"ref:sha256:{digest}:{c.references / digest}"

    def sparse(c: Ctx) -> str:
        digest = "0" * 64
        c.references.mkdir(parents=True, exist_ok=True)
        with open(c.references / digest, "wb") as file:
            file.truncate(65 * 1024 * 1024)
        return f"ref:sha256:{digest}:{c.references / digest}"

    def hexdigest(c: Ctx) -> str:
        return hashlib.sha256(c.payload()).hexdigest()

    table: dict[str, tuple[int, Callable[[Ctx], list[Arg]], str | None]] = {
        "ref: valid, inside the store": ref(lambda c: c.reference(c.payload()), 0),
        "ref: sha256 mismatch": ref(
            lambda c: c.reference(c.payload(), sha="a" * 64, name="a" * 64),
            kind="sha256_mismatch",
        ),
        "ref: a file outside the store": ref(outside_file, kind="reference_unavailable"),
        "ref: .. out of the references folder": ref(traversal, kind="reference_unavailable"),
        "ref: a link to a file outside the store": ref(
            lambda c: linked(c, "outside"), kind="reference_unavailable"
        ),
        "ref: a link to /dev/zero": ref(
            lambda c: linked(c, "/dev/zero"), kind="reference_unavailable"
        ),
        "ref: a FIFO": ref(fifo, kind="reference_unavailable"),
        "ref: a folder": ref(folder, kind="reference_unavailable"),
        "ref: missing file": ref(missing, kind="reference_unavailable"),
        "ref: 65 MiB file": ref(sparse, kind="payload_too_large"),
        "ref: /dev/zero": ref(
            lambda c: f"ref:sha256:{hexdigest(c)}:/dev/zero", kind="reference_unavailable"
        ),
        "ref: /etc/passwd": ref(
            lambda c: f"ref:sha256:{hexdigest(c)}:/etc/passwd", kind="reference_unavailable"
        ),
        "ref: file:// URI of the stored file": ref(
            lambda c: "ref:sha256:{}:file://{}".format(
                hexdigest(c), c.reference(c.payload()).rsplit(":", 1)[1]
            ),
            kind="reference_unavailable",
        ),
        "ref: an s3:// URI": ref(
            lambda c: f"ref:sha256:{hexdigest(c)}:s3://no-such-bucket/x",
            kind="reference_unavailable",
        ),
        "ref: empty payload": ref(lambda c: c.reference(b""), kind="bad_json"),
        "ref: uppercase hex": ref(
            lambda c: f"ref:sha256:{hexdigest(c).upper()}:{c.references}/x", kind="bad_reference"
        ),
        "ref: short digest": ref(lambda c: "ref:sha256:abc:/x", kind="bad_reference"),
        "ref: empty URI": ref(lambda c: f"ref:sha256:{hexdigest(c)}:", kind="bad_reference"),
        "ref: prefix alone": ref(lambda c: "ref:", kind="bad_reference"),
        "ref: md5": ref(lambda c: f"ref:md5:{'0' * 32}:/x", kind="bad_reference"),
    }
    return [
        Case(name, expect, build, error_kind=kind) for name, (expect, build, kind) in table.items()
    ]


def _version_cases() -> list[Case]:
    versions = {
        "2": "unsupported_contract_version",
        "4294967295": "unsupported_contract_version",
        "0": "bad_value",
        "01": "bad_value",
        "-1": "bad_value",
        "4294967296": "bad_value",
        "1.0": "bad_value",
        " 1": "bad_value",
        "\uff11": "bad_value",  # a fullwidth digit one
        "9" * 30: "bad_value",
    }
    return [
        Case(
            f"--contract_version {value!r}",
            ARGS,
            per(value, lambda c, v: replace(c.args(), "contract_version", v)),
            error_kind=kind,
        )
        for value, kind in versions.items()
    ] + [
        Case(
            "--contract_version 2 before a missing config",
            ARGS,
            lambda c: ["--contract_version", "2", "--entrypoint_config_source", "nosuch.Cfg"],
            error_kind="unsupported_contract_version",
        )
    ]


def _ir_cases() -> list[Case]:
    def set_in(path: Sequence[Any], value: Any) -> Callable[[dict[str, Any]], None]:
        def edit(ir: dict[str, Any]) -> None:
            target: Any = ir
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = copy.deepcopy(value)

        return edit

    nd: list[Any] = ["nodes", 0, "pipelineNode"]
    params = [*nd, "parameters", "parameters"]
    exe = ["deploymentConfig", "executorSpecs", "produce"]
    data_artifact = {"artifactSpec": {"type": {"name": "stepwire.DataArtifact"}}}

    def root_outside(c: Ctx) -> list[Arg]:
        return with_ir(
            set_in(["runtimeSpec", "pipelineRoot"], {"fieldValue": {"stringValue": str(c.outside)}})
        )(c)

    def root_is_the_store(c: Ctx) -> list[Arg]:
        return with_ir(
            set_in(
                ["runtimeSpec", "pipelineRoot"], {"fieldValue": {"stringValue": str(c.artifacts)}}
            )
        )(c)

    def two_nodes(ir: dict[str, Any]) -> None:
        ir["nodes"].append(copy.deepcopy(ir["nodes"][0]))

    def drop_key(path: Sequence[Any]) -> Callable[[dict[str, Any]], None]:
        def edit(ir: dict[str, Any]) -> None:
            target: Any = ir
            for key in path[:-1]:
                target = target[key]
            del target[path[-1]]

        return edit

    return [
        Case(
            "IR: custom driver class",
            ARGS,
            with_ir(
                set_in(
                    ["deploymentConfig", "customDriverSpecs"],
                    {"produce": {"@type": PYTHON_CLASS, "classPath": "bi_steps.Hostile"}},
                )
            ),
        ),
        Case(
            "IR: executor class of another step",
            ARGS,
            with_ir(set_in([*exe, "classPath"], "bi_steps.consume_Executor")),
        ),
        Case(
            "IR: executor class that is not an executor",
            ARGS,
            with_ir(set_in([*exe, "classPath"], "bi_steps.Hostile")),
        ),
        Case(
            "IR: executor module elsewhere",
            ARGS,
            with_ir(set_in([*exe, "classPath"], "os.produce_Executor")),
        ),
        Case(
            "IR: Beam executor spec",
            ARGS,
            with_ir(
                set_in(
                    exe,
                    {
                        "@type": BEAM,
                        "pythonExecutorSpec": {"classPath": "bi_steps.produce_Executor"},
                    },
                )
            ),
        ),
        Case("IR: pipelineRoot fixed outside the store", ARGS, root_outside),
        Case("IR: pipelineRoot fixed to the store itself", 0, root_is_the_store),
        Case(
            "IR: output key ../../x",
            ARGS,
            with_ir(set_in([*nd, "outputs", "outputs"], {"../../x": data_artifact})),
        ),
        Case(
            "IR: output key ../../../../../../x (out of the temporary folder)",
            ARGS,
            escaping_output,
        ),
        Case(
            "IR: output key /abs/x",
            ARGS,
            with_ir(set_in([*nd, "outputs", "outputs"], {"/abs/x": data_artifact})),
        ),
        Case(
            "IR: an extra output key",
            ARGS,
            with_ir(
                set_in(
                    [*nd, "outputs", "outputs"], {"output": data_artifact, "extra": data_artifact}
                )
            ),
        ),
        Case(
            "IR: undeclared parameter",
            ARGS,
            with_ir(set_in([*params, "bogus"], {"fieldValue": {"stringValue": "1"}})),
        ),
        Case(
            "IR: non-JSON parameter",
            ARGS,
            with_ir(set_in([*params, "start", "fieldValue", "stringValue"], "not json{")),
        ),
        Case(
            "IR: parameter of the wrong type",
            STEP,
            with_ir(set_in([*params, "start", "fieldValue", "stringValue"], '"text"')),
        ),
        Case("IR: empty", ARGS, with_ir(lambda ir: {})),
        Case("IR: no nodes", ARGS, with_ir(set_in(["nodes"], []))),
        # Not among the contract's refusals (section 3.4): the node is found and runs.
        Case("IR: the node twice", 0, with_ir(two_nodes)),
        Case(
            "IR: node of another step",
            ARGS,
            with_ir(set_in([*nd, "nodeInfo"], {"id": "other", "type": {"name": "bi_steps.other"}})),
        ),
        Case("IR: no deployment config", ARGS, with_ir(drop_key(["deploymentConfig"]))),
        Case(
            "IR: deployment config of another type",
            ARGS,
            with_ir(
                set_in(["deploymentConfig", "@type"], "type.googleapis.com/google.protobuf.Empty")
            ),
        ),
        Case("IR: no runtime spec", ARGS, with_ir(drop_key(["runtimeSpec"]))),
        Case("IR: ASYNC execution mode", 0, with_ir(set_in(["executionMode"], "ASYNC"))),
        # Without its pipeline, run and node contexts the step cannot be recorded in its
        # run (nor its attempts told apart): the IR cannot describe the step.
        Case("IR: node has no contexts", ARGS, with_ir(drop_key([*nd, "contexts"]))),
        Case("IR: pipeline name of 10 KB", 0, with_ir(renamed_pipeline)),
        Case(
            "IR: pipeline name of 10 KB, the step raises",
            STEP,
            with_ir(renamed_pipeline),
            env={"BI_HOW": "raise"},
        ),
        Case(
            "IR: --step_source names the other step",
            ARGS,
            lambda c: replace(c.args(), "step_source", "bi_steps.consume"),
        ),
    ]


def escaping_output(c: Ctx) -> list[Arg]:
    """An output key whose folder would be beside the temporary folder."""
    key = "../" * 6 + c.outside.name
    output_folder = c.artifacts / "produce" / key
    c.escapes.append(Path(os.path.normpath(output_folder)))
    spec = {"artifactSpec": {"type": {"name": "stepwire.DataArtifact"}}}

    def edit(ir: dict[str, Any]) -> None:
        node(ir)["outputs"]["outputs"] = {key: spec}

    return with_ir(edit)(c)


def escaping_run_name(c: Ctx) -> list[Arg]:
    """A run name whose log folder would be beside the temporary folder, were it a path."""
    run = "../" * 7 + c.outside.name
    c.escapes.append(Path(os.path.normpath(c.artifacts / ".stepwire" / "logs" / run)))
    return replace(c.args(), "run_name", run)


def _user_code_cases() -> list[Case]:
    main, cfg, mats = "main_module_source", "entrypoint_config_source", "materializer_sources"
    return [
        Case("code: step module does not import", LOAD, moved_to("no_such_module")),
        Case("code: step module raises at import", LOAD, moved_to("bi_raises_at_import")),
        Case("code: step module has a SyntaxError", LOAD, moved_to("bi_syntax_error")),
        Case("code: step class is not a step", LOAD, moved_to("bi_notsteps")),
        Case(
            "code: main module does not import",
            LOAD,
            lambda c: replace(c.args(), main, "no_such_main"),
        ),
        Case(
            "code: main module raises at import",
            LOAD,
            lambda c: replace(c.args(), main, "bi_raises_at_import"),
        ),
        Case(
            "code: main module has a SyntaxError",
            LOAD,
            lambda c: replace(c.args(), main, "bi_syntax_error"),
        ),
        Case(
            "code: main module calls sys.exit(3) at import",
            LOAD,
            lambda c: replace(c.args(), main, "bi_exits_at_import"),
        ),
        # The supervisor cannot tell this from a step that ended its process: 70.
        Case(
            "code: main module calls os._exit(0) at import",
            STEP,
            lambda c: replace(c.args(), main, "bi_os_exit_at_import"),
        ),
        Case(
            "code: config module does not import",
            LOAD,
            lambda c: replace(c.args(), cfg, "no_such_module.Cfg"),
        ),
        Case(
            "code: config module raises at import",
            LOAD,
            lambda c: replace(c.args(), cfg, "bi_raises_at_import.Cfg"),
        ),
        Case(
            "code: config class missing",
            LOAD,
            lambda c: replace(c.args(), cfg, "bi_configs.NoSuchCfg"),
        ),
        Case(
            "code: config is not a configuration",
            LOAD,
            lambda c: replace(c.args(), cfg, "bi_configs.NotAConfig"),
        ),
        Case("code: config source -x", LOAD, lambda c: replace(c.args(), cfg, "-x")),
        Case(
            "code: config source without a module",
            LOAD,
            lambda c: replace(c.args(), cfg, "NoModule"),
        ),
        Case(
            "code: a configuration of the user's (valid)",
            0,
            lambda c: replace(c.args(), cfg, "bi_configs.Cfg"),
        ),
        Case(
            "code: materializer is not one",
            LOAD,
            lambda c: replace(c.args(), mats, b64_json({"output": "bi_steps.NotAMaterializer"})),
        ),
        Case(
            "code: materializer module missing",
            LOAD,
            lambda c: replace(c.args(), mats, b64_json({"output": "no_such_module.M"})),
        ),
        Case(
            "code: no materializer for the output",
            LOAD,
            lambda c: replace(c.args(), mats, b64_json({})),
        ),
        Case(
            "code: input artifact class is not one",
            LOAD,
            lambda c: replace(
                c.args("consume"),
                "input_artifact_sources",
                b64_json({"value": "bi_steps.NotAnArtifact"}),
            ),
            step="consume",
        ),
        Case(
            "code: input artifact module missing",
            LOAD,
            lambda c: replace(
                c.args("consume"), "input_artifact_sources", b64_json({"value": "no_such_module.A"})
            ),
            step="consume",
        ),
    ]


def _hold_flock(c: Ctx) -> None:
    """Another process holds the SQLite file's advisory lock for the case's whole launch."""
    c.stack.mkdir(parents=True, exist_ok=True)
    lock = open(f"{c.metadata}.lock", "a")  # noqa: SIM115 - closed by the cleanup
    fcntl.flock(lock, fcntl.LOCK_EX)
    c.cleanups.append(lock.close)


def _hold_transaction(c: Ctx) -> None:
    """Another program keeps a write transaction open on the SQLite file."""
    import sqlite3

    c.stack.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(c.metadata, isolation_level=None, check_same_thread=False)
    connection.execute("CREATE TABLE IF NOT EXISTS other (x)")
    connection.execute("BEGIN EXCLUSIVE")
    c.cleanups.append(connection.close)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _stack_cases() -> list[Case]:
    def touch(relative: str, data: bytes = b"") -> Callable[[Ctx], None]:
        def setup(c: Ctx) -> None:
            path = c.folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return setup

    def mkdir(relative: str) -> Callable[[Ctx], None]:
        return lambda c: (c.folder / relative).mkdir(parents=True)

    def fifo(relative: str) -> Callable[[Ctx], None]:
        def setup(c: Ctx) -> None:
            (c.folder / relative).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(c.folder / relative)

        return setup

    def link(relative: str, target: str) -> Callable[[Ctx], None]:
        def setup(c: Ctx) -> None:
            (c.folder / relative).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, c.folder / relative)

        return setup

    uri = "STEPWIRE_METADATA_URI"
    mysql = {
        uri: "",
        "STEPWIRE_METADATA_TYPE": "mysql",
        "STEPWIRE_METADATA_HOST": "127.0.0.1",
        "STEPWIRE_METADATA_DATABASE": "db",
        "STEPWIRE_METADATA_USER": "u",
        "STEPWIRE_METADATA_PASSWORD": "s3cret-not-shown",
    }
    return [
        Case(
            "stack: metadata folder under a plain file",
            INFRA,
            same,
            env={uri: "{case}/plain/sub/metadata.db"},
            setup=touch("plain", b"x"),
            store_broken=True,
        ),
        Case(
            "stack: zero-length metadata file",
            INFRA,
            same,
            setup=touch("stack/metadata.db"),
            store_broken=True,
        ),
        Case(
            "stack: metadata file of garbage bytes",
            INFRA,
            same,
            setup=touch("stack/metadata.db", bytes(range(256)) * 16),
            store_broken=True,
        ),
        Case(
            "stack: metadata path is a folder",
            INFRA,
            same,
            setup=mkdir("stack/metadata.db"),
            store_broken=True,
        ),
        Case(
            "stack: metadata path is a FIFO",
            INFRA,
            same,
            setup=fifo("stack/metadata.db"),
            store_broken=True,
        ),
        Case(
            "stack: metadata path is a link to /dev/null",
            INFRA,
            same,
            setup=link("stack/metadata.db", "/dev/null"),
            store_broken=True,
        ),
        Case(
            "stack: unknown metadata store type",
            INFRA,
            same,
            env={uri: "", "STEPWIRE_METADATA_TYPE": "nosuch"},
            store_broken=True,
        ),
        Case(
            "stack: metadata URI and type mysql contradict",
            INFRA,
            same,
            env={"STEPWIRE_METADATA_TYPE": "mysql"},
            store_broken=True,
        ),
        Case("stack: MySQL that nobody serves", INFRA, same, env=mysql, store_broken=True),
        Case(
            "stack: artifact store of an unknown scheme",
            INFRA,
            same,
            env={"STEPWIRE_ARTIFACT_STORE": "nosuch://bucket/x"},
        ),
        Case(
            "stack: artifact store under a plain file",
            INFRA,
            same,
            env={"STEPWIRE_ARTIFACT_STORE": "{case}/plain/artifacts"},
            setup=touch("plain", b"x"),
        ),
        Case(
            "stack: STEPWIRE_CONFIG names a missing file",
            INFRA,
            same,
            env={"STEPWIRE_CONFIG": "{case}/no-such.yaml"},
        ),
        Case(
            "stack: STEPWIRE_CONFIG is not YAML",
            INFRA,
            same,
            env={"STEPWIRE_CONFIG": "{case}/bad.yaml"},
            setup=touch("bad.yaml", b"a: [b\n"),
        ),
        Case(
            "stack: STEPWIRE_CONFIG is a YAML list",
            INFRA,
            same,
            env={"STEPWIRE_CONFIG": "{case}/list.yaml"},
            setup=touch("list.yaml", b"- 1\n"),
        ),
        Case(
            "stack: metadata lock held by another process",
            INFRA,
            same,
            env={"STEPWIRE_METADATA_LOCK_TIMEOUT": "2"},
            setup=_hold_flock,
        ),
        Case(
            "stack: a transaction held open on the metadata file",
            INFRA,
            same,
            env={"STEPWIRE_METADATA_LOCK_TIMEOUT": "2"},
            setup=_hold_transaction,
            store_broken=True,
        ),
        Case(
            "stack: STEPWIRE_ATTEMPT_LEASE is not a number",
            0,
            same,
            env={"STEPWIRE_ATTEMPT_LEASE": "soon"},
        ),
        Case(
            "stack: STEPWIRE_STEP_LOG_MAX_BYTES is negative",
            0,
            same,
            env={"STEPWIRE_STEP_LOG_MAX_BYTES": "-5"},
        ),
        Case(
            "stack: failure record folder missing",
            STEP,
            same,
            env={"BI_HOW": "raise", "STEPWIRE_FAILURE_RECORD": "{case}/no/such/record.json"},
            record=False,
        ),
    ]


def _behaviour_cases() -> list[Case]:
    behaviours = {
        "raises": "raise",
        "calls os._exit(0)": "os_exit0",
        "calls os._exit(3)": "os_exit3",
        "calls sys.exit(0)": "sys_exit0",
        "calls sys.exit('text')": "sys_exit_text",
        "segfaults (ctypes.string_at(0))": "segv",
        "SIGKILLs itself": "sigkill",
        "SIGTERMs itself": "sigterm",
        "aborts (os.abort)": "abort",
        "raises an exception whose __str__ raises": "hostile_str",
        "raises a message with lone surrogates": "surrogates",
        "raises a 1.2 MB multi-line message": "huge_message",
        "raises KeyboardInterrupt": "keyboard_interrupt",
        "raises a bare BaseException": "base_exception",
        "recurses without end": "recursion",
        "raises with a cyclic cause": "cyclic_cause",
        "closes stdout and stderr, then raises": "close_fds",
        "returns a str for an int output": "wrong_type",
        "returns an object no materializer takes": "no_materializer",
    }
    cases = [
        Case(f"step {text}", STEP, same, env={"BI_HOW": how}) for text, how in behaviours.items()
    ]
    cases += [
        Case("step prints 5 MiB", 0, same, env={"BI_HOW": "print_flood"}),
        Case(
            "step leaves a grandchild holding its output open",
            0,
            same,
            env={"BI_HOW": "daemon_child"},
        ),
        Case(
            "step raises, without the supervisor",
            STEP,
            same,
            env={"BI_HOW": "raise", "STEPWIRE_SUPERVISE": "0"},
        ),
        Case(
            "step segfaults, without step logs",
            STEP,
            same,
            env={"BI_HOW": "segv", "STEPWIRE_STEP_LOGS": "0"},
        ),
        # Its output folder is named after it, and no file system takes a 10 KB name: the
        # step cannot run (70, its output cannot be written), but must say so cleanly.
        Case(
            "step with a 10 KB name (a named instance)",
            STEP,
            lambda c: c.args(LONG_STEP),
            step=LONG_STEP,
        ),
    ]
    return cases


def _run_cases() -> list[Case]:
    produced = (Before("produce", 0),)
    return [
        Case("run: the unbroken command line", 0, same),
        Case("run: the consumer after the producer", 0, consumer, step="consume", before=produced),
        Case("run: the consumer without its producer", INPUTS, consumer, step="consume"),
        Case(
            "run: the consumer after its producer failed",
            INPUTS,
            consumer,
            step="consume",
            before=(Before("produce", STEP, {"BI_HOW": "raise"}),),
        ),
        Case(
            "run: the consumer with another run name",
            INPUTS,
            lambda c: replace(c.args("consume"), "run_name", "another-run"),
            step="consume",
            before=produced,
        ),
        Case("run: the producer again in its run", DONE, same, before=produced),
        Case(
            "run: the producer again, re-runs tolerated",
            0,
            same,
            before=produced,
            env={"STEPWIRE_TOLERATE_RERUN": "1"},
        ),
        Case("run: run name ../../../x", 0, lambda c: replace(c.args(), "run_name", "../../../x")),
        Case("run: run name ../ x 7 (out of the temporary folder)", 0, escaping_run_name),
        Case(
            "run: run name with a newline and controls",
            0,
            lambda c: replace(c.args(), "run_name", "run\nname\t\x1b[31m"),
        ),
        Case("run: run name of emoji", 0, lambda c: replace(c.args(), "run_name", "run-😀-漢字")),
        Case(
            "run: run name an unsubstituted placeholder",
            0,
            lambda c: replace(c.args(), "run_name", "{{workflow.name}}"),
        ),
    ]


def corpus() -> list[Case]:
    """Every case, in a fixed order."""
    cases = [
        *_option_cases(),
        *_unknown_and_stray_cases(),
        *_encoding_cases(),
        *_reference_cases(),
        *_version_cases(),
        *_ir_cases(),
        *_user_code_cases(),
        *_stack_cases(),
        *_behaviour_cases(),
        *_run_cases(),
    ]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# --------------------------------------------------------------------------- running a case

ALLOWED = re.compile(
    r"^(stack/artifacts(/.*)?|stack/metadata\.db(\.lock|-journal|-wal|-shm)?|stack"
    r"|record\.json|stdout|stderr|home(/.*)?|tmp(/.*)?)$"
)


def _tree(folder: Path, skip: Callable[[str], bool] = lambda _: False) -> set[str]:
    """Every path below ``folder`` (relative, links not followed)."""
    found: set[str] = set()
    if not folder.exists():
        return found
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            relative = os.path.relpath(os.path.join(top, name), folder)
            if skip(relative):
                continue
            found.add(relative)
        dirs[:] = [d for d in dirs if not skip(os.path.relpath(os.path.join(top, d), folder))]
    return found


def _case_env(ctx: Ctx, case: Case) -> dict[str, str]:
    env = python_env([str(ctx.project.code)])
    env.update(
        HOME=str(ctx.folder / "home"),
        TMPDIR=str(ctx.folder / "tmp"),
        STEPWIRE_CONFIG="",
        STEPWIRE_ARTIFACT_STORE=str(ctx.artifacts),
        STEPWIRE_METADATA_URI=str(ctx.metadata),
        STEPWIRE_FAILURE_RECORD=str(ctx.folder / "record.json"),
    )
    for key, value in case.env.items():
        env[key] = value.replace("{case}", str(ctx.folder))
    if case.env.get("STEPWIRE_METADATA_TYPE") == "mysql":
        env["STEPWIRE_METADATA_PORT"] = _closed_port()
    return {k: v for k, v in env.items() if v != "" or k == "STEPWIRE_CONFIG"}


def _launch(
    command: Sequence[Arg], cwd: Path, env: Mapping[str, str], timeout: float, out: Path, err: Path
) -> tuple[int | None, float]:
    """Runs one step process (its own session), output to files; None if it hung."""
    start = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            # The step's group: a grandchild it left, or the whole of it after a hang.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return code, time.monotonic() - start


def readonly_store(database: Path) -> Any:
    """A read-only ML Metadata handle on a SQLite file (it is never created)."""
    import importlib

    from ml_metadata.metadata_store import metadata_store

    pb: Any = importlib.import_module("ml_metadata.proto.metadata_store_pb2")
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(database)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def execution_state(state: int) -> str:
    """The name of an execution state."""
    import importlib

    pb: Any = importlib.import_module("ml_metadata.proto.metadata_store_pb2")
    return str(pb.Execution.State.Name(state))


UNFINISHED = {"NEW", "RUNNING"}


def _metadata_problems(ctx: Ctx) -> list[str]:
    """Executions left NEW or RUNNING, and attempt claims left unreleased."""
    if not ctx.metadata.is_file() or ctx.metadata.stat().st_size == 0:
        return []
    try:
        store = readonly_store(ctx.metadata)
        executions = store.get_executions()
        claims = store.get_contexts_by_type("stepwire_attempt")
    except Exception as e:
        return [f"ML Metadata cannot be read afterwards: {type(e).__name__}: {e}"]
    problems = []
    states = [(e.id, execution_state(e.last_known_state)) for e in executions]
    unfinished = [f"{i}:{state}" for i, state in states if state in UNFINISHED]
    if unfinished:
        problems.append(f"executions left unfinished: {', '.join(unfinished)}")
    held = [
        c.name[:60]
        for c in claims
        if c.custom_properties["lease_until"].double_value > 0
        or c.custom_properties["state"].string_value == "running"
    ]
    if held:
        problems.append(f"attempt claims left unreleased: {', '.join(held)}")
    return problems


def _output_problems(case: Case, code: int, out: bytes, err: bytes, record: Path) -> list[str]:
    problems = []
    lines = err.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    first = lines[0] if lines else b""
    if code != 0:
        prefix = f"stepwire: {KINDS.get(code, '?')}: ".encode()
        if not first.startswith(prefix):
            problems.append(f"first stderr line is not {prefix.decode()!r}...")
        if case.fragment and case.fragment.encode() not in first:
            problems.append(f"first line lacks {case.fragment!r}")
    if code == ARGS and len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, not one")
    traceback = b"Traceback (most recent call last)" in out + err
    if traceback and ARGS in (code, case.expect):
        problems.append("a traceback for bad arguments")
    if code != 0 and case.record:
        if not record.exists():
            problems.append("no failure record")
        else:
            problems += _record_problems(case, code, record.read_bytes())
    elif code == 0 and record.exists():
        problems.append("a failure record for a success")
    return problems


def _record_problems(case: Case, code: int, data: bytes) -> list[str]:
    if len(data) > MAX_RECORD_BYTES:
        return [f"failure record of {len(data)} bytes"]
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        return [f"failure record is not UTF-8 JSON: {e}"]
    if not isinstance(parsed, dict):
        return ["failure record is not a JSON object"]
    problems = []
    if (parsed.get("exit_code"), parsed.get("kind")) != (code, KINDS.get(code)):
        problems.append(f"record says {parsed.get('kind')}/{parsed.get('exit_code')}")
    for name in ("pipeline", "step", "run"):
        value = parsed.get(name)
        if isinstance(value, str) and len(value.encode("utf-8")) > MAX_NAME_BYTES:
            problems.append(f"record's {name} holds {len(value.encode())} bytes")
    if case.error_kind and code == ARGS and parsed.get("error_kind") != case.error_kind:
        problems.append(f"record error_kind {parsed.get('error_kind')!r}, not {case.error_kind!r}")
    return problems


def run_case(project: Project, case: Case, index: int, timeout: float) -> Result:
    """Runs one case in a folder of its own and judges it."""
    folder = project.root / "cases" / f"{index:03d}"
    folder.mkdir(parents=True)
    (folder / "home").mkdir()
    (folder / "tmp").mkdir()
    ctx = Ctx(project, folder)
    problems: list[str] = []
    code: int | None = None
    seconds = 0.0
    first = ""
    try:
        if case.setup is not None:
            case.setup(ctx)
        argv = case.argv(ctx)
        env = _case_env(ctx, case)
        for before in case.before:
            before_env = {**env, **before.env}
            got, _ = _launch(
                project.commands[before.step],
                folder,
                before_env,
                timeout,
                folder / "before.out",
                folder / "before.err",
            )
            if got != before.expect:
                problems.append(f"the launch before ({before.step}) ended {got}")
            (folder / "record.json").unlink(missing_ok=True)
            (folder / "before.out").unlink()
            (folder / "before.err").unlink()
        before_tree = _tree(folder)
        escapes = [p for p in ctx.escapes if p.exists()]
        code, seconds = _launch(
            [*project.command(case.step), *argv],
            folder,
            env,
            timeout,
            folder / "stdout",
            folder / "stderr",
        )
        out, err = (folder / "stdout").read_bytes(), (folder / "stderr").read_bytes()
        first = err.split(b"\n", 1)[0].decode("utf-8", "replace")[:160]
        if code is None:
            problems.append(f"no end within {timeout:g} s (killed)")
        else:
            if code != case.expect:
                problems.append(f"exit {code}, expected {case.expect}")
            problems += _output_problems(case, code, out, err, folder / "record.json")
        created = sorted(p for p in _tree(folder) - before_tree if not ALLOWED.match(p))
        if created:
            problems.append(f"created outside the store: {', '.join(created[:3])}")
        escaped = [str(p) for p in ctx.escapes if p.exists() and p not in escapes]
        if escaped:
            problems.append(f"created outside the temporary folder: {', '.join(escaped)}")
        if not case.store_broken:
            problems += _metadata_problems(ctx)
    except Exception as e:  # the harness itself: reported as the case's problem
        problems.append(f"harness error: {type(e).__name__}: {e}")
    finally:
        for cleanup in ctx.cleanups:
            with contextlib.suppress(Exception):
                cleanup()
    return Result(case, code, seconds, problems, first)


# --------------------------------------------------------------------------- the whole run


def _not_compared(relative: str) -> bool:
    """The cases' own folders, and Python's bytecode cache of the user's modules."""
    return relative.startswith(("cases/", "code/__pycache__")) or relative in {
        "cases",
        "code/__pycache__",
    }


def select(cases: list[Case], patterns: Sequence[str]) -> list[Case]:
    """The cases whose name matches any pattern (a case-insensitive regular expression)."""
    if not patterns:
        return cases
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    return [c for c in cases if any(p.search(c.name) for p in compiled)]


def run_all(
    cases: Sequence[Case],
    *,
    jobs: int = 1,
    timeout: float = 60.0,
    root: Path | None = None,
    progress: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Plans the pipeline once, runs every case, and checks nothing escaped the folder.

    Args:
        cases: The cases.
        jobs: Cases at a time (at most 2 on a shared 2-core machine).
        timeout: Seconds a case may take before it counts as a hang.
        root: The temporary folder (created and removed when None).
        progress: Called with each result as it comes.

    Returns:
        The results, in the order of ``cases``.
    """
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bad-inputs-")))
        project = Project.create(root)
        outside = _tree(root, _not_compared)
        lock = threading.Lock()

        def one(item: tuple[int, Case]) -> Result:
            result = run_case(project, item[1], item[0], timeout)
            if progress is not None:
                with lock:
                    progress(result)
            return result

        with ThreadPoolExecutor(max_workers=max(1, min(jobs, 2))) as pool:
            results = list(pool.map(one, enumerate(cases)))
        after = _tree(root, _not_compared)
        stray = sorted(after - outside)
        if stray:
            for result in results:
                result.problems.append(f"the temporary folder gained {', '.join(stray[:3])}")
        unexpected = {p.name for p in (root / "cases").iterdir()} - {
            f"{i:03d}" for i in range(len(cases))
        }
        if unexpected:
            for result in results:
                result.problems.append(f"cases/ gained {', '.join(sorted(unexpected)[:3])}")
    return results


def _row(result: Result) -> str:
    got = "hang" if result.got is None else str(result.got)
    clean = "yes" if result.clean else "NO"
    why = "; ".join(result.problems)
    line = f"{result.case.name[:62]:<62} {result.case.expect:>4} {got:>4}  {clean:<3}"
    return f"{line}  {result.seconds:5.1f}s  {why}".rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the corpus (or the cases ``--only`` selects) and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only cases whose name matches (a regular expression; may repeat)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="cases at a time (default 1; more than 2 count as 2)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a hang")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", metavar="FOLDER", help="work in FOLDER (kept) instead of a temp")
    options = parser.parse_args(argv)
    cases = select(corpus(), options.only)
    if options.list:
        for case in cases:
            print(f"{case.expect:>3}  {case.name}")
        print(f"{len(cases)} cases")
        return 0
    if not cases:
        print("no case matches", file=sys.stderr)
        return 2
    root = None
    if options.keep:
        root = Path(options.keep).resolve()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
    print(f"{'case':<62} {'exp':>4} {'got':>4}  clean  time   why not")
    started = time.monotonic()
    results = run_all(
        cases,
        jobs=options.jobs,
        timeout=options.timeout,
        root=root,
        progress=lambda r: print(_row(r), flush=True),
    )
    clean = sum(r.clean for r in results)
    late = [r for r in results if r.clean is False and any("gained" in p for p in r.problems)]
    if late:
        print(f"the temporary folder changed outside the cases: {late[0].problems[-1]}")
    print(
        f"{len(results)} inputs, {clean} handled cleanly "
        f"({time.monotonic() - started:.0f} s, {options.jobs} at a time)"
    )
    return 0 if clean == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
