"""Dagster peer: a chain of trivial ops, in process and with the multiprocess executor.

Usage: ``dagster_job.py --steps 2|6 --executor in_process|multiprocess --out FILE``
(``$DAGSTER_HOME`` must name a folder: the multiprocess executor needs a persistent
instance). Writes the import time, the run's wall time, the step durations Dagster
recorded and the steps' start times.
"""

import time

START = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402

from dagster import DagsterInstance, execute_job, job, op, reconstructable  # noqa: E402

IMPORTED = time.monotonic()


@op
def produce() -> int:
    return 1


@op
def add_one(x: int) -> int:
    return x + 1


@job
def chain2() -> None:
    add_one(produce())


@job
def chain6() -> None:
    x = produce()
    for i in range(5):
        x = add_one.alias(f"add_one_{i}")(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, choices=[2, 6], default=2)
    parser.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    target = chain2 if options.steps == 2 else chain6
    instance = DagsterInstance.get()
    start = time.monotonic()
    if options.executor == "in_process":
        result = target.execute_in_process(instance=instance)
    else:
        with execute_job(
            reconstructable(chain2 if options.steps == 2 else chain6), instance=instance
        ) as r:
            result = r
    run_seconds = time.monotonic() - start
    if not result.success:
        raise SystemExit("Dagster run failed")
    stats = instance.get_run_step_stats(result.run_id)
    step_seconds = [s.end_time - s.start_time for s in stats if s.end_time and s.start_time]
    step_times = sorted(s.start_time for s in stats if s.start_time)
    with open(options.out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "import_seconds": IMPORTED - START,
                "run_seconds": run_seconds,
                "step_seconds": step_seconds,
                "step_times": step_times,
            },
            f,
        )


if __name__ == "__main__":
    main()
