"""How real step processes classify failures: exit code, first stderr line, failure record.

Every case starts from the valid command line of the step ``produce`` (built with
``get_entrypoint_arguments``, pipeline root left to the step's stack) and breaks one
thing: user code that does not import, a pipeline IR that cannot describe the step
(its JSON edited and re-encoded with the codec), a materializer that is not one, a
store that cannot be used, the contract version or the configuration source. The
step module ``clsmod`` leaves a marker file when imported, so a check that must come
before any user code shows whether it did.
"""

from __future__ import annotations

import base64
import copy
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stepwire_testkit import StackDir, explain, sqlite_store

from stepwire import constants
from stepwire.entrypoints import codec
from stepwire.entrypoints.exit_codes import ExitCode

CLSMOD = """\
import os
from pathlib import Path

from clscfg import Cfg
from stepwire.pipelines import pipeline
from stepwire.steps import step

Path(os.environ.get("TEST_MARKER", os.devnull)).write_text("imported")


@step
def produce(start: int = 1) -> int:
    Path(os.environ.get("TEST_RAN", os.devnull)).write_text("ran")
    return start


@step
def consume(value: int) -> int:
    return value + 1


@pipeline
def two_steps(produce, consume):
    consume(value=produce())


class NotAMaterializer:
    pass


class MarkedCfg(Cfg):
    pass
"""

CLSCFG = """\
from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration


class Cfg(StepEntrypointConfiguration):
    def get_run_name(self, pipeline_name):
        return "classification-run"
"""

USER_MODULES = {
    "clsmod.py": CLSMOD,
    "clscfg.py": CLSCFG,
    "raises_runtime.py": 'raise RuntimeError("runtime error at import")\n',
    "raises_value.py": 'raise ValueError("value error at import")\n',
    "has_syntax_error.py": "def broken(:\n    pass\n",
}

KINDS = {
    ExitCode.BAD_ARGUMENTS: "bad_arguments",
    ExitCode.USER_CODE_NOT_LOADABLE: "user_code_not_loadable",
    ExitCode.INFRASTRUCTURE: "infrastructure",
}
ARGS, LOAD, INFRA = ExitCode.BAD_ARGUMENTS, ExitCode.USER_CODE_NOT_LOADABLE, ExitCode.INFRASTRUCTURE


@dataclass(frozen=True)
class Outcome:
    proc: subprocess.CompletedProcess[str]
    record: dict[str, Any] | None
    imported: bool  # the marker clsmod leaves when imported
    ran: bool  # the marker the step function leaves
    metadata: Path  # the SQLite ML Metadata of the launch

    def executions(self) -> list[Any]:
        """Every execution ML Metadata holds for this launch (none if it has no file)."""
        if not self.metadata.is_file():
            return []
        return list(sqlite_store(self.metadata).get_executions())

    @property
    def first(self) -> str:
        return self.proc.stderr.splitlines()[0] if self.proc.stderr else ""

    def why(self) -> str:
        return explain(self.proc)

    def assert_kind(self, code: ExitCode, *fragments: str) -> None:
        assert self.proc.returncode == code, self.why()
        assert self.first.startswith(f"stepwire: {KINDS[code]}: "), self.why()
        for fragment in fragments:
            assert fragment in self.first, self.why()
        assert self.record is not None, self.why()
        assert (self.record["kind"], self.record["exit_code"]) == (KINDS[code], code)
        assert self.record["retryable"] is (code == INFRA)
        assert not self.ran, "the step function ran"


@dataclass(frozen=True)
class Project:
    root: Path
    args: list[str]

    def launch(self, argv: list[str], work: Path, **env: str | None) -> Outcome:
        """Runs the step entrypoint on a stack of its own under ``work``."""
        work.mkdir(parents=True, exist_ok=True)
        record = work / "record.json"
        stack = StackDir(work, drop=("PYTHON", "TEST_"), PYTHONPATH=str(self.root))
        proc = stack.run(
            [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", *argv],
            work,
            STEPWIRE_FAILURE_RECORD=str(record),
            TEST_MARKER=str(work / "imported"),
            TEST_RAN=str(work / "ran"),
            **env,
        )
        data = json.loads(record.read_bytes()) if record.exists() else None
        return Outcome(
            proc, data, (work / "imported").exists(), (work / "ran").exists(), stack.metadata
        )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("classification")
    for name, text in USER_MODULES.items():
        (root / name).write_text(text)
    sys.path.insert(0, str(root))
    saved = constants.USER_MAIN_MODULE
    constants.USER_MAIN_MODULE = "clsmod"
    try:
        import clscfg
        import clsmod

        p = clsmod.two_steps(produce=clsmod.produce(), consume=clsmod.consume())
        step = p.steps["produce"]
        yield Project(
            root, clscfg.Cfg.get_entrypoint_arguments(step=step, pb2_pipeline=p.compile())
        )
    finally:
        constants.USER_MAIN_MODULE = saved
        sys.path.remove(str(root))
        for name in ("clsmod", "clscfg"):
            sys.modules.pop(name, None)


def test_the_unbroken_command_line_runs_the_step(project: Project, tmp_path: Path) -> None:
    # The starting point of every case, and proof that both markers work.
    outcome = project.launch(project.args, tmp_path)
    assert outcome.proc.returncode == 0, outcome.why()
    assert (outcome.record, outcome.imported, outcome.ran) == (None, True, True)


# --------------------------------------------------------------------------- one broken thing

Argv = Callable[[list[str]], list[str]]
SOURCE = "entrypoint_config_source"
RAISED = "RuntimeError: runtime error at import"


def _replace(flag: str, value: str) -> Argv:
    def make(args: list[str]) -> list[str]:
        i = args.index(f"--{flag}")
        return [*args[: i + 1], value, *args[i + 2 :]]

    return make


def _b64_json(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _sqlite(path: str) -> tuple[Argv, dict[str, str], ExitCode, list[str]]:
    return list, {"STEPWIRE_METADATA_URI": path}, INFRA, [f"SQLite file {path}"]


MAIN, STEP, MATS = "main_module_source", "step_source", "materializer_sources"
NOT_A_MATERIALIZER = _b64_json({"output": "clsmod.NotAMaterializer"})
VERSION_2 = ["--contract_version", "2"]
NO_CONFIG = [f"--{SOURCE}", "no_such_module.Cfg"]
NEWER = ["--contract_version", "version 2", "up to 1"]

# case: (argv from the valid one, environment, exit code, fragments of the first line).
# "{store}" is a folder holding garbage.db (not SQLite), folder.db (a folder) and the
# regular file plainfile.
CASES: dict[str, tuple[Argv, dict[str, str], ExitCode, list[str]]] = {
    "main module raises RuntimeError": (
        _replace(MAIN, "raises_runtime"),
        {},
        LOAD,
        ["main module `raises_runtime`", RAISED],
    ),
    "main module raises ValueError": (
        _replace(MAIN, "raises_value"),
        {},
        LOAD,
        ["main module `raises_value`", "ValueError: value error at import"],
    ),
    "main module has a SyntaxError": (
        _replace(MAIN, "has_syntax_error"),
        {},
        LOAD,
        ["main module `has_syntax_error`", "SyntaxError: "],
    ),
    "config module raises": (
        _replace(SOURCE, "raises_runtime.Cfg"),
        {},
        LOAD,
        ["entrypoint config `raises_runtime.Cfg`", RAISED],
    ),
    "not a materializer": (
        _replace(MATS, NOT_A_MATERIALIZER),
        {},
        LOAD,
        ["`clsmod.NotAMaterializer`", "BaseMaterializer` subclass"],
    ),
    "no materializer": (_replace(MATS, _b64_json({})), {}, LOAD, ["no materializer", "['output']"]),
    "unknown artifact store scheme": (
        list,
        {"STEPWIRE_ARTIFACT_STORE": "nosuch://bucket/x"},
        INFRA,
        ["artifact store 'nosuch://bucket/x'"],
    ),
    "SQLite file of garbage bytes": _sqlite("{store}/garbage.db"),
    "SQLite path is a directory": _sqlite("{store}/folder.db"),
    "SQLite folder cannot be created": _sqlite("{store}/plainfile/sub/metadata.db"),
    # Contract section 5: the version first, so the missing module is never looked for.
    "newer version, then a missing config": (lambda a: VERSION_2 + NO_CONFIG, {}, ARGS, NEWER),
    "missing config, then a newer version": (lambda a: NO_CONFIG + VERSION_2, {}, ARGS, NEWER),
    # repeated_option from the scan, before clsmod (which leaves its marker) is imported.
    "repeated config source": (
        lambda a: [f"--{SOURCE}=clsmod.MarkedCfg", *a],
        {},
        ARGS,
        [f"--{SOURCE}: given more than once"],
    ),
    # A value, not a missing one: loading it fails.
    "config source starting with a dash": (
        lambda a: [f"--{SOURCE}=-x", *a[2:]],
        {},
        LOAD,
        ["entrypoint config `-x`"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_broken_thing_is_classified(project: Project, tmp_path: Path, case: str) -> None:
    make_argv, env, code, fragments = CASES[case]
    store = tmp_path / "store"
    (store / "folder.db").mkdir(parents=True)
    (store / "garbage.db").write_bytes(bytes(range(256)) * 16)
    (store / "plainfile").write_text("not a folder")
    assert project.args[:2] == [f"--{SOURCE}", "clscfg.Cfg"]
    values = {k: v.format(store=store) for k, v in env.items()}
    outcome = project.launch(make_argv(list(project.args)), tmp_path / "work", **values)
    outcome.assert_kind(code, *(f.format(store=store) for f in fragments))
    if code == ARGS:
        assert outcome.proc.stderr.splitlines() == [outcome.first], "no traceback"
        assert not outcome.imported


# --------------------------------------------------------------------------- the IR

NODE: list[Any] = ["nodes", 0, "pipelineNode"]
PARAMETERS = [*NODE, "parameters", "parameters"]
EXECUTOR = ["deploymentConfig", "executorSpecs", "produce"]
BEAM = "type.googleapis.com/tfx.orchestration.executable_spec.BeamExecutableSpec"
PYTHON_CLASS = "type.googleapis.com/tfx.orchestration.executable_spec.PythonClassExecutableSpec"

# case: (where in the IR's JSON ([]: the whole IR), the value put there, the step
# source, fragments of the first line).
IR_CASES: dict[str, tuple[list[Any], Any, str, list[str]]] = {
    "empty IR": ([], {}, "clsmod.produce", ["no IntermediateDeploymentConfig"]),
    "no nodes": (["nodes"], [], "clsmod.produce", ["no node 'produce'", "none"]),
    "node is another step": (
        # Of another class: one node of the step's class under another id would be
        # a named instance of the step (contract, section 3.4).
        [*NODE, "nodeInfo"],
        {"id": "other", "type": {"name": "clsmod.other"}},
        "clsmod.produce",
        ["no node 'produce'", "(its nodes: other)"],
    ),
    "step source names another step of the pipeline": (
        ["pipelineInfo", "id"],  # unchanged: only the step source differs
        "two_steps",
        "clsmod.consume",
        ["no node 'consume'", "(its nodes: produce)"],
    ),
    "executor module is neither the step's nor __main__": (
        [*EXECUTOR, "classPath"],
        "elsewhere.produce_Executor",
        "clsmod.produce",
        ["executor module 'elsewhere'", "'clsmod'"],
    ),
    "Beam executor spec": (
        EXECUTOR,
        {"@type": BEAM, "pythonExecutorSpec": {"classPath": "clsmod.produce_Executor"}},
        "clsmod.produce",
        ["BeamExecutableSpec", "Python class executors only"],
    ),
    "parameter that is not JSON": (
        [*PARAMETERS, "start", "fieldValue", "stringValue"],
        "not json{",
        "clsmod.produce",
        ["parameter 'start' is not JSON"],
    ),
    "custom driver spec": (
        ["deploymentConfig", "customDriverSpecs"],
        {"produce": {"@type": PYTHON_CLASS, "classPath": "clsmod.Cfg"}},
        "clsmod.produce",
        ["custom driver", "stepwire steps declare none"],
    ),
    "executor class that is not the step's": (
        [*EXECUTOR, "classPath"],
        "clsmod.Cfg",
        "clsmod.produce",
        ["executor class 'clsmod.Cfg'", "'produce_Executor'"],
    ),
    "output key that is not the step's": (
        [*NODE, "outputs", "outputs"],
        {"../../../victim": {"artifactSpec": {"type": {"name": "stepwire.DataArtifact"}}}},
        "clsmod.produce",
        ["the IR's outputs ['../../../victim'] are not the step's ['output']"],
    ),
    "parameter the step does not declare": (
        [*PARAMETERS, "bogus"],
        {"fieldValue": {"stringValue": "1"}},
        "clsmod.produce",
        ["['bogus']", "does not declare"],
    ),
}


# What only the step's class knows (its parameters, its outputs) is checked once it is
# loaded, still before any execution is registered.
KNOWN_FROM_THE_STEP_CLASS = {
    "parameter the step does not declare",
    "output key that is not the step's",
}


@pytest.fixture(scope="module")
def ir_outcome(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Outcome]:
    """Runs each IR case once, on a stack of its own, for the tests that look at it."""
    decoded = codec.decode(project.args).args
    cache: dict[str, Outcome] = {}

    def outcome(case: str) -> Outcome:
        if case not in cache:
            path, value, step_source, _ = IR_CASES[case]
            ir = json.loads(decoded.pipeline_json)
            if path:
                target = ir
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = copy.deepcopy(value)
            else:
                ir = value
            args = codec.EntrypointArgs()
            args.CopyFrom(decoded)
            args.pipeline_json = json.dumps(ir)
            args.step_source = step_source
            cache[case] = project.launch(codec.encode(args), tmp_path_factory.mktemp("ir"))
        return cache[case]

    return outcome


def test_a_step_module_that_raises_at_import_is_user_code_not_loadable(
    project: Project, tmp_path: Path
) -> None:
    # The IR and the step source agree on the module: the IR is fine, the module is not.
    decoded = codec.decode(project.args).args
    ir = json.loads(decoded.pipeline_json)
    ir["deploymentConfig"]["executorSpecs"]["produce"]["classPath"] = (
        "raises_runtime.produce_Executor"
    )
    args = codec.EntrypointArgs()
    args.CopyFrom(decoded)
    args.pipeline_json = json.dumps(ir)
    args.step_source = "raises_runtime.produce"
    outcome = project.launch(codec.encode(args), tmp_path / "work")
    outcome.assert_kind(LOAD, "step `raises_runtime.produce`", RAISED)


@pytest.mark.parametrize("case", list(IR_CASES))
def test_an_ir_that_cannot_describe_the_step_is_bad_arguments(
    ir_outcome: Callable[[str], Outcome], case: str
) -> None:
    outcome = ir_outcome(case)
    outcome.assert_kind(ARGS, *IR_CASES[case][3])
    assert outcome.proc.stderr.splitlines() == [outcome.first], "no traceback"


@pytest.mark.parametrize(
    "case",
    [c for c in IR_CASES if c not in KNOWN_FROM_THE_STEP_CLASS],
)
def test_the_ir_is_checked_before_user_code_is_imported(
    ir_outcome: Callable[[str], Outcome], case: str
) -> None:
    outcome = ir_outcome(case)
    assert outcome.proc.returncode == ARGS, outcome.why()
    assert not outcome.imported, "the step's module was imported before the IR was checked"


@pytest.mark.parametrize("case", list(IR_CASES))
def test_an_ir_that_cannot_describe_the_step_registers_no_execution(
    ir_outcome: Callable[[str], Outcome], case: str
) -> None:
    outcome = ir_outcome(case)
    assert outcome.proc.returncode == ARGS, outcome.why()
    assert not outcome.executions(), "an execution was registered before the IR was checked"


# --------------------------------------------------------------------------- MySQL


@pytest.fixture(scope="module")
def mysql(project: Project, tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcome, int]:
    with socket.socket() as s:  # bound, then closed: nothing listens on the port
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    outcome = project.launch(
        project.args,
        tmp_path_factory.mktemp("mysql"),
        STEPWIRE_METADATA_URI=None,
        STEPWIRE_METADATA_TYPE="mysql",
        STEPWIRE_METADATA_HOST="127.0.0.1",
        STEPWIRE_METADATA_PORT=str(port),
        STEPWIRE_METADATA_DATABASE="swdb",
        STEPWIRE_METADATA_USER="swuser",
        STEPWIRE_METADATA_PASSWORD="s3cret",
    )
    return outcome, port


def test_an_unreachable_mysql_store_is_infrastructure_without_its_password(
    mysql: tuple[Outcome, int],
) -> None:
    outcome, port = mysql
    assert outcome.proc.returncode == INFRA, outcome.why()
    [line] = [x for x in outcome.proc.stderr.splitlines() if x.startswith("stepwire: ")]
    assert line.startswith("stepwire: infrastructure: "), outcome.why()
    assert "MySQL database swdb at swuser@127.0.0.1:" + str(port) in line
    assert outcome.record is not None
    assert outcome.record["kind"] == "infrastructure"
    assert not outcome.ran
    assert "s3cret" not in outcome.proc.stdout + outcome.proc.stderr
    assert "s3cret" not in json.dumps(outcome.record)


def test_an_unreachable_mysql_store_says_so_in_the_first_line(
    mysql: tuple[Outcome, int],
) -> None:
    outcome, _ = mysql
    assert outcome.first.startswith("stepwire: infrastructure: "), outcome.why()
