"""Fixtures of the generator's tests: a contract root with ``options.proto``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPTIONS_PROTO = "stepwire/entrypoint/v1/options.proto"


def copy_options(root: Path) -> Path:
    """Copies the real ``options.proto`` under ``root`` at its import path."""
    target = root / OPTIONS_PROTO
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "contract" / OPTIONS_PROTO, target)
    return root


@pytest.fixture
def contract_root(tmp_path: Path) -> Path:
    """An empty contract root holding a copy of the real ``options.proto``."""
    return copy_options(tmp_path / "contract")
