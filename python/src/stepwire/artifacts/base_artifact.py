"""The root of stepwire's artifact types in ML Metadata."""

from __future__ import annotations

from typing import Any

from tfx.types.artifact import Artifact, Property, PropertyType


def _string_property() -> Any:
    # TFX's Property constructor is unannotated; keep the one untyped call here.
    return Property(type=PropertyType.STRING)  # type: ignore[no-untyped-call]


#: Properties every stepwire artifact carries in ML Metadata.
MATERIALIZER_PROPERTY_KEY = "materializer"
DATATYPE_PROPERTY_KEY = "datatype"

_BASE_PROPERTIES: dict[str, Any] = {
    MATERIALIZER_PROPERTY_KEY: _string_property(),
    DATATYPE_PROPERTY_KEY: _string_property(),
}


class BaseArtifact(Artifact):
    """An artifact written by a stepwire step.

    Two string properties are stored in ML Metadata with every artifact:
    ``materializer`` (the class source of the materializer that wrote it, which the
    consumer uses to read it back) and ``datatype`` (the class source of the Python
    type of the value).

    TFX matches an artifact read from ML Metadata to a Python class by ``TYPE_NAME``
    *and* property set among the imported ``Artifact`` subclasses, so subclasses keep
    these properties and define their own ``TYPE_NAME``.
    """

    TYPE_NAME = "stepwire.BaseArtifact"
    PROPERTIES = _BASE_PROPERTIES

    # TFX exposes properties as attributes through __getattr__/__setattr__; these
    # annotations only tell the type checker what they hold.
    materializer: str
    datatype: str
