"""How a step process ends: exit codes and failure records, decided in this one place.

Every failure of the entrypoint is classified into a :class:`FailureKind`; its
exit code and whether it is worth retrying come from :data:`FAILURES`, the
table the README documents. The process prints one line saying what was wrong
first, ``stepwire: <kind>: <message>``, then (except for bad arguments) the
traceback, and writes a failure
record: JSON of at most 4 KiB to ``$STEPWIRE_FAILURE_RECORD`` and to
``/dev/termination-log`` when that file exists (Kubernetes' termination message).
"""

from __future__ import annotations

import enum
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

ENV_FAILURE_RECORD = "STEPWIRE_FAILURE_RECORD"
"""Environment variable naming the file the failure record is written to."""

TERMINATION_LOG = "/dev/termination-log"
"""Kubernetes reads a container's termination message from this file."""

MAX_RECORD_BYTES = 4096
"""Kubernetes keeps at most 4096 bytes of a container's termination message."""


class FailureKind(enum.Enum):
    """What went wrong, in the terms an orchestrator acts on."""

    BAD_ARGUMENTS = "bad_arguments"
    USER_CODE_NOT_LOADABLE = "user_code_not_loadable"
    INPUTS_UNRESOLVABLE = "inputs_unresolvable"
    ALREADY_SUCCEEDED = "already_succeeded"
    STEP_FAILED = "step_failed"
    INFRASTRUCTURE = "infrastructure"


@dataclass(frozen=True)
class Failure:
    """The exit code and retry advice of one failure kind.

    Attributes:
        exit_code: The process exit code.
        retryable: Whether running the same command again may succeed.
        summary: What the kind means, for the one-line message.
    """

    exit_code: int
    retryable: bool
    summary: str


class ExitCode(enum.IntEnum):
    """Exit codes of the step entrypoint, sysexits-style (64 usage, 70 software, 75 temporary)."""

    SUCCESS = 0
    BAD_ARGUMENTS = 64
    USER_CODE_NOT_LOADABLE = 65
    INPUTS_UNRESOLVABLE = 66
    ALREADY_SUCCEEDED = 67
    STEP_FAILED = 70
    INFRASTRUCTURE = 75


FAILURES: dict[FailureKind, Failure] = {
    FailureKind.BAD_ARGUMENTS: Failure(ExitCode.BAD_ARGUMENTS, False, "bad arguments"),
    FailureKind.USER_CODE_NOT_LOADABLE: Failure(
        ExitCode.USER_CODE_NOT_LOADABLE, False, "user code cannot be loaded"
    ),
    FailureKind.INPUTS_UNRESOLVABLE: Failure(
        ExitCode.INPUTS_UNRESOLVABLE, False, "inputs cannot be resolved"
    ),
    FailureKind.ALREADY_SUCCEEDED: Failure(
        ExitCode.ALREADY_SUCCEEDED, False, "step already succeeded in this run"
    ),
    FailureKind.STEP_FAILED: Failure(ExitCode.STEP_FAILED, True, "the step raised"),
    FailureKind.INFRASTRUCTURE: Failure(ExitCode.INFRASTRUCTURE, True, "infrastructure failed"),
}
"""Each failure kind's exit code and retry advice: the README's table."""


class _Context:
    """What the entrypoint knows so far about the step it runs, for the record."""

    pipeline: str | None = None
    step: str | None = None
    run: str | None = None


context = _Context()
"""Filled in by the entrypoint as it learns the pipeline, step and run names."""


def _is_metadata_store_error(error: BaseException) -> bool:
    # ML Metadata raises its own status errors (AbortedError, UnavailableError,
    # InternalError, ...) from `ml_metadata.errors`.
    return type(error).__module__.startswith("ml_metadata")


# Client libraries of the object stores an artifact store may live in.
_STORE_CLIENT_MODULES: tuple[str, ...] = (
    *("botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "adlfs"),
    *("google.auth", "google.api_core", "azure.core", "urllib3"),
)
_CONNECTION_WORDS = ("connect", "connection", "timeout", "unavailable", "unreachable")


def _is_store_connection_error(error: BaseException) -> bool:
    """Whether a store could not be reached, anywhere in the exception's chain.

    A step whose output cannot be written because the object store went away did
    not fail: its infrastructure did. The error may arrive wrapped (s3fs raises an
    ``OSError`` from botocore's), hence the walk along causes and contexts.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        if isinstance(current, ConnectionError):
            return True
        module, name = type(current).__module__, type(current).__name__.lower()
        if module.startswith(_STORE_CLIENT_MODULES) and any(
            word in name for word in _CONNECTION_WORDS
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def classify(error: BaseException) -> FailureKind:
    """Maps an exception raised by the entrypoint to its failure kind.

    Args:
        error: The exception.

    Returns:
        The failure kind.
    """
    from stepwire.entrypoints.codec import CodecError
    from stepwire.entrypoints.loading import UserCodeLoadError
    from stepwire.exceptions import (
        DuplicateRunNameError,
        InfrastructureError,
        InputResolutionError,
        PipelineIRError,
        StackConfigError,
    )

    if isinstance(error, (CodecError, PipelineIRError)):
        return FailureKind.BAD_ARGUMENTS
    if isinstance(error, UserCodeLoadError):
        return FailureKind.USER_CODE_NOT_LOADABLE
    if isinstance(error, InputResolutionError):
        return FailureKind.INPUTS_UNRESOLVABLE
    if isinstance(error, DuplicateRunNameError):
        return FailureKind.ALREADY_SUCCEEDED
    if (
        isinstance(error, (InfrastructureError, StackConfigError))
        or _is_metadata_store_error(error)
        or _is_store_connection_error(error)
    ):
        return FailureKind.INFRASTRUCTURE
    return FailureKind.STEP_FAILED


MAX_NAME_BYTES = 256
"""Longest pipeline, step or run name a record keeps, in UTF-8 bytes (cut beyond)."""


def safe_text(value: object, limit: int | None = None) -> str:
    """Text that can always be printed and encoded, cut to ``limit`` UTF-8 bytes.

    Lone surrogates and other text that does not encode become ``?``, whitespace runs
    become one space (the failure line is one line), and an object whose ``__str__``
    raises is named by its type.

    Args:
        value: Anything, usually a message or a name.
        limit: The most UTF-8 bytes to keep; ``...`` marks a cut.

    Returns:
        The text.
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # a __str__ that raises must not break the failure path
        text = f"<{type(value).__name__} whose str() raised>"
    text = " ".join(text.encode("utf-8", errors="replace").decode("utf-8").split())
    if limit is not None and len(text.encode("utf-8")) > limit:
        cut = text.encode("utf-8")[: max(0, limit - 3)].decode("utf-8", errors="ignore")
        text = cut + "..."
    return text


def _fitted(record: dict[str, Any]) -> bytes:
    """The record as JSON of at most :data:`MAX_RECORD_BYTES`, its message cut to fit."""
    data = json.dumps(record, ensure_ascii=False).encode("utf-8")
    excess = len(data) - MAX_RECORD_BYTES
    if excess > 0:
        # Every other field is bounded, so cutting the message always fits: one
        # pass (escapes make the JSON longer than the text, hence the margin).
        message = record["message"]
        keep = max(0, len(message.encode("utf-8")) - 2 * excess - 8)
        record = {**record, "message": safe_text(message, keep)}
        data = json.dumps(record, ensure_ascii=False).encode("utf-8")
    return data


def failure_record(
    kind: FailureKind, message: str, *, error_kind: str | None = None, option: str | None = None
) -> bytes:
    """The structured failure record, at most :data:`MAX_RECORD_BYTES` of UTF-8 JSON.

    Args:
        kind: The failure kind.
        message: The one-line message; shortened to fit.
        error_kind: For bad arguments, the contract's error kind (``repeated_option``).
        option: For bad arguments, the option that was wrong, if one was.

    Returns:
        The JSON bytes.
    """
    failure = FAILURES[kind]
    record: dict[str, Any] = {
        "kind": kind.value,
        "exit_code": failure.exit_code,
        "retryable": failure.retryable,
        "pipeline": _name(context.pipeline),
        "step": _name(context.step),
        "run": _name(context.run),
        "message": safe_text(message, MAX_RECORD_BYTES),
    }
    if error_kind is not None:
        record["error_kind"] = safe_text(error_kind, MAX_NAME_BYTES)
        record["option"] = _name(option)
    return _fitted(record)


def _name(value: str | None) -> str | None:
    return None if value is None else safe_text(value, MAX_NAME_BYTES)


def _write_record(data: bytes) -> None:
    targets = [os.environ.get(ENV_FAILURE_RECORD, "")]
    if os.path.exists(TERMINATION_LOG):
        targets.append(TERMINATION_LOG)
    for target in filter(None, targets):
        try:
            with open(target, "wb") as file:
                file.write(data)
        except OSError as exc:  # the record is best effort; the exit code is not
            print(
                f"stepwire: could not write the failure record to {target}: {exc}", file=sys.stderr
            )


def report(kind: FailureKind, message: str, error: BaseException | None = None) -> int:
    """Reports a failure (one line, traceback if any, record) and returns its exit code.

    The line is ``stepwire: <kind>: <message>``, the kind spelled as in the README's
    table, so a log reader or an orchestrator can match it.

    Args:
        kind: The failure kind.
        message: What was wrong, for a person.
        error: The exception, whose traceback follows the line (not for bad arguments).

    Returns:
        The exit code.
    """
    from stepwire import redaction

    failure = FAILURES[kind]
    # A secret the step read may be in its own exception's message: never printed.
    line = safe_text(redaction.redact(safe_text(message)), MAX_LINE_BYTES)
    _print_line(f"stepwire: {kind.value}: {line}")
    if error is not None and kind is not FailureKind.BAD_ARGUMENTS:
        try:
            text = "".join(traceback.format_exception(error))
            _print_text(redaction.redact(text))
        except Exception:  # a traceback that cannot be printed must not lose the record
            _print_line(f"stepwire: (the traceback of {type(error).__name__} cannot be printed)")
    error_kind = getattr(error, "kind", None)
    codec_kind = getattr(error_kind, "value", None) if kind is FailureKind.BAD_ARGUMENTS else None
    option = getattr(error, "flag", None) if codec_kind is not None else None
    _write_record(failure_record(kind, line, error_kind=codec_kind, option=option))
    sys.stderr.flush()
    return int(failure.exit_code)


MAX_LINE_BYTES = 8192
"""Longest failure line printed, in UTF-8 bytes; the record holds at most 4 KiB of it."""


def _print_line(line: str) -> None:
    """Prints one line to stderr whatever its encoding can hold."""
    _print_text(line + "\n")


def _print_text(text: str) -> None:
    """Prints text to stderr whatever its encoding can hold."""
    encoding = sys.stderr.encoding or "utf-8"
    data = text.encode(encoding, errors="replace")
    stream = getattr(sys.stderr, "buffer", None)
    if stream is None:
        print(data.decode(encoding, errors="replace"), end="", file=sys.stderr)
    else:
        sys.stderr.flush()
        stream.write(data)
    sys.stderr.flush()


def fail(error: BaseException) -> NoReturn:
    """Reports a failure (one line, traceback, record) and exits with its code.

    Args:
        error: The exception that ended the step.
    """
    from stepwire.entrypoints import supervisor_channel

    code = report(classify(error), safe_text(error) or type(error).__name__, error)
    supervisor_channel.report_exit(code)
    sys.exit(code)


def run_and_exit(entrypoint: Callable[[], None]) -> NoReturn:
    """Runs the entrypoint and exits with the code its outcome maps to.

    Args:
        entrypoint: The function to run.
    """
    from stepwire.entrypoints import supervisor_channel

    try:
        entrypoint()
    except Exception as error:  # every failure ends here, classified
        fail(error)
    except SystemExit as exit_:
        # User code that calls sys.exit() while the step runs: not a success.
        code = exit_.code if isinstance(exit_.code, int) else 1
        fail(RuntimeError(f"the step called sys.exit({exit_.code}) before it finished"))
        raise SystemExit(code) from None  # not reached: fail() exits
    except BaseException as error:  # KeyboardInterrupt, GeneratorExit, a bare BaseException
        # The line first, as for any failure; a stop by a signal is told apart by
        # the supervisor, which knows what it forwarded.
        fail(error)
    supervisor_channel.report_exit(ExitCode.SUCCESS)
    sys.exit(ExitCode.SUCCESS)
