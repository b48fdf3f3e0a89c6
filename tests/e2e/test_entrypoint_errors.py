"""Malformed command lines through ``python -m stepwire.entrypoints.step_entrypoint``.

Each case starts from a valid command line built with ``get_entrypoint_arguments`` and
breaks one thing. The process must exit with the documented code and say what is
wrong in the first line of its stderr: ``ExitCode.BAD_ARGUMENTS`` (and nothing else
on stderr) for a command line the contract refuses, ``ExitCode.USER_CODE_NOT_LOADABLE``
for user code that does not load.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

from stepwire import constants
from stepwire.entrypoints import codec
from stepwire.entrypoints.exit_codes import ExitCode
from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration

MODULE = '''
"""A user module for the error cases."""

from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def produce() -> int:
    return 1


@step
def consume(value: int) -> int:
    return value + 1


@pipeline
def broken_pipeline(produce, consume):
    consume(value=produce())


class Cfg(StepEntrypointConfiguration):
    def get_run_name(self, pipeline_name):
        return "unused"


class CfgWithOption(Cfg):
    @classmethod
    def get_custom_entrypoint_options(cls):
        return {"attempt"}

    @classmethod
    def get_custom_entrypoint_arguments(cls, step, **kwargs):
        return ["--attempt", "1"]


class NotAConfig:
    pass
'''


@dataclass(frozen=True)
class Project:
    dir: Path
    args: list[str]
    args_with_option: list[str]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("errors")
    (root / "errmod.py").write_text(textwrap.dedent(MODULE))
    # A class named like the IR's node that is not a step.
    (root / "notsteps.py").write_text("class consume:\n    pass\n")
    sys.path.insert(0, str(root))
    saved_main = constants.USER_MAIN_MODULE
    constants.USER_MAIN_MODULE = "errmod"
    try:
        import errmod

        p = errmod.broken_pipeline(produce=errmod.produce(), consume=errmod.consume())
        ir = p.compile(pipeline_root=str(root / "artifacts"))
        step = p.steps["consume"]
        yield Project(
            root,
            errmod.Cfg.get_entrypoint_arguments(step=step, pb2_pipeline=ir),
            errmod.CfgWithOption.get_entrypoint_arguments(step=step, pb2_pipeline=ir),
        )
    finally:
        constants.USER_MAIN_MODULE = saved_main
        sys.path.remove(str(root))
        sys.modules.pop("errmod", None)


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    i = args.index(f"--{flag}")
    return [*args[: i + 1], value, *args[i + 2 :]]


def _step_in(args: list[str], source: str) -> list[str]:
    """The arguments with the step (and, so that the IR agrees, its executor) moved."""
    decoded = codec.decode(args).args
    ir = json.loads(decoded.pipeline_json)
    module, _, name = source.rpartition(".")
    [spec] = ir["deploymentConfig"]["executorSpecs"].values()
    spec["classPath"] = f"{module}.{name}_Executor"
    moved = codec.EntrypointArgs()
    moved.CopyFrom(decoded)
    moved.pipeline_json = json.dumps(ir)
    moved.step_source = source
    return codec.encode(moved)


def _drop(args: list[str], flag: str) -> list[str]:
    i = args.index(f"--{flag}")
    return [*args[:i], *args[i + 2 :]]


Case = tuple[Callable[[Project], list[str]], ExitCode, list[str]]

CASES: dict[str, Case] = {
    "no arguments": (
        lambda p: [],
        ExitCode.BAD_ARGUMENTS,
        ["--entrypoint_config_source", "required"],
    ),
    "missing option": (
        lambda p: _drop(p.args, "step_source"),
        ExitCode.BAD_ARGUMENTS,
        ["--step_source: required option is missing"],
    ),
    "bad base64": (
        lambda p: _replace(p.args, "pipeline_json", "not*base64!"),
        ExitCode.BAD_ARGUMENTS,
        ["--pipeline_json", "base64"],
    ),
    "missing custom option": (
        lambda p: p.args_with_option[: p.args_with_option.index("--attempt")],
        ExitCode.BAD_ARGUMENTS,
        ["--attempt: required custom option is missing"],
    ),
    "newer contract version": (
        lambda p: _replace(p.args, "contract_version", "99"),
        ExitCode.BAD_ARGUMENTS,
        ["contract version 99"],
    ),
    "config module does not import": (
        lambda p: _replace(p.args, "entrypoint_config_source", "no_such_module.Cfg"),
        ExitCode.USER_CODE_NOT_LOADABLE,
        ["entrypoint config", "`no_such_module.Cfg`", "No module named 'no_such_module'"],
    ),
    "config class missing": (
        lambda p: _replace(p.args, "entrypoint_config_source", "errmod.NoSuchCfg"),
        ExitCode.USER_CODE_NOT_LOADABLE,
        ["`errmod.NoSuchCfg`", "has no attribute 'NoSuchCfg'"],
    ),
    "config is not a configuration": (
        lambda p: _replace(p.args, "entrypoint_config_source", "errmod.NotAConfig"),
        ExitCode.USER_CODE_NOT_LOADABLE,
        ["`errmod.NotAConfig`", "StepEntrypointConfiguration` subclass"],
    ),
    "step module does not import": (
        lambda p: _step_in(p.args, "no_such_module.consume"),
        ExitCode.USER_CODE_NOT_LOADABLE,
        ["step", "`no_such_module.consume`", "No module named 'no_such_module'"],
    ),
    "step is not a step": (
        lambda p: _step_in(p.args, "notsteps.consume"),
        ExitCode.USER_CODE_NOT_LOADABLE,
        ["`notsteps.consume`", "BaseStep` subclass"],
    ),
    "step source names another step": (
        lambda p: _replace(p.args, "step_source", "errmod.produce"),
        ExitCode.BAD_ARGUMENTS,
        ["bad_arguments", "has no node 'produce'", "(its nodes: consume)"],
    ),
    "main module does not import": (
        lambda p: _replace(p.args, "main_module_source", "no_such_main"),
        ExitCode.USER_CODE_NOT_LOADABLE,
        ["main module", "`no_such_main`"],
    ),
}


def test_the_unbroken_command_line_is_accepted_by_the_parser(project: Project) -> None:
    # Sanity check of the starting point: every case breaks exactly one thing.
    import errmod

    assert errmod.Cfg(arguments=project.args).entrypoint_args["step_source"] == "errmod.consume"


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_command_line(project: Project, stack_dir: StackDir, case: str) -> None:
    make_args, code, fragments = CASES[case]
    proc = stack_dir.run(
        [*StepEntrypointConfiguration.get_entrypoint_command(), *make_args(project)],
        cwd=project.dir,
    )
    assert proc.returncode == code, explain(proc)
    first = proc.stderr.splitlines()[0]
    assert first.startswith("stepwire: "), explain(proc)
    for fragment in fragments:
        assert fragment in first, explain(proc)
    if code is ExitCode.BAD_ARGUMENTS:
        # Nothing but the one line: no traceback for a command line that is wrong.
        assert proc.stderr.splitlines() == [first]
