"""One step per process against a real SQLite ML Metadata store.

The user project in ``e2e_project/`` is copied to a temporary directory; its script is
run with ``python run.py`` and its orchestrator launches every step through
``driver.py`` in a fresh process (what the real step entrypoint does). These tests run
about twenty processes, roughly a second each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import StackDir

from stepwire.materializers import value_codec

PROJECT = Path(__file__).parent / "e2e_project"
PIPELINE = "train_pipeline"


class Project(StackDir):
    """A copy of the e2e project, with its stack (and the arguments' folder) in ``work``."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "project"
        shutil.copytree(PROJECT, self.dir, ignore=shutil.ignore_patterns("__pycache__"))
        self.args_dir = root / "work" / "args"
        self.args_dir.mkdir(parents=True)
        super().__init__(
            root / "work",
            orchestrator="orch.ProcessOrchestrator",
            drop=("FAIL_",),
            ARGS_DIR=str(self.args_dir),
        )

    def run_pipeline(self, run_name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "run.py"], self.dir, RUN_NAME=run_name, **extra)

    def outcomes(self, run_name: str, **extra: str) -> dict[str, str]:
        proc = self.run_pipeline(run_name, **extra)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                return {k: v["outcome"] for k, v in json.loads(line[7:]).items()}
        raise AssertionError(f"pipeline failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")

    def launch(self, run_of_arguments: str, step: str, run_name: str) -> tuple[int, str]:
        arguments = self.args_dir / f"{run_of_arguments}.{step}.json"
        proc = self.run([sys.executable, "driver.py", str(arguments), run_name], self.dir)
        return proc.returncode, proc.stdout + proc.stderr

    def output_value(self, run_name: str, step: str, output: str = "output") -> object:
        store = self.store()
        context = store.get_context_by_type_and_name("pipeline_run", run_name)
        [artifact] = [
            a for a in store.get_artifacts_by_context(context.id) if f"/{step}/{output}/" in a.uri
        ]
        return value_codec.loads((Path(artifact.uri) / "data.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("e2e"))


def test_first_run_completes_every_step_in_its_own_process(project: Project) -> None:
    assert project.outcomes("r1") == {
        "loader": "completed",
        "trainer": "completed",
        "evaluator": "completed",
    }
    assert project.output_value("r1", "evaluator") == "w=7.5 n=3 shape=(3, 2)"
    # A tuple nested in a dict survived the round trip through the artifact store.
    assert project.output_value("r1", "trainer") == {"w": 7.5, "n": 3, "shape": (3, 2)}
    store = project.store()
    [evaluated] = project.executions("r1", PIPELINE, "evaluator")
    assert evaluated.last_known_state == metadata_store_pb2.Execution.COMPLETE
    outputs = [
        a
        for a in store.get_artifacts_by_context(
            store.get_context_by_type_and_name("pipeline_run", "r1").id
        )
        if "/loader/features/" in a.uri
    ]
    assert outputs[0].properties["materializer"].string_value == (
        "stepwire.materializers.numpy_materializer.NumpyMaterializer"
    )
    assert outputs[0].properties["datatype"].string_value == "numpy.ndarray"


def test_same_code_and_parameters_are_cached(project: Project) -> None:
    assert set(project.outcomes("r2").values()) == {"cached"}
    assert project.output_value("r2", "evaluator") == "w=7.5 n=3 shape=(3, 2)"


def test_changed_parameter_reruns_the_step_and_its_consumers(project: Project) -> None:
    assert project.outcomes("r3", LR="0.25") == {
        "loader": "cached",
        "trainer": "completed",
        "evaluator": "completed",
    }
    assert project.output_value("r3", "evaluator") == "w=3.75 n=3 shape=(3, 2)"


def test_wrong_run_name_downstream_is_an_input_resolution_error(project: Project) -> None:
    code, output = project.launch("r3", "evaluator", "not-the-run")
    assert code == 3, output
    assert "InputResolutionError" in output
    assert "'not-the-run'" in output


def test_relaunching_a_completed_step_is_a_duplicate_run(project: Project) -> None:
    code, output = project.launch("r1", "loader", "r1")
    assert code == 4, output
    assert "DuplicateRunNameError" in output
    assert len(project.executions("r1", PIPELINE, "loader")) == 1


def test_reusing_a_run_name_for_a_pipeline_fails_on_the_client(project: Project) -> None:
    proc = project.run_pipeline("r1")
    assert proc.returncode != 0
    assert "DuplicateRunNameError" in proc.stderr


def test_failed_step_can_be_retried_in_the_same_run(project: Project) -> None:
    proc = project.run_pipeline("r4", FAIL_TRAINER="1", LR="2.0")
    assert proc.returncode != 0
    assert "trainer failed on purpose" in proc.stderr
    [failed] = project.executions("r4", PIPELINE, "trainer")
    assert failed.last_known_state == metadata_store_pb2.Execution.FAILED

    # What a killed attempt could leave behind at the path TFX will reuse.
    stray = project.artifacts / "trainer" / "output" / str(failed.id) / "stray.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("half-written")

    code, output = project.launch("r4", "trainer", "r4")
    assert code == 0, output
    assert not stray.exists()
    assert stray.with_name("data.json").exists()
    [retried] = project.executions("r4", PIPELINE, "trainer")
    # TFX reuses the failed execution (same id) and now completes it.
    assert retried.id == failed.id
    assert retried.last_known_state == metadata_store_pb2.Execution.COMPLETE

    code, output = project.launch("r4", "trainer", "r4")
    assert code == 4, output
