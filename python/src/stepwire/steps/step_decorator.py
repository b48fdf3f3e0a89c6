"""The ``@step`` decorator: a function becomes a module-level step class of the same name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from stepwire.exceptions import StepInterfaceError
from stepwire.steps.base_step import BaseStep
from stepwire.steps.resources import Resources, check_retries


def _make_step_class(
    function: Callable[..., Any],
    enable_cache: bool,
    resources: Resources | None = None,
    retries: int = 0,
) -> type[BaseStep]:
    if "<locals>" in function.__qualname__ or "." in function.__qualname__:
        raise StepInterfaceError(
            f"Step function '{function.__qualname__}' must be defined at module level: the "
            "step process imports it by name."
        )

    def _source_object(cls: type[BaseStep]) -> Any:
        return function

    namespace: dict[str, Any] = {
        "entrypoint": staticmethod(function),
        "ENABLE_CACHE": enable_cache,
        "RESOURCES": resources or Resources(),
        "RETRIES": check_retries(retries),
        "_source_object": classmethod(_source_object),
        "__module__": function.__module__,
        "__qualname__": function.__qualname__,
        "__doc__": function.__doc__,
    }
    step_class: type[BaseStep] = type(function.__name__, (BaseStep,), namespace)
    return step_class


@overload
def step(function: Callable[..., Any], /) -> type[BaseStep]: ...


@overload
def step(
    *, enable_cache: bool = True, resources: Resources | None = None, retries: int = 0
) -> Callable[[Callable[..., Any]], type[BaseStep]]: ...


def step(
    function: Callable[..., Any] | None = None,
    /,
    *,
    enable_cache: bool = True,
    resources: Resources | None = None,
    retries: int = 0,
) -> type[BaseStep] | Callable[[Callable[..., Any]], type[BaseStep]]:
    """Turns a function into a step class.

    The class replaces the function in its module under the same name, so the step
    is importable as ``<module>.<function name>`` and its name (the TFX node id) is the
    function name. Arguments without defaults are inputs, arguments with defaults are
    parameters, the return annotation declares the outputs::

        @step
        def trainer(data: list[float], lr: float = 0.01) -> float: ...

        trainer_step = trainer(lr=0.1)  # an instance with a parameter value

    Args:
        function: The function, when used as ``@step``.
        enable_cache: Allow TFX to reuse an earlier execution with the same cache key.
        resources: What the step needs from the machine it runs on (orchestrators
            that place steps, such as ``ray``, honour it).
        retries: How many more times an orchestrator that retries launches the step
            when it exits 70 (``step_failed``) or 75 (``infrastructure``).

    Returns:
        The step class, or a decorator when called with keyword arguments only.
    """
    if function is not None:
        return _make_step_class(function, enable_cache)
    check_retries(retries)
    if resources is not None and not isinstance(resources, Resources):
        raise StepInterfaceError(
            f"resources must be a stepwire.steps.Resources, got {type(resources).__name__}."
        )

    def decorator(inner: Callable[..., Any]) -> type[BaseStep]:
        return _make_step_class(inner, enable_cache, resources, retries)

    return decorator
