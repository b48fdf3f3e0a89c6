"""The benchmark suite: ``nox -s bench`` (or ``python tools/bench/suite.py``).

Runs every section in fresh processes, writes the raw results to ``BENCHMARKS.json``
and the report to ``BENCHMARKS.md`` (both at the repository root, rewritten from
scratch). ``--quick`` runs fewer rounds and smaller sizes, to check the suite itself.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import report
from peers import install as peers_install

BENCH = harness.BENCH
REPO = harness.REPO
PY = sys.executable


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Suite:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.runs: int = options.runs
        self.work = harness.work_folder("stepwire-bench-")
        self.commands: list[str] = []
        self._peer_commands: set[str] = set()
        self._count = 0

    def worker(self, script: str, *args: str, env: dict[str, str] | None = None) -> Any:
        """Runs a worker script of this folder; returns the JSON it wrote."""
        self._count += 1
        out = self.work / f"{Path(script).stem}-{self._count}.json"
        command = [PY, str(BENCH / script), *args, "--out", str(out)]
        shown = " ".join(["python", f"tools/bench/{script}", *args])
        if shown not in self.commands:
            self.commands.append(shown)
        harness.run_timed(command, env=env, cwd=REPO, log=self.work / f"{out.stem}.log")
        return json.loads(out.read_text())

    # Section 1 -------------------------------------------------------------
    def step_cost(self) -> Any:
        return self.worker("step_cost.py", "--runs", str(self.runs))

    # Sections 2 and 5 ------------------------------------------------------
    def sizes(self) -> Any:
        quick = self.options.quick
        chain_sizes = [10, 100, 1000] if quick else [10, 100, 1000, 5000]
        result: dict[str, Any] = {"chain": {}, "wide": {}}
        for n in chain_sizes:
            log(f"sizes: chain of {n} steps")
            compile_runs = 1 if n >= 5000 else self.runs
            result["chain"][str(n)] = self.worker(
                "sizes.py",
                "--shape",
                "chain",
                "--steps",
                str(n),
                "--runs",
                str(self.runs),
                "--compile-runs",
                str(compile_runs),
                "--step-runs",
                str(self.runs),
            )
        for k in [1, 2, 5, 10, 20]:
            log(f"sizes: node with {k} inputs and outputs")
            result["wide"][str(k)] = self.worker(
                "sizes.py", "--shape", "wide", "--width", str(k), "--runs", str(self.runs)
            )
        return result

    # Section 3 -------------------------------------------------------------
    def throughput(self) -> Any:
        size = 10 if self.options.quick else 50
        cores = os.cpu_count() or 1
        result: dict[str, Any] = {"size": size, "cores": cores, "chain": {}, "fanout": {}}
        for rep in range(self.runs):
            for shape in ("chain", "fanout"):
                for orchestrator in ("subprocess", "local", "tfx"):
                    log(f"throughput: {shape} of {size} on {orchestrator} ({rep + 1}/{self.runs})")
                    try:
                        data = self.worker(
                            "throughput.py",
                            "--shape",
                            shape,
                            "--size",
                            str(size),
                            "--orchestrator",
                            orchestrator,
                            "--max-parallel",
                            str(cores),
                        )
                    except RuntimeError as exc:
                        data = {"error": str(exc).splitlines()[-1]}
                    result[shape].setdefault(orchestrator, []).append(data)
        return result

    # Section 6 -------------------------------------------------------------
    def warm(self) -> Any:
        fanout = "10" if self.options.quick else "50"
        return self.worker("warm_cost.py", "--runs", str(self.runs), "--fanout", fanout)

    # Section 4 -------------------------------------------------------------
    def peers(self) -> Any:
        root = REPO / ".nox" / "bench-peers"
        root.mkdir(parents=True, exist_ok=True)
        state = self.work / "peers"
        state.mkdir()
        installed = {name: peers_install.install(root, name, log) for name in peers_install.PEERS}
        for name, info in installed.items():
            if "python" in info:
                info["version"] = peers_install.version(info["python"], name)
        (state / "dagster-home").mkdir()
        (state / "dagster-home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("STEPWIRE_")}
        jobs: dict[str, tuple[str | None, list[str], dict[str, str]]] = {
            "stepwire_subprocess": (
                PY,
                [str(BENCH / "peers" / "stepwire_job.py"), "--orchestrator", "subprocess"],
                {
                    "STEPWIRE_ARTIFACT_STORE": str(state / "sw" / "artifacts"),
                    "STEPWIRE_METADATA_URI": str(state / "sw" / "metadata.db"),
                },
            ),
            "stepwire_local": (
                PY,
                [str(BENCH / "peers" / "stepwire_job.py"), "--orchestrator", "local"],
                {
                    "STEPWIRE_ARTIFACT_STORE": str(state / "sw" / "artifacts"),
                    "STEPWIRE_METADATA_URI": str(state / "sw" / "metadata.db"),
                },
            ),
            "zenml": (
                installed["zenml"].get("python"),
                [str(BENCH / "peers" / "zenml_job.py")],
                {
                    "ZENML_CONFIG_PATH": str(state / "zenml-config"),
                    "ZENML_ANALYTICS_OPT_IN": "false",
                    "AUTO_OPEN_DASHBOARD": "false",
                },
            ),
            "kfp": (
                installed["kfp"].get("python"),
                [str(BENCH / "peers" / "kfp_job.py"), "--root", str(state / "kfp-root")],
                {},
            ),
            "dagster_in_process": (
                installed["dagster"].get("python"),
                [str(BENCH / "peers" / "dagster_job.py"), "--executor", "in_process"],
                {"DAGSTER_HOME": str(state / "dagster-home")},
            ),
            "dagster_multiprocess": (
                installed["dagster"].get("python"),
                [str(BENCH / "peers" / "dagster_job.py"), "--executor", "multiprocess"],
                {"DAGSTER_HOME": str(state / "dagster-home")},
            ),
        }
        result: dict[str, Any] = {"installed": installed, "jobs": {}, "errors": {}}
        runnable = {}
        for name, (python, args, env) in jobs.items():
            if python is None:
                peer = name.split("_")[0]
                result["errors"][name] = installed[peer].get("error", "not installed")
                continue
            workdir = state / f"{name}-cwd"
            workdir.mkdir()
            runnable[name] = (python, args, {**base, **env}, workdir)
            # Warm-up: creates the peer's store (ZenML migrates its database here).
            try:
                self._peer_run(name, runnable[name], 2)
            except RuntimeError as exc:
                result["errors"][name] = _last_error_line(str(exc))
                del runnable[name]
        for rep in range(self.runs):
            for name, job in runnable.items():
                for steps in (2, 6):
                    log(f"peers: {name}, {steps} steps ({rep + 1}/{self.runs})")
                    try:
                        data = self._peer_run(name, job, steps)
                    except RuntimeError as exc:
                        result["errors"][name] = _last_error_line(str(exc))
                        continue
                    result["jobs"].setdefault(name, {}).setdefault(str(steps), []).append(data)
        return result

    def _peer_run(
        self, name: str, job: tuple[str, list[str], dict[str, str], Path], steps: int
    ) -> Any:
        python, args, env, workdir = job
        out = self.work / f"peer-{name}.json"
        command = [python, *args, "--steps", str(steps), "--out", str(out)]
        if f"{name}{steps}" not in self._peer_commands:
            self._peer_commands.add(f"{name}{steps}")
            shown = [f"<{name.split('_', maxsplit=1)[0]} venv>/bin/python", *map(_short, args)]
            self.commands.append(" ".join([*shown, "--steps", str(steps)]))
        process = harness.run_timed(
            command, env=env, cwd=workdir, log=self.work / f"peer-{name}.log", timeout=600
        )
        data = json.loads(out.read_text())
        data["process_seconds"] = process["seconds"]
        data["max_rss_kib"] = process["max_rss_kib"]
        return data


def _short(argument: str) -> str:
    return argument.replace(str(REPO) + "/", "").replace(tempfile.gettempdir(), "$TMP")


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["unknown error"])[-1][:400]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    parser.add_argument("--runs", type=int, help="rounds per measurement (default 5, quick 2)")
    parser.add_argument(
        "--only", nargs="*", default=[], help="sections: step, sizes, throughput, peers, warm"
    )
    parser.add_argument(
        "--max-load", type=float, default=0.5, help="wait for a load average below this"
    )
    parser.add_argument("--wait", type=float, default=300, help="seconds to wait for it at most")
    parser.add_argument("--out", type=Path, default=REPO, help="folder of BENCHMARKS.md/json")
    options = parser.parse_args()
    options.runs = options.runs or (2 if options.quick else 5)

    # Fresh bytecode for stepwire's sources, as an installed wheel would have.
    compileall.compile_dir(str(REPO / "python" / "src" / "stepwire"), quiet=1)
    compileall.compile_dir(str(BENCH), quiet=1)
    quiet = harness.wait_for_quiet(options.max_load, options.wait, log)
    suite = Suite(options)
    started = time.monotonic()
    raw: dict[str, Any] = {
        "meta": {
            "machine": harness.machine(),
            "quick": options.quick,
            "runs": options.runs,
            "load": quiet,
            "command": "nox -s bench" + (" -- " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""),
        }
    }
    sections: dict[str, Callable[[], Any]] = {
        "step": suite.step_cost,
        "sizes": suite.sizes,
        "throughput": suite.throughput,
        "peers": suite.peers,
        "warm": suite.warm,
    }
    for name, section in sections.items():
        if options.only and name not in options.only:
            continue
        log(f"section {name} (load average {harness.load_average():.2f})")
        section_start = time.monotonic()
        load_before = harness.load_average()
        try:
            raw[name] = section()
        except Exception:  # a broken section is reported, the others still run
            raw[name] = {"error": traceback.format_exc().strip().splitlines()[-1]}
            log(f"section {name} failed: {raw[name]['error']}")
        raw["meta"].setdefault("sections", {})[name] = {
            "seconds": round(time.monotonic() - section_start, 1),
            "load_before": load_before,
            "load_after": harness.load_average(),
        }
    raw["meta"]["seconds"] = round(time.monotonic() - started, 1)
    raw["meta"]["commands"] = suite.commands
    raw["meta"]["load"]["at_end"] = harness.load_average()
    options.out.mkdir(parents=True, exist_ok=True)
    harness.write_json(options.out / "BENCHMARKS.json", raw)
    (options.out / "BENCHMARKS.md").write_text(report.render(raw), encoding="utf-8")
    log(f"wrote {options.out / 'BENCHMARKS.md'} and BENCHMARKS.json in {raw['meta']['seconds']} s")


if __name__ == "__main__":
    main()
