"""The step side of the entrypoint: a decoded command line back into the step, launched.

:meth:`StepEntrypointConfiguration.run` ends here. In order: parse the pipeline IR and
index it once; check that it describes the step the command line names; ``setup()``;
import the user's main module with pipeline execution prevented; load the step class;
recreate its executor class where the IR names it; ``get_run_name()``; launch the step
on the configuration's stack (:func:`stepwire.step_launcher.launch_step`, the one launch
path); ``post_run()`` with the node that ran, bound to the run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from stepwire import constants, source_utils
from stepwire.entrypoints import codec, exit_codes, supervisor_channel
from stepwire.entrypoints.codec import PIPELINE_JSON_OPTION
from stepwire.entrypoints.loading import UserCodeLoadError, import_user_module, load_class
from stepwire.exceptions import PipelineIRError
from stepwire.pipeline_ir import PipelineIndex
from stepwire.steps.parameters import check_declared, decode_parameters

if TYPE_CHECKING:
    from stepwire._protos import Pipeline
    from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
    from stepwire.step_launcher import StepRunResult
    from stepwire.steps.base_step import BaseStep

logger = logging.getLogger(__name__)


def parse_pipeline(pipeline_json: str) -> Pipeline:
    """Parses the pipeline IR of ``--pipeline_json``.

    Args:
        pipeline_json: The decoded JSON text.

    Returns:
        The IR.

    Raises:
        ArgumentError: If it is not a ``tfx.orchestration.Pipeline`` (bad_arguments).
    """
    from stepwire._protos import Pipeline

    pipeline = Pipeline()
    try:
        json_format.Parse(pipeline_json, pipeline)
    except json_format.ParseError as exc:
        raise codec.ArgumentError(
            codec.ErrorKind.WRONG_JSON_SHAPE,
            f"--{PIPELINE_JSON_OPTION}: not a tfx.orchestration.Pipeline: {exc}",
            PIPELINE_JSON_OPTION,
        ) from None
    return pipeline


def run_step(config: StepEntrypointConfiguration) -> StepRunResult:
    """Runs the step a configuration's command line describes.

    Args:
        config: The configuration, built from the command line.

    Returns:
        How the launch ended, with the bound node that ran.

    Raises:
        UserCodeLoadError: If user code cannot be loaded (user_code_not_loadable).
        PipelineIRError: If the IR cannot describe the step (bad_arguments).
    """
    import stepwire.materializers  # noqa: F401 - registers the built-in materializers
    from stepwire.step_launcher import RerunPolicy, launch_step
    from stepwire.steps.base_step import BaseStep

    # A module-level `pipeline.run()` in the user's script must not start a
    # whole pipeline when this process imports the script.
    constants.SHOULD_PREVENT_PIPELINE_EXECUTION = True

    args = config.decoded_args.args
    pb2_pipeline = parse_pipeline(args.pipeline_json)
    index = PipelineIndex(pb2_pipeline)
    step_source = source_utils.strip_pin(args.step_source)
    pipeline_name = pb2_pipeline.pipeline_info.id
    step_module, dot, class_name = step_source.rpartition(".")
    if not dot or not step_module or not class_name:
        raise UserCodeLoadError(
            f"the step source `{step_source}` is not of the form `module.StepClass`"
        )
    step_name = node_id_of(index, class_name)
    exit_codes.context.pipeline = pipeline_name
    exit_codes.context.step = step_name
    # Before any user code runs: the IR must describe this very step.
    node = index.node(step_name)
    executor_module = index.executor_module(step_name)
    _check_executor_module(executor_module, step_module, args.main_module_source, step_name)
    _check_executor_class(index.executor_spec(step_name).class_path, step_name)
    _check_contexts(node, step_name)
    index.custom_driver_spec(step_name)
    parameters = decode_parameters(
        step_name, {k: v.field_value.string_value for k, v in node.parameters.parameters.items()}
    )

    supervisor_channel.report_context(pipeline_name, step_name, None)
    _quiet_tfx_logs()
    config.setup(pipeline_name=pipeline_name, step_name=step_name)

    # The user's script registers its materializers and artifact types when
    # imported. If that script is what runs as `__main__` here (an in-process
    # launch), it is not imported a second time.
    import_user_module(args.main_module_source)
    # From here on, `__main__` is this entrypoint, not the user's script;
    # nested launches must still name the user's module.
    constants.USER_MAIN_MODULE = args.main_module_source

    step = load_class(step_source, BaseStep, "step")()
    if step_name != type(step).__name__:
        step.named(step_name)  # an instance named in its pipeline
    check_declared(step.name, parameters, step.PARAM_SPEC)
    _check_outputs_are_declared(node, step)
    # The IR names the executor class in the module the step was in when the
    # pipeline was compiled: `__main__` if that was the user's script (`python
    # run.py`), the script's module name if it was imported (`stepwire run
    # run.py:p`). Recreate the executor exactly there, so TFX imports the path
    # the IR holds.
    step.__module__ = executor_module
    config._create_executor_class(
        step=step,
        input_artifact_sources=dict(args.input_artifact_sources),
        materializer_sources=dict(args.materializer_sources),
    )
    _check_materializers(step, dict(args.materializer_sources))

    run_name = config.get_run_name(pipeline_name=pipeline_name)
    exit_codes.context.run = run_name
    supervisor_channel.report_context(pipeline_name, step_name, run_name)
    stack = config.stack
    rerun = RerunPolicy.TOLERATE if constants.tolerate_rerun() else RerunPolicy.FAIL
    result = launch_step(
        step,
        run_name,
        pb2_pipeline,
        stack,
        index=index,
        rerun=rerun,
        before_claim=lambda node: supervisor_channel.report_claimant(stack, node),
        before_launch=lambda node: supervisor_channel.report_launch(stack, node),
    )
    config.post_run(
        pipeline_name=pipeline_name,
        step_name=step_name,
        pipeline_node=result.pipeline_node,
        execution_info=result.execution_info,
    )
    return result


def node_id_of(index: PipelineIndex, class_name: str) -> str:
    """The id of the step's node: the contract's rule (contract/README.md, section 3.4).

    The node id is the class name of ``step_source``, unless the IR carries exactly
    one node, of that class (its type is ``<module>.<class name>``), under another
    id: a step instance named in its pipeline (``train(name="train_small")``).

    Args:
        index: The IR's index.
        class_name: The class name of ``step_source``.

    Returns:
        The node id (the class name when no node fits; looking it up then fails
        with the contract's error).
    """
    if class_name in index.nodes or len(index.nodes) != 1:
        return class_name
    [(node_id, node)] = index.nodes.items()
    if node.node_info.type.name.rpartition(".")[2] == class_name:
        return node_id
    return class_name


def _quiet_tfx_logs() -> None:
    """Keeps TFX's INFO lines (absl's logger) out unless ``STEPWIRE_TFX_LOGS`` is set."""
    if not constants.show_tfx_logs():
        logging.getLogger("absl").setLevel(logging.WARNING)


def _check_executor_module(
    executor_module: str, step_module: str, main_module: str, step_name: str
) -> None:
    """Checks the executor lives where this process can recreate it.

    That is the step's module, or ``__main__`` for a step defined in the script the
    pipeline was run as.
    """
    if executor_module == step_module or (
        executor_module == "__main__" and step_module == main_module
    ):
        return
    raise PipelineIRError(
        f"the IR names the executor module {executor_module!r} for step '{step_name}', but "
        f"the step is defined in {step_module!r} (main module {main_module!r}); the IR "
        "and the step source disagree"
    )


def _check_executor_class(class_path: str, step_name: str) -> None:
    """The executor is the one stepwire generates for the step, and no other class."""
    expected = f"{step_name}_Executor"
    if class_path.rpartition(".")[2] != expected:
        raise PipelineIRError(
            f"the IR names the executor class {class_path!r} for step '{step_name}'; the "
            f"step's executor is {expected!r}, and no other class is run"
        )


_REQUIRED_CONTEXTS = ("pipeline", "pipeline_run", "node")


def _check_contexts(node: Any, step_name: str) -> None:
    """The node names its pipeline, run and node contexts, as TFX's compiler writes them.

    Without them an execution belongs to no run: ``runs show`` never lists it, no
    downstream step finds its outputs, and every execution in the store would look
    like this step's earlier attempt.
    """
    present = {context.type.name for context in node.contexts.contexts}
    missing = [name for name in _REQUIRED_CONTEXTS if name not in present]
    if missing:
        raise PipelineIRError(
            f"the IR's node '{step_name}' has no {', '.join(missing)} context; every step "
            "runs in the pipeline, run and node contexts the compiler gives it"
        )


def _check_outputs_are_declared(node: Any, step: BaseStep) -> None:
    """The IR's outputs are exactly the step's: an output key also names a folder."""
    in_ir = set(node.outputs.outputs)
    declared = set(step.OUTPUT_SIGNATURE)
    if in_ir != declared:
        raise PipelineIRError(
            f"step '{step.name}': the IR's outputs {sorted(in_ir)} are not the step's "
            f"{sorted(declared)}"
        )


def _check_materializers(step: BaseStep, materializer_sources: dict[str, str]) -> None:
    """Every output of the step needs a materializer on the command line."""
    missing = sorted(set(step.OUTPUT_SIGNATURE) - set(materializer_sources))
    if missing:
        raise UserCodeLoadError(
            f"step '{step.name}' has no materializer for its outputs {missing} "
            "(--materializer_sources names none)"
        )
