"""Reading a step's output value back in Python, through the materializer that wrote it.

>>> from stepwire.outputs import load_output
>>> load_output("wine_classifier-2026-12-01T14-02-11", "report")
{'best': 'logistic regression', 'accuracy': 0.9815, ...}

The artifact's record in ML Metadata names the materializer that wrote it and the
Python type of the value; the value is read with that materializer, as the step
that consumes it would read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepwire.artifacts.base_artifact import DATATYPE_PROPERTY_KEY, MATERIALIZER_PROPERTY_KEY
from stepwire.exceptions import StepwireError

if TYPE_CHECKING:
    from stepwire.runs import ArtifactRecord
    from stepwire.stack import Stack


class OutputNotFoundError(StepwireError, KeyError):
    """The run, the step or the output asked for is not recorded."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def find_output(
    run_name: str, step: str, output: str | None = None, *, stack: Stack | None = None
) -> ArtifactRecord:
    """The record of one output of a step in a run.

    Args:
        run_name: The run.
        step: The step's name.
        output: The output's name; may be left out when the step has one output.
        stack: The stack whose ML Metadata holds the run; the active one by default.

    Returns:
        The output's record (name, type, URI).

    Raises:
        OutputNotFoundError: If the run, the step or the output is not recorded, or
            ``output`` is left out and the step has several.
    """
    from stepwire.runs import RunReader
    from stepwire.stack import get_active_stack

    stack = stack or get_active_stack()
    reader = RunReader(stack.metadata_store.open_store())
    try:
        run = reader.get_run(run_name)
    except KeyError as e:
        raise OutputNotFoundError(str(e.args[0])) from None
    records = [s for s in run.steps if s.step == step and s.outputs]
    if not records:
        steps = ", ".join(sorted({s.step for s in run.steps})) or "none"
        raise OutputNotFoundError(
            f"run {run_name!r} has no outputs of a step {step!r} (its steps: {steps})"
        )
    outputs = {artifact.output: artifact for artifact in records[-1].outputs}
    if output is None and len(outputs) == 1:
        return next(iter(outputs.values()))
    if output in outputs:
        return outputs[output]
    names = ", ".join(sorted(outputs))
    if output is None:
        raise OutputNotFoundError(f"step {step!r} has several outputs ({names}): name one")
    raise OutputNotFoundError(f"step {step!r} has no output {output!r} (its outputs: {names})")


def load_output(
    run_name: str, step: str, output: str | None = None, *, stack: Stack | None = None
) -> Any:
    """A step's output value, read with the materializer recorded on it.

    Args:
        run_name: The run.
        step: The step's name.
        output: The output's name; may be left out when the step has one output.
        stack: The stack whose stores hold the run; the active one by default.

    Returns:
        The value.

    Raises:
        OutputNotFoundError: If the output is not recorded (see :func:`find_output`).
        StepwireError: If its materializer or type cannot be loaded here.
    """
    from stepwire.artifacts.standard_artifacts import DataArtifact
    from stepwire.materializers.base_materializer import BaseMaterializer
    from stepwire.source_utils import load_source_path_class
    from stepwire.stack import get_active_stack

    stack = stack or get_active_stack()
    record = find_output(run_name, step, output, stack=stack)
    store = stack.metadata_store.open_store()
    found = [
        a
        for a in store.get_artifacts_by_uri(record.uri)
        if MATERIALIZER_PROPERTY_KEY in a.properties
    ]
    if not found:
        raise OutputNotFoundError(f"the artifact at {record.uri} records no materializer")
    mlmd_artifact = found[0]
    sources = {
        key: mlmd_artifact.properties[key].string_value
        for key in (MATERIALIZER_PROPERTY_KEY, DATATYPE_PROPERTY_KEY)
        if key in mlmd_artifact.properties
    }
    try:
        materializer_class = load_source_path_class(sources[MATERIALIZER_PROPERTY_KEY])
        data_type = load_source_path_class(sources.get(DATATYPE_PROPERTY_KEY) or "builtins.object")
    except (ImportError, AttributeError, TypeError) as e:
        raise StepwireError(
            f"output {record.output!r} of step {step!r} cannot be read here: {e}"
        ) from e
    if not issubclass(materializer_class, BaseMaterializer):
        raise StepwireError(f"{sources[MATERIALIZER_PROPERTY_KEY]} is not a materializer")
    artifact = DataArtifact()
    artifact.set_mlmd_artifact(mlmd_artifact)
    return materializer_class(artifact).handle_input(data_type)
