"""Artifact types of stepwire and the registry mapping Python types to them."""

from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import (
    DataArtifact,
    ModelArtifact,
    SchemaArtifact,
    StatisticsArtifact,
)
from stepwire.artifacts.type_registry import ArtifactTypeRegistry, type_registry

__all__ = [
    "ArtifactTypeRegistry",
    "BaseArtifact",
    "DataArtifact",
    "ModelArtifact",
    "SchemaArtifact",
    "StatisticsArtifact",
    "type_registry",
]
