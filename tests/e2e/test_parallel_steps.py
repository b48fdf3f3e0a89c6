"""200 step processes, 8 at a time, on one SQLite ML Metadata: every one recorded.

The slow test of the suite: 200 real step processes of about 0.7 s CPU each take
about two minutes on two cores. It runs in the default session on purpose: it is the
test of the design rule that parallel steps share the SQLite store without failures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_pipeline import MODULE, step_name, write_chains
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import StackDir, explain

from stepwire.materializers import value_codec
from stepwire.runs import RunReader

CHAINS, LENGTH, PARALLEL = 25, 8, 8
RUN = "parallel-200"


@pytest.mark.slow
def test_200_steps_8_processes_at_a_time_all_recorded(tmp_path: Path) -> None:
    module = write_chains(tmp_path, CHAINS, LENGTH)
    stack = StackDir(tmp_path, orchestrator="subprocess", STEPWIRE_MAX_PARALLEL=str(PARALLEL))
    proc = stack.cli(["run", f"{module}:{MODULE}", "--run-name", RUN], tmp_path, timeout=1200)
    assert proc.returncode == 0, explain(proc)
    assert f"on {PARALLEL} worker(s)" in proc.stdout
    total = CHAINS * LENGTH
    assert f"run succeeded: {total} steps: {total} completed, 0 cached, 0 failed" in proc.stdout

    store = stack.store()
    run = store.get_context_by_type_and_name("pipeline_run", RUN)
    executions = store.get_executions_by_context(run.id)
    states = [e.last_known_state for e in executions]
    assert len(executions) == total
    assert states.count(metadata_store_pb2.Execution.COMPLETE) == total

    # Every launch went through the guard, and ML Metadata's own client never had
    # to retry an aborted call (it logs "mlmd client retry" and sleeps ~2 s).
    logs = [p.read_text() for p in (stack.artifacts / ".logs" / RUN).glob("*.log")]
    assert len(logs) == total
    guarded = [text for text in logs if " ms waiting for other processes" in text]
    assert len(guarded) == total
    assert not [text for text in logs if "mlmd client retry" in text]

    steps = {s.step: s for s in RunReader(store).get_run(RUN).steps}
    assert len(steps) == total
    for chain in range(CHAINS):
        [last] = steps[step_name(chain, LENGTH - 1)].outputs
        assert value_codec.loads(Path(last.uri, "data.json").read_text()) == chain + LENGTH - 1
