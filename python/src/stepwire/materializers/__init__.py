"""Materializers: how step outputs are written and step inputs read back.

Importing this package registers the built-in materializers of Python values and
bytes. Those of numpy arrays, pandas, pyarrow, polars and scikit-learn values are lazy
built-ins (see :mod:`stepwire.materializers.materializer_registry`): registered by the
names of their types and imported when a step's signature or value needs them, or
when one of their names below is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.builtin_materializer import BuiltInMaterializer, BytesMaterializer
from stepwire.materializers.materializer_registry import (
    MaterializerRegistry,
    default_materializer_registry,
)

if TYPE_CHECKING:
    # What __getattr__ returns, for type checkers. Not in __all__: a star import
    # would then import every library, and fail for those not installed.
    from stepwire.materializers.arrow_materializer import (  # noqa: F401
        ArrowIpcMaterializer,
        ArrowMaterializer,
    )
    from stepwire.materializers.numpy_materializer import NumpyMaterializer  # noqa: F401
    from stepwire.materializers.pandas_materializer import PandasMaterializer  # noqa: F401
    from stepwire.materializers.polars_materializer import (  # noqa: F401
        PolarsIpcMaterializer,
        PolarsMaterializer,
    )
    from stepwire.materializers.sklearn_materializer import SklearnMaterializer  # noqa: F401

#: Name of a lazy built-in to the module that defines it; importing the module
#: imports its library (numpy, pandas, pyarrow, polars, scikit-learn).
_LAZY_NAMES = {
    "NumpyMaterializer": "stepwire.materializers.numpy_materializer",
    "ArrowIpcMaterializer": "stepwire.materializers.arrow_materializer",
    "ArrowMaterializer": "stepwire.materializers.arrow_materializer",
    "PandasMaterializer": "stepwire.materializers.pandas_materializer",
    "PolarsIpcMaterializer": "stepwire.materializers.polars_materializer",
    "PolarsMaterializer": "stepwire.materializers.polars_materializer",
    "SklearnMaterializer": "stepwire.materializers.sklearn_materializer",
}


def __getattr__(name: str) -> Any:
    """Imports a lazy built-in on first use of its name (PEP 562).

    Args:
        name: An attribute of this package.

    Returns:
        The materializer class.

    Raises:
        AttributeError: For any other name.
    """
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BaseMaterializer",
    "BuiltInMaterializer",
    "BytesMaterializer",
    "MaterializerRegistry",
    "default_materializer_registry",
]
