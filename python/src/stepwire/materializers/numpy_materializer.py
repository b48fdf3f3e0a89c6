"""Materializer for numpy arrays, in ``.npy`` format without pickled objects."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.materializer_registry import register_builtin

#: File holding the array under the artifact URI.
DEFAULT_FILENAME = "data.npy"


class NumpyMaterializer(BaseMaterializer):
    """Stores ``numpy.ndarray`` values with ``np.save(allow_pickle=False)``.

    Object arrays would need pickle and are refused, and so are ndarray subclasses
    (masked arrays, matrices), which would read back as plain arrays.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (np.ndarray,)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (DataArtifact,)
    # Registered by register_builtin below, after any user materializer of ndarray.
    SKIP_REGISTRATION = True

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored array.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The array.
        """
        super().handle_input(data_type)
        with io_utils.open_file(io_utils.join(self.artifact.uri, DEFAULT_FILENAME), "rb") as f:
            return np.load(f, allow_pickle=False)

    def handle_return(self, data: Any) -> None:
        """Writes the array.

        Args:
            data: The array.

        Raises:
            StepInterfaceError: For ndarray subclasses and object arrays.
        """
        super().handle_return(data)
        if type(data) is not np.ndarray:
            raise StepInterfaceError(
                f"{type(self).__name__} stores exactly numpy.ndarray, not "
                f"{type(data).__qualname__}; convert with np.asarray(x)."
            )
        if data.dtype.hasobject:
            raise StepInterfaceError(
                f"{type(self).__name__} cannot store an array of dtype {data.dtype}: it holds "
                "Python objects, which would need pickle."
            )
        with io_utils.write_whole(io_utils.join(self.artifact.uri, DEFAULT_FILENAME)) as f:
            np.save(f, data, allow_pickle=False)


register_builtin(NumpyMaterializer)
