"""``stepwire args explain``: a failing pod's args read like a description of the step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from stepwire_testkit import EXAMPLES

from stepwire import constants
from stepwire.entrypoints import codec
from stepwire.entrypoints.exit_codes import ExitCode


@pytest.fixture(scope="module")
def commands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    """Commands of two demo steps, as the subprocess orchestrator builds them."""
    root = tmp_path_factory.mktemp("explain")
    os.environ["STEPWIRE_ARTIFACT_STORE"] = str(root / "artifacts")
    sys.path.insert(0, str(EXAMPLES))
    saved = constants.USER_MAIN_MODULE
    constants.USER_MAIN_MODULE = "wine_pipeline"
    try:
        import wine_pipeline

        from stepwire.orchestrators.subprocess_orchestrator import (
            SubprocessEntrypointConfiguration as Config,
        )

        ir = wine_pipeline.wine_pipeline.compile(pipeline_root=str(root / "artifacts"))
        steps = wine_pipeline.wine_pipeline.steps
        yield {
            name: Config.get_entrypoint_command()
            + Config.get_entrypoint_arguments(
                step=steps[name], pb2_pipeline=ir, run_name="{{workflow.name}}"
            )
            for name in ("split", "train_ridge")
        }
    finally:
        constants.USER_MAIN_MODULE = saved
        sys.path.remove(str(EXAMPLES))
        os.environ.pop("STEPWIRE_ARTIFACT_STORE", None)


def _explain(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepwire", "args", "explain", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_pod_spec_reads_like_a_description_of_the_step(
    commands: dict[str, list[str]], tmp_path: Path
) -> None:
    command = commands["train_ridge"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "train-ridge-abc"},
        "spec": {"containers": [{"name": "step", "command": command[:3], "args": command[3:]}]},
    }
    spec = tmp_path / "pod.yaml"
    spec.write_text(yaml.safe_dump(pod))
    shown = _explain("--from-file", str(spec))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith("step train_ridge of pipeline wine_classifier")
    assert "executor: wine_pipeline.train_ridge_Executor" in text
    # Compiled with a fixed root: explain shows it (a step with another store refuses).
    [root_line] = [line.strip() for line in text.splitlines() if "pipeline_root:" in line]
    assert root_line.startswith("pipeline_root: /")
    assert root_line.endswith("/artifacts")
    assert "custom_driver" not in text
    assert '"x_train": ["split.x_train"]' in text
    assert '"alpha": 1.0' in text
    assert 'outputs: {"output": "stepwire.ModelArtifact"}' in text
    assert "--run_name (late-bound): {{workflow.name}}" in text
    assert "python -m stepwire.entrypoints.step_entrypoint --entrypoint_config_source" in text


def test_json_output_and_a_job_spec(commands: dict[str, list[str]], tmp_path: Path) -> None:
    command = commands["split"]
    job = {
        "kind": "Job",
        "spec": {"template": {"spec": {"containers": [{"command": command}]}}},
    }
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(job))
    shown = _explain("--json", "--from-file", str(spec))
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["pipeline"]["node"] == "split"
    assert document["pipeline"]["parameters"] == {"test_fraction": 0.3, "seed": 7}
    assert document["options"]["step_source"] == "wine_pipeline.split"
    assert document["forms"]["pipeline_json"] in {"inline", "compressed"}
    assert document["forms"]["materializer_sources"] == "inline"


def test_argv_on_the_command_line(commands: dict[str, list[str]]) -> None:
    shown = _explain("--", *commands["split"][3:])
    assert shown.returncode == 0, shown.stderr
    assert "step split of pipeline wine_classifier" in shown.stdout


def test_by_reference_values_resolved_when_reachable(
    commands: dict[str, list[str]], tmp_path: Path
) -> None:
    from stepwire.entrypoints.references import ArtifactStoreReferences

    argv = commands["split"][3:]
    decoded = codec.decode(argv)
    store_root = tmp_path / "store"
    referenced = codec.encode(
        decoded.args,
        store=ArtifactStoreReferences(str(store_root)),
        thresholds=codec.Thresholds(0, 10),
    )
    assert referenced[referenced.index("--pipeline_json") + 1].startswith("ref:sha256:")
    reachable = _explain("--", *referenced, env={"STEPWIRE_ARTIFACT_STORE": str(store_root)})
    assert reachable.returncode == 0, reachable.stderr
    assert "--pipeline_json (reference):" in reachable.stdout
    assert "node: split" in reachable.stdout

    elsewhere = _explain("--", *referenced, env={"STEPWIRE_ARTIFACT_STORE": str(tmp_path / "x")})
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "<unreachable:" in elsewhere.stdout


def test_a_broken_option_is_one_line_and_the_bad_arguments_code(
    commands: dict[str, list[str]],
) -> None:
    argv = commands["split"][3:]
    index = argv.index("--materializer_sources") + 1
    broken = [*argv[:index], "not base64!", *argv[index + 1 :]]
    shown = _explain("--", *broken)
    assert shown.returncode == ExitCode.BAD_ARGUMENTS
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "stepwire: bad_arguments: --materializer_sources: not standard base64"
    )


def test_a_file_that_is_no_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("kind: ConfigMap\ndata: {a: b}\n")
    shown = _explain("--from-file", str(bad))
    assert shown.returncode == ExitCode.BAD_ARGUMENTS
    assert "neither a JSON list of strings nor a Kubernetes" in shown.stderr


def test_a_late_bound_root_is_shown_as_bound_by_the_step() -> None:
    from google.protobuf import json_format

    from stepwire.explain import summarise_pipeline

    sys.path.insert(0, str(EXAMPLES))
    try:
        import wine_pipeline

        ir = wine_pipeline.wine_pipeline.compile()  # no root: each step binds its own
    finally:
        sys.path.remove(str(EXAMPLES))
    summary = summarise_pipeline(json_format.MessageToJson(ir))
    assert summary["pipeline_root"] == "bound to the step's artifact store"
    assert "custom_driver" not in summary


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"a: &a\n  spec:\n    template: *a\n", "neither a JSON list"),  # loops back on itself
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"\xff\xfe not utf-8", "not UTF-8 text"),
        (b"key: [unclosed", "cannot read it as JSON or YAML"),
    ],
)
def test_a_hostile_file_is_one_line_and_64(tmp_path: Path, content: bytes, fragment: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    shown = _explain("--from-file", str(spec))
    assert shown.returncode == 64, shown.stderr
    assert shown.stderr.count("\n") == 1, shown.stderr
    assert shown.stderr.startswith("stepwire: bad_arguments: "), shown.stderr
    assert fragment in shown.stderr
