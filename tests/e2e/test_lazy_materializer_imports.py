"""A step process that passes ints imports none of the data libraries, though they are installed.

The materializers of pandas, pyarrow, polars and scikit-learn values are registered
by the names of their types; their modules, and so their libraries, must only be
imported when a step's signature or value needs them. Each step below reports what
its own process had imported by the time its function ran, which is after the
process rebuilt its executor, looked its outputs' materializers up and read its
inputs; the script reports the same for the process that compiled and ran the
pipeline. A step that passes a DataFrame is the control: there they are imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stepwire_testkit import StackDir, explain

SCRIPT = '''\
import json
import os
import sys

from stepwire.pipelines import pipeline
from stepwire.steps import Output, step

LIBRARIES = ("pandas", "pyarrow", "polars", "sklearn", "skops", "scipy")
MATERIALIZERS = ("pandas", "arrow", "polars", "sklearn")


def imported() -> list:
    """The data libraries and lazy built-in materializers this process has imported."""
    lazy = {f"stepwire.materializers.{name}_materializer" for name in MATERIALIZERS}
    return sorted(
        name for name in sys.modules if name.partition(".")[0] in LIBRARIES or name in lazy
    )


@step
def produce() -> Output(value=int, modules=list):
    return 41, imported()


@step
def consume(value: int, modules: list) -> list:
    return [value + 1, modules, imported()]


@pipeline
def ints(produce, consume):
    value, modules = produce()
    consume(value=value, modules=modules)


if __name__ == "__main__":
    ints(produce=produce(), consume=consume()).run(run_name=os.environ["RUN_NAME"])
    print("orchestrator imported", json.dumps(imported()))
'''

CONTROL = """\
import os
import sys

import pandas as pd

from stepwire.pipelines import pipeline
from stepwire.steps import step


@step
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2]})


@step
def size(data: pd.DataFrame) -> list:
    return [len(data), "stepwire.materializers.pandas_materializer" in sys.modules]


@pipeline
def frames(frame, size):
    size(data=frame())


if __name__ == "__main__":
    frames(frame=frame(), size=size()).run(run_name=os.environ["RUN_NAME"])
"""


def test_int_steps_import_no_data_library(tmp_path: Path, stack_dir: StackDir) -> None:
    stack = StackDir(stack_dir.root, orchestrator="subprocess", drop=stack_dir.drop)
    (tmp_path / "int_steps.py").write_text(SCRIPT)
    proc = stack.run([sys.executable, "int_steps.py"], cwd=tmp_path, RUN_NAME="ints")
    assert proc.returncode == 0, explain(proc)
    value, in_produce, in_consume = stack.output("ints", "consume", list)
    assert value == 42
    assert in_produce == []
    assert in_consume == []
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("orchestrator")]
    assert json.loads(line.removeprefix("orchestrator imported ")) == []


def test_a_dataframe_step_imports_its_materializer(tmp_path: Path, stack_dir: StackDir) -> None:
    stack = StackDir(stack_dir.root, orchestrator="subprocess", drop=stack_dir.drop)
    (tmp_path / "frame_steps.py").write_text(CONTROL)
    proc = stack.run([sys.executable, "frame_steps.py"], cwd=tmp_path, RUN_NAME="frames")
    assert proc.returncode == 0, explain(proc)
    assert stack.output("frames", "size", list) == [2, True]
