"""Section 6: warm step processes against cold ones, the floor, and a parallel fan-out.

Usage: ``warm_cost.py --runs N [--fanout W] --out FILE``.

Per step, in the same rounds (order rotated each round), each variant on its own
artifact folder and ML Metadata SQLite file, ``produce`` then ``consume`` in a new run:

* ``cold``: ``python -m stepwire.entrypoints.step_entrypoint ARGS``, a new interpreter;
* ``warm``: the same command line through ``WarmLauncher.call_with_usage``, forked
  from the warm parent (started before the rounds, as a run's first step starts it);
* ``floor_stand_ins``: tools/bench/floor_step.py with stepwire's import stand-ins,
  the same node run by TFX's launcher and nothing of stepwire.

Wall time is spawn (or request) to reaping; CPU time is user + system of the step
process and the children it waited for (``wait4``), for every variant.

Then a ``W``-wide fan-out (one root step, ``W`` leaves) run by tools/bench/throughput.py
on the subprocess orchestrator, cold and warm, with 1 and with 2 parallel slots, every
combination once per round in rotated order: real parallel speedup is serial wall /
parallel wall of the same pipeline in the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import harness
import step_cost

STEPS = step_cost.STEPS
VARIANTS = ("cold", "warm", "floor_stand_ins")
# This section's variant names to step_cost's (whose folders and commands they use).
NAMES = {"cold": "stepwire", "warm": "stepwire_warm", "floor_stand_ins": "floor_stand_ins"}
FANOUT = (("cold", 1), ("cold", 2), ("warm", 1), ("warm", 2))


class Bench(step_cost.Bench):
    """step_cost's bench, with a warm variant: the cold command line, forked warm."""

    def __init__(self, work: Path) -> None:
        from stepwire.orchestrators.warm_launch import WarmLauncher

        super().__init__(work, ("stepwire", "stepwire_warm", "floor_stand_ins"))
        self.launcher = WarmLauncher(self.env("stepwire_warm"))

    def run_pair(
        self, variant: str, *, phases: bool = False, importtime: bool = False
    ) -> dict[str, Any]:
        del phases, importtime  # plain runs only
        self.runs += 1
        run = f"{variant}-{self.runs}"
        out: dict[str, Any] = {}
        for step in STEPS:
            command = self.command(NAMES[variant], step, run, phases=False)
            log = self.work / f"{variant}-{step}.log"
            if variant == "warm":
                out[step] = self._warm(command, log)
            else:
                env = self.env(NAMES[variant])
                result = harness.run_timed(command, env=env, cwd=self.work, log=log)
                out[step] = {
                    "seconds": result["seconds"],
                    "cpu_seconds": result["user_seconds"] + result["system_seconds"],
                }
        return out

    def _warm(self, command: list[str], log: Path) -> dict[str, Any]:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            start = time.monotonic()
            env = self.env("stepwire_warm")
            ended = self.launcher.call_with_usage(command, env, fd, str(self.work))
            seconds = time.monotonic() - start
        finally:
            os.close(fd)
        if ended is None:
            raise SystemExit(f"the warm launch started cold: {self.launcher.refused}")
        code, cpu = ended
        if code != 0:
            raise SystemExit(f"warm step exited {code}: {log.read_text()[-2000:]}")
        return {"seconds": seconds, "cpu_seconds": cpu}


def fanout(options: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """The fan-out, every (launch, slots) combination once per round, rotated."""
    rounds = []
    for i in range(options.runs):
        order = FANOUT[i % len(FANOUT) :] + FANOUT[: i % len(FANOUT)]
        results = {}
        for launch, slots in order:
            out = work / f"fanout-{launch}-{slots}-{i}.json"
            command = [
                sys.executable,
                str(harness.BENCH / "throughput.py"),
                *("--shape", "fanout", "--size", str(options.fanout)),
                *("--orchestrator", "subprocess", "--max-parallel", str(slots)),
                *("--launch", launch, "--out", str(out)),
            ]
            harness.run_timed(command, cwd=harness.REPO, log=work / f"{out.stem}.log")
            results[f"{launch}-{slots}"] = json.loads(out.read_text())
        rounds.append(results)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fanout", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    work = harness.work_folder("stepwire-bench-warm-")
    bench = Bench(work)
    try:
        for variant in VARIANTS:  # warm-up: databases, page cache, the warm parent
            bench.run_pair(variant)
        rounds = []
        for i in range(options.runs):
            order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
            rounds.append({variant: bench.run_pair(variant) for variant in order})
    finally:
        bench.launcher.close()
    result = {
        "rounds": rounds,
        "warm_parent_starts": bench.launcher.starts,
        "fanout_size": options.fanout,
        "fanout": fanout(options, work) if options.fanout else [],
    }
    harness.write_json(options.out, result)


if __name__ == "__main__":
    main()
