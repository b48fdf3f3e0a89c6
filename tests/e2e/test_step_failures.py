"""A step that raises: recorded FAILED, dependents not started, the next run resumes.

Real processes: the ``stepwire`` CLI with the subprocess orchestrator, one process
per step, SQLite ML Metadata in a temporary folder (about 6 s).
"""

from __future__ import annotations

from pathlib import Path

from faults_helpers import EXPECTED_TAIL, PIPELINE_NAME, FaultProject
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import explain

from stepwire.materializers import value_codec

State = metadata_store_pb2.Execution.State


def test_failed_step_is_recorded_its_dependents_skipped_and_a_new_run_resumes(
    tmp_path: Path,
) -> None:
    project = FaultProject(tmp_path)

    broken = project.run_pipeline("broken", FAULT_MIDDLE="raise")
    assert broken.returncode == 1, explain(broken)
    assert "middle failed on purpose" in broken.stdout, explain(broken)
    assert "sink          skipped (upstream middle failed)" in broken.stdout, explain(broken)
    assert "tail          skipped (upstream sink failed)" in broken.stdout, explain(broken)
    assert "6 steps: 3 completed, 0 cached, 1 failed, 2 skipped" in broken.stdout

    # ML Metadata: the failure is recorded, the dependents never started.
    [failed] = project.executions("broken", PIPELINE_NAME, "middle")
    assert failed.last_known_state == State.FAILED
    assert project.executions("broken", PIPELINE_NAME, "sink") == []
    assert project.executions("broken", PIPELINE_NAME, "tail") == []
    for step in ("source", "array_source", "side"):
        [done] = project.executions("broken", PIPELINE_NAME, step)
        assert done.last_known_state == State.COMPLETE, step
    assert project.statuses("broken") == {
        "source": "completed",
        "array_source": "completed",
        "side": "completed",
        "middle": "failed",
    }

    # The next run redoes only what did not succeed.
    fixed = project.run_pipeline("fixed")
    assert fixed.returncode == 0, explain(fixed)
    assert "6 steps: 3 completed, 3 cached, 0 failed, 0 skipped" in fixed.stdout, explain(fixed)
    assert project.statuses("fixed") == {
        "source": "cached",
        "array_source": "cached",
        "side": "cached",
        "middle": "completed",
        "sink": "completed",
        "tail": "completed",
    }
    # Cached steps hand out the outputs the first run published.
    assert project.output_uri("fixed", "source") == project.output_uri("broken", "source")
    result = Path(project.output_uri("fixed", "tail"), "data.json").read_text()
    assert value_codec.loads(result) == EXPECTED_TAIL
