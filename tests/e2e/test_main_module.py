"""Steps, pipeline, configuration and orchestrator all defined in the script the user runs.

``python script.py`` makes every class of the script live in ``__main__``; the step
processes must import the script under its own name (``script``) instead, and that
import must not start the pipeline again, also when ``pipeline.run()`` is not behind
an ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

SCRIPT = '''
"""A user script: two steps, a pipeline and an orchestrator, seed style."""

import os
import subprocess

from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from stepwire.orchestrators import BaseOrchestrator
from stepwire.pipelines import pipeline
from stepwire.steps import Output, step

# Every import of this script leaves a line: who imported it, under which name.
with open(os.environ["IMPORT_LOG"], "a") as log:
    log.write(f"{os.getpid()} {__name__}\\n")


@step
def make_pair() -> Output(left=int, right=str):
    return 6, "seven"


@step
def combine(left: int, right: str, times: int = 2) -> str:
    return f"{right}:{left * times}"


@pipeline
def main_pipeline(make_pair, combine):
    left, right = make_pair()
    combine(left=left, right=right)


class ScriptConfiguration(StepEntrypointConfiguration):
    def get_run_name(self, pipeline_name):
        return os.environ["SCRIPT_RUN_ID"]


class ScriptOrchestrator(BaseOrchestrator):
    def prepare_or_run_pipeline(
        self, sorted_list_of_steps, pipeline, pb2_pipeline, stack, runtime_configuration
    ):
        env = dict(os.environ, SCRIPT_RUN_ID=runtime_configuration.run_name)
        cmd = ScriptConfiguration.get_entrypoint_command()
        for step in sorted_list_of_steps:
            args = ScriptConfiguration.get_entrypoint_arguments(
                step=step, pb2_pipeline=pb2_pipeline
            )
            subprocess.check_call(cmd + args, env=env)
        return runtime_configuration.run_name


def run():
    run_name = main_pipeline(make_pair=make_pair(), combine=combine(times=3)).run(
        run_name=os.environ["RUN_NAME"]
    )
    if run_name is not None:
        # Only a run that actually ran the pipeline gets here.
        with open(os.environ["RUN_LOG"], "a") as log:
            log.write(f"{os.getpid()} ran {run_name}\\n")

'''

GUARDED = 'if __name__ == "__main__":\n    run()\n'
UNGUARDED = "run()\n"


@pytest.mark.parametrize("tail", [GUARDED, UNGUARDED], ids=["guarded", "unguarded"])
def test_pipeline_defined_and_run_in_main_runs_once(
    tmp_path: Path, stack_dir: StackDir, tail: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "script.py").write_text(textwrap.dedent(SCRIPT) + tail)
    import_log, run_log = tmp_path / "imports.log", tmp_path / "runs.log"

    proc = stack_dir.run(
        [sys.executable, "script.py"],
        cwd=project,
        # The stack's orchestrator is the script's own class, by its importable source.
        STEPWIRE_ORCHESTRATOR="script.ScriptOrchestrator",
        IMPORT_LOG=str(import_log),
        RUN_LOG=str(run_log),
        RUN_NAME="only-run",
    )
    assert proc.returncode == 0, explain(proc)

    # The step outputs, by value.
    assert stack_dir.output("only-run", "make_pair", int, output="left") == 6
    assert stack_dir.output("only-run", "make_pair", str, output="right") == "seven"
    assert stack_dir.output("only-run", "combine", str) == "seven:18"

    # The pipeline ran once: one run in ML Metadata, one line from the top level.
    assert stack_dir.run_names() == ["only-run"]
    assert {s.status for s in stack_dir.run_record("only-run").steps} == {"completed"}
    [ran] = run_log.read_text().splitlines()
    assert ran.endswith(" ran only-run")

    # The script ran as __main__ once, and each step process imported it once as `script`.
    imports = [line.split() for line in import_log.read_text().splitlines()]
    assert [name for _, name in imports] == ["__main__", "script", "script"]
    assert len({pid for pid, _ in imports}) == 3
    assert ran.split()[0] == imports[0][0]
