"""Section 3: a 50-step chain and a 50-wide fan-out on three orchestrators.

Usage: ``throughput.py --shape chain|fanout --size N --orchestrator
subprocess|local|tfx [--max-parallel P] [--launch warm|cold] --out FILE``. One run
per process, imports done before the clock starts. ``subprocess`` and ``local`` run
``pipeline.run()`` (compile, then every step); ``tfx`` builds
``tfx.orchestration.pipeline.Pipeline`` from the same components, as
``BasePipeline.compile()`` does, and runs it with TFX's ``LocalDagRunner`` (which
compiles it too). Per-step times: the step processes' wall times for ``subprocess``,
the launches for ``local``, and ML Metadata's execution create/update times for
``tfx``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import harness
import pipelines_gen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=["chain", "fanout"], required=True)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--orchestrator", choices=["subprocess", "local", "tfx"], required=True)
    parser.add_argument("--max-parallel", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--launch", choices=["warm", "cold"], default="warm")
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()

    work = harness.work_folder("stepwire-bench-flow-")
    os.environ["STEPWIRE_ARTIFACT_STORE"] = str(work / "artifacts")
    os.environ["STEPWIRE_METADATA_URI"] = str(work / "metadata.db")
    source = (
        pipelines_gen.chain_source(options.size)
        if options.shape == "chain"
        else pipelines_gen.fanout_source(options.size)
    )
    pipelines_gen.write_module(work / "src", "bench_flow", source)
    pipeline = pipelines_gen.load_pipeline(work / "src", "bench_flow")

    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import launcher  # noqa: F401 - imported before timing

    from stepwire.orchestrators.local_orchestrator import LocalOrchestrator
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessOrchestrator
    from stepwire.stack import get_active_stack

    stack = get_active_stack()
    result: dict[str, Any] = {"steps": len(pipeline.steps)}
    if options.orchestrator == "tfx":
        for step in pipeline.steps.values():
            step._reset_wiring()
        pipeline.connect(**pipeline.steps)
        logical = tfx_pipeline.Pipeline(
            pipeline_name=pipeline.name,
            components=[step.component for step in pipeline.steps.values()],
            pipeline_root=str(work / "artifacts"),
            enable_cache=False,
            metadata_connection_config=metadata.sqlite_metadata_connection_config(
                str(work / "metadata.db")
            ),
        )
        start = time.monotonic()
        LocalDagRunner().run(logical)
        result["run_seconds"] = time.monotonic() - start
        result["step_seconds"] = mlmd_step_seconds(work / "metadata.db")
    else:
        stack.orchestrator = (
            SubprocessOrchestrator(max_parallel=options.max_parallel, warm=options.launch == "warm")
            if options.orchestrator == "subprocess"
            else LocalOrchestrator()
        )
        start = time.monotonic()
        summary = pipeline.run(stack=stack)
        result["run_seconds"] = time.monotonic() - start
        result["step_seconds"] = list(summary.durations.values())
        result["steps_phase_seconds"] = summary.seconds
        statuses = set(summary.statuses.values())
        if statuses != {"completed"}:
            raise SystemExit(f"unexpected step statuses {statuses}")
    result["max_parallel"] = options.max_parallel if options.orchestrator == "subprocess" else 1
    result["launch"] = options.launch if options.orchestrator == "subprocess" else "in process"
    harness.write_json(options.out, result)


def mlmd_step_seconds(database: Path) -> list[float]:
    """Each COMPLETE execution's last update minus creation, from ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(database)
    executions = metadata_store.MetadataStore(config).get_executions()
    done = [e for e in executions if e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
    if len(done) != len(executions):
        raise SystemExit(f"{len(executions) - len(done)} TFX executions did not complete")
    return [(e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000 for e in done]


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
