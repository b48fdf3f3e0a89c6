"""Cutting a compiled pipeline down to what one step needs ("dehydration", as in TFX).

A step process needs its own node, the pipeline info, the runtime spec and its own
executor spec; the rest of the IR only makes its command line grow with the number of
steps in the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stepwire import _protos


@dataclass(frozen=True)
class _PipelineIndex:
    """A compiled pipeline's nodes by id and its unpacked deployment config."""

    pipeline: Any
    deployment_bytes: bytes
    node_count: int
    nodes: dict[str, Any]
    config: Any


# An orchestrator dehydrates every step of one pipeline in turn: unpacking the
# deployment config (every step's executor spec) and scanning the nodes once per
# pipeline, not once per step, keeps building N command lines linear in N.
_last_index: _PipelineIndex | None = None


def _index(pb2_pipeline: _protos.Pipeline) -> tuple[dict[str, Any], Any]:
    global _last_index  # noqa: PLW0603 - a one-entry cache
    deployment_bytes = pb2_pipeline.deployment_config.value
    cached = _last_index
    if (
        cached is not None
        and cached.pipeline is pb2_pipeline
        and cached.node_count == len(pb2_pipeline.nodes)
        and cached.deployment_bytes == deployment_bytes
    ):
        return cached.nodes, cached.config
    full_config = _protos.IntermediateDeploymentConfig()
    if not pb2_pipeline.deployment_config.Unpack(full_config):
        raise ValueError(
            "The pipeline's deployment_config is not an IntermediateDeploymentConfig "
            f"(type URL '{pb2_pipeline.deployment_config.type_url}')."
        )
    nodes: dict[str, Any] = {}
    for wrapper in pb2_pipeline.nodes:
        if wrapper.WhichOneof("node") == "pipeline_node":
            nodes.setdefault(wrapper.pipeline_node.node_info.id, wrapper.pipeline_node)
    _last_index = _PipelineIndex(
        pb2_pipeline, deployment_bytes, len(pb2_pipeline.nodes), nodes, full_config
    )
    return nodes, full_config


def dehydrate(pb2_pipeline: _protos.Pipeline, node_id: str) -> _protos.Pipeline:
    """Returns a copy of a compiled pipeline holding a single node.

    Args:
        pb2_pipeline: A compiled pipeline whose deployment config is TFX's
            ``IntermediateDeploymentConfig`` (what the compiler produces).
        node_id: The node to keep (the step name).

    Returns:
        A new pipeline with the pipeline info, runtime spec, execution mode, SDK version,
        pipeline-level platform configs, the node, and a deployment config with only that
        node's executor spec, custom driver spec and platform config (plus the
        pipeline-level parts of the deployment config). The input is not modified.

    Raises:
        KeyError: If the pipeline has no pipeline node with that id.
        ValueError: If the deployment config is missing or of another type.
    """
    nodes, full_config = _index(pb2_pipeline)
    node = nodes.get(node_id)
    if node is None:
        raise KeyError(f"Step {node_id} not found in pipeline {pb2_pipeline.pipeline_info.id}")
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
