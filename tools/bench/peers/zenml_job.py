"""ZenML peer: a chain of trivial steps on ZenML's local orchestrator (its own venv).

Usage: ``zenml_job.py --steps 2|6 --out FILE``. Writes the import time, the run's
wall time, the per-step durations ZenML recorded and the steps' start times.
"""

import time

START = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402

from zenml import pipeline, step  # noqa: E402

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
def chain2() -> None:
    s1(s0())


@pipeline(enable_cache=False)
def chain6() -> None:
    s5(s4(s3(s2(s1(s0())))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, choices=[2, 6], default=2)
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    job = chain2 if options.steps == 2 else chain6
    start = time.monotonic()
    run = job()
    run_seconds = time.monotonic() - start
    step_seconds, step_times = [], []
    for step_run in run.steps.values():
        if step_run.start_time and step_run.end_time:
            step_seconds.append((step_run.end_time - step_run.start_time).total_seconds())
            step_times.append(step_run.start_time.timestamp())
    status = str(run.status)
    with open(options.out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "import_seconds": IMPORTED - START,
                "run_seconds": run_seconds,
                "step_seconds": step_seconds,
                "step_times": sorted(step_times),
                "status": status,
            },
            f,
        )
    if "completed" not in status.lower():
        raise SystemExit(f"ZenML run ended {status}")


if __name__ == "__main__":
    main()
