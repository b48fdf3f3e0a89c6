"""Exit codes of the step entrypoint, mapped from exceptions in this one place."""

from __future__ import annotations

import enum
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn


class ExitCode(enum.IntEnum):
    """How a step process ends; the README's table documents each."""

    SUCCESS = 0
    STEP_FAILED = 1
    BAD_ARGUMENTS = 2
    USER_CODE_NOT_LOADABLE = 3
    INPUTS_UNRESOLVABLE = 4
    ALREADY_SUCCEEDED = 5
    INFRASTRUCTURE = 6


def classify(error: BaseException) -> ExitCode:
    """Maps an exception raised by the entrypoint to its exit code.

    Args:
        error: The exception.

    Returns:
        The exit code.
    """
    from stepwire.entrypoints.codec import CodecError
    from stepwire.entrypoints.loading import UserCodeLoadError
    from stepwire.exceptions import DuplicateRunNameError, InputResolutionError

    if isinstance(error, CodecError):
        return ExitCode.BAD_ARGUMENTS
    if isinstance(error, InputResolutionError):
        return ExitCode.INPUTS_UNRESOLVABLE
    if isinstance(error, DuplicateRunNameError):
        return ExitCode.ALREADY_SUCCEEDED
    if isinstance(error, UserCodeLoadError):
        return ExitCode.USER_CODE_NOT_LOADABLE
    return ExitCode.STEP_FAILED


def run_and_exit(entrypoint: Callable[[], None]) -> NoReturn:
    """Runs the entrypoint and exits with the code its outcome maps to.

    A failure prints one line saying what was wrong first, then the traceback.

    Args:
        entrypoint: The function to run.
    """
    try:
        entrypoint()
    except Exception as error:  # every failure ends here, mapped to a code
        code = classify(error)
        print(f"stepwire: {code.name.lower().replace('_', ' ')}: {error}", file=sys.stderr)
        if code is not ExitCode.BAD_ARGUMENTS:
            traceback.print_exc()
        sys.exit(int(code))
    sys.exit(int(ExitCode.SUCCESS))
