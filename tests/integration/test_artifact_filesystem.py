"""TFX's file layer on fsspec: the filesystem plugin, and steps whose artifacts are not local.

``memory://`` is fsspec's own in-process filesystem, so these run the real launcher
against a non-local store without a server; tests/stores runs the same on an S3 server.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from stepwire_testkit import InProcessOrchestrator
from tfx.dsl.io import fileio, filesystem

from stepwire import io_utils
from stepwire.artifact_filesystem import (
    FsspecFilesystem,
    check_artifact_store,
    register_artifact_filesystem,
)
from stepwire.artifact_store import ArtifactStore
from stepwire.exceptions import InfrastructureError
from stepwire.metadata_store import SQLiteMetadataStore
from stepwire.orchestrators import StepOutcome
from stepwire.pipelines import pipeline
from stepwire.runs import RunReader
from stepwire.stack import Stack
from stepwire.steps import BaseStep, step


@step
def numbers(n: int = 3) -> list:  # type: ignore[type-arg]
    return list(range(n))


@step
def total(values: list, fail: bool = False) -> int:  # type: ignore[type-arg]
    if fail:
        raise ValueError("the user's own error, not TFX's cleanup")
    return sum(values)


@pipeline
def summing(numbers: BaseStep, total: BaseStep) -> None:
    total(values=numbers())


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://stepwire-{uuid.uuid4().hex[:8]}/artifacts"
    register_artifact_filesystem(root)
    yield root
    with contextlib.suppress(FileNotFoundError):
        fsspec.filesystem("memory").rm(root.removeprefix("memory://"), recursive=True)


def test_the_plugin_is_what_tfx_uses_for_a_registered_scheme(memory_root: str) -> None:
    assert fileio._get_filesystem(memory_root) is FsspecFilesystem
    # Local paths keep TFX's own plugin.
    assert fileio._get_filesystem("/tmp/x") is not FsspecFilesystem


def test_files_and_folders_through_tfx_fileio(memory_root: str) -> None:
    folder = f"{memory_root}/step/output/1"
    fileio.makedirs(folder)
    with fileio.open(f"{folder}/a.txt", "w") as text:
        text.write("hello")
    with fileio.open(f"{folder}/b.bin", "wb") as binary:
        binary.write(b"\x00\x01")
    assert fileio.exists(f"{folder}/a.txt")
    assert fileio.isdir(folder)
    assert not fileio.isdir(f"{folder}/a.txt")
    assert sorted(fileio.listdir(folder)) == ["a.txt", "b.bin"]
    assert sorted(fileio.glob(f"{folder}/*.txt")) == [f"{folder}/a.txt"]
    walked = list(fileio.walk(f"{memory_root}/step"))
    assert (folder, [], ["a.txt", "b.bin"]) in [(r, d, sorted(f)) for r, d, f in walked]
    assert fileio.stat(f"{folder}/a.txt").st_size == 5

    with pytest.raises(OSError, match="already exists"):
        fileio.copy(f"{folder}/a.txt", f"{folder}/b.bin")
    fileio.copy(f"{folder}/a.txt", f"{folder}/c.txt")
    fileio.rename(f"{folder}/c.txt", f"{folder}/d.txt")
    with fileio.open(f"{folder}/d.txt") as moved:
        assert moved.read() == "hello"
    assert not fileio.exists(f"{folder}/c.txt")

    fileio.remove(f"{folder}/d.txt")
    with pytest.raises(filesystem.NotFoundError):
        fileio.remove(f"{folder}/d.txt")
    with pytest.raises(filesystem.NotFoundError):
        fileio.open(f"{folder}/missing.txt")
    with pytest.raises(filesystem.NotFoundError):
        fileio.listdir(f"{memory_root}/no/such/folder")

    fileio.rmtree(f"{memory_root}/step")
    assert not fileio.exists(folder)
    # An object store never had folders a failed step "created": removing one is fine.
    fileio.rmtree(f"{memory_root}/never/written")


def test_a_scheme_without_its_package_names_the_extra() -> None:
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(InfrastructureError, match=r"gs:// .*install stepwire\[gcs\]"):
        check_artifact_store("gs://bucket/artifacts")


def test_an_unknown_scheme_is_infrastructure() -> None:
    with pytest.raises(InfrastructureError, match="nosuchscheme://, which fsspec does not know"):
        check_artifact_store("nosuchscheme://bucket/artifacts")


def test_a_local_store_registers_nothing(tmp_path: Path) -> None:
    before = list(FsspecFilesystem.SUPPORTED_SCHEMES)
    check_artifact_store(str(tmp_path))
    assert before == FsspecFilesystem.SUPPORTED_SCHEMES


def test_a_pipeline_whose_artifacts_are_in_a_non_local_store(
    tmp_path: Path, memory_root: str
) -> None:
    stack = Stack(
        orchestrator=InProcessOrchestrator(),
        artifact_store=ArtifactStore(memory_root),
        metadata_store=SQLiteMetadataStore(str(tmp_path / "metadata.db")),
    )
    outcomes = stack.orchestrator.run(
        summing(numbers=numbers(n=5), total=total()), run_name="first", stack=stack
    )
    assert outcomes == {"numbers": StepOutcome.COMPLETED, "total": StepOutcome.COMPLETED}
    reader = RunReader(stack.metadata_store.open_store())
    [total_step] = [s for s in reader.get_run("first").steps if s.step == "total"]
    [output] = total_step.outputs
    assert output.uri.startswith(f"{memory_root}/total/output/")
    assert io_utils.exists(output.uri)

    again = stack.orchestrator.run(
        summing(numbers=numbers(n=5), total=total()), run_name="second", stack=stack
    )
    assert again == {"numbers": StepOutcome.CACHED, "total": StepOutcome.CACHED}


def test_a_failing_step_on_a_non_local_store_reports_its_own_error(
    tmp_path: Path, memory_root: str
) -> None:
    stack = Stack(
        orchestrator=InProcessOrchestrator(),
        artifact_store=ArtifactStore(memory_root),
        metadata_store=SQLiteMetadataStore(str(tmp_path / "metadata.db")),
    )
    with pytest.raises(ValueError, match="the user's own error"):
        stack.orchestrator.run(
            summing(numbers=numbers(), total=total(fail=True)), run_name="failing", stack=stack
        )
