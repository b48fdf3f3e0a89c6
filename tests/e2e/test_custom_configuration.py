"""The README's example, ``python/examples/custom_orchestrator.py``, run as a user would.

One run of the script (three step processes) is shared by the tests of this module;
they check what each part of the custom configuration did, in the step processes
and in ML Metadata.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stepwire_testkit import EXAMPLES, StackDir, explain

from stepwire import constants
from stepwire.entrypoints.codec import ArgumentError

SCRIPT = EXAMPLES / "custom_orchestrator.py"
PIPELINE = "squares_pipeline"
STEPS = ["numbers", "squares", "total"]
# The example's engine reads MY_ENGINE_* variables: none may come from outside.
ENGINE_DROP = ("PYTHON", "MY_ENGINE_")


@dataclass
class ExampleRun:
    proc: subprocess.CompletedProcess[str]
    stack: StackDir
    result: dict[str, Any]
    reports: list[dict[str, Any]]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    root = tmp_path_factory.mktemp("example")
    stack = StackDir(root / "stack", drop=ENGINE_DROP)
    report = root / "report.jsonl"
    # The current directory is not the example's: the orchestrator itself must make
    # the script importable in the step processes.
    workdir = root / "work"
    workdir.mkdir()
    proc = stack.run([sys.executable, str(SCRIPT)], cwd=workdir, MY_ENGINE_REPORT=str(report))
    assert proc.returncode == 0, explain(proc)
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    reports = [json.loads(line) for line in report.read_text().splitlines()]
    return ExampleRun(proc, stack, json.loads(line[len("RESULT ") :]), reports)


def _execution_ids(stack: StackDir, run_name: str) -> dict[str, int]:
    """Step name to the id of its execution in the run, from ML Metadata."""
    store = stack.store()
    run = store.get_context_by_type_and_name("pipeline_run", run_name)
    ids: dict[str, int] = {}
    for execution in store.get_executions_by_context(run.id):
        for context in store.get_contexts_by_execution(execution.id):
            if context.name.startswith(f"{PIPELINE}."):
                ids[context.name.split(".", 1)[1]] = execution.id
    return ids


def test_the_script_computes_the_sum_of_squares(example: ExampleRun) -> None:
    assert example.result["pipeline"] == PIPELINE
    assert example.result["steps"] == STEPS
    assert example.result["total"] == 30
    run_name = example.result["run_name"]
    # Read back independently of the script: RunReader and the materializer.
    assert example.stack.output(run_name, "numbers", list) == [1, 2, 3, 4]
    assert example.stack.output(run_name, "squares", list) == [1, 4, 9, 16]
    assert example.stack.output(run_name, "total", int) == 30


def test_post_run_is_called_once_per_step_with_the_documented_arguments(
    example: ExampleRun,
) -> None:
    reports = example.reports
    assert [r["step_name"] for r in reports] == STEPS
    assert {r["pipeline_name"] for r in reports} == {PIPELINE}
    # The node handed to post_run is the step's own node.
    assert [r["node_id"] for r in reports] == STEPS
    # post_run gets the node that ran, bound to the run, not the IR's placeholder.
    run_name = example.result["run_name"]
    assert [r["node_contexts"] for r in reports] == [
        {"pipeline": PIPELINE, "pipeline_run": run_name, "node": f"{PIPELINE}.{step}"}
        for step in STEPS
    ]
    # execution_info carries the execution that ML Metadata recorded for the step.
    ids = _execution_ids(example.stack, example.result["run_name"])
    assert {r["step_name"]: r["execution_id"] for r in reports} == ids
    # Every step ran in a process of its own.
    assert len({r["pid"] for r in reports}) == len(STEPS)


def test_setup_runs_in_every_step_process_with_the_custom_option(example: ExampleRun) -> None:
    setup_lines = [line for line in example.proc.stdout.splitlines() if " setup " in line]
    assert setup_lines == [f"[my-engine] setup {PIPELINE}/{name}" for name in STEPS]
    assert {r["log_prefix"] for r in example.reports} == {"my-engine"}


def test_the_run_name_comes_from_the_engine_environment(example: ExampleRun) -> None:
    run_name = example.result["run_name"]
    # get_run_name() in each step process returned MY_ENGINE_RUN_ID, which the
    # orchestrator set to its run name ...
    assert {r["run_name"] for r in example.reports} == {run_name}
    # ... and TFX recorded every execution in that one run.
    assert example.stack.run_names() == [run_name]
    run = example.stack.run_record(run_name)
    assert run.pipeline == PIPELINE
    assert sorted(s.step for s in run.steps) == sorted(STEPS)
    assert {s.status for s in run.steps} == {"completed"}


# --- the configuration class in this process ------------------------------------------


@pytest.fixture
def example_module(on_sys_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    on_sys_path(EXAMPLES)
    monkeypatch.setattr(constants, "USER_MAIN_MODULE", "custom_orchestrator")
    return importlib.import_module("custom_orchestrator")


def _compiled(module: Any, tmp_path: Path) -> tuple[Any, Any]:
    p = module.squares_pipeline(
        numbers=module.numbers(count=2), squares=module.squares(), total=module.total()
    )
    return p, p.compile(pipeline_root=str(tmp_path / "root"))


def test_custom_option_and_run_name_in_process(
    example_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_class = example_module.MyStepEntrypointConfiguration
    p, ir = _compiled(example_module, tmp_path)
    args = config_class.get_entrypoint_arguments(
        step=p.steps["squares"], pb2_pipeline=ir, log_prefix="--looks like=an option"
    )
    assert args[args.index("--entrypoint_config_source") + 1] == (
        "custom_orchestrator.MyStepEntrypointConfiguration"
    )
    config = config_class(arguments=args)
    assert config.entrypoint_args["log_prefix"] == "--looks like=an option"
    monkeypatch.setenv("MY_ENGINE_RUN_ID", "engine-run-7")
    assert config.get_run_name(PIPELINE) == "engine-run-7"


def test_a_command_line_without_the_custom_option_is_refused(
    example_module: Any, tmp_path: Path
) -> None:
    config_class = example_module.MyStepEntrypointConfiguration
    p, ir = _compiled(example_module, tmp_path)
    args = config_class.get_entrypoint_arguments(
        step=p.steps["total"], pb2_pipeline=ir, log_prefix="x"
    )
    assert args[-2:] == ["--log_prefix", "x"]
    without = args[:-2]
    with pytest.raises(ArgumentError, match="--log_prefix") as caught:
        config_class(arguments=without)
    assert caught.value.kind.value == "missing_option"


UNGUARDED = """\
from custom_orchestrator import MyOrchestrator, numbers, squares, squares_pipeline, total

# No `if __name__ == "__main__":`: every step process imports this module again.
MyOrchestrator().run(squares_pipeline(numbers=numbers(count=3), squares=squares(), total=total()))
print("MODULE RAN TO THE END", flush=True)
"""


def test_an_unguarded_module_level_run_does_not_recurse(tmp_path: Path) -> None:
    # The step processes import this script (its main module); the run it starts
    # at import time must be prevented there, not started again in every step.
    stack = StackDir(tmp_path / "stack", drop=ENGINE_DROP)
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    proc = stack.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        PYTHONPATH=str(EXAMPLES),
        MY_ENGINE_REPORT=str(tmp_path / "report.jsonl"),
    )
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.count("MODULE RAN TO THE END") == 1 + len(STEPS), explain(proc)
    assert len(stack.run_names()) == 1
    assert len(stack.store().get_executions()) == len(STEPS)
