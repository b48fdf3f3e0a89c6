"""Materializers: how step outputs are written and step inputs read back.

Importing this package registers the built-in materializers.
"""

from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.builtin_materializer import BuiltInMaterializer, BytesMaterializer
from stepwire.materializers.materializer_registry import (
    MaterializerRegistry,
    default_materializer_registry,
)
from stepwire.materializers.numpy_materializer import NumpyMaterializer

__all__ = [
    "BaseMaterializer",
    "BuiltInMaterializer",
    "BytesMaterializer",
    "MaterializerRegistry",
    "NumpyMaterializer",
    "default_materializer_registry",
]
