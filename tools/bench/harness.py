"""Shared helpers of the benchmark scripts: timed processes, statistics, machine facts."""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]


def work_folder(prefix: str) -> Path:
    """A new temporary folder for this process's stores and logs, removed when it exits.

    ``STEPWIRE_BENCH_KEEP=1`` keeps it (to read the step logs of a run that went wrong).
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("STEPWIRE_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def summary(values: Iterable[float]) -> dict[str, Any]:
    """Median, min, max and the count of a sample (None-free)."""
    data = [float(v) for v in values]
    if not data:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {
        "n": len(data),
        "median": statistics.median(data),
        "min": min(data),
        "max": max(data),
    }


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, Any]:
    """Per-run ratios a[i]/b[i] (runs paired in the same round), summarised."""
    return summary(a / b for a, b in zip(numerators, denominators, strict=True) if b)


def run_timed(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log: Path | None = None,
    check: bool = True,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Runs a process; returns its wall time, own peak RSS, exit code and spawn/exit stamps.

    The command runs under tools/bench/rss_wrap.py (see there why), which times it
    from spawn to reaping. Output goes to ``log`` (or is discarded); with ``check``,
    a non-zero exit raises with the log's tail.
    """
    import tempfile

    fd, record = tempfile.mkstemp(prefix="bench-rss-", suffix=".json")
    os.close(fd)
    wrapped = [sys.executable, "-S", str(BENCH / "rss_wrap.py"), record, *command]
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            wrapped,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
            raise
        result: dict[str, Any] = json.loads(Path(record).read_text() or "{}")
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
        os.unlink(record)
    if check and result.get("exit_code") != 0:
        tail = log.read_text("utf-8", errors="replace")[-3000:] if log else ""
        raise RuntimeError(
            f"{' '.join(map(str, command))[:300]} exited {result.get('exit_code')}\n{tail}"
        )
    return result


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def wait_for_quiet(max_load: float, max_wait: float, log: Any = print) -> dict[str, Any]:
    """Waits (up to ``max_wait`` s) until the 1-minute load average drops below ``max_load``."""
    start = time.monotonic()
    while load_average() >= max_load and time.monotonic() - start < max_wait:
        log(f"load average {load_average():.2f} >= {max_load}: waiting for a quiet machine")
        time.sleep(20)
    return {
        "load_at_start": load_average(),
        "waited_seconds": round(time.monotonic() - start, 1),
        "quiet": load_average() < max_load,
    }


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory = f"{int(first.split()[1]) // 1024} MiB"
    except (OSError, IndexError, ValueError):
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    packages = [
        "stepwire",
        "ml-pipelines-sdk",
        "ml-metadata",
        "protobuf",
        "grpcio",
        "numpy",
        "rfc8785",
        "fsspec",
    ]
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in packages},
        "git_commit": commit + ("+changes" if dirty else ""),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
    }


def _rounded(data: Any) -> Any:
    if isinstance(data, float):
        return round(data, 6)
    if isinstance(data, dict):
        return {k: _rounded(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_rounded(v) for v in data]
    return data


def write_json(path: Path, data: Any) -> None:
    """Writes JSON with floats rounded to the microsecond (or 1e-6 of a ratio)."""
    path.write_text(json.dumps(_rounded(data), indent=1) + "\n", encoding="utf-8")


def step_env(artifacts: Path, metadata_db: Path, module_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a step process, as the subprocess orchestrator builds it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPWIRE_")}
    env.update(
        STEPWIRE_ARTIFACT_STORE=str(artifacts),
        STEPWIRE_METADATA_URI=str(metadata_db),
        STEPWIRE_ORCHESTRATOR="subprocess",
        PYTHONPATH=os.pathsep.join(p for p in (str(module_dir), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env
