"""One step function used twice in a pipeline: named instances, each its own node.

Real processes: the ``stepwire`` CLI with the subprocess orchestrator, SQLite ML
Metadata in a temporary folder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from stepwire_testkit import StackDir, explain

from stepwire.exceptions import PipelineInterfaceError, StepInterfaceError
from stepwire.pipelines import pipeline
from stepwire.steps import step

PIPELINE = textwrap.dedent(
    """
    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step
    def load() -> int:
        return 10


    @step
    def train(data: int, lr: float = 0.5) -> float:
        return data * lr


    @step
    def evaluate(model: float) -> float:
        return model + 1


    @pipeline
    def compare(load, train_small, train_large, evaluate_small, evaluate_large):
        data = load()
        evaluate_small(model=train_small(data=data))
        evaluate_large(model=train_large(data=data))


    compare_pipeline = compare(
        load=load(),
        # Named explicitly...
        train_small=train(lr=0.1, name="train_small"),
        train_large=train(lr=2.0, name="train_large"),
        # ...or after their slots, since the class is used twice.
        evaluate_small=evaluate(),
        evaluate_large=evaluate(),
    )
    """
)

STEPS = ("load", "train_small", "train_large", "evaluate_small", "evaluate_large")


@pytest.fixture
def project(tmp_path: Path) -> StackDir:
    (tmp_path / "compare_pipeline.py").write_text(PIPELINE)
    return StackDir(tmp_path, orchestrator="subprocess")


def test_each_instance_is_its_own_node_with_its_own_outputs_and_cache(project: StackDir) -> None:
    target = f"{project.root}/compare_pipeline.py:compare_pipeline"
    first = project.cli(["run", target, "--run-name", "c1"], project.root)
    assert first.returncode == 0, explain(first)
    assert "5 steps: 5 completed" in first.stdout
    assert project.statuses("c1") == dict.fromkeys(STEPS, "completed")
    assert project.output("c1", "train_small", float) == pytest.approx(1.0)
    assert project.output("c1", "train_large", float) == pytest.approx(20.0)
    assert project.output("c1", "evaluate_small", float) == pytest.approx(2.0)
    assert project.output("c1", "evaluate_large", float) == pytest.approx(21.0)
    uris = {project.output_uri("c1", s) for s in STEPS}
    assert len(uris) == 5  # no two instances share an output

    second = project.cli(["run", target, "--run-name", "c2"], project.root)
    assert second.returncode == 0, explain(second)
    assert "5 steps: 0 completed, 5 cached" in second.stdout
    assert project.output_uri("c2", "train_large") == project.output_uri("c1", "train_large")

    shown = project.cli(["runs", "show", "c1"], project.root)
    for name in STEPS:
        [line] = [x for x in shown.stdout.splitlines() if f" {name} " in x and "✓" in x]
        assert "completed" in line, shown.stdout


@step
def twice() -> int:
    return 1


@pipeline
def pair(a, b):
    a()
    b()


def test_names_are_checked() -> None:
    with pytest.raises(StepInterfaceError, match="'not a name' is not a Python identifier"):
        twice(name="not a name")

    same = twice()
    with pytest.raises(PipelineInterfaceError, match="hold the same step instance"):
        pair(a=same, b=same)
    with pytest.raises(PipelineInterfaceError, match="both hold a step named 'x'"):
        pair(a=twice(name="x"), b=twice(name="x"))
    # A class used twice, unnamed: each instance takes its slot's name.
    wired = pair(a=twice(), b=twice())
    assert [s.name for s in wired.steps.values()] == ["a", "b"]
