"""Measures step launches: the cost of one launch, and steps per second in parallel.

``launch``: launches the steps of one chain one after the other in this process with
``stepwire.step_launcher.launch_step`` (what a step process does after its imports) and
prints the median time of a launch, the first (import-laden) one left out::

    python tools/stress/launch_bench.py launch --steps 12

``throughput``: runs a pipeline of independent chains with the subprocess
orchestrator (the CLI, a process per step) at several parallelisms and prints the
steps per second of each::

    python tools/stress/launch_bench.py throughput --parallel 2 4 8 --chains 8 --length 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_pipeline import MODULE, write_chains


def _count_guarded_calls() -> dict[str, float]:
    """Counts ML Metadata calls through the guard and the time spent in them."""
    try:
        from stepwire.mlmd_guard import GuardedMetadataStore
    except ImportError:  # measuring a tree without the guard
        return {}
    totals = {"calls": 0.0, "seconds": 0.0}
    original = GuardedMetadataStore._call

    def timed(self: GuardedMetadataStore, name: str, function: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, name, function)
        finally:
            totals["calls"] += 1
            totals["seconds"] += time.perf_counter() - start

    GuardedMetadataStore._call = timed  # type: ignore[method-assign]
    return totals


def bench_launch(steps: int, repeat: int) -> dict[str, float]:
    """Median seconds of ``launch_step`` over a chain of ``steps`` steps, in this process."""
    times: list[float] = []
    totals = _count_guarded_calls()
    counted = {"calls": 0.0, "seconds": 0.0}
    for round_ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            os.environ["STEPWIRE_ARTIFACT_STORE"] = str(root / "artifacts")
            os.environ["STEPWIRE_METADATA_URI"] = str(root / "metadata.db")
            write_chains(root, 1, steps)
            sys.path.insert(0, folder)
            sys.modules.pop(MODULE, None)
            try:
                import importlib

                module = importlib.import_module(MODULE)
                from stepwire.orchestrators.local_orchestrator import LocalOrchestrator
                from stepwire.stack import get_active_stack
                from stepwire.step_launcher import launch_step

                stack = get_active_stack()
                pipeline = getattr(module, MODULE)
                pb2 = pipeline.compile(pipeline_root=stack.artifact_store.path)
                orchestrator = LocalOrchestrator()
                ordered = orchestrator._get_sorted_steps(pipeline, pb2)
                for index, step in enumerate(ordered):
                    before = dict(totals)
                    start = time.perf_counter()
                    launch_step(step, f"bench-{round_}", pb2, stack)
                    if index or round_:
                        times.append(time.perf_counter() - start)
                        for key in totals:
                            counted[key] += totals[key] - before[key]
            finally:
                sys.path.remove(folder)
    return {
        "launches": len(times),
        "median_s": round(statistics.median(times), 4),
        "mean_s": round(statistics.mean(times), 4),
        "min_s": round(min(times), 4),
        # ML Metadata calls per launch and the time they hold the SQLite lock.
        "mlmd_calls_per_launch": round(counted["calls"] / len(times), 1),
        "mlmd_seconds_per_launch": round(counted["seconds"] / len(times), 4),
    }


def bench_throughput(parallel: int, chains: int, length: int) -> dict[str, float]:
    """Runs the chains pipeline through the CLI with ``parallel`` step processes."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        module = write_chains(root, chains, length)
        env = {
            **os.environ,
            "STEPWIRE_ARTIFACT_STORE": str(root / "artifacts"),
            "STEPWIRE_METADATA_URI": str(root / "metadata.db"),
            "STEPWIRE_MAX_PARALLEL": str(parallel),
        }
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "stepwire", "run", f"{module}:{MODULE}"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(f"run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        match = re.search(r"run succeeded: (\d+) steps: .* in ([\d.]+)s", proc.stdout)
        assert match, proc.stdout
        steps, run_seconds = int(match.group(1)), float(match.group(2))
        # ML Metadata's own client logs each AbortedError it retries (after ~2 s).
        logs = [p.read_text(errors="replace") for p in root.glob("artifacts/.logs/*/*.log")]
        mlmd_retries = sum(text.count("mlmd client retry") for text in logs)
        # The guard's account of each launch (absent from a tree without the guard).
        costs = [
            (float(in_calls), float(waiting))
            for text in logs
            for in_calls, waiting in re.findall(
                r"ML Metadata: \d+ calls, ([\d.]+) ms in them, ([\d.]+) ms waiting", text
            )
        ]
    guarded = {}
    if costs:
        guarded = {
            "mlmd_ms_per_step": round(statistics.mean(c for c, _ in costs), 1),
            "lock_wait_ms_per_step": round(statistics.mean(w for _, w in costs), 1),
            "lock_busy_fraction": round(sum(c for c, _ in costs) / 1000 / run_seconds, 3),
        }
    return {
        **guarded,
        "mlmd_client_retries": mlmd_retries,
        "parallel": parallel,
        "steps": steps,
        "run_seconds": run_seconds,
        "wall_seconds": round(seconds, 1),
        "steps_per_second": round(steps / run_seconds, 2),
    }


def main() -> int:
    """Runs the chosen benchmark and prints JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["launch", "throughput"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--parallel", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--length", type=int, default=5)
    options = parser.parse_args()
    if options.mode == "launch":
        print(json.dumps(bench_launch(options.steps, options.repeat)))
    else:
        for parallel in options.parallel:
            print(
                json.dumps(bench_throughput(parallel, options.chains, options.length)), flush=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
