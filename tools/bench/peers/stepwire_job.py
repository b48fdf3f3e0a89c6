"""stepwire, measured like the peers: a chain of trivial steps, run from a fresh process.

Usage: ``stepwire_job.py --steps 2|6 --orchestrator subprocess|local --out FILE``, with
the stack in ``STEPWIRE_ARTIFACT_STORE`` and ``STEPWIRE_METADATA_URI``. Writes the import
time, the run's wall time (``pipeline.run()``: compile, then every step) and the
per-step durations the orchestrator recorded.
"""

import time

START = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402

from stepwire.pipelines import pipeline  # noqa: E402
from stepwire.steps import step  # noqa: E402

IMPORTED = time.monotonic()


@step(enable_cache=False)
def s0() -> int:
    return 1


@step(enable_cache=False)
def s1(x: int) -> int:
    return x + 1


@step(enable_cache=False)
def s2(x: int) -> int:
    return x + 1


@step(enable_cache=False)
def s3(x: int) -> int:
    return x + 1


@step(enable_cache=False)
def s4(x: int) -> int:
    return x + 1


@step(enable_cache=False)
def s5(x: int) -> int:
    return x + 1


@pipeline(enable_cache=False)
def chain2(s0, s1):  # type: ignore[no-untyped-def]
    s1(x=s0())


@pipeline(enable_cache=False)
def chain6(s0, s1, s2, s3, s4, s5):  # type: ignore[no-untyped-def]
    s5(x=s4(x=s3(x=s2(x=s1(x=s0())))))


def main() -> None:
    from stepwire.orchestrators.local_orchestrator import LocalOrchestrator
    from stepwire.orchestrators.subprocess_orchestrator import SubprocessOrchestrator
    from stepwire.stack import get_active_stack

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, choices=[2, 6], default=2)
    parser.add_argument("--orchestrator", choices=["subprocess", "local"], default="subprocess")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    steps = [s0(), s1(), s2(), s3(), s4(), s5()][: options.steps]
    job = chain2(*steps) if options.steps == 2 else chain6(*steps)
    stack = get_active_stack()
    stack.orchestrator = (
        SubprocessOrchestrator(max_parallel=1)
        if options.orchestrator == "subprocess"
        else LocalOrchestrator()
    )
    start = time.monotonic()
    summary = job.run(stack=stack)
    run_seconds = time.monotonic() - start
    with open(options.out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "import_seconds": IMPORTED - START,
                "run_seconds": run_seconds,
                "step_seconds": list(summary.durations.values()),
                "step_times": _registered_times(stack, summary.run_name),
            },
            f,
        )


def _registered_times(stack, run_name: str) -> list[float]:  # type: ignore[no-untyped-def]
    """When each execution of the run was registered in ML Metadata (epoch seconds)."""
    from ml_metadata.metadata_store import metadata_store

    store = metadata_store.MetadataStore(stack.metadata_store.get_tfx_metadata_config())
    context = store.get_context_by_type_and_name("pipeline_run", run_name)
    executions = store.get_executions_by_context(context.id)
    return sorted(e.create_time_since_epoch / 1000 for e in executions)


if __name__ == "__main__":
    main()
