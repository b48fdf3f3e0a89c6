"""End to end across languages: the TypeScript launcher starts real Python steps.

A two-step pipeline is compiled in Python. For each step, what a launcher knows is
written to files (the dehydrated IR as protobuf JSON, not canonical, and the
sources); the TypeScript launcher builds the step's argv from those files alone;
then ``python -m stepwire.entrypoints.step_entrypoint <that argv>`` runs the step
for real against a SQLite ML Metadata and an artifact store in ``tmp_path``. The
second step is launched with thresholds lowered so that its JSON options go
compressed and by reference through the artifact store's ``.references`` folder.
The outputs are read back through ML Metadata.
"""

from __future__ import annotations

import base64
import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ts_launcher
from google.protobuf import json_format
from stepwire_testkit import StackDir, explain

from stepwire import constants
from stepwire._gen.entrypoint.v1 import entrypoint_args_codec as codec
from stepwire.entrypoints.references import ArtifactStoreReferences
from stepwire.materializers import value_codec
from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration
from stepwire.pipelines.dehydrate import dehydrate

pytestmark = pytest.mark.skipif(
    ts_launcher.node() is None,
    reason="node (Node.js 20+) is not installed: the TypeScript launcher cannot run",
)

MODULE = "xlang_user_pipeline"
RUN_NAME = "xlang-run-1"
USER_CODE = """
from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def make_numbers() -> list:
    return [3, 1, 4, 1, 5, "\u03c0"]


@step
def summarize(numbers: list) -> dict:
    ints = [n for n in numbers if isinstance(n, int)]
    labels = [n for n in numbers if isinstance(n, str)]
    return {"total": sum(ints), "count": len(numbers), "labels": labels}


@pipeline
def xlang_pipeline(make_numbers, summarize):
    summarize(numbers=make_numbers())
"""


class Stack(StackDir):
    """Artifacts and a SQLite ML Metadata under one folder, for the step processes."""

    def __init__(self, root: Path, project: Path) -> None:
        super().__init__(
            root.resolve(), orchestrator="subprocess", drop=("PYTHON",), PYTHONPATH=str(project)
        )
        self.project = project

    def outputs(self, run_name: str) -> dict[str, Any]:
        """Each step's ``output`` artifact of a run, read through ML Metadata."""
        values = {}
        for record in self.run_record(run_name).steps:
            assert record.status == "completed", record
            [uri] = [a.uri for a in record.outputs if a.output == "output"]
            values[record.step] = value_codec.loads(Path(uri, "data.json").read_text("utf-8"))
        return values


@pytest.fixture
def compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, Stack]]:
    project = tmp_path / "project"
    project.mkdir()
    (project / f"{MODULE}.py").write_text(USER_CODE, "utf-8")
    stack = Stack(tmp_path / "stack", project)
    for key, value in stack.env().items():
        if key.startswith("STEPWIRE_"):
            monkeypatch.setenv(key, value)
    # Under pytest `__main__` is pytest: name the user's module as the script.
    monkeypatch.setattr(constants, "USER_MAIN_MODULE", MODULE)
    monkeypatch.syspath_prepend(str(project))
    try:
        module = __import__(MODULE)
        pipeline = module.xlang_pipeline(
            make_numbers=module.make_numbers(), summarize=module.summarize()
        )
        yield pipeline, pipeline.compile(pipeline_root=str(stack.artifacts)), stack
    finally:
        sys.modules.pop(MODULE, None)


def _write_fields(folder: Path, python_args: codec.EntrypointArgs, ir_json: str) -> None:
    """One file per option, named by its flag, as a launcher would find them."""
    folder.mkdir(parents=True)
    for flag in ("entrypoint_config_source", "main_module_source", "step_source", "run_name"):
        (folder / flag).write_text(getattr(python_args, flag), "utf-8")
    (folder / "pipeline_json").write_text(ir_json, "utf-8")
    for flag in ("input_artifact_sources", "materializer_sources"):
        (folder / flag).write_text(json.dumps(dict(getattr(python_args, flag)), indent=2), "utf-8")


def _inflated(argv: list[str]) -> list[str | bytes]:
    return [
        zlib.decompress(base64.b64decode(e[len(codec.COMPRESSED_PREFIX) :]))
        if e.startswith(codec.COMPRESSED_PREFIX)
        else e
        for e in argv
    ]


def _run_step(argv: list[str], stack: Stack, exit_code: int = 0) -> str:
    command = SubprocessEntrypointConfiguration.get_entrypoint_command() + argv
    proc = stack.run(command, stack.project, timeout=300)
    assert proc.returncode == exit_code, explain(proc)
    return proc.stdout + proc.stderr


def test_typescript_launcher_runs_python_steps(
    compiled: tuple[Any, Any, Stack], tmp_path: Path
) -> None:
    pipeline, ir, stack = compiled
    references = ArtifactStoreReferences(str(stack.artifacts))
    forms = {}
    for slot, thresholds in (
        ("make_numbers", {}),
        ("summarize", {"compress_above": 16, "reference_above": 200}),
    ):
        step = pipeline.steps[slot]
        python_argv = SubprocessEntrypointConfiguration.get_entrypoint_arguments(
            step=step, pb2_pipeline=ir, run_name=RUN_NAME
        )
        python_args = codec.decode(python_argv, read_reference=references.read).args
        # Pretty-printed protobuf JSON: the launcher must canonicalize it itself.
        ir_json = json_format.MessageToJson(dehydrate(ir, step.name))
        assert "\n" in ir_json
        fields = tmp_path / "fields" / slot
        _write_fields(fields, python_args, ir_json)

        ts_argv = ts_launcher.launch(fields, store_dir=Path(references.folder), **thresholds)

        decoded = codec.decode(ts_argv, read_reference=references.read)
        assert decoded.args == python_args
        forms[slot] = {flag: form.value for flag, form in decoded.forms.items()}
        if not thresholds:
            # The same contract thresholds: the same canonical argv, byte for byte
            # (compressed elements by their payload).
            assert _inflated(ts_argv) == _inflated(python_argv)
        _run_step(ts_argv, stack)

    assert forms["summarize"] == {
        "pipeline_json": "reference",
        "input_artifact_sources": "compressed",
        "materializer_sources": "compressed",
    }
    assert stack.outputs(RUN_NAME) == {
        "make_numbers": [3, 1, 4, 1, 5, "\u03c0"],
        "summarize": {"total": 14, "count": 6, "labels": ["\u03c0"]},
    }

    # The runtime checks what the launcher stored: a payload changed behind the
    # reference's back is a bad argument (exit 64), before anything runs.
    [reference] = [e for e in ts_argv if e.startswith(codec.REFERENCE_PREFIX)]
    stored = Path(reference.split(":", 3)[3])
    stored.write_bytes(stored.read_bytes().replace(b"summarize", b"summarise"))
    output = _run_step(ts_argv, stack, exit_code=64)
    [line] = [line for line in output.splitlines() if line.startswith("stepwire: ")]
    assert line.startswith("stepwire: bad_arguments: --pipeline_json: "), line
    assert "sha256" in line, line
