"""Secret step parameters: declared, carried as references, read in the step process, redacted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stepwire_testkit import sqlite_config

from stepwire import redaction
from stepwire.exceptions import PipelineIRError, StepInterfaceError
from stepwire.steps import Secret
from stepwire.steps.parameters import decode_parameters
from stepwire.steps.secret import SecretUnavailableError, resolve
from stepwire.steps.signature import check_parameter_value, parse_entrypoint


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no secret known (the registry is per process)."""
    monkeypatch.setattr(redaction, "_values", set())
    monkeypatch.setattr(redaction, "_forms", ())
    monkeypatch.setattr(redaction, "_listeners", [])


def test_a_secret_travels_as_its_reference_and_is_read_where_the_step_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = json.dumps(Secret.env("API_TOKEN").to_json())
    assert reference == '{"stepwire_secret": "env:API_TOKEN"}'
    parameters = decode_parameters("s", {"api_token": reference, "n": "3"})
    assert parameters == {"api_token": Secret.env("API_TOKEN"), "n": 3}
    monkeypatch.setenv("API_TOKEN", "s3cr3t-value")
    assert resolve("s", parameters) == {"api_token": "s3cr3t-value", "n": 3}
    assert redaction.redact("it was s3cr3t-value") == "it was ***"


def test_a_missing_variable_names_the_step_parameter_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOT_THERE", raising=False)
    with pytest.raises(SecretUnavailableError) as caught:
        resolve("call", {"token": Secret.env("NOT_THERE")})
    assert str(caught.value) == (
        "Step 'call': secret parameter 'token' cannot be read: the environment variable "
        "NOT_THERE is not set in the step's environment"
    )


def test_a_secret_file_is_read_through_links_bounded_and_never_blocks(tmp_path: Path) -> None:
    real = tmp_path / "..data" / "token"
    real.parent.mkdir()
    real.write_text("from-a-mount\r\n")
    link = tmp_path / "token"
    link.symlink_to(real)  # a Kubernetes secret volume is links to the real files
    assert Secret.file(str(link)).read() == "from-a-mount"

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 70000)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, reason in (
        (fifo, "is not a regular file"),
        (big, "holds more than the 65536 bytes a secret may"),
        (binary, "is not UTF-8 text"),
        (empty, "is empty"),
        (tmp_path / "missing", "cannot be read: it does not exist"),
    ):
        with pytest.raises(SecretUnavailableError, match=reason):
            Secret.file(str(path)).read()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Secret.env("1BAD"), "letters, digits and '_'"),
        (lambda: Secret.file("relative/path"), "must be absolute"),
        (lambda: Secret("vault", "x"), "the source must be one of"),
    ],
)
def test_a_malformed_reference_is_refused_when_made(make: Any, message: str) -> None:
    with pytest.raises(StepInterfaceError, match=message):
        make()


def test_a_secret_parameter_must_be_declared_str_and_the_key_is_reserved() -> None:
    def counted(n: int = Secret.env("N")) -> None:  # type: ignore[assignment]
        pass

    def named(token: str = Secret.env("N"), other=Secret.env("M")) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(StepInterfaceError, match="declared int"):
        parse_entrypoint(counted, "counted")
    assert parse_entrypoint(named, "named").parameters == {
        "token": Secret.env("N"),
        "other": Secret.env("M"),
    }
    with pytest.raises(StepInterfaceError, match="marks a secret reference"):
        check_parameter_value("plain", "options", {"stepwire_secret": "env:X"}, dict)


@pytest.mark.parametrize(
    "value",
    [
        '{"stepwire_secret": "vault:x"}',
        '{"stepwire_secret": "env:1BAD"}',
        '{"stepwire_secret": "file:relative"}',
        '{"stepwire_secret": 3}',
        '{"stepwire_secret": "env:X", "more": 1}',
    ],
)
def test_a_malformed_reference_in_the_ir_is_a_bad_argument(value: str) -> None:
    with pytest.raises(PipelineIRError, match="malformed secret reference"):
        decode_parameters("s", {"p": value})


def test_every_form_of_a_secret_is_redacted_in_text_and_bytes() -> None:
    redaction.register('p"ss\u00e9word')
    redaction.register("abc")  # too short to redact
    text = (
        json.dumps({"a": 'p"ss\u00e9word'})
        + ' p"ss\u00e9word '
        + json.dumps('p"ss\u00e9word', ensure_ascii=False)
    )
    assert redaction.redact(text) == '{"a": "***"} *** "***"'
    assert redaction.redact("abc") == "abc"


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=40))
def test_a_secret_split_across_chunks_is_still_redacted(first: int, second: int) -> None:
    redaction._values.clear()
    redaction._forms = ()
    redaction.register("0123456789-secret")
    stream = b"before 0123456789-secret middle 0123456789-secret after 0123"
    redactor = redaction.StreamRedactor()
    out = b""
    chunks = [stream[:first], stream[first : first + second], stream[first + second :]]
    for chunk in chunks:
        out += redactor.feed(chunk)
    out += redactor.flush()
    assert out == b"before *** middle *** after 0123"


def test_the_listener_hears_secrets_known_before_and_after() -> None:
    heard: list[str] = []
    redaction.register("known-before")
    redaction.add_listener(heard.append)
    redaction.register("known-after")
    assert heard == ["known-before", "known-after"]


def test_ml_metadata_never_stores_a_known_secret(tmp_path: Path) -> None:
    from ml_metadata.proto import metadata_store_pb2

    from stepwire.mlmd_guard import GuardedMetadataStore

    store = GuardedMetadataStore(sqlite_config(tmp_path / "m.db"))
    [type_id] = [store.put_execution_type(metadata_store_pb2.ExecutionType(name="T"))]
    redaction.register("hunter2-secret")
    execution = metadata_store_pb2.Execution(type_id=type_id)
    execution.custom_properties["why"].string_value = "it failed with hunter2-secret inside"
    [execution_id] = store.put_executions([execution])
    [stored] = store.get_executions_by_id([execution_id])
    assert stored.custom_properties["why"].string_value == "it failed with *** inside"
