"""What the step process's supervisor costs: one step, with and without it, alternating.

    python tools/bench/supervisor_cost.py --runs 20

Each round launches the same one-step pipeline's step entrypoint twice, once with
``STEPWIRE_SUPERVISE=0`` and once supervised, in alternating order, as real processes
against a SQLite ML Metadata store in a temporary folder. Prints the median wall time
(min-max) of each and the median of the per-round ratios, which is what compares across
machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MODULE = textwrap.dedent(
    """
    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step(enable_cache=False)
    def only() -> int:
        return 1


    @pipeline
    def supervised(only):
        only()
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds (two launches each)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stepwire-supervisor-") as folder:
        root = Path(folder)
        (root / "supervised_step.py").write_text(MODULE)
        sys.path.insert(0, str(root))
        os.environ.update(
            STEPWIRE_CONFIG="",
            STEPWIRE_ARTIFACT_STORE=str(root / "artifacts"),
            STEPWIRE_METADATA_URI=str(root / "metadata.db"),
        )
        from stepwire import constants
        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration as Config,
        )
        from stepwire.stack import get_active_stack

        constants.USER_MAIN_MODULE = "supervised_step"
        import supervised_step

        p = supervised_step.supervised(only=supervised_step.only())
        ir, stack = p.compile(), get_active_stack()
        env = {**os.environ, "PYTHONPATH": str(root)}
        seconds: dict[str, list[float]] = {"0": [], "1": []}
        for round_ in range(options.runs):
            for supervise in ("1", "0") if round_ % 2 else ("0", "1"):
                command = Config.get_entrypoint_command() + Config.get_entrypoint_arguments(
                    step=p.steps["only"],
                    pb2_pipeline=ir,
                    run_name=f"r{round_}-{supervise}",
                    stack=stack,
                )
                start = time.perf_counter()
                done = subprocess.run(
                    command,
                    env={**env, "STEPWIRE_SUPERVISE": supervise},
                    capture_output=True,
                    cwd=root,
                    check=False,
                )
                seconds[supervise].append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise SystemExit(done.stderr.decode(errors="replace"))
    for supervise, name in (("0", "unsupervised"), ("1", "supervised")):
        values = seconds[supervise]
        print(
            f"{name:>12}: median {statistics.median(values) * 1000:.0f} ms "
            f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}), n={len(values)}"
        )
    ratios = [a / b for a, b in zip(seconds["1"], seconds["0"], strict=True)]
    print(
        f"supervised / unsupervised, per round: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
