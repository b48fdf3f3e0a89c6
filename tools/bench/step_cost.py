"""Section 1: the cost of one step process, broken down, against the TFX launcher floor.

Variants, run in the same rounds (order rotated each round), each on its own
artifact folder and ML Metadata SQLite file:

* ``stepwire``: ``python -m stepwire.entrypoints.step_entrypoint ARGS``, the command
  and arguments the subprocess orchestrator builds (with the import stand-ins);
* ``stepwire_full_imports``: the same with ``STEPWIRE_FULL_TFX_IMPORTS=1`` (before 1b);
* ``floor``: tools/bench/floor_step.py, the same node shape run with TFX's launcher
  and nothing of stepwire;
* ``floor_stand_ins``: the floor with stepwire's import stand-ins.

Each round runs ``produce`` then ``consume`` (which reads produce's output) in a new
run. Then the instrumented scripts (phases_step.py, floor_step.py with
``$BENCH_PHASES_OUT``) give the breakdown, and ``python -X importtime`` the import
costs by package.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import harness
import pipelines_gen

STEPS = ("produce", "consume")
PHASE_VARIANTS = ("stepwire", "stepwire_full_imports", "floor", "floor_stand_ins")
VARIANTS = (*PHASE_VARIANTS, "stepwire_fast_exit")
FULL = {"STEPWIRE_FULL_TFX_IMPORTS": "1"}
AVOIDED = (
    "googleapiclient",
    "oauth2client",
    "httplib2",
    "pyparsing",
    "pyasn1",
    "pyasn1_modules",
    "rsa",
    "uritemplate",
    "docker",
    "requests",
    "urllib3",
    "charset_normalizer",
    "idna",
    "certifi",
    "unittest",
)


class Bench:
    def __init__(self, work: Path, variants: tuple[str, ...] = VARIANTS) -> None:
        import floor_components
        from google.protobuf import json_format

        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration,
        )
        from stepwire.pipelines.dehydrate import dehydrate

        self.work = work
        self.config = SubprocessEntrypointConfiguration
        self.modules = work / "src"
        pipelines_gen.write_module(self.modules, "bench_two_step", pipelines_gen.two_step_source())
        self.pipeline = pipelines_gen.load_pipeline(self.modules, "bench_two_step")
        self.compiled: dict[str, Any] = {}
        self.floor_nodes: dict[str, dict[str, str]] = {}
        self.runs = 0
        for variant in variants:
            root = self.root(variant)
            root.mkdir(parents=True)
            if variant.startswith("stepwire"):
                self.compiled[variant] = self.pipeline.compile(
                    pipeline_root=str(root / "artifacts")
                )
            else:
                compiled = floor_components.compile_floor(str(root / "artifacts"))
                self.floor_nodes[variant] = {
                    name: base64.b64encode(
                        json_format.MessageToJson(dehydrate(compiled, name), indent=None).encode()
                    ).decode()
                    for name in STEPS
                }
        self.steps = {step.name: step for step in self.pipeline.steps.values()}

    def root(self, variant: str) -> Path:
        return self.work / variant

    def command(self, variant: str, step: str, run: str, *, phases: bool) -> list[str]:
        if variant.startswith("stepwire"):
            arguments = self.config.get_entrypoint_arguments(
                step=self.steps[step], pb2_pipeline=self.compiled[variant], run_name=run
            )
            if phases:
                return [sys.executable, str(harness.BENCH / "phases_step.py"), *arguments]
            if variant == "stepwire_fast_exit":
                return [sys.executable, str(harness.BENCH / "fast_exit_step.py"), *arguments]
            return self.config.get_entrypoint_command() + arguments
        command = [
            sys.executable,
            str(harness.BENCH / "floor_step.py"),
            self.floor_nodes[variant][step],
            run,
            str(self.root(variant) / "metadata.db"),
        ]
        return command + (["--stand-ins"] if variant == "floor_stand_ins" else [])

    def env(self, variant: str, **extra: str) -> dict[str, str]:
        root = self.root(variant)
        more = dict(FULL) if variant == "stepwire_full_imports" else {}
        return harness.step_env(
            root / "artifacts", root / "metadata.db", self.modules, **more, **extra
        )

    def run_pair(
        self, variant: str, *, phases: bool = False, importtime: bool = False
    ) -> dict[str, Any]:
        self.runs += 1
        run = f"{variant}-{self.runs}"
        out: dict[str, Any] = {}
        for step in STEPS:
            command = self.command(variant, step, run, phases=phases)
            if importtime:
                command = [command[0], "-X", "importtime", *command[1:]]
            extra = {}
            phase_file = self.work / "phases.json"
            if phases:
                extra["BENCH_PHASES_OUT"] = str(phase_file)
            log = self.work / f"{variant}-{step}.log"
            result = harness.run_timed(
                command, env=self.env(variant, **extra), cwd=self.work, log=log
            )
            if phases:
                result["phases"] = phase_breakdown(json.loads(phase_file.read_text()), result)
            if importtime:
                result["imports"] = import_groups(log.read_text("utf-8", errors="replace"))
            out[step] = result
        return out


CANONICAL = [
    "interpreter start",
    "imports: stepwire entrypoint",
    "imports: stepwire runtime",
    "imports: TFX launcher + MLMD",
    "bench instrumentation (imports some first-use modules early)",
    "decode arguments",
    "load configuration class",
    "import user module",
    "executor generation",
    "stack configuration",
    "metadata store connect",
    "launcher: build (executor operator)",
    "launcher: prepare (inputs, contexts, register execution)",
    "launcher: execution watcher (gRPC server)",
    "launcher: executor run",
    "launcher: publish",
    "launcher: other",
    "stepwire: rerun check, outcome",
    "imports on first use (during the run)",
    "other (entrypoint code; floor script glue)",
    "exit (interpreter teardown)",
]


OTHER = "other (entrypoint code; floor script glue)"


def phase_breakdown(data: dict[str, Any], process: dict[str, Any]) -> dict[str, float]:
    """Phases of one process from its marks, buckets and the parent's spawn/exit stamps."""
    marks = data["marks"]
    phases = dict.fromkeys(CANONICAL, 0.0)
    phases["interpreter start"] = marks[0][1] - process["spawned"]
    buckets = data["buckets"]
    for (_, before), (name, at) in itertools.pairwise(marks):
        if name == "done":
            # The last stretch holds every bucketed call; what is left is "other".
            phases[OTHER] = at - before - sum(buckets.values())
        else:
            phases[name] = phases.get(name, 0.0) + at - before
    for name, seconds in buckets.items():
        phases[name] = phases.get(name, 0.0) + seconds
    phases["exit (interpreter teardown)"] = process["exited"] - marks[-1][1]
    return phases


def import_groups(log: str) -> dict[str, float]:
    """Self import time (seconds) by top-level package, from ``-X importtime`` output."""
    groups: dict[str, float] = {}
    for line in log.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        try:
            self_us, _, name = line[len("import time:") :].split("|")
            microseconds = int(self_us)
        except ValueError:
            continue
        top = name.strip().split(".")[0]
        groups[top] = groups.get(top, 0.0) + microseconds / 1e6
    # Packages under 1 ms are summed, to keep the raw results small.
    small = [name for name, seconds in groups.items() if seconds < 0.001]
    groups["(packages under 1 ms)"] = sum(groups.pop(name) for name in small)
    return groups


def launcher_import(runs: int, work: Path) -> dict[str, Any]:
    """``python -X importtime -c "from tfx...launcher"``, with and without the stand-ins."""
    code = "from tfx.orchestration.portable import launcher"
    stand_ins = "from stepwire import _fast_imports; _fast_imports.install(); " + code
    variants = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "TFX launcher import": [sys.executable, "-X", "importtime", "-c", code],
        "TFX launcher import with stand-ins": [sys.executable, "-X", "importtime", "-c", stand_ins],
    }
    results: dict[str, Any] = {
        name: {"seconds": [], "launcher_cumulative": [], "groups": []} for name in variants
    }
    for _ in range(runs):
        for name, command in variants.items():
            log = work / "importtime.log"
            r = harness.run_timed(command, cwd=work, log=log)
            results[name]["seconds"].append(r["seconds"])
            text = log.read_text()
            cumulative = [
                int(line.split("|")[1]) / 1e6
                for line in text.splitlines()
                if line.startswith("import time:")
                and line.rstrip().endswith("| tfx.orchestration.portable.launcher")
            ]
            results[name]["launcher_cumulative"].append(cumulative[0] if cumulative else 0.0)
            results[name]["groups"].append(import_groups(text))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    work = harness.work_folder("stepwire-bench-step-")
    bench = Bench(work)
    for variant in VARIANTS:  # warm-up: creates the databases, fills the page cache
        bench.run_pair(variant)
    rounds: list[dict[str, Any]] = []
    for i in range(options.runs):
        order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
        rounds.append({variant: bench.run_pair(variant) for variant in order})
    phases: list[dict[str, Any]] = []
    for i in range(options.runs):
        order = PHASE_VARIANTS[i % 4 :] + PHASE_VARIANTS[: i % 4]
        phases.append({variant: bench.run_pair(variant, phases=True) for variant in order})
    imports: list[dict[str, Any]] = []
    for _ in range(options.runs):
        imports.append({v: bench.run_pair(v, importtime=True) for v in PHASE_VARIANTS})
    launcher = launcher_import(options.runs, work)
    result = {
        "rounds": rounds,
        "phases": phases,
        "imports": imports,
        "launcher_import": launcher,
        "floor_executions": count_complete(work),
        "commands": {
            "stepwire": [*bench.command("stepwire", "consume", "RUN", phases=False)[:3], "ARGS..."],
            "floor": [
                sys.executable,
                "tools/bench/floor_step.py",
                "PIPELINE_B64",
                "RUN_ID",
                "METADATA_DB",
            ],
        },
        "example_arguments_bytes": sum(
            len(a) + 1 for a in bench.command("stepwire", "consume", "RUN", phases=False)
        ),
    }
    harness.write_json(options.out, result)


def count_complete(work: Path) -> dict[str, int]:
    """Complete executions per variant's ML Metadata (the floor checks nothing itself)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    counts = {}
    for variant in VARIANTS:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(work / variant / "metadata.db")
        store = metadata_store.MetadataStore(config)
        counts[variant] = sum(
            e.last_known_state == metadata_store_pb2.Execution.COMPLETE
            for e in store.get_executions()
        )
    return counts


if __name__ == "__main__":
    main()
