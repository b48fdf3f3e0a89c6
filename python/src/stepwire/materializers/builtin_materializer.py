"""Materializers for built-in Python values; nothing is pickled."""

from __future__ import annotations

from typing import Any, ClassVar

from stepwire import io_utils
from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.standard_artifacts import DataArtifact, StatisticsArtifact
from stepwire.exceptions import StepInterfaceError
from stepwire.materializers import value_codec
from stepwire.materializers.base_materializer import BaseMaterializer

#: File holding a built-in value under the artifact URI.
DEFAULT_FILENAME = "data.json"
#: File holding raw bytes under the artifact URI.
DEFAULT_BYTES_FILENAME = "data.bin"


class BuiltInMaterializer(BaseMaterializer):
    """Stores bool, int, float, str, list, tuple and dict values as tagged JSON.

    The encoding (:mod:`stepwire.materializers.value_codec`) reads back exactly the
    types that were written, nested tuples, bytes and non-string keys included.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (bool, int, float, str, list, tuple, dict)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (
        DataArtifact,
        StatisticsArtifact,
    )

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored value.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The value.
        """
        super().handle_input(data_type)
        return value_codec.loads(
            io_utils.read_bytes(io_utils.join(self.artifact.uri, DEFAULT_FILENAME))
        )

    def handle_return(self, data: Any) -> None:
        """Writes the value.

        Args:
            data: The value.

        Raises:
            StepInterfaceError: If the value holds a type the encoding does not keep.
        """
        super().handle_return(data)
        try:
            text = value_codec.dumps(data)
        except value_codec.UnsupportedValueError as e:
            raise StepInterfaceError(f"{type(self).__name__} cannot store this output: {e}") from e
        io_utils.write_bytes(
            io_utils.join(self.artifact.uri, DEFAULT_FILENAME), text.encode("ascii")
        )


class BytesMaterializer(BaseMaterializer):
    """Stores a byte string as a raw file."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (bytes,)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (DataArtifact,)

    def handle_input(self, data_type: type) -> Any:
        """Reads the stored bytes.

        Args:
            data_type: The type the consuming step declares.

        Returns:
            The bytes.
        """
        super().handle_input(data_type)
        return io_utils.read_bytes(io_utils.join(self.artifact.uri, DEFAULT_BYTES_FILENAME))

    def handle_return(self, data: Any) -> None:
        """Writes the bytes.

        Args:
            data: The byte string.

        Raises:
            StepInterfaceError: If ``data`` is a subclass of bytes, which would read back
                as plain bytes.
        """
        super().handle_return(data)
        if type(data) is not bytes:
            raise StepInterfaceError(
                f"{type(self).__name__} stores exactly bytes, not {type(data).__qualname__}; "
                "convert with bytes(x)."
            )
        io_utils.write_bytes(io_utils.join(self.artifact.uri, DEFAULT_BYTES_FILENAME), data)
