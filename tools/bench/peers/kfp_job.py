"""Kubeflow Pipelines peer: a chain of trivial lightweight components run by ``kfp.local``.

Usage: ``kfp_job.py --steps 2|6 --out FILE --root DIR``. Runs with
``kfp.local.SubprocessRunner(use_venv=False)``: every task in its own process with
this interpreter. Writes the import time, the run's wall time and when each task finished.
"""

import time

START = time.monotonic()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from kfp import dsl, local  # noqa: E402

IMPORTED = time.monotonic()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def produce() -> int:
    return 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add_one(x: int) -> int:
    return x + 1


@dsl.pipeline
def chain2() -> int:
    return add_one(x=produce().output).output


@dsl.pipeline
def chain6() -> int:
    x = produce().output
    for _ in range(5):
        x = add_one(x=x).output
    return x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, choices=[2, 6], default=2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--root", required=True)
    options = parser.parse_args()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=options.root)
    job = chain2 if options.steps == 2 else chain6
    start = time.monotonic()
    task = job()
    run_seconds = time.monotonic() - start
    value = task.output
    if value != options.steps:
        raise SystemExit(f"KFP chain returned {value!r}, expected {options.steps}")
    # Each task writes its outputs into its own folder of the run: the folders'
    # modification times are when the tasks finished.
    runs = sorted(
        Path(options.root).glob(f"chain{options.steps}-*"), key=lambda p: p.stat().st_mtime
    )
    step_times = sorted(p.stat().st_mtime for p in runs[-1].iterdir() if p.is_dir())
    with open(options.out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "import_seconds": IMPORTED - START,
                "run_seconds": run_seconds,
                "step_times": step_times,
            },
            f,
        )


if __name__ == "__main__":
    main()
