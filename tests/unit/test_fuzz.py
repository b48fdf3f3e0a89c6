"""A short run of the hostile command-line generator (``nox -s fuzz`` runs 100 000)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import argv_fuzz


def test_decoder_raises_only_argument_errors() -> None:
    assert argv_fuzz.run(argv_fuzz.check_decoder, seed=1, count=5000) == 5000


def test_main_fails_only_with_documented_kinds() -> None:
    assert argv_fuzz.run(argv_fuzz.check_main, seed=2, count=1500) == 1500


def test_generator_is_reproducible() -> None:
    assert list(argv_fuzz.command_lines(7, 50)) == list(argv_fuzz.command_lines(7, 50))
