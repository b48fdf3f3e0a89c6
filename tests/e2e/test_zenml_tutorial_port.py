"""A ZenML 0.10-era tutorial pipeline, with only its import lines changed, on stepwire.

The tutorial is the shape most public 0.10 pipelines have: an importer returning
DataFrames and Series through ``Output(...)``, a trainer taking them and returning a
fitted estimator annotated ``ClassifierMixin``, an evaluator returning a float. No
materializer is written by hand. ``python tutorial.py`` runs it with the
``subprocess`` orchestrator, every step in its own process through the step
entrypoint, then a second time, when every step comes from the cache.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.base import ClassifierMixin
from stepwire_testkit import StackDir, explain

from stepwire.artifacts import DataArtifact, ModelArtifact
from stepwire.materializers import PandasMaterializer, SklearnMaterializer
from stepwire.runs import RunReader

#: The tutorial as a ZenML 0.10 user wrote it (digits, an SVC, its test accuracy).
ZENML_TUTORIAL = '''\
"""My first pipeline: load the digits, train an SVC, report its test accuracy."""

import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from zenml.pipelines import pipeline
from zenml.steps import Output, step


@step
def importer() -> Output(
    X_train=pd.DataFrame, X_test=pd.DataFrame, y_train=pd.Series, y_test=pd.Series
):
    """Loads the digits data set as pandas DataFrames and Series."""
    digits = load_digits(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, shuffle=False
    )
    return X_train, X_test, y_train, y_test


@step
def svc_trainer(X_train: pd.DataFrame, y_train: pd.Series) -> ClassifierMixin:
    """Trains a sklearn SVC classifier."""
    model = SVC(gamma=0.001)
    model.fit(X_train.to_numpy(), y_train.to_numpy())
    return model


@step
def evaluator(X_test: pd.DataFrame, y_test: pd.Series, model: ClassifierMixin) -> float:
    """Calculates the accuracy on the test set."""
    test_acc = model.score(X_test.to_numpy(), y_test.to_numpy())
    print(f"Test accuracy: {test_acc}")
    return test_acc


@pipeline
def first_pipeline(importer, trainer, evaluator):
    """Links all the steps together in a pipeline."""
    X_train, X_test, y_train, y_test = importer()
    model = trainer(X_train=X_train, y_train=y_train)
    evaluator(X_test=X_test, y_test=y_test, model=model)


first_pipeline_instance = first_pipeline(
    importer=importer(), trainer=svc_trainer(), evaluator=evaluator()
)
first_pipeline_instance.run()
'''

#: The only edit the port makes.
IMPORTS = {
    "from zenml.pipelines import pipeline": "from stepwire.pipelines import pipeline",
    "from zenml.steps import Output, step": "from stepwire.steps import Output, step",
}


def ported() -> str:
    text = ZENML_TUTORIAL
    for zenml, stepwire in IMPORTS.items():
        text = text.replace(zenml, stepwire)
    return text


def test_the_port_changes_only_the_import_lines() -> None:
    changed = [
        line
        for line in difflib.unified_diff(
            ZENML_TUTORIAL.splitlines(), ported().splitlines(), lineterm="", n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sorted(changed) == sorted(
        [f"-{zenml}" for zenml in IMPORTS] + [f"+{stepwire}" for stepwire in IMPORTS.values()]
    )


def _expected() -> tuple[pd.DataFrame, pd.Series, float]:
    # The tutorial's computation in this process, straight with scikit-learn.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    digits = load_digits(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, shuffle=False
    )
    model = SVC(gamma=0.001).fit(x_train.to_numpy(), y_train.to_numpy())
    return x_test, y_test, float(model.score(x_test.to_numpy(), y_test.to_numpy()))


def _artifact(cls: type[DataArtifact] | type[ModelArtifact], uri: str) -> Any:
    artifact = cls()
    artifact.uri = uri
    return artifact


def _custom_properties(stack: StackDir, uri: str) -> dict[str, Any]:
    [artifact] = [a for a in stack.store().get_artifacts() if a.uri == uri]
    return {
        key: value.int_value if value.HasField("int_value") else value.string_value
        for key, value in artifact.custom_properties.items()
        if key.startswith("stepwire_")
    }


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> tuple[StackDir, Path]:
    root = tmp_path_factory.mktemp("zenml-tutorial")
    project = root / "project"
    project.mkdir()
    (project / "tutorial.py").write_text(ported())
    return StackDir(root / "stack", orchestrator="subprocess", drop=("PYTHON",)), project


def test_the_tutorial_runs_in_step_processes_then_fully_cached(
    tutorial: tuple[StackDir, Path],
) -> None:
    stack, project = tutorial
    first = stack.run([sys.executable, "tutorial.py"], cwd=project, timeout=600)
    assert first.returncode == 0, explain(first)
    second = stack.run([sys.executable, "tutorial.py"], cwd=project, timeout=600)
    assert second.returncode == 0, explain(second)

    newest, oldest = RunReader(stack.store()).list_runs()
    assert {s.step: s.status for s in oldest.steps} == {
        "importer": "completed",
        "svc_trainer": "completed",
        "evaluator": "completed",
    }
    assert {s.status for s in newest.steps} == {"cached"}

    x_test, y_test, accuracy = _expected()
    run = oldest.run_name
    assert stack.output(run, "evaluator", float) == accuracy
    # A cached step hands out the outputs of the run that computed them.
    assert stack.output(newest.run_name, "evaluator", float) == accuracy

    # What the steps passed, read back as the next step read it.
    x_uri = stack.output_uri(run, "importer", "X_test")
    back = PandasMaterializer(_artifact(DataArtifact, x_uri)).handle_input(pd.DataFrame)
    pd.testing.assert_frame_equal(back, x_test, check_exact=True)
    y_uri = stack.output_uri(run, "importer", "y_test")
    series = PandasMaterializer(_artifact(DataArtifact, y_uri)).handle_input(pd.Series)
    pd.testing.assert_series_equal(series, y_test, check_exact=True)
    model_uri = stack.output_uri(run, "svc_trainer")
    model = SklearnMaterializer(_artifact(ModelArtifact, model_uri)).handle_input(ClassifierMixin)
    assert float(model.score(x_test.to_numpy(), y_test.to_numpy())) == accuracy


def test_ml_metadata_describes_the_tables_and_the_model(tutorial: tuple[StackDir, Path]) -> None:
    stack, _ = tutorial
    run = RunReader(stack.store()).list_runs()[-1].run_name
    outputs = {a.output: a for a in stack.step_record(run, "importer").outputs}
    assert {a.type_name for a in outputs.values()} == {"stepwire.DataArtifact"}
    x_train = _custom_properties(stack, outputs["X_train"].uri)
    assert x_train["stepwire_rows"] == 1437
    assert x_train["stepwire_columns"] == 64
    assert json.loads(x_train["stepwire_schema"])[0] == ["pixel_0_0", "float64"]
    assert x_train["stepwire_summary"] == "DataFrame of 1,437 rows \u00d7 64 columns"
    y_train = _custom_properties(stack, outputs["y_train"].uri)
    assert y_train["stepwire_summary"] == "Series 'target' of 1,437 rows, int64"

    [model] = stack.step_record(run, "svc_trainer").outputs
    assert model.type_name == "stepwire.ModelArtifact"
    recorded = _custom_properties(stack, model.uri)
    assert recorded["stepwire_estimator"] == "sklearn.svm._classes.SVC"
    assert recorded["stepwire_summary"] == "SVC(gamma=0.001)"
    assert recorded["stepwire_fitted"] == "yes"
    assert set(json.loads(recorded["stepwire_libraries"])) == {"scikit-learn", "skops"}


def test_the_tutorial_runs_in_process_on_the_local_orchestrator_too(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "tutorial.py").write_text(ported())
    stack = StackDir(tmp_path / "stack", orchestrator="local", drop=("PYTHON",))
    proc = stack.run([sys.executable, "tutorial.py"], cwd=project, timeout=600)
    assert proc.returncode == 0, explain(proc)
    [run] = RunReader(stack.store()).list_runs()
    assert {s.status for s in run.steps} == {"completed"}
    _, _, accuracy = _expected()
    assert stack.output(run.run_name, "evaluator", float) == accuracy
