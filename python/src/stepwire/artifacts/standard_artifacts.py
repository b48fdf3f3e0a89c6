"""The artifact types that stepwire's built-in materializers write."""

from __future__ import annotations

from stepwire.artifacts.base_artifact import BaseArtifact


class DataArtifact(BaseArtifact):
    """Plain data: Python values, byte strings, arrays."""

    TYPE_NAME = "stepwire.DataArtifact"


class ModelArtifact(BaseArtifact):
    """A trained model."""

    TYPE_NAME = "stepwire.ModelArtifact"


class StatisticsArtifact(BaseArtifact):
    """Statistics computed over data."""

    TYPE_NAME = "stepwire.StatisticsArtifact"


class SchemaArtifact(BaseArtifact):
    """A description of the shape of data."""

    TYPE_NAME = "stepwire.SchemaArtifact"
