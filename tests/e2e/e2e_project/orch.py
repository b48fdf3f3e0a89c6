"""An orchestrator that runs every step through driver.py in a process of its own."""

import json
import os
import subprocess
import sys

from google.protobuf import json_format

from stepwire import constants, source_utils
from stepwire.orchestrators import BaseOrchestrator
from stepwire.pipelines.dehydrate import dehydrate

HERE = os.path.dirname(os.path.abspath(__file__))


def step_arguments(step, pb2_pipeline):
    """What the real entrypoint receives: sources, the dehydrated IR, the maps."""
    main = constants.USER_MAIN_MODULE or source_utils.get_module_source_from_module(
        sys.modules["__main__"]
    )

    def resolve(cls):
        module, name = source_utils.resolve_class(cls).rsplit(".", 1)
        return f"{main if module == '__main__' else module}.{name}"

    return {
        "main_module_source": main,
        "step_source": resolve(type(step)),
        "pipeline_json": json_format.MessageToJson(dehydrate(pb2_pipeline, step.name), indent=None),
        "input_artifact_sources": {k: resolve(v) for k, v in step.INPUT_SPEC.items()},
        "materializer_sources": {
            k: resolve(v) for k, v in step.get_materializers(ensure_complete=True).items()
        },
    }


def launch(arguments_file, run_name):
    """Runs one step in a new process; returns (exit code, report or None, output)."""
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "driver.py"), arguments_file, run_name],
        capture_output=True,
        text=True,
        cwd=HERE,
        check=False,
    )
    report = None
    for line in proc.stdout.splitlines():
        if line.startswith("OUTCOME "):
            report = json.loads(line[len("OUTCOME ") :])
    return proc.returncode, report, proc.stdout + proc.stderr


class ProcessOrchestrator(BaseOrchestrator):
    """Writes each step's arguments to $ARGS_DIR and launches the steps in order."""

    def prepare_or_run_pipeline(
        self, sorted_list_of_steps, pipeline, pb2_pipeline, stack, runtime_configuration
    ):
        run_name = runtime_configuration.run_name
        results = {}
        for step in sorted_list_of_steps:
            path = os.path.join(os.environ["ARGS_DIR"], f"{run_name}.{step.name}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(step_arguments(step, pb2_pipeline), f)
            code, report, output = launch(path, run_name)
            if code != 0:
                sys.stderr.write(output[-4000:])
                raise SystemExit(f"step {step.name} exited with {code}")
            results[step.name] = report
        return results
