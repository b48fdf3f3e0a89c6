"""Reading a compiled pipeline IR: its nodes by id, and binding it to one run.

A :class:`PipelineIndex` is made once per pipeline IR and passed to whoever needs a
node or an executor spec, so building N command lines or launching a step unpacks the
deployment config once, not once per lookup. :func:`bind_run` makes the private copy of
the IR a launch runs with: the run id and the pipeline root substituted.
"""

from __future__ import annotations

import logging
from typing import Any

from stepwire import _protos
from stepwire.exceptions import PipelineIRError

logger = logging.getLogger(__name__)

_PIPELINE_NODE = "pipeline_node"
_PYTHON_CLASS_SPEC = "tfx.orchestration.executable_spec.PythonClassExecutableSpec"

RUN_ID_PARAMETER = "pipeline-run-id"
"""The runtime parameter TFX's compiler leaves for the run id (SYNC pipelines)."""

PIPELINE_ROOT_PARAMETER = "pipeline-root"
"""The runtime parameter TFX's compiler leaves for the pipeline root."""


class PipelineIndex:
    """A compiled pipeline's pipeline nodes by id and its unpacked deployment config.

    Attributes:
        pipeline: The IR it indexes (not copied; do not modify it while indexed).
        nodes: Pipeline node by node id (the step name), in IR order.
        deployment_config: The unpacked ``IntermediateDeploymentConfig``.
    """

    def __init__(self, pipeline: _protos.Pipeline) -> None:
        """Indexes a compiled pipeline.

        Args:
            pipeline: A pipeline IR whose deployment config is TFX's
                ``IntermediateDeploymentConfig`` (what the compiler produces).

        Raises:
            PipelineIRError: If the deployment config is missing or of another type.
        """
        self.pipeline = pipeline
        self.deployment_config = _protos.IntermediateDeploymentConfig()
        if not pipeline.deployment_config.Unpack(self.deployment_config):
            raise PipelineIRError(
                f"the pipeline IR of '{pipeline.pipeline_info.id}' has no "
                "IntermediateDeploymentConfig (deployment_config type URL "
                f"'{pipeline.deployment_config.type_url}')"
            )
        self.nodes: dict[str, Any] = {}
        for wrapper in pipeline.nodes:
            if wrapper.WhichOneof("node") == _PIPELINE_NODE:
                self.nodes.setdefault(wrapper.pipeline_node.node_info.id, wrapper.pipeline_node)

    def node(self, node_id: str) -> _protos.PipelineNode:
        """Returns the pipeline node of a step.

        Args:
            node_id: The node id (the step name).

        Returns:
            The node.

        Raises:
            PipelineIRError: If the IR holds no pipeline node with that id.
        """
        node = self.nodes.get(node_id)
        if node is None:
            known = ", ".join(sorted(self.nodes)) or "none"
            raise PipelineIRError(
                f"the pipeline IR of '{self.pipeline.pipeline_info.id}' has no node "
                f"'{node_id}' (its nodes: {known})"
            )
        return node

    def executor_spec(self, node_id: str) -> Any:
        """Returns a node's executor spec, which must be a Python class spec.

        Args:
            node_id: The node id.

        Returns:
            The ``PythonClassExecutableSpec``.

        Raises:
            PipelineIRError: If the node has no executor spec or another kind (a Beam
                or container spec: this runtime runs Python class executors only).
        """
        spec = self.deployment_config.executor_specs.get(node_id)
        if spec is None:
            raise PipelineIRError(f"the pipeline IR holds no executor spec for '{node_id}'")
        return _python_class_spec(node_id, "executor", spec)

    def custom_driver_spec(self, node_id: str) -> None:
        """Checks that a node has no custom driver spec.

        A stepwire step declares no driver, so an IR that names one would make the
        step process import and run a class the step never declared.

        Args:
            node_id: The node id.

        Raises:
            PipelineIRError: If the IR names a custom driver for the node.
        """
        spec = self.deployment_config.custom_driver_specs.get(node_id)
        if spec is not None:
            raise PipelineIRError(
                f"the pipeline IR names a custom driver ({spec.type_url.rpartition('/')[2]}) "
                f"for '{node_id}'; stepwire steps declare none, so none is run"
            )

    def executor_module(self, node_id: str) -> str:
        """The module part of the executor class path the IR names for a node.

        Args:
            node_id: The node id.

        Returns:
            The module.

        Raises:
            PipelineIRError: If the spec names no ``module.Class``.
        """
        class_path: str = self.executor_spec(node_id).class_path
        module, dot, name = class_path.rpartition(".")
        if not dot or not module or not name:
            raise PipelineIRError(
                f"the executor class path {class_path!r} of '{node_id}' is not module.Class"
            )
        return module


def _python_class_spec(node_id: str, what: str, spec: Any) -> Any:
    from tfx.proto.orchestration import executable_spec_pb2

    if spec.type_url.rpartition("/")[2] != _PYTHON_CLASS_SPEC:
        raise PipelineIRError(
            f"the {what} spec of '{node_id}' is a {spec.type_url.rpartition('/')[2]!r}; "
            "this runtime runs Python class executors only"
        )
    result = executable_spec_pb2.PythonClassExecutableSpec()  # type: ignore[attr-defined]
    spec.Unpack(result)
    return result


def bind_run(pipeline: _protos.Pipeline, run_name: str, pipeline_root: str) -> _protos.Pipeline:
    """Returns a copy of the IR bound to a run and to the step's artifact store.

    The pipeline root is where outputs go. The step's own stack decides it: the IR
    leaves it a runtime parameter, bound here to ``pipeline_root``; a default the
    parameter carries is replaced (with a log line when it differs). An IR that fixes
    another root is refused, so a step never writes somewhere its stack does not say.

    Args:
        pipeline: The compiled IR, run id and pipeline root still parameters; not
            modified.
        run_name: The run name.
        pipeline_root: The artifact store of the stack the step runs on.

    Returns:
        The bound copy.

    Raises:
        PipelineIRError: If the IR is bound to another run, or fixes another root.
    """
    from tfx.orchestration.portable import runtime_parameter_utils

    root = pipeline.runtime_spec.pipeline_root
    is_fixed = root.WhichOneof("value") == "field_value"
    fixed_root = root.field_value.string_value if is_fixed else None
    if fixed_root is not None and fixed_root.rstrip("/") != pipeline_root.rstrip("/"):
        raise PipelineIRError(
            f"the pipeline IR fixes the pipeline root {fixed_root!r}, but this step's "
            f"artifact store is {pipeline_root!r}; compile without a pipeline root (the "
            "step's stack then decides) or configure the same store on both sides"
        )
    default_root = root.runtime_parameter.default_value.string_value
    if default_root and default_root.rstrip("/") != pipeline_root.rstrip("/"):
        logger.info(
            "The IR's default pipeline root %r is replaced by this step's artifact store %r.",
            default_root,
            pipeline_root,
        )
    bound = _protos.Pipeline()
    bound.CopyFrom(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        bound, {RUN_ID_PARAMETER: run_name, PIPELINE_ROOT_PARAMETER: pipeline_root}
    )
    bound_run = bound.runtime_spec.pipeline_run_id.field_value.string_value
    if bound_run != run_name:
        raise PipelineIRError(
            f"the pipeline IR is already bound to run '{bound_run}', so it cannot run as "
            f"'{run_name}'; pass the IR as compiled, with the run id still a parameter"
        )
    return bound


def late_bind_pipeline_root(pipeline: _protos.Pipeline) -> None:
    """Makes a compiled IR's pipeline root a parameter without a default, in place.

    Then the IR names no folder of the machine it was compiled on, and every step
    process binds the root to its own artifact store (:func:`bind_run`).

    Args:
        pipeline: A freshly compiled IR.
    """
    root = pipeline.runtime_spec.pipeline_root
    root.runtime_parameter.ClearField("default_value")


def fix_pipeline_root(pipeline: _protos.Pipeline, pipeline_root: str) -> None:
    """Fixes a compiled IR's pipeline root, in place, for a root chosen explicitly.

    Args:
        pipeline: A freshly compiled IR.
        pipeline_root: The root; a step whose artifact store differs refuses to run.
    """
    root = pipeline.runtime_spec.pipeline_root
    root.Clear()
    root.field_value.string_value = pipeline_root
