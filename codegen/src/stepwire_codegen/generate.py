"""From contract to files: protoc, the model, the templates."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from stepwire_codegen import __version__
from stepwire_codegen.errors import ContractError
from stepwire_codegen.model import Contract, build_model
from stepwire_codegen.protoc import run_protoc
from stepwire_codegen.render import environment
from stepwire_codegen.runtime import DEFAULT_RUNTIME, check_runtime


@dataclass(frozen=True)
class Target:
    """Where generated code goes and how it is imported.

    Attributes:
        contract_root: Directory holding the proto files (the import root).
        proto_prefix: Leading path component of the proto files that is dropped
            in the output tree (``stepwire`` for ``stepwire/entrypoint/v1/...``).
        package: Python package the output tree is importable as.
        runtime: Module the generated codecs import their contract-independent
            code from; its enums are checked against the contract.
    """

    contract_root: Path
    proto_prefix: str
    package: str
    runtime: str = DEFAULT_RUNTIME


def find_protos(contract_root: Path) -> list[str]:
    """The contract's proto files, relative to its root, sorted.

    Args:
        contract_root: Directory holding the proto files.

    Returns:
        Relative POSIX paths.

    Raises:
        ContractError: If there are none.
    """
    protos = sorted(p.relative_to(contract_root).as_posix() for p in contract_root.rglob("*.proto"))
    if not protos:
        raise ContractError(f"{contract_root}: no .proto files found")
    return protos


def _rewrite_imports(text: str, modules: dict[str, str]) -> str:
    # protoc writes absolute imports named after each proto's path; the output
    # lives inside the target package (with the prefix dropped), so point every
    # import of a module generated in this run at its new name.
    def replace(match: re.Match[str]) -> str:
        package, module = match.group(2), match.group(3)
        new = modules.get(f"{package}.{module}")
        if new is None:
            return match.group(0)
        new_package, new_module = new.rsplit(".", 1)
        return f"{match.group(1)}from {new_package} import {new_module}{match.group(4)}"

    return re.sub(r"^(\s*)from ([\w.]+) import (\w+_pb2)\b(.*)$", replace, text, flags=re.M)


def _fix_stub(text: str) -> str:
    # protoc's pyi generator types module-level extension numbers as ClassVar,
    # which is only valid inside a class body; mypy --strict rejects it.
    return re.sub(r"^(\w+_FIELD_NUMBER): _ClassVar\[int\]$", r"\1: int", text, flags=re.MULTILINE)


def _output_path(proto_path: str, target: Target) -> str:
    if target.proto_prefix and proto_path.startswith(target.proto_prefix + "/"):
        return proto_path[len(target.proto_prefix) + 1 :]
    return proto_path


def render_files(target: Target) -> dict[str, str]:
    """Generates every output file in memory.

    Args:
        target: The contract and where its code goes.

    Returns:
        File contents keyed by their path relative to the output root.

    Raises:
        ContractError: If the contract breaks a rule, or the runtime's copies of
            its enums differ from it.
    """
    protos = find_protos(target.contract_root)
    compiled = run_protoc(target.contract_root, protos)
    contract: Contract = build_model(compiled.descriptor_set, tuple(protos), target.proto_prefix)
    if contract.messages:
        # Only a codec imports the runtime; without one there is nothing to match.
        check_runtime(contract, target.runtime)
    env = environment()
    env.globals.update(
        generator_version=__version__,
        protoc_version=metadata.version("grpcio-tools"),
        package=target.package,
        runtime=target.runtime,
    )
    modules = {
        name.removesuffix(".py").replace("/", "."): target.package
        + "."
        + _output_path(name, target).removesuffix(".py").replace("/", ".")
        for name in compiled.files
        if name.endswith("_pb2.py")
    }
    files: dict[str, str] = {}
    for name, data in compiled.files.items():
        text = _rewrite_imports(data.decode("utf-8"), modules)
        files[_output_path(name, target)] = _fix_stub(text) if name.endswith(".pyi") else text
    codec = env.get_template("codec.py.j2")
    for message in contract.messages:
        path = message.codec_module.replace(".", "/") + ".py"
        files[path] = codec.render(message=message)
    init = env.get_template("__init__.py.j2")
    packages = {""} | {
        "/".join(parts[:i])
        for path in files
        for parts in [path.split("/")[:-1]]
        for i in range(1, len(parts) + 1)
    }
    for package in sorted(packages):
        init_path = f"{package}/__init__.py" if package else "__init__.py"
        files[init_path] = init.render(
            sources=contract.proto_files,
            doc="Code generated from the stepwire contract; do not edit.",
        )
    files["py.typed"] = ""
    return dict(sorted(files.items()))


def write_tree(files: dict[str, str], out: Path) -> None:
    """Replaces ``out`` with exactly ``files``, so nothing stale survives.

    Args:
        files: File contents by relative path.
        out: The output root.
    """
    if out.exists():
        shutil.rmtree(out)
    for relative, text in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def diff_tree(files: dict[str, str], out: Path) -> list[str]:
    """Unified diffs between generated ``files`` and the tree at ``out``.

    Args:
        files: Freshly generated contents by relative path.
        out: The checked-in output root.

    Returns:
        One diff per differing, missing or extra file; empty when in sync.
    """
    import difflib

    existing = (
        {
            p.relative_to(out).as_posix(): p.read_text("utf-8")
            for p in sorted(out.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }
        if out.exists()
        else {}
    )
    diffs: list[str] = []
    for relative in sorted(set(files) | set(existing)):
        old, new = existing.get(relative), files.get(relative)
        if old == new:
            continue
        fromfile = f"checked-in/{relative}" if old is not None else "/dev/null"
        tofile = f"generated/{relative}" if new is not None else "/dev/null"
        diff = "".join(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                (new or "").splitlines(keepends=True),
                fromfile=fromfile,
                tofile=tofile,
            )
        )
        # An empty file that is missing or extra has no lines to show; name it.
        diffs.append(diff or f"--- {fromfile}\n+++ {tofile}\n(empty file)\n")
    return diffs
