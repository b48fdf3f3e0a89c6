"""The TFX and ML Metadata protobuf classes stepwire uses, importable with types.

The ``ml-pipelines-sdk`` and ``ml-metadata`` wheels ship ``*_pb2.py`` modules without
``.pyi`` stubs; their classes are built at import time, so mypy cannot see them. Code
in stepwire imports the classes from here: at run time they are the real classes, for
the type checker they are ``Any``. This is the single place that gap is bridged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    Pipeline: TypeAlias = Any
    PipelineNode: TypeAlias = Any
    IntermediateDeploymentConfig: TypeAlias = Any
    ConnectionConfig: TypeAlias = Any
    MLMDContext: TypeAlias = Any
    MLMDContextType: TypeAlias = Any
    MLMDExecution: TypeAlias = Any
    MLMDEvent: TypeAlias = Any
else:
    from ml_metadata.proto.metadata_store_pb2 import ConnectionConfig
    from ml_metadata.proto.metadata_store_pb2 import Context as MLMDContext
    from ml_metadata.proto.metadata_store_pb2 import ContextType as MLMDContextType
    from ml_metadata.proto.metadata_store_pb2 import Event as MLMDEvent
    from ml_metadata.proto.metadata_store_pb2 import Execution as MLMDExecution

    # Registers the executor spec types that a pipeline's deployment config
    # holds in `Any` fields, so its JSON form parses without the launcher.
    from tfx.proto.orchestration import executable_spec_pb2  # noqa: F401
    from tfx.proto.orchestration.pipeline_pb2 import (
        IntermediateDeploymentConfig,
        Pipeline,
        PipelineNode,
    )

__all__ = [
    "ConnectionConfig",
    "IntermediateDeploymentConfig",
    "MLMDContext",
    "MLMDContextType",
    "MLMDEvent",
    "MLMDExecution",
    "Pipeline",
    "PipelineNode",
]
