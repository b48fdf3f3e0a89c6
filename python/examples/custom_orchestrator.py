"""A custom orchestrator that runs every step through the step entrypoint.

This is the complete, runnable example of the README's guide to writing an
orchestrator. It has three parts, all in this one file:

* a small pipeline: ``numbers`` -> ``squares`` -> ``total``;
* ``MyStepEntrypointConfiguration``, the step side: it tells the entrypoint the
  run name, takes one custom option (``--log_prefix``) and hooks ``setup`` and
  ``post_run``;
* ``MyOrchestrator``, the launcher side: for every step it builds the command
  line with the configuration class and runs it in a new process, as an engine
  would in a container or a pod.

Run it with the interpreter that has stepwire installed::

    python custom_orchestrator.py

How the step process finds its stack: a step process reads the same stack
configuration as any other stepwire process, that is the ``STEPWIRE_*``
environment variables (``STEPWIRE_ARTIFACT_STORE``, ``STEPWIRE_METADATA_URI``,
``STEPWIRE_ORCHESTRATOR``, ``STEPWIRE_CONFIG``) and else the nearest
``stepwire.yaml`` from its current directory upwards, and else ``.stepwire/``
in that directory. Here the child inherits the current directory and the
environment of this script, so both sides use the same artifact store and the
same ML Metadata. A real engine has to arrange the same in its containers
(environment variables or a ``stepwire.yaml`` baked into the image).

Environment variables of the example itself:

* ``MY_ENGINE_RUN_ID``: set by the orchestrator in every step process; the run
  name that ``get_run_name`` returns.
* ``MY_ENGINE_REPORT``: optional file that ``post_run`` appends one JSON line
  per step to; without it, the line is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from stepwire import source_utils
from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from stepwire.orchestrators import BaseOrchestrator, RuntimeConfiguration
from stepwire.pipelines import pipeline
from stepwire.steps import BaseStep, step

if TYPE_CHECKING:
    from tfx.orchestration.portable import data_types

    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire._protos import PipelineNode as Pb2PipelineNode
    from stepwire.pipelines import BasePipeline
    from stepwire.stack import Stack

RUN_ID_ENV = "MY_ENGINE_RUN_ID"
REPORT_ENV = "MY_ENGINE_REPORT"
LOG_PREFIX_OPTION = "log_prefix"


# --------------------------------------------------------------------------- #
# The pipeline. (The ignores: stepwire's decorators are annotated for
# `types.FunctionType`, which mypy does not match a `def` to.)


@step
def numbers(count: int = 4) -> list[int]:
    """Produces the numbers 1 to ``count``.

    Args:
        count: How many numbers.

    Returns:
        The numbers.
    """
    return list(range(1, count + 1))


@step
def squares(values: list[int]) -> list[int]:
    """Squares each number.

    Args:
        values: The numbers.

    Returns:
        Their squares.
    """
    return [value * value for value in values]


@step
def total(values: list[int]) -> int:
    """Adds the numbers up.

    Args:
        values: The numbers.

    Returns:
        Their sum.
    """
    return sum(values)


@pipeline
def squares_pipeline(numbers: BaseStep, squares: BaseStep, total: BaseStep) -> None:
    """Sums the squares of some numbers.

    Args:
        numbers: Produces the numbers.
        squares: Squares them.
        total: Sums the squares.
    """
    total(values=squares(values=numbers()))


# --------------------------------------------------------------------------- #
# The step side: what runs inside every step process.


class MyStepEntrypointConfiguration(StepEntrypointConfiguration):
    """Runs one step of a pipeline started by ``MyOrchestrator``."""

    @classmethod
    def get_custom_entrypoint_options(cls) -> set[str]:
        """Adds ``--log_prefix`` to the contract's options.

        Returns:
            The custom option names, without ``--``.
        """
        return {LOG_PREFIX_OPTION}

    @classmethod
    def get_custom_entrypoint_arguments(cls, step: BaseStep, **kwargs: Any) -> list[str]:
        """Gives ``--log_prefix`` its value from the orchestrator's keyword argument.

        Args:
            step: The step the command line is for.
            **kwargs: What the orchestrator passed to ``get_entrypoint_arguments``.

        Returns:
            The custom arguments.
        """
        # Custom values are plain text. The joined `--option=value` form keeps a
        # value that starts with "-" from reading as an option.
        return [f"--{LOG_PREFIX_OPTION}={kwargs[LOG_PREFIX_OPTION]}"]

    def get_run_name(self, pipeline_name: str) -> str:
        """Returns the run id the engine put in every step process's environment.

        Args:
            pipeline_name: The name of the pipeline.

        Returns:
            The run name, the same for every step of the run.
        """
        return os.environ[RUN_ID_ENV]

    def setup(self, pipeline_name: str, step_name: str) -> None:
        """Configures logging, then says which step starts.

        Args:
            pipeline_name: Name of the pipeline.
            step_name: Name of the step that will run.
        """
        # The base class configures logging; keep it.
        super().setup(pipeline_name=pipeline_name, step_name=step_name)
        prefix = self.entrypoint_args[LOG_PREFIX_OPTION]
        print(f"[{prefix}] setup {pipeline_name}/{step_name}", flush=True)

    def post_run(
        self,
        pipeline_name: str,
        step_name: str,
        pipeline_node: Pb2PipelineNode,
        execution_info: data_types.ExecutionInfo | None = None,
    ) -> None:
        """Reports the finished step as one JSON line.

        Args:
            pipeline_name: Name of the pipeline.
            step_name: Name of the step that ran.
            pipeline_node: The step's node as it ran, bound to the run.
            execution_info: What TFX returned for the execution.
        """
        record = {
            "pipeline_name": pipeline_name,
            "step_name": step_name,
            "node_id": pipeline_node.node_info.id,
            # The node that ran, bound to the run: its contexts name the run itself.
            "node_contexts": {
                spec.type.name: spec.name.field_value.string_value
                for spec in pipeline_node.contexts.contexts
            },
            "execution_id": execution_info.execution_id if execution_info else None,
            "run_name": self.get_run_name(pipeline_name),
            LOG_PREFIX_OPTION: self.entrypoint_args[LOG_PREFIX_OPTION],
            "pid": os.getpid(),
        }
        line = json.dumps(record, sort_keys=True)
        report = os.environ.get(REPORT_ENV)
        if report:
            # Append: every step process adds its own line to the same file.
            with open(report, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        else:
            print(line, flush=True)


# --------------------------------------------------------------------------- #
# The launcher side: the orchestrator.


class MyOrchestrator(BaseOrchestrator):
    """Runs each step through the step entrypoint in a process of its own.

    Attributes:
        log_prefix: Value of the custom ``--log_prefix`` option of every step.
    """

    def __init__(self, log_prefix: str = "my-engine") -> None:
        """Creates the orchestrator.

        Args:
            log_prefix: Value of the custom ``--log_prefix`` option of every step.
        """
        self.log_prefix = log_prefix

    def prepare_or_run_pipeline(
        self,
        sorted_list_of_steps: list[BaseStep],
        pipeline: BasePipeline,
        pb2_pipeline: Pb2Pipeline,
        stack: Stack,
        runtime_configuration: RuntimeConfiguration,
    ) -> dict[str, Any]:
        """Runs the steps one after the other, each in a new process.

        Args:
            sorted_list_of_steps: The steps in a topological order.
            pipeline: The pipeline.
            pb2_pipeline: Its compiled IR.
            stack: The stack it runs on.
            runtime_configuration: Holds the run name.

        Returns:
            The pipeline name, the run name and the steps that ran.

        Raises:
            subprocess.CalledProcessError: If a step process fails; its exit code
                says why (see the README's table of exit codes).
        """
        run_name = runtime_configuration.run_name
        # The whole stack, as environment variables: the step side resolves
        # exactly the stack this run is on, wherever it runs.
        env = {**os.environ, **stack.to_config().to_environment()}
        # What an engine provides in every pod: the run id, which the step side
        # turns into the run name in `get_run_name`.
        env[RUN_ID_ENV] = run_name
        # The command is `python -m ...`: make `python` the interpreter running
        # this script (the one with stepwire), as a container image would.
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        # The step process imports this script by its module name: put the
        # directory it is importable from on the child's path.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(source_utils.get_source_root_path()), env.get("PYTHONPATH")])
        )

        cmd = MyStepEntrypointConfiguration.get_entrypoint_command()
        for step_ in sorted_list_of_steps:
            args = MyStepEntrypointConfiguration.get_entrypoint_arguments(
                step=step_, pb2_pipeline=pb2_pipeline, log_prefix=self.log_prefix, stack=stack
            )
            # Our engine is a local process; a real one would start a container.
            subprocess.check_call(cmd + args, env=env)
        return {
            "pipeline": pipeline.name,
            "run_name": run_name,
            "steps": [step_.name for step_ in sorted_list_of_steps],
        }


def read_output(run_name: str, step_name: str, data_type: type, output: str = "output") -> Any:
    """Reads a built-in step output of a finished run back from the active stack.

    Args:
        run_name: The run.
        step_name: The step.
        data_type: The type the step declared for the output.
        output: The output name (``output`` for a single return value).

    Returns:
        The value, as the step returned it.
    """
    from ml_metadata.metadata_store import metadata_store

    from stepwire.artifacts.standard_artifacts import DataArtifact
    from stepwire.materializers.builtin_materializer import BuiltInMaterializer
    from stepwire.runs import RunReader
    from stepwire.stack import get_active_stack

    stack = get_active_stack()
    store = metadata_store.MetadataStore(stack.metadata_store.get_tfx_metadata_config())
    run = RunReader(store).get_run(run_name)
    [record] = [
        artifact
        for step_record in run.steps
        if step_record.step == step_name
        for artifact in step_record.outputs
        if artifact.output == output
    ]
    artifact = DataArtifact()
    artifact.uri = record.uri
    return BuiltInMaterializer(artifact).handle_input(data_type)


if __name__ == "__main__":
    pipeline_instance = squares_pipeline(numbers=numbers(count=4), squares=squares(), total=total())
    result = MyOrchestrator().run(pipeline_instance)
    result["total"] = read_output(result["run_name"], "total", int)
    print("RESULT " + json.dumps(result, sort_keys=True))
