"""Keeps stepwire's process-wide switches from leaking from one test to the next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepwire import constants


@pytest.fixture(autouse=True)
def _restore_process_switches() -> Iterator[None]:
    # The entrypoint sets these for the rest of its (step) process; a test that
    # drives it in-process must not change how later tests behave.
    saved = (constants.SHOULD_PREVENT_PIPELINE_EXECUTION, constants.USER_MAIN_MODULE)
    yield
    constants.SHOULD_PREVENT_PIPELINE_EXECUTION, constants.USER_MAIN_MODULE = saved
