"""Steps, pipelines, compilation and dehydration, and a pipeline run in this process."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ml_metadata.proto import metadata_store_pb2
from stepwire_testkit import InProcessOrchestrator

from stepwire import constants, io_utils
from stepwire.artifact_store import ArtifactStore
from stepwire.artifacts import BaseArtifact, DataArtifact, ModelArtifact
from stepwire.exceptions import (
    DuplicateRunNameError,
    InputResolutionError,
    PipelineInterfaceError,
    PipelineIRError,
    StepInterfaceError,
)
from stepwire.materializers import BaseMaterializer, BuiltInMaterializer
from stepwire.metadata_store import SQLiteMetadataStore
from stepwire.orchestrators import StepOutcome
from stepwire.pipelines import BasePipeline, pipeline
from stepwire.pipelines.dehydrate import dehydrate
from stepwire.stack import Stack
from stepwire.step_launcher import RerunPolicy, launch_step
from stepwire.steps import BaseStep, Output, step

# --- steps and a custom type with its materializer, all at module level ----------------


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


class PointMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (Point,)
    ASSOCIATED_ARTIFACT_TYPES: ClassVar[tuple[type[BaseArtifact], ...]] = (ModelArtifact,)

    def handle_input(self, data_type: type) -> Any:
        super().handle_input(data_type)
        x, y = json.loads(io_utils.read_bytes(io_utils.join(self.artifact.uri, "p.json")))
        return Point(x, y)

    def handle_return(self, data: Any) -> None:
        super().handle_return(data)
        io_utils.write_bytes(
            io_utils.join(self.artifact.uri, "p.json"), json.dumps([data.x, data.y]).encode()
        )


@step
def make_point(x: int = 1) -> Output(point=Point, label=str):  # type: ignore[valid-type]
    return Point(x, 2), f"p{x}"


@step
def measure(point: Point, label: str, scale: float = 1.0) -> float:
    return (point.x + point.y) * scale + len(label)


class Report(BaseStep):
    """A class-based step."""

    def entrypoint(self, value: float, prefix: str = "=") -> str:
        return f"{prefix}{value}"


@step
def count_argv_flags() -> int:
    # Walk up to the TFX executor running this function and report its extra_flags,
    # which TFX fills from sys.argv unless stepwire scrubs it.
    frame = inspect.currentframe()
    while frame is not None:
        executor = frame.f_locals.get("self")
        if type(executor).__name__.endswith("_Executor"):
            return len(executor._context.extra_flags)
        frame = frame.f_back
    raise AssertionError("no executor on the stack")


@step
def returns_wrong_type() -> int:
    return "not an int"  # type: ignore[return-value]


@step(enable_cache=False)
def uncached() -> int:
    return 3


@pipeline
def point_pipeline(maker, measurer, reporter):
    point, label = maker()
    value = measurer(point=point, label=label)
    reporter(value=value)


@pipeline
def single(only):
    only()


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(
        orchestrator=InProcessOrchestrator(),
        artifact_store=ArtifactStore(str(tmp_path / "artifacts")),
        metadata_store=SQLiteMetadataStore(str(tmp_path / "metadata.db")),
    )


def point_pipeline_instance(scale: float = 1.0) -> BasePipeline:
    return point_pipeline(
        maker=make_point(x=3), measurer=measure(scale=scale), reporter=Report(prefix="v")
    )


# --- signatures ---------------------------------------------------------------------


def test_arguments_without_default_are_inputs_with_default_parameters() -> None:
    assert {"point": Point, "label": str} == measure.INPUT_SIGNATURE
    assert measure.PARAM_SPEC == {"scale": 1.0}
    assert {"output": float} == measure.OUTPUT_SIGNATURE
    assert {"point": Point, "label": str} == make_point.OUTPUT_SIGNATURE
    assert {"value": float} == Report.INPUT_SIGNATURE
    assert Report.PARAM_SPEC == {"prefix": "="}


def test_instance_parameters_override_defaults_only_on_the_instance() -> None:
    instance = measure(scale=2)
    assert instance.PARAM_SPEC == {"scale": 2}
    assert measure.PARAM_SPEC == {"scale": 1.0}
    assert measure().PARAM_SPEC == {"scale": 1.0}


def test_step_class_is_module_level_and_named_after_the_function() -> None:
    assert measure.__name__ == "measure"
    assert measure.__module__ == __name__
    assert sys.modules[__name__].measure is measure
    assert measure().name == "measure"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"point": 1}, "is an input"),
        ({"nope": 1}, "has no parameter 'nope'"),
        ({"scale": "big"}, "declared float"),
        ({"scale": float("nan")}, "JSON round trip"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StepInterfaceError, match=message):
        measure(**kwargs)


def test_step_definition_errors() -> None:
    def variadic(*values: int) -> int:
        return 0

    with pytest.raises(StepInterfaceError, match="module level"):
        step(variadic)  # type: ignore[arg-type]

    with pytest.raises(StepInterfaceError, match="JSON round trip"):

        class TupleDefault(BaseStep):
            def entrypoint(self, shape: tuple = (1, 2)) -> int:  # type: ignore[type-arg]
                return 0

    with pytest.raises(StepInterfaceError, match="union"):

        class UnionInput(BaseStep):
            def entrypoint(self, value: int | str) -> int:
                return 0

    with pytest.raises(StepInterfaceError, match="no type annotation"):

        class Unannotated(BaseStep):
            def entrypoint(self, value) -> int:  # type: ignore[no-untyped-def]
                return 0

    with pytest.raises(StepInterfaceError, match="passable by name"):

        class Variadic(BaseStep):
            def entrypoint(self, *values: int) -> int:
                return 0


def test_base_classes_without_logic_refuse_to_instantiate() -> None:
    class NoEntrypoint(BaseStep):
        pass

    with pytest.raises(StepInterfaceError, match="does not define entrypoint"):
        NoEntrypoint()

    class NoConnect(BasePipeline):
        pass

    with pytest.raises(PipelineInterfaceError, match="does not define connect"):
        NoConnect()


def test_materializers_come_from_the_registry_or_the_step() -> None:
    instance = make_point()
    assert instance.get_materializers(ensure_complete=True) == {
        "point": PointMaterializer,
        "label": BuiltInMaterializer,
    }
    with pytest.raises(StepInterfaceError, match="pass a dict"):
        instance.with_return_materializers(PointMaterializer)
    with pytest.raises(StepInterfaceError, match="does not handle"):
        instance.with_return_materializers({"label": PointMaterializer})
    with pytest.raises(StepInterfaceError, match="no output 'nope'"):
        instance.with_return_materializers({"nope": BuiltInMaterializer})


def test_internal_parameters_hash_the_step_and_materializer_sources() -> None:
    instance = make_point()
    instance.pipeline_parameter_name = "maker"
    internal = instance._internal_execution_parameters
    assert set(internal) == {
        "stepwire-step_source",
        "stepwire-pipeline_parameter_name",
        "stepwire-point_materializer_source",
        "stepwire-label_materializer_source",
    }
    assert len(internal["stepwire-step_source"]) == 64
    assert internal["stepwire-pipeline_parameter_name"] == "maker"
    assert internal == instance._internal_execution_parameters
    assert "stepwire-disable_cache" in uncached()._internal_execution_parameters
    # The step process asks for the names only, which hashes nothing.
    for step_instance in (instance, uncached()):
        names = step_instance._internal_execution_parameter_names
        assert names == set(step_instance._internal_execution_parameters)
    # ... and in the IR, so that one compiled IR run twice never reuses an execution.
    ir = single(only=uncached()).compile()
    assert not ir.nodes[0].pipeline_node.execution_options.caching_options.enable_cache


# --- pipelines ------------------------------------------------------------------------


def test_pipeline_slot_errors() -> None:
    with pytest.raises(PipelineInterfaceError, match="no step for slots"):
        point_pipeline(maker=make_point(), measurer=measure())
    with pytest.raises(PipelineInterfaceError, match="no step slot 'extra'"):
        single(only=uncached(), extra=uncached())
    with pytest.raises(PipelineInterfaceError, match="pass an instance"):
        single(only=uncached)
    with pytest.raises(PipelineInterfaceError, match="both hold a step named 'same'"):
        point_pipeline(
            maker=make_point(), measurer=measure(name="same"), reporter=measure(name="same")
        )
    # One class in two slots, unnamed: each instance takes its slot's name.
    twice = point_pipeline(maker=make_point(), measurer=measure(), reporter=measure())
    assert [s.name for s in twice.steps.values()] == ["make_point", "measurer", "reporter"]


def test_wiring_errors_name_the_step_and_input() -> None:
    @pipeline
    def constant_input(measurer):
        measurer(point=Point(1, 2), label="x")

    with pytest.raises(PipelineInterfaceError, match="'point' must be an output of another step"):
        constant_input(measurer=measure()).compile(pipeline_root="/tmp/unused")

    @pipeline
    def wrong_type(maker, reporter):
        _, label = maker()
        reporter(value=label)

    with pytest.raises(PipelineInterfaceError, match=r"declared float but is wired to .* str"):
        wrong_type(maker=make_point(), reporter=Report()).compile(pipeline_root="/tmp/unused")

    @pipeline
    def unused(maker, reporter):
        maker()

    with pytest.raises(PipelineInterfaceError, match="never called"):
        unused(maker=make_point(), reporter=Report()).compile(pipeline_root="/tmp/unused")


def test_compile_produces_a_sync_ir_with_json_parameters(tmp_path: Path) -> None:
    ir = point_pipeline_instance(scale=0.5).compile(pipeline_root=str(tmp_path))
    assert ir.pipeline_info.id == "point_pipeline"
    assert ir.execution_mode == ir.SYNC
    nodes = [n.pipeline_node for n in ir.nodes]
    assert [n.node_info.id for n in nodes] == ["make_point", "measure", "Report"]
    assert nodes[1].node_info.type.name == f"{__name__}.measure"
    parameters = nodes[1].parameters.parameters
    assert json.loads(parameters["scale"].field_value.string_value) == 0.5
    assert ir.runtime_spec.pipeline_run_id.runtime_parameter.name == "pipeline-run-id"
    assert nodes[0].outputs.outputs["point"].artifact_spec.type.name == "stepwire.ModelArtifact"
    assert nodes[0].outputs.outputs["label"].artifact_spec.type.name == "stepwire.DataArtifact"
    # The executor is importable where the IR says it is.
    assert hasattr(sys.modules[__name__], "measure_Executor")


def test_dehydrate_keeps_one_node_and_its_executor_spec(tmp_path: Path) -> None:
    ir = point_pipeline_instance().compile(pipeline_root=str(tmp_path))
    before = ir.SerializeToString()
    small = dehydrate(ir, "measure")
    assert ir.SerializeToString() == before
    assert [n.pipeline_node.node_info.id for n in small.nodes] == ["measure"]
    assert small.pipeline_info == ir.pipeline_info
    assert small.runtime_spec == ir.runtime_spec
    from tfx.proto.orchestration import pipeline_pb2

    config = pipeline_pb2.IntermediateDeploymentConfig()
    assert small.deployment_config.Unpack(config)
    assert list(config.executor_specs) == ["measure"]
    assert small.ByteSize() < ir.ByteSize()
    with pytest.raises(PipelineIRError, match="point_pipeline' has no node 'nope'"):
        dehydrate(ir, "nope")


# --- running --------------------------------------------------------------------------


def test_run_is_prevented_by_the_flag_and_by_the_environment(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "SHOULD_PREVENT_PIPELINE_EXECUTION", True)
    assert point_pipeline_instance().run(run_name="prevented", stack=stack) is None
    monkeypatch.setattr(constants, "SHOULD_PREVENT_PIPELINE_EXECUTION", False)
    monkeypatch.setenv("STEPWIRE_PREVENT_PIPELINE_EXECUTION", "true")
    assert point_pipeline_instance().run(run_name="prevented", stack=stack) is None
    assert not Path(stack.metadata_store.path).exists()  # type: ignore[attr-defined]


def test_pipeline_runs_in_process_and_caches(stack: Stack) -> None:
    outcomes = point_pipeline_instance().run(run_name="a", stack=stack)
    assert set(outcomes.values()) == {StepOutcome.COMPLETED}
    outcomes = point_pipeline_instance().run(run_name="b", stack=stack)
    assert set(outcomes.values()) == {StepOutcome.CACHED}
    outcomes = point_pipeline_instance(scale=2.0).run(run_name="c", stack=stack)
    assert outcomes == {
        "make_point": StepOutcome.CACHED,
        "measure": StepOutcome.COMPLETED,
        "Report": StepOutcome.COMPLETED,
    }
    with pytest.raises(DuplicateRunNameError, match="'a'"):
        point_pipeline_instance().run(run_name="a", stack=stack)


def test_run_step_binds_a_copy_and_classifies_failures(stack: Stack) -> None:
    p = point_pipeline_instance()
    ir = p.compile(pipeline_root=stack.artifact_store.path)
    before = ir.SerializeToString()
    orchestrator = stack.orchestrator
    maker, measurer = p.steps["maker"], p.steps["measurer"]

    info = orchestrator.run_step(maker, "r", dehydrate(ir, "make_point"), stack=stack)
    assert info is not None
    assert info.pipeline_run_id == "r"
    assert ir.SerializeToString() == before  # the caller's IR still has the placeholder

    with pytest.raises(InputResolutionError, match="'other'"):
        orchestrator.run_step(measurer, "other", ir, stack=stack)
    with pytest.raises(DuplicateRunNameError, match="step 'make_point'"):
        orchestrator.run_step(maker, "r", ir, stack=stack)
    again = launch_step(maker, "r", ir, stack, rerun=RerunPolicy.TOLERATE)
    assert again.outcome is StepOutcome.ALREADY_COMPLETED
    assert again.execution_id == info.execution_id

    result = launch_step(measurer, "r", ir, stack)
    assert result.outcome is StepOutcome.COMPLETED
    value = BuiltInMaterializer(result.execution_info.output_dict["output"][0]).handle_input(float)
    assert value == (3 + 2) * 1.0 + len("p3")


def test_sys_argv_does_not_reach_the_executor(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["prog", "--pipeline_json", "x" * 100])
    ir = single(only=count_argv_flags()).compile(pipeline_root=stack.artifact_store.path)
    result = launch_step(count_argv_flags(), "argv", ir, stack)
    flags = BuiltInMaterializer(result.execution_info.output_dict["output"][0]).handle_input(int)
    assert flags == 0
    assert sys.argv == ["prog", "--pipeline_json", "x" * 100]


def test_wrong_return_type_fails_the_step_clearly(stack: Stack) -> None:
    ir = single(only=returns_wrong_type()).compile(pipeline_root=stack.artifact_store.path)
    with pytest.raises(StepInterfaceError, match=r"'output' is declared int but .* returned str"):
        stack.orchestrator.run_step(returns_wrong_type(), "bad", ir, stack=stack)
    from tfx.orchestration import metadata

    with metadata.Metadata(stack.metadata_store.get_tfx_metadata_config()) as m:
        [execution] = m.store.get_executions()
    assert execution.last_known_state == metadata_store_pb2.Execution.FAILED


def test_uncached_step_runs_every_time(stack: Stack) -> None:
    for run_name in ("u1", "u2"):
        outcomes = single(only=uncached()).run(run_name=run_name, stack=stack)
        assert outcomes == {"uncached": StepOutcome.COMPLETED}


def test_artifact_classes_are_stepwire_artifacts() -> None:
    assert issubclass(ModelArtifact, BaseArtifact)
    assert DataArtifact.TYPE_NAME == "stepwire.DataArtifact"
    assert set(BaseArtifact.PROPERTIES) == {"materializer", "datatype"}
