"""Reading a step's inputs, parameters and outputs off its entrypoint signature.

The rule, applied to every argument of the entrypoint (``self`` excluded):

* an argument **without a default** is an **input**: its value is an output of an
  upstream step, wired in the pipeline. It must be annotated with a class (``int``,
  ``list[int]``, ``np.ndarray``, ...), which picks the materializer that reads it;
* an argument **with a default** is a **parameter**: a JSON value fixed when the step
  is constructed (``trainer(lr=0.1)``), stored in the pipeline IR and in ML Metadata,
  and part of the cache key. Defaults and values must survive a JSON round trip
  unchanged (so a tuple or a dict with int keys is refused, not silently changed).

The return annotation declares the outputs: ``Output(name=type, ...)`` for several
named outputs, a single type for one output named ``output``, nothing or ``None``
for none.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, ItemsView
from dataclasses import dataclass
from typing import Any

from stepwire.constants import SINGLE_RETURN_OUT_NAME
from stepwire.exceptions import StepInterfaceError


class Output:
    """Return annotation of a step with several named outputs.

    Example::

        @step
        def split(data: list[int]) -> Output(train=list, test=list):
            return data[:8], data[8:]
    """

    def __init__(self, **outputs: type) -> None:
        """Declares the outputs.

        Args:
            **outputs: Output name to Python type, in the order the values are returned.
        """
        self.outputs = dict(outputs)

    def items(self) -> ItemsView[str, type]:
        """Returns the (name, type) pairs in declaration order.

        Returns:
            A view of the declared outputs.
        """
        return self.outputs.items()

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={t!r}" for name, t in self.outputs.items())
        return f"Output({inner})"


@dataclass(frozen=True)
class EntrypointSignature:
    """What an entrypoint declares, split by the rule of this module.

    Attributes:
        inputs: Input name to the class of its value.
        parameters: Parameter name to its default value.
        parameter_types: Parameter name to the class its annotation names, if any.
        outputs: Output name to the class of its value.
    """

    inputs: dict[str, type]
    parameters: dict[str, Any]
    parameter_types: dict[str, type]
    outputs: dict[str, type]


def resolve_type(annotation: Any, what: str) -> type:
    """Turns an annotation into the class a value must be an instance of.

    Args:
        annotation: A class or a parametrised generic such as ``list[int]``.
        what: Names the annotated thing in error messages.

    Returns:
        The class (the origin of a generic).

    Raises:
        StepInterfaceError: For missing annotations, unions, ``Any`` and other forms that
            do not name one class.
    """
    if annotation is inspect.Parameter.empty:
        raise StepInterfaceError(f"{what} has no type annotation.")
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        raise StepInterfaceError(
            f"{what} is annotated with the union {annotation!r}; declare one class."
        )
    resolved = origin if origin is not None else annotation
    if not isinstance(resolved, type) or resolved is typing.Any:
        raise StepInterfaceError(f"{what} is annotated with {annotation!r}, which is not a class.")
    return resolved


def is_json_roundtrip(value: Any) -> bool:
    """Tells whether a value comes back equal from JSON.

    Args:
        value: Any value.

    Returns:
        True if ``json.loads(json.dumps(value)) == value`` without NaN or infinities.
    """
    try:
        return bool(json.loads(json.dumps(value, allow_nan=False)) == value)
    except (TypeError, ValueError):
        return False


def check_parameter_value(step_name: str, name: str, value: Any, expected: type | None) -> None:
    """Checks a parameter value: JSON round trip, and its annotation if there is one.

    Args:
        step_name: For messages.
        name: Parameter name.
        value: The value.
        expected: The class of the annotation, or None if unannotated.

    Raises:
        StepInterfaceError: If the value is not JSON round-trippable or has the wrong type;
            a :class:`~stepwire.steps.secret.Secret` is accepted where a ``str`` is.
    """
    from stepwire.steps.secret import SECRET_KEY, Secret

    if isinstance(value, dict) and SECRET_KEY in value:
        raise StepInterfaceError(
            f"Step '{step_name}': parameter '{name}' uses the key {SECRET_KEY!r}, which marks "
            "a secret reference in the pipeline IR; pass a Secret, or use another key."
        )
    if isinstance(value, Secret):
        if expected not in (None, str):
            raise StepInterfaceError(
                f"Step '{step_name}': parameter '{name}' is declared {expected.__name__}, but "
                f"{value!r} gives a str; declare it str."
            )
        return
    if not is_json_roundtrip(value):
        raise StepInterfaceError(
            f"Step '{step_name}': parameter '{name}' = {value!r} does not survive a JSON round "
            "trip (tuples, non-string dict keys, NaN and objects do not); use a JSON value."
        )
    if expected is None or value is None:
        return
    # int is accepted where float is declared, as in Python's numeric tower.
    if expected is float and type(value) is int:
        return
    if not isinstance(value, expected):
        raise StepInterfaceError(
            f"Step '{step_name}': parameter '{name}' is declared {expected.__name__} but got "
            f"{type(value).__name__} {value!r}."
        )


def parse_entrypoint(
    function: Callable[..., Any], step_name: str, skip_first: bool = False
) -> EntrypointSignature:
    """Splits an entrypoint's arguments into inputs and parameters and reads its outputs.

    Args:
        function: The entrypoint (a function, or a bound method).
        step_name: For messages.
        skip_first: Drop the first argument (``self`` of an unbound method).

    Returns:
        The signature.

    Raises:
        StepInterfaceError: If the signature breaks the rules of this module.
    """
    try:
        signature = inspect.signature(function, eval_str=True)
    except (NameError, SyntaxError) as e:
        raise StepInterfaceError(f"Step '{step_name}': cannot evaluate annotations: {e}") from e
    arguments = list(signature.parameters.values())
    if skip_first:
        arguments = arguments[1:]
    inputs: dict[str, type] = {}
    parameters: dict[str, Any] = {}
    parameter_types: dict[str, type] = {}
    for argument in arguments:
        what = f"Step '{step_name}': argument '{argument.name}'"
        if argument.kind not in (argument.POSITIONAL_OR_KEYWORD, argument.KEYWORD_ONLY):
            raise StepInterfaceError(
                f"{what} is {argument.kind.description}; step arguments must be passable by name."
            )
        if argument.default is inspect.Parameter.empty:
            inputs[argument.name] = resolve_type(argument.annotation, what)
            continue
        expected = None
        if argument.annotation is not inspect.Parameter.empty:
            expected = resolve_type(argument.annotation, what)
            parameter_types[argument.name] = expected
        check_parameter_value(step_name, argument.name, argument.default, expected)
        parameters[argument.name] = argument.default
    return EntrypointSignature(
        inputs=inputs,
        parameters=parameters,
        parameter_types=parameter_types,
        outputs=_parse_outputs(signature.return_annotation, step_name),
    )


def _parse_outputs(annotation: Any, step_name: str) -> dict[str, type]:
    if annotation in (inspect.Signature.empty, None, type(None)):
        return {}
    if isinstance(annotation, Output):
        return {
            name: resolve_type(t, f"Step '{step_name}': output '{name}'")
            for name, t in annotation.items()
        }
    return {SINGLE_RETURN_OUT_NAME: resolve_type(annotation, f"Step '{step_name}': return")}
