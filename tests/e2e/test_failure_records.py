"""The failure table, the record's bound, and argument budgets: unit level."""

from __future__ import annotations

import json

import pytest

from stepwire.entrypoints import codec
from stepwire.entrypoints.budgets import (
    AWS_BATCH,
    LINUX,
    PRESETS,
    SAGEMAKER,
    ArgumentBudgetError,
    fit_arguments,
)
from stepwire.entrypoints.exit_codes import (
    FAILURES,
    MAX_RECORD_BYTES,
    ExitCode,
    FailureKind,
    classify,
    failure_record,
)
from stepwire.entrypoints.loading import UserCodeLoadError
from stepwire.exceptions import (
    DuplicateRunNameError,
    InfrastructureError,
    InputResolutionError,
)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (codec.ArgumentError(codec.ErrorKind.BAD_BASE64, "x"), FailureKind.BAD_ARGUMENTS),
        (UserCodeLoadError("x"), FailureKind.USER_CODE_NOT_LOADABLE),
        (InputResolutionError("s", "r"), FailureKind.INPUTS_UNRESOLVABLE),
        (DuplicateRunNameError("r", "d"), FailureKind.ALREADY_SUCCEEDED),
        (InfrastructureError("x"), FailureKind.INFRASTRUCTURE),
        (ZeroDivisionError("user code"), FailureKind.STEP_FAILED),
        (OSError("inside the step"), FailureKind.STEP_FAILED),
    ],
)
def test_each_failure_kind_has_its_exit_code(error: Exception, kind: FailureKind) -> None:
    assert classify(error) is kind


def test_the_table_separates_retryable_failures() -> None:
    retryable = {kind for kind, failure in FAILURES.items() if failure.retryable}
    assert retryable == {FailureKind.STEP_FAILED, FailureKind.INFRASTRUCTURE}
    codes = [failure.exit_code for failure in FAILURES.values()]
    assert len(set(codes)) == len(codes)
    assert ExitCode.SUCCESS not in codes
    assert 1 not in codes  # what an uncaught Python exception gives


def test_a_failure_record_never_exceeds_4_kib() -> None:
    data = failure_record(FailureKind.STEP_FAILED, "é" * 10_000)
    assert len(data) <= MAX_RECORD_BYTES
    record = json.loads(data)
    assert record["kind"] == "step_failed"
    assert record["retryable"] is True
    assert record["message"].endswith("...")


def _args(pipeline_bytes: int) -> codec.EntrypointArgs:
    # Hex digits compress about 2:1, like real IR JSON does a bit better than.
    import hashlib

    blob = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(pipeline_bytes // 64))
    return codec.EntrypointArgs(
        entrypoint_config_source="pkg.Config",
        main_module_source="run",
        step_source="run.Step",
        pipeline_json=json.dumps({"blob": blob}),
        contract_version=1,
    )


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, payload: bytes, sha256_hex: str) -> str:
        uri = f"mem://refs/{sha256_hex}"
        self.objects[uri] = payload
        return uri


COMMAND = ["python", "-m", "stepwire.entrypoints.step_entrypoint"]


def test_a_small_step_fits_every_preset_inline() -> None:
    args = _args(1000)
    for budget in PRESETS.values():
        if budget is SAGEMAKER:
            continue
        argv = fit_arguments(args, {}, COMMAND, budget=budget, store=None)
        assert argv == codec.encode(args)


def test_aws_batch_compresses_then_references_to_fit_8192() -> None:
    store = MemoryStore()
    compressed = fit_arguments(_args(6000), {}, COMMAND, budget=AWS_BATCH, store=store)
    assert AWS_BATCH.total(COMMAND + compressed) <= 8192
    assert compressed[compressed.index("--pipeline_json") + 1].startswith("zlib:")
    assert not store.objects

    referenced = fit_arguments(_args(20_000), {}, COMMAND, budget=AWS_BATCH, store=store)
    assert AWS_BATCH.total(COMMAND + referenced) <= 8192
    value = referenced[referenced.index("--pipeline_json") + 1]
    assert value.startswith("ref:sha256:")
    decoded = codec.decode(referenced, read_reference=store.objects.__getitem__)
    assert decoded.args == codec.decode(codec.encode(_args(20_000))).args


def test_linux_keeps_every_element_under_128_kib() -> None:
    store = MemoryStore()
    argv = fit_arguments(_args(400_000), {}, COMMAND, budget=LINUX, store=store)
    assert all(LINUX.element_fits(element) for element in argv)
    assert argv[argv.index("--pipeline_json") + 1].startswith("ref:sha256:")


def test_when_nothing_fits_the_error_names_the_sizes() -> None:
    custom = {"note": "x" * 9000}
    with pytest.raises(ArgumentBudgetError, match=r"aws-batch budget of 8192.*--pipeline_json"):
        fit_arguments(_args(1000), custom, COMMAND, budget=AWS_BATCH, store=MemoryStore())


def test_a_value_that_must_go_by_reference_needs_a_store() -> None:
    with pytest.raises(codec.EncodeError) as raised:
        fit_arguments(_args(20_000), {}, COMMAND, budget=AWS_BATCH, store=None)
    assert raised.value.kind is codec.ErrorKind.NEEDS_REFERENCE_STORE


def test_references_are_read_only_from_the_artifact_store(tmp_path: object) -> None:
    from pathlib import Path

    from stepwire.entrypoints.references import ArtifactStoreReferences

    root = Path(str(tmp_path))
    references = ArtifactStoreReferences(str(root / "store"))
    uri = references.put(b"payload", "ab" * 32)
    assert references.read(uri) == b"payload"
    (root / "secret").write_bytes(b"secret")
    for outside in (str(root / "secret"), f"{references.folder}/../../secret", "/etc/passwd"):
        with pytest.raises(PermissionError):
            references.read(outside)
