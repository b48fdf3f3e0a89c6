"""Fixtures of the end-to-end tests (helpers in ``stepwire_testkit``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stepwire_testkit import StackDir


@pytest.fixture
def stack_dir(tmp_path: Path) -> StackDir:
    """A stack under this test's temporary directory; its processes inherit no PYTHON*."""
    return StackDir(tmp_path / "stack", drop=("PYTHON",))


@pytest.fixture
def on_sys_path() -> Iterator[Any]:
    """Puts directories first on ``sys.path`` and forgets modules imported from them."""
    added: list[str] = []
    before = set(sys.modules)

    def add(directory: Path) -> None:
        sys.path.insert(0, str(directory))
        added.append(str(directory))

    yield add
    for directory in added:
        sys.path.remove(directory)
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if any(module_file.startswith(d) for d in added):
            del sys.modules[name]
