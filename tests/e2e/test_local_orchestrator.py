"""The ``local`` orchestrator through the CLI: every step in one process, in order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from stepwire.materializers import value_codec
from stepwire.runs import RunReader

PIPELINE = """
import os

from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def source(n: int = 3) -> list:
    return [os.getpid()] * n


@step(enable_cache=False)
def fail_or_count(pids: list) -> int:
    if os.environ.get("FAIL"):
        raise ValueError("failing on purpose")
    return len(set(pids + [os.getpid()]))


@step
def after(count: int) -> int:
    return count * 10


@pipeline
def in_process(source, fail_or_count, after):
    after(count=fail_or_count(pids=source()))


p = in_process(source=source(), fail_or_count=fail_or_count(), after=after())
"""


def _run(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepwire", "run", "flow.py:p", "--orchestrator", "local"],
        cwd=root,
        env={
            **os.environ,
            "STEPWIRE_ARTIFACT_STORE": str(root / "a"),
            "STEPWIRE_METADATA_URI": str(root / "m.db"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_local_orchestrator_runs_in_one_process_and_stops_at_a_failure(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(PIPELINE))
    ok = _run(tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 steps: 3 completed" in ok.stdout
    reader = _reader(tmp_path)
    [first] = reader.list_runs()
    [after] = [s for s in first.steps if s.step == "after"]
    # One process: the source and the counting step saw the same pid.
    assert value_codec.loads((Path(after.outputs[0].uri) / "data.json").read_text()) == 10

    failed = _run(tmp_path, FAIL="1")
    assert failed.returncode == 1
    assert "fail_or_count" in failed.stdout
    assert "FAILED" in failed.stdout
    assert "skipped (upstream fail_or_count failed)" in failed.stdout
    [latest, _] = reader.list_runs()
    statuses = {s.step: s.status for s in latest.steps}
    assert statuses == {"source": "cached", "fail_or_count": "failed"}


def _reader(root: Path) -> RunReader:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(root / "m.db")
    return RunReader(metadata_store.MetadataStore(config))
