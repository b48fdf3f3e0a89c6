"""Runs grpcio-tools' bundled protoc on the contract."""

from __future__ import annotations

import importlib.resources
import tempfile
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from stepwire_codegen.errors import ContractError


@dataclass(frozen=True)
class ProtocOutput:
    """What one protoc run produced.

    Attributes:
        files: Generated Python modules and stubs, keyed by their path relative to
            the output root (for example ``stepwire/entrypoint/v1/options_pb2.py``).
        descriptor_set: The descriptors of the contract and all its imports, with
            source info, so that comments reach the model.
    """

    files: dict[str, bytes]
    descriptor_set: descriptor_pb2.FileDescriptorSet


def _well_known_include() -> str:
    # grpcio-tools ships google/protobuf/*.proto beside its protoc; pass it
    # explicitly so the result never depends on a system protobuf install.
    return str(importlib.resources.files("grpc_tools") / "_proto")


def run_protoc(contract_root: Path, proto_files: list[str]) -> ProtocOutput:
    """Compiles the contract's proto files.

    Args:
        contract_root: Directory that import paths in the contract are relative to.
        proto_files: The proto files to compile, relative to ``contract_root``.

    Returns:
        The generated Python modules and stubs, and the descriptor set.

    Raises:
        ContractError: If protoc rejects the contract.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        descriptor_path = Path(tmp) / "descriptors.binpb"
        argv = [
            "grpc_tools.protoc",
            f"--proto_path={contract_root}",
            f"--proto_path={_well_known_include()}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--descriptor_set_out={descriptor_path}",
            "--include_imports",
            "--include_source_info",
            *proto_files,
        ]
        code = protoc.main(argv)
        if code != 0:
            raise ContractError(
                f"{contract_root}: protoc failed with exit code {code} (its message is above)"
            )
        files = {
            path.relative_to(out).as_posix(): path.read_bytes()
            for path in sorted(out.rglob("*"))
            if path.is_file()
        }
        descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    return ProtocOutput(files=files, descriptor_set=descriptor_set)
