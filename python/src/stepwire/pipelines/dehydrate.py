"""Cutting a compiled pipeline down to what one step needs ("dehydration", as in TFX).

A step process needs its own node, the pipeline info, the runtime spec and its own
executor spec; the rest of the IR only makes its command line grow with the number of
steps in the pipeline.
"""

from __future__ import annotations

from stepwire import _protos
from stepwire.pipeline_ir import PipelineIndex


def dehydrate(
    pb2_pipeline: _protos.Pipeline, node_id: str, index: PipelineIndex | None = None
) -> _protos.Pipeline:
    """Returns a copy of a compiled pipeline holding a single node.

    Args:
        pb2_pipeline: A compiled pipeline whose deployment config is TFX's
            ``IntermediateDeploymentConfig`` (what the compiler produces).
        node_id: The node to keep (the step name).
        index: An index of ``pb2_pipeline``; an orchestrator that dehydrates every
            step of one pipeline passes one, so the deployment config is unpacked
            once per pipeline, not once per step.

    Returns:
        A new pipeline with the pipeline info, runtime spec, execution mode, SDK version,
        pipeline-level platform configs, the node, and a deployment config with only that
        node's executor spec, custom driver spec and platform config (plus the
        pipeline-level parts of the deployment config). The input is not modified.

    Raises:
        PipelineIRError: If the pipeline has no pipeline node with that id, or its
            deployment config is missing or of another type.
    """
    index = index if index is not None else PipelineIndex(pb2_pipeline)
    node = index.node(node_id)
    full_config = index.deployment_config
    config = _protos.IntermediateDeploymentConfig()
    for field in ("executor_specs", "custom_driver_specs", "node_level_platform_configs"):
        source = getattr(full_config, field)
        if node_id in source:
            getattr(config, field)[node_id].CopyFrom(source[node_id])
    if full_config.HasField("metadata_connection_config"):
        config.metadata_connection_config.CopyFrom(full_config.metadata_connection_config)
    if full_config.HasField("pipeline_level_platform_config"):
        config.pipeline_level_platform_config.CopyFrom(full_config.pipeline_level_platform_config)

    result = _protos.Pipeline()
    result.pipeline_info.CopyFrom(pb2_pipeline.pipeline_info)
    result.runtime_spec.CopyFrom(pb2_pipeline.runtime_spec)
    result.execution_mode = pb2_pipeline.execution_mode
    result.sdk_version = pb2_pipeline.sdk_version
    for key, platform_config in pb2_pipeline.platform_configs.items():
        result.platform_configs[key].CopyFrom(platform_config)
    result.nodes.add().pipeline_node.CopyFrom(node)
    result.deployment_config.Pack(config)
    return result
