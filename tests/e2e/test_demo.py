"""The demo pipeline end to end: the CLI, the subprocess orchestrator, real ML Metadata."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from stepwire_testkit import EXAMPLES, StackDir

from stepwire.outputs import load_output
from stepwire.runs import RunReader
from stepwire.stack import stack_from_config
from stepwire.stack_config import load_stack_config

TARGET = f"{EXAMPLES}/wine_pipeline.py:wine_pipeline"


class Demo(StackDir):
    """The demo's stack; the CLI runs in its folder with the subprocess orchestrator."""

    def stepwire(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m stepwire <args>`` in the demo's folder."""
        return self.cli(args, self.root)

    def reader(self) -> RunReader:
        return RunReader(self.store())

    def value(self, run_name: str, step: str, output: str) -> object:
        """The output read back with the public API, on this demo's stack."""
        config = load_stack_config(environ=self.env(), cwd=self.root)
        return load_output(run_name, step, output, stack=stack_from_config(config))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return Demo(tmp_path_factory.mktemp("demo"), orchestrator="subprocess")


def _expected_accuracies() -> dict[str, float]:
    # The same computation in this process, straight with scikit-learn.
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.model_selection import train_test_split

    data = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=7, stratify=data.target
    )
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scores = {}
    for name, model in (
        ("logistic regression", LogisticRegression(C=0.05, max_iter=1000)),
        ("ridge classifier", RidgeClassifier(alpha=1.0)),
    ):
        model.fit((x_train - mean) / scale, y_train)
        scores[name] = float(np.mean(model.predict((x_test - mean) / scale) == y_test))
    return scores


def test_demo_runs_every_step_in_its_own_process_then_from_the_cache(demo: Demo) -> None:
    first = demo.stepwire("run", TARGET)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "run succeeded: 8 steps: 8 completed, 0 cached, 0 failed, 0 skipped" in first.stdout
    for step in ("load_data", "split", "train_logistic", "train_ridge", "pick_best", "report"):
        assert f"{step} " in first.stdout

    second = demo.stepwire("run", TARGET)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "8 steps: 0 completed, 8 cached" in second.stdout

    runs = demo.reader().list_runs()
    assert len(runs) == 2
    newest, oldest = runs
    assert {s.status for s in oldest.steps} == {"completed"}
    assert {s.status for s in newest.steps} == {"cached"}

    expected = _expected_accuracies()
    report = demo.value(oldest.run_name, "report", "output")
    best = max(expected, key=lambda name: (expected[name], name == "logistic regression"))
    assert report == {
        "best": best,
        "accuracy": round(expected[best], 4),
        "candidates": {name: round(value, 4) for name, value in expected.items()},
    }
    # A cached step hands out the outputs of the run that computed them.
    assert demo.value(newest.run_name, "report", "output") == report


def test_runs_show_describes_the_run(demo: Demo) -> None:
    [run, *_] = demo.reader().list_runs()
    shown = demo.stepwire("runs", "show", run.run_name)
    assert shown.returncode == 0, shown.stderr
    assert f"run {run.run_name} of pipeline wine_classifier: completed" in shown.stdout
    assert "8 steps: 8 cached" in shown.stdout
    lines = shown.stdout.splitlines()
    for step in ("load_data", "split", "train_ridge", "report"):
        assert len([x for x in lines if f" {step} " in x and "cached" in x]) == 1, step
    # The DAG: the two evaluations each take the split and their own model.
    assert any("evaluate_ridge" in x and "← split, train_ridge" in x for x in lines)
    assert "cached yes" not in shown.stdout
    # What each output is, without loading it (the materializers' summaries).
    assert "train_ridge.output (stepwire.ModelArtifact):" in shown.stdout
    assert "DataFrame of 124 rows \N{MULTIPLICATION SIGN} 13 columns" in shown.stdout
    assert "RidgeClassifier()" in shown.stdout

    listed = demo.stepwire("runs", "list")
    assert run.run_name in listed.stdout

    # The demo's result, as a user reads it.
    output = demo.stepwire("runs", "output", run.run_name, "report")
    assert output.returncode == 0, output.stderr
    assert json.loads(output.stdout) == demo.value(run.run_name, "report", "output")
    several = demo.stepwire("runs", "output", run.run_name, "split")
    assert several.returncode == 1
    assert several.stderr.strip() == (
        "stepwire: step 'split' has several outputs (x_test, x_train, y_test, y_train): name one"
    )
    labels = demo.stepwire("runs", "output", run.run_name, "split", "y_test")
    assert labels.returncode == 0, labels.stderr
    assert labels.stdout.rstrip().endswith("Name: target, dtype: int64")
    assert len(labels.stdout.splitlines()) == 55  # 54 rows and the footer
    # A model reads back through skops, as the step that consumes it reads it.
    model = demo.value(run.run_name, "train_ridge", "output")
    assert type(model).__name__ == "Pipeline"

    missing = demo.stepwire("runs", "show", "no-such-run")
    assert missing.returncode == 1
    assert "no run named 'no-such-run'" in missing.stderr
