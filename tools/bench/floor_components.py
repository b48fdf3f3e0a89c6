"""The floor's trivial steps, in plain TFX: ``produce -> consume``, nothing of stepwire.

The same work as the stepwire benchmark steps (``produce() -> 1``, ``consume(x) ->
x + 1``, each value written as a small JSON file in its artifact's folder), as TFX
components with hand-written specs and executors.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact, channel, component_spec


class FloorValue(artifact.Artifact):
    """A JSON value in a folder."""

    TYPE_NAME = "FloorValue"


def _write(artifacts: list[Any], value: int) -> None:
    [out] = artifacts
    os.makedirs(out.uri, exist_ok=True)
    with open(os.path.join(out.uri, "value.json"), "w", encoding="utf-8") as f:
        json.dump(value, f)


def _read(artifacts: list[Any]) -> int:
    [src] = artifacts
    with open(os.path.join(src.uri, "value.json"), encoding="utf-8") as f:
        value: int = json.load(f)
    return value


class ProduceExecutor(base_executor.BaseExecutor):
    """Writes 1."""

    def Do(self, input_dict: Any, output_dict: Any, exec_properties: Any) -> None:
        _write(output_dict["output"], 1)


class ConsumeExecutor(base_executor.BaseExecutor):
    """Writes its input plus one."""

    def Do(self, input_dict: Any, output_dict: Any, exec_properties: Any) -> None:
        _write(output_dict["output"], _read(input_dict["x"]) + 1)


class ProduceSpec(component_spec.ComponentSpec):
    PARAMETERS: ClassVar[dict[str, Any]] = {}
    INPUTS: ClassVar[dict[str, Any]] = {}
    OUTPUTS: ClassVar[dict[str, Any]] = {"output": component_spec.ChannelParameter(type=FloorValue)}


class ConsumeSpec(component_spec.ComponentSpec):
    PARAMETERS: ClassVar[dict[str, Any]] = {}
    INPUTS: ClassVar[dict[str, Any]] = {"x": component_spec.ChannelParameter(type=FloorValue)}
    OUTPUTS: ClassVar[dict[str, Any]] = {"output": component_spec.ChannelParameter(type=FloorValue)}


class Produce(base_component.BaseComponent):
    SPEC_CLASS = ProduceSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ProduceExecutor)

    def __init__(self) -> None:
        super().__init__(spec=ProduceSpec(output=channel.Channel(type=FloorValue)))


class Consume(base_component.BaseComponent):
    SPEC_CLASS = ConsumeSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(ConsumeExecutor)

    def __init__(self, x: Any) -> None:
        super().__init__(spec=ConsumeSpec(x=x, output=channel.Channel(type=FloorValue)))


def compile_floor(pipeline_root: str) -> Any:
    """Compiles ``produce -> consume`` with TFX's compiler (SYNC mode, no caching)."""
    from tfx.dsl.compiler import compiler
    from tfx.orchestration import pipeline

    produce = Produce().with_id("produce")
    consume = Consume(x=produce.outputs["output"]).with_id("consume")
    logical = pipeline.Pipeline(
        pipeline_name="floor",
        components=[produce, consume],
        pipeline_root=pipeline_root,
        enable_cache=False,
    )
    return compiler.Compiler().compile(logical)
