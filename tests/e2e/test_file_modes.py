"""What a run writes that may hold user data is not world-readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stepwire_testkit import StackDir, explain

from stepwire import io_utils
from stepwire.entrypoints.references import ArtifactStoreReferences

MODULE = """
import numpy as np

from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def make() -> np.ndarray:
    print("a line of the step's own output")
    return np.arange(4)


@step
def total(values: np.ndarray) -> int:
    return int(values.sum())


@pipeline
def modes(make, total):
    total(values=make())


modes_pipeline = modes(make=make(), total=total())
"""


def _world_readable(path: Path) -> bool:
    return bool(stat.S_IMODE(path.stat().st_mode) & stat.S_IROTH)


def test_the_store_the_logs_and_the_outputs_are_not_world_readable(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, which lets files be read by anyone
    os.umask(previous)
    assert previous & stat.S_IROTH == 0, "the test needs a umask that allows world reads"
    (tmp_path / "modes_module.py").write_text(MODULE)
    stack = StackDir(tmp_path / "stack", orchestrator="subprocess")
    proc = stack.cli(
        ["run", str(tmp_path / "modes_module.py:modes_pipeline"), "--run-name", "m"], tmp_path
    )
    assert proc.returncode == 0, explain(proc)
    written = [
        stack.metadata,
        *(stack.artifacts / ".logs" / "m").glob("*.log"),
        *(p for p in stack.artifacts.rglob("*") if p.is_file() and ".logs" not in p.parts),
    ]
    assert len(written) >= 5  # the store, two logs, two outputs
    assert [p for p in written if _world_readable(p)] == []


def test_a_reference_is_not_world_readable(tmp_path: Path) -> None:
    references = ArtifactStoreReferences(str(tmp_path / "store"))
    sha = "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"  # b"payload"
    uri = references.put(b"payload", sha)
    assert stat.S_IMODE(Path(uri).stat().st_mode) & ~io_utils.FILE_MODE == 0
    assert not _world_readable(Path(uri))
