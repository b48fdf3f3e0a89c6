"""What a step costs on each store: MariaDB and PostgreSQL vs SQLite, S3 vs a local folder.

    python tools/bench/stores_cost.py --runs 15
    python tools/bench/stores_cost.py --runs 5 --parallel 8

Starts a MariaDB, a PostgreSQL and an S3 server (SeaweedFS) on loopback
(tools/services), then launches the same one-step pipeline's step entrypoint, as
real processes, on four stacks in a rotating order each round:

* ``sqlite+local``: ML Metadata in a SQLite file, artifacts in a local folder (the
  reference);
* ``mariadb+local`` and ``postgresql+local``: the metadata store on a server;
* ``sqlite+s3``: the artifacts in a bucket.

With ``--parallel N`` a round launches N steps at once on each stack (each with its
own run name) and times the whole round. Prints each stack's median wall time
(min-max) and the median (min-max) of the per-round ratios to the reference, which
is what compares across machines. The step does nothing (``return 1``), so the
figures are stepwire's, TFX's and the stores' cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))

from stepwire_services import MariaDB, PostgreSQL, S3Server

MODULE = textwrap.dedent(
    """
    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step(enable_cache=False)
    def only() -> int:
        return 1


    @pipeline
    def stores(only):
        only()
    """
)
REFERENCE = "sqlite+local"


def _stacks(
    root: Path, mariadb: MariaDB, postgresql: PostgreSQL, s3: S3Server
) -> dict[str, dict[str, str]]:
    bucket = s3.create_bucket()
    sqlite = {"STEPWIRE_METADATA_URI": str(root / "metadata.db")}
    local = {"STEPWIRE_ARTIFACT_STORE": str(root / "artifacts")}
    return {
        REFERENCE: {**sqlite, **local},
        "mariadb+local": {**mariadb.environment(mariadb.unique_database_name()), **local},
        "postgresql+local": {
            **postgresql.environment(postgresql.unique_database_name()),
            **local,
        },
        "sqlite+s3": {
            # A file of its own: run names are reused across the stacks.
            "STEPWIRE_METADATA_URI": str(root / "metadata-s3.db"),
            **s3.environment(),
            "STEPWIRE_ARTIFACT_STORE": f"s3://{bucket}/artifacts",
        },
    }


def _environment(root: Path, stack: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPWIRE_", "AWS_"))}
    return {**env, "STEPWIRE_CONFIG": "", "PYTHONPATH": str(root), **stack}


def _commands(root: Path, name: str, stack: dict[str, str], runs: list[str]) -> list[list[str]]:
    """The step's command line for each run name, built on that stack."""
    builder = textwrap.dedent(
        """
        import json, sys
        from stepwire import constants
        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration as Config,
        )
        from stepwire.stack import get_active_stack

        constants.USER_MAIN_MODULE = "stores_step"
        import stores_step

        p = stores_step.stores(only=stores_step.only())
        ir, stack = p.compile(), get_active_stack()
        stack.metadata_store.initialize()
        print(json.dumps([
            Config.get_entrypoint_command()
            + Config.get_entrypoint_arguments(
                step=p.steps["only"], pb2_pipeline=ir, run_name=run, stack=stack
            )
            for run in sys.argv[1:]
        ]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", builder, *runs],
        env=_environment(root, stack),
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name}: building the command lines failed:\n{done.stderr}")
    commands: list[list[str]] = json.loads(done.stdout)
    return commands


def _launch(root: Path, stack: dict[str, str], commands: list[list[str]]) -> float:
    """Runs the commands at once; the seconds until the last one ended."""
    env = _environment(root, stack)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for c in commands
    ]
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            failures.append(err.decode(errors="replace")[-2000:])
    seconds = time.perf_counter() - start
    if failures:
        raise SystemExit("a step failed:\n" + failures[0])
    return seconds


def run(options: argparse.Namespace) -> None:
    """Starts the servers, measures, prints."""
    started: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stepwire-stores-bench-") as folder:
        root = Path(folder)
        (root / "stores_step.py").write_text(MODULE)
        begin = time.perf_counter()
        with MariaDB.start() as mariadb:
            started["mariadb"] = time.perf_counter() - begin
            begin = time.perf_counter()
            with PostgreSQL.start() as postgresql:
                started["postgresql"] = time.perf_counter() - begin
                begin = time.perf_counter()
                with S3Server.start() as s3:
                    started["seaweedfs"] = time.perf_counter() - begin
                    stacks = _stacks(root, mariadb, postgresql, s3)
                    seconds = _measure(root, stacks, options.runs, options.parallel)
    print(
        "servers started in "
        + ", ".join(f"{name} {value:.1f} s" for name, value in started.items())
    )
    print(f"{options.runs} rounds, {options.parallel} step(s) at once per stack and round")
    reference = seconds[REFERENCE]
    for name, values in seconds.items():
        ratios = [v / r for v, r in zip(values, reference, strict=True)]
        print(
            f"{name:>17}: median {statistics.median(values) * 1000:6.0f} ms "
            f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}); "
            f"/ {REFERENCE}: median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


def _measure(
    root: Path, stacks: dict[str, dict[str, str]], runs: int, parallel: int
) -> dict[str, list[float]]:
    names = list(stacks)
    run_names = [[f"r{r}-{i}" for i in range(parallel)] for r in range(runs + 1)]
    commands: dict[str, list[list[list[str]]]] = {}
    for name in names:
        built = _commands(root, name, stacks[name], [n for batch in run_names for n in batch])
        commands[name] = [built[r * parallel : (r + 1) * parallel] for r in range(runs + 1)]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs + 1):
        # Rotate the order, so no stack always runs first (or right after another).
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            elapsed = _launch(root, stacks[name], commands[name][round_])
            if round_ > 0:  # the first round warms the page cache and the servers
                seconds[name].append(elapsed)
    return seconds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds")
    parser.add_argument("--parallel", type=int, default=1, help="steps launched at once")
    run(parser.parse_args())
