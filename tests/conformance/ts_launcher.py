"""Builds and runs the TypeScript launcher of ``tests/conformance/typescript``.

The build is three steps, all from committed inputs: ``npm ci`` from the committed
``package-lock.json``, ``protoc-gen-es`` run through the ``protoc`` of grpcio-tools on
``contract/stepwire/entrypoint/v1/*.proto`` (into ``src/gen``, which is not committed),
and ``tsc`` (into ``dist``). A file lock makes concurrent builds (two test processes)
wait for each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "contract"
PROTOS = sorted((CONTRACT / "stepwire" / "entrypoint" / "v1").glob("*.proto"))
TS_DIR = Path(__file__).resolve().parent / "typescript"
GENERATED = TS_DIR / "src" / "gen"
CLI = TS_DIR / "dist" / "cli.js"
NODE_MODULES = TS_DIR / "node_modules"


_state = {"built": False}


class BuildError(RuntimeError):
    """A step of the build failed; the message holds its output."""


def node() -> str | None:
    """The ``node`` executable, or None when Node.js is not installed."""
    return shutil.which("node")


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), cwd=TS_DIR, capture_output=True, text=True, check=False, **kwargs
    )
    if proc.returncode != 0:
        raise BuildError(
            f"{' '.join(map(str, argv))} exited with {proc.returncode}\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@contextmanager
def _build_lock() -> Iterator[None]:
    with (TS_DIR / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _needs_install() -> bool:
    # npm ci writes node_modules/.package-lock.json; a newer lock means reinstall.
    marker = NODE_MODULES / ".package-lock.json"
    lock = TS_DIR / "package-lock.json"
    return not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime


def generate(out: Path = GENERATED) -> None:
    """Runs protoc-gen-es on the contract's protos into an emptied ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    well_known = resources.files("grpc_tools") / "_proto"
    plugin = NODE_MODULES / ".bin" / "protoc-gen-es"
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--plugin=protoc-gen-es={plugin}",
            f"--es_out={out}",
            "--es_opt=target=ts",
            f"-I{CONTRACT}",
            f"-I{well_known}",
            *map(str, PROTOS),
        ]
    )


def build(*, clean_install: bool = False, log: Any = None) -> dict[str, float]:
    """npm ci (when needed or asked), generate, compile. Returns seconds per step."""
    npm = shutil.which("npm")
    if node() is None or npm is None:
        raise BuildError("node and npm are needed to build the TypeScript launcher")
    seconds: dict[str, float] = {}
    with _build_lock():
        if clean_install or _needs_install():
            start = time.monotonic()
            _run([npm, "ci", "--no-audit", "--no-fund"])
            seconds["npm ci"] = time.monotonic() - start
        start = time.monotonic()
        generate()
        seconds["generate"] = time.monotonic() - start
        start = time.monotonic()
        shutil.rmtree(TS_DIR / "dist", ignore_errors=True)
        _run([str(NODE_MODULES / ".bin" / "tsc"), "-p", "tsconfig.json"])
        seconds["tsc"] = time.monotonic() - start
    _state["built"] = True
    if log is not None:
        log(", ".join(f"{step} {s:.1f}s" for step, s in seconds.items()))
    return seconds


def built() -> Path:
    """Builds once per process (unless :func:`use_existing_build`); returns the CLI."""
    if not _state["built"]:
        build()
    return CLI


def use_existing_build() -> None:
    """Runs the ``dist/`` of an earlier build instead of building again."""
    if not CLI.exists():
        raise BuildError(f"{CLI} does not exist: build first")
    _state["built"] = True


def run_batch(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Answers encode/decode requests with the TypeScript codec (one node process)."""
    node_exe = node()
    assert node_exe is not None
    proc = subprocess.run(
        [node_exe, str(built()), "batch"],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the TypeScript launcher failed:\n{proc.stderr[-4000:]}")
    answers: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(answers) == len(requests)
    return answers


def launch(
    fields: Path,
    *,
    store_dir: Path | None = None,
    compress_above: int | None = None,
    reference_above: int | None = None,
    custom: dict[str, str] | None = None,
) -> list[str]:
    """The argv the TypeScript launcher builds from one file per option in ``fields``."""
    node_exe = node()
    assert node_exe is not None
    argv = [node_exe, str(built()), "launch", "--fields", str(fields)]
    if store_dir is not None:
        argv += ["--store-dir", str(store_dir)]
    if compress_above is not None:
        argv += ["--compress-above", str(compress_above)]
    if reference_above is not None:
        argv += ["--reference-above", str(reference_above)]
    for name, value in (custom or {}).items():
        argv += ["--custom", f"{name}={value}"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"the TypeScript launcher refused: {proc.stderr.strip()}")
    result: list[str] = json.loads(proc.stdout)
    return result


if __name__ == "__main__":
    # `python tests/conformance/ts_launcher.py [--clean-install]`: npm ci when
    # node_modules is missing or older than the lock (always with --clean-install),
    # then generate and compile.
    build(clean_install="--clean-install" in sys.argv, log=lambda line: print(f"built: {line}"))
    print(os.fspath(CLI))
