"""The failure path never fails: any message, any name, any exception gives a line and a record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepwire.entrypoints import exit_codes
from stepwire.entrypoints.exit_codes import MAX_RECORD_BYTES, FailureKind

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20_000)


@settings(max_examples=300, deadline=None)
@given(message=ANY_TEXT, name=ANY_TEXT, kind=st.sampled_from(list(FailureKind)))
def test_any_message_and_names_give_a_bounded_valid_record(
    message: str, name: str, kind: FailureKind
) -> None:
    saved = (exit_codes.context.pipeline, exit_codes.context.step, exit_codes.context.run)
    exit_codes.context.pipeline = exit_codes.context.step = exit_codes.context.run = name
    try:
        data = exit_codes.failure_record(kind, message, error_kind="bad_value", option=name)
    finally:
        exit_codes.context.pipeline, exit_codes.context.step, exit_codes.context.run = saved
    assert len(data) <= MAX_RECORD_BYTES
    record = json.loads(data.decode("utf-8"))
    assert record["kind"] == kind.value
    assert len(record["step"].encode("utf-8")) <= exit_codes.MAX_NAME_BYTES


def test_safe_text_survives_what_str_cannot() -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert exit_codes.safe_text(Hostile()) == "<Hostile whose str() raised>"
    assert exit_codes.safe_text("a\ud800b\nc") == "a?b c"
    assert exit_codes.safe_text("é" * 10, limit=7) == "éé..."


STEP = textwrap.dedent(
    """
    import sys
    from stepwire.entrypoints import exit_codes

    how = sys.argv[1]
    exit_codes.context.pipeline = "p" * 5000 if how == "long names" else "pipe"
    exit_codes.context.step = "s\\ud800" if how == "surrogate name" else "step"

    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("str() itself fails")

    def step():
        if how == "hostile str":
            raise Hostile()
        if how == "surrogate message" or how == "surrogate name":
            raise ValueError("bad \\udcff text")
        if how == "long names":
            raise RuntimeError("x" * 100_000)
        if how == "bad arguments":
            from stepwire.entrypoints import codec
            raise codec.ArgumentError(codec.ErrorKind.REPEATED_OPTION, "--a: again", "a")

    exit_codes.run_and_exit(step)
    """
)


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("hostile str", 70),
        ("surrogate message", 70),
        ("surrogate name", 70),
        ("long names", 70),
        ("bad arguments", 64),
    ],
)
def test_the_failure_path_in_a_process(tmp_path: Path, how: str, code: int) -> None:
    record = tmp_path / "record.json"
    env = {**os.environ, "STEPWIRE_FAILURE_RECORD": str(record), "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run(
        [sys.executable, "-c", STEP, how],
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == code, proc.stderr.decode(errors="replace")
    first = proc.stderr.decode("ascii", errors="strict").splitlines()[0]
    assert first.startswith("stepwire: "), first
    data = record.read_bytes()
    assert len(data) <= MAX_RECORD_BYTES
    parsed = json.loads(data.decode("utf-8"))
    assert parsed["exit_code"] == code
    if how == "bad arguments":
        assert (parsed["error_kind"], parsed["option"]) == ("repeated_option", "a")


def _raised(error: BaseException, wrapper: type[BaseException] | None = None) -> BaseException:
    """``error`` as raised, optionally wrapped the way s3fs wraps botocore's errors."""
    try:
        try:
            raise error
        except BaseException as inner:
            if wrapper is None:
                raise
            raise wrapper("wrapped") from inner
    except BaseException as outer:
        return outer


def test_an_object_store_that_cannot_be_reached_is_infrastructure() -> None:
    botocore_exceptions = pytest.importorskip("botocore.exceptions")
    unreachable = botocore_exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert exit_codes.classify(_raised(unreachable)) is FailureKind.INFRASTRUCTURE
    # s3fs raises an OSError from botocore's: the cause decides.
    assert exit_codes.classify(_raised(unreachable, OSError)) is FailureKind.INFRASTRUCTURE
    assert exit_codes.classify(ConnectionRefusedError(111, "refused")) is (
        FailureKind.INFRASTRUCTURE
    )
    # A step's own error, and botocore's errors that are not about reaching the store.
    assert exit_codes.classify(ValueError("bad data")) is FailureKind.STEP_FAILED
    no_credentials = botocore_exceptions.NoCredentialsError()
    assert exit_codes.classify(_raised(no_credentials)) is FailureKind.STEP_FAILED


def test_which_metadata_errors_the_guard_retries() -> None:
    from ml_metadata import errors

    from stepwire.mlmd_guard import is_transient

    duplicate = "duplicate key value violates unique constraint"
    # TFX reads the existing row after AlreadyExists: retrying it only fails 8 times.
    assert not is_transient(errors.AlreadyExistsError(f"Given node already exists: {duplicate}"))
    assert is_transient(errors.InternalError(f"query failed: {duplicate}"))
    assert is_transient(errors.AbortedError("Deadlock found when trying to get lock"))
    assert not is_transient(errors.InvalidArgumentError("bad"))
    # PostgreSQL's CREATE TABLE IF NOT EXISTS, raced by another process creating the schema.
    raced = 'ERROR: relation "type" already exists (Execution failed: ...)'
    assert is_transient(RuntimeError(f"PostgreSQL metadata source error: {raced}"))
    # ... or on the table's row type, which PostgreSQL creates with it.
    row_type = 'ERROR: type "type" already exists (Execution failed: ...)'
    assert is_transient(RuntimeError(f"PostgreSQL metadata source error: {row_type}"))
    # ... or on the database itself, two processes creating it at once.
    database = 'ERROR: database "stepwire_1" already exists (Creating database stepwire_1 ...)'
    assert is_transient(RuntimeError(f"PostgreSQL metadata source error: {database}"))
    assert not is_transient(RuntimeError('ERROR: relation "type" does not exist'))
