"""The same pipeline on the subprocess orchestrator and on a two-node Ray cluster.

    python tools/bench/ray_cost.py --runs 5

Starts a Ray head (127.0.0.2) and a worker node (127.0.0.3) on loopback with token
authentication (tools/services), then runs a pipeline of independent chains of tiny
steps (``tools/stress/chain_pipeline.py``) with ``stepwire run``, alternating the
``subprocess`` and ``ray`` orchestrators, on one SQLite file and a local folder (the
nodes share this machine's disk). Prints the cluster's start time and memory, each
orchestrator's median wall time (min-max), the per-step wall time, and the median of
the per-round ratios ray / subprocess.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stress"))

from chain_pipeline import MODULE, write_chains
from stepwire_ray_cluster import RayCluster


def _run(root: Path, module: Path, orchestrator: str, run: str, extra: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPWIRE_", "RAY_"))}
    env.update(
        STEPWIRE_CONFIG="",
        STEPWIRE_ORCHESTRATOR=orchestrator,
        STEPWIRE_ARTIFACT_STORE=str(root / "artifacts"),
        STEPWIRE_METADATA_URI=str(root / "metadata.db"),
        **extra,
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stepwire", "run", f"{module}:{MODULE}", "--run-name", run],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{orchestrator} run {run} failed:\n{done.stdout}\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (one run of each)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--length", type=int, default=3)
    options = parser.parse_args()
    steps = options.chains * options.length
    with tempfile.TemporaryDirectory(prefix="stepwire-ray-bench-") as folder:
        root = Path(folder)
        module = write_chains(root, options.chains, options.length)
        begin = time.perf_counter()
        with RayCluster.start() as cluster:
            started = time.perf_counter() - begin
            memory = cluster.memory_bytes()
            ray_env = cluster.environment()
            seconds: dict[str, list[float]] = {"subprocess": [], "ray": []}
            for round_ in range(options.runs + 1):
                order = ("ray", "subprocess") if round_ % 2 else ("subprocess", "ray")
                for name in order:
                    extra = ray_env if name == "ray" else {"STEPWIRE_MAX_PARALLEL": "4"}
                    elapsed = _run(root, module, name, f"{name}-{round_}", extra)
                    if round_ > 0:  # the first round warms caches and Ray's workers
                        seconds[name].append(elapsed)
            memory_after = cluster.memory_bytes()
    print(f"cluster of 2 nodes started in {started:.1f} s")
    print(
        f"its processes' memory: {memory / 2**20:.0f} MiB idle, "
        f"{memory_after / 2**20:.0f} MiB after"
    )
    print(
        f"{options.runs} rounds of a {steps}-step pipeline "
        f"({options.chains} chains of {options.length})"
    )
    for name, values in seconds.items():
        print(
            f"{name:>10}: median {statistics.median(values):.2f} s "
            f"(min {min(values):.2f}, max {max(values):.2f}), "
            f"{statistics.median(values) / steps * 1000:.0f} ms per step"
        )
    ratios = [r / s for r, s in zip(seconds["ray"], seconds["subprocess"], strict=True)]
    print(
        f"ray / subprocess, per round: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
