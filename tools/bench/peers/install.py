"""Installs the peers, each in its own virtual environment, at pinned versions.

The environments live under ``.nox/bench-peers/`` (ignored by git) and are reused
while their pins are unchanged. uv is used when available (``nox -s bench`` has it),
else ``python -m venv`` and pip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PEERS: dict[str, list[str]] = {
    # The local SQL store of ZenML needs the `local` extra.
    "zenml": ["zenml[local]==0.98.0"],
    "kfp": ["kfp==2.17.3"],
    "dagster": ["dagster==1.13.28"],
}
"""Peer name to its pinned requirements."""

VERSIONED = {"zenml": "zenml", "kfp": "kfp", "dagster": "dagster"}


def _uv() -> list[str] | None:
    found = shutil.which("uv") or (
        str(Path(sys.executable).with_name("uv"))
        if Path(sys.executable).with_name("uv").exists()
        else None
    )
    return [found] if found else None


def install(root: Path, name: str, log: Any = print) -> dict[str, Any]:
    """Creates or reuses ``root/name`` with the peer installed; returns its interpreter or error."""
    venv = root / name
    python = venv / "bin" / "python"
    marker = venv / ".bench-requirements.json"
    wanted = json.dumps(PEERS[name])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return {"python": str(python), "requirements": PEERS[name], "installed_now": False}
    if venv.exists():
        shutil.rmtree(venv)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    uv = _uv()
    log(f"installing {name} ({', '.join(PEERS[name])}) into {venv}")
    try:
        if uv:
            steps = [
                [*uv, "venv", "-q", "--python", sys.executable, str(venv)],
                [
                    *uv,
                    "pip",
                    "install",
                    "-q",
                    "--compile-bytecode",
                    "--python",
                    str(python),
                    *PEERS[name],
                ],
            ]
        else:
            steps = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "-q", *PEERS[name]],
            ]
        for command in steps:
            subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or exc.stdout or "").strip().splitlines()
        return {
            "error": f"install failed: {lines[-1] if lines else exc}",
            "requirements": PEERS[name],
        }
    marker.write_text(wanted)
    return {"python": str(python), "requirements": PEERS[name], "installed_now": True}


def version(python: str, distribution: str) -> str | None:
    """The installed version of a distribution in another interpreter."""
    code = f"from importlib.metadata import version; print(version({distribution!r}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None
