"""The ``@pipeline`` decorator: a wiring function becomes a pipeline class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

from stepwire.pipelines.base_pipeline import BasePipeline


def _make_pipeline_class(function: Callable[..., Any], enable_cache: bool) -> type[BasePipeline]:
    namespace: dict[str, Any] = {
        "connect": staticmethod(function),
        "ENABLE_CACHE": enable_cache,
        "__module__": function.__module__,
        "__qualname__": function.__qualname__,
        "__doc__": function.__doc__,
    }
    pipeline_class: type[BasePipeline] = type(function.__name__, (BasePipeline,), namespace)
    return pipeline_class


@overload
def pipeline(function: Callable[..., Any], /) -> type[BasePipeline]: ...


@overload
def pipeline(
    *, enable_cache: bool = True
) -> Callable[[Callable[..., Any]], type[BasePipeline]]: ...


def pipeline(
    function: Callable[..., Any] | None = None, /, *, enable_cache: bool = True
) -> type[BasePipeline] | Callable[[Callable[..., Any]], type[BasePipeline]]:
    """Turns a wiring function into a pipeline class named after it.

    The function's arguments are the step slots; its body calls the steps::

        @pipeline
        def training(loader, trainer):
            trainer(data=loader())

        training(loader=load(), trainer=train(lr=0.1)).run()

    Args:
        function: The wiring function, when used as ``@pipeline``.
        enable_cache: Default for whether TFX may reuse earlier executions.

    Returns:
        The pipeline class, or a decorator when called with keyword arguments only.
    """
    if function is not None:
        return _make_pipeline_class(function, enable_cache)

    def decorator(inner: Callable[..., Any]) -> type[BasePipeline]:
        return _make_pipeline_class(inner, enable_cache)

    return decorator
