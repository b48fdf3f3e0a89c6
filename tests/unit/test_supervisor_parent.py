"""The step process's supervising parent forks before the heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["google.protobuf", "fsspec", "tfx", "ml_metadata", "stepwire.entrypoints.codec"]


def test_the_entrypoint_module_imports_only_what_the_parent_needs() -> None:
    # What `python -m stepwire.entrypoints.step_entrypoint` has imported when it forks:
    # the child pays for the rest, so the fork copies a small process.
    code = (
        "import json, sys; import stepwire.entrypoints.step_entrypoint; "
        "import stepwire.entrypoints.supervisor, stepwire._fast_imports; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == []


def test_the_package_still_offers_the_configuration_class() -> None:
    from stepwire.entrypoints import StepEntrypointConfiguration
    from stepwire.entrypoints.step_entrypoint_configuration import (
        StepEntrypointConfiguration as Direct,
    )

    assert StepEntrypointConfiguration is Direct
