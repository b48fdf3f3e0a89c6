"""The ``local`` orchestrator through the CLI: every step in one process, in order."""

from __future__ import annotations

import textwrap
from pathlib import Path

from stepwire_testkit import StackDir

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


RUN = ["run", "flow.py:p", "--orchestrator", "local"]


def test_local_orchestrator_runs_in_one_process_and_stops_at_a_failure(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(PIPELINE))
    stack = StackDir(tmp_path, drop=("FAIL",))
    ok = stack.cli(RUN, tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 steps: 3 completed" in ok.stdout
    reader = RunReader(stack.store())
    [first] = reader.list_runs()
    [after] = [s for s in first.steps if s.step == "after"]
    # One process: the source and the counting step saw the same pid.
    assert value_codec.loads((Path(after.outputs[0].uri) / "data.json").read_text()) == 10

    failed = stack.cli(RUN, tmp_path, timeout=120, FAIL="1")
    assert failed.returncode == 1
    assert "fail_or_count" in failed.stdout
    assert "FAILED" in failed.stdout
    assert "skipped (upstream fail_or_count failed)" in failed.stdout
    [latest, _] = reader.list_runs()
    statuses = {s.step: s.status for s in latest.steps}
    assert statuses == {"source": "cached", "fail_or_count": "failed"}
