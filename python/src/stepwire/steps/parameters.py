"""A step's parameters as the pipeline IR carries them: JSON texts, checked in one place.

Both the step process (before it imports user code, and once the step's class is
loaded) and the generated executor (inside TFX's launch) read them through these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from stepwire.constants import INTERNAL_EXECUTION_PARAMETER_PREFIX
from stepwire.exceptions import PipelineIRError
from stepwire.steps import secret


def decode_parameters(step_name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """Decodes a step's parameters; stepwire's own execution properties are dropped.

    Args:
        step_name: The step, for the message.
        properties: Execution property name to its JSON text.

    Returns:
        Parameter name to value; a secret reference is a :class:`~stepwire.steps.secret.Secret`
        (its value is read only when the step function is called).

    Raises:
        PipelineIRError: If a value is not JSON, or a malformed secret reference (the
            IR does not describe the step).
    """
    parameters: dict[str, Any] = {}
    for key, value in properties.items():
        if key.startswith(INTERNAL_EXECUTION_PARAMETER_PREFIX):
            continue
        try:
            parameters[key] = json.loads(value)
        except (TypeError, ValueError) as e:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise PipelineIRError(
                f"Step '{step_name}': the pipeline IR's parameter '{key}' is not JSON "
                f"({shown}): {e}"
            ) from None
        reference = secret.from_json(step_name, key, parameters[key])
        if reference is not None:
            parameters[key] = reference
    return parameters


def check_declared(step_name: str, names: Iterable[str], declared: Iterable[str]) -> None:
    """Checks that every parameter the IR passes is one the step declares.

    Args:
        step_name: The step, for the message.
        names: The parameters the IR passes.
        declared: The parameters the step function declares.

    Raises:
        PipelineIRError: If the IR passes others (deterministic: not worth a retry).
    """
    unknown = sorted(set(names) - set(declared))
    if unknown:
        raise PipelineIRError(
            f"Step '{step_name}': the pipeline IR passes parameters {unknown} that the step "
            f"does not declare (its parameters: {sorted(declared) or 'none'}); recompile "
            "the pipeline."
        )
