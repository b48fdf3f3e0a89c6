"""Generated TFX component and executor classes that run a step function.

TFX's portable launcher imports the executor by the class path baked into the
pipeline IR (``<step module>.<step name>_Executor``) when the launcher is built, so
:func:`generate_component_class` attaches the executor class to the step's module. A
step process recreates it the same way before it builds the launcher; see
``BaseStep.__module__`` for how ``__main__`` is handled.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, ClassVar

from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import channel, component_spec

from stepwire.artifacts.base_artifact import MATERIALIZER_PROPERTY_KEY, BaseArtifact
from stepwire.exceptions import (
    InfrastructureError,
    MissingStepParameterError,
    StepInterfaceError,
    StepwireError,
)
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.source_utils import load_source_path_class, resolve_importable_class
from stepwire.steps import secret
from stepwire.steps.parameters import check_declared, decode_parameters
from stepwire.steps.signature import parse_entrypoint


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _cause(error: BaseException) -> str:
    """``Type: message`` of an exception, on one line and at most 300 characters."""
    text = " ".join(str(error).split())
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _type_source(cls: type) -> str:
    """Returns an importable source of a value's type, or its dotted name if it has none."""
    try:
        return resolve_importable_class(cls)
    except ValueError:
        # Informational only (the materializer property is what is loaded back).
        return f"{cls.__module__}.{cls.__qualname__}"


class _FunctionExecutor(base_executor.BaseExecutor):
    """Runs a step function inside TFX: reads inputs, calls it, writes outputs.

    Subclasses are generated per step with ``_FUNCTION``, ``materializers`` and
    ``step_name`` set.
    """

    _FUNCTION: ClassVar[Callable[..., Any]]
    materializers: ClassVar[dict[str, type[BaseMaterializer]]] = {}
    step_name: ClassVar[str] = ""

    def Do(  # noqa: N802 (TFX's name)
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        """Runs the step function once.

        Args:
            input_dict: Input name to the one resolved artifact of that input.
            output_dict: Output name to the one artifact to write.
            exec_properties: Parameter name to its value as a JSON string; keys with the
                ``stepwire-`` prefix are stepwire's own and are dropped.

        Raises:
            PipelineIRError: If a parameter is not JSON or not declared by the step.
            StepInterfaceError: If inputs or returned values do not match the step's
                declaration.
            MissingStepParameterError: If an argument gets no value at all.
            InfrastructureError: If an input cannot be read (missing or corrupt files)
                or an output cannot be written; raised before or after the step
                function runs, never from inside it.
        """
        function = type(self)._FUNCTION
        signature = parse_entrypoint(function, self.step_name)
        parameters = decode_parameters(self.step_name, exec_properties)
        check_declared(self.step_name, parameters, signature.parameters)
        arguments: dict[str, Any] = {}
        for name, data_type in signature.inputs.items():
            if name not in input_dict:
                raise MissingStepParameterError(self.step_name, name)
            arguments[name] = self._read_input(name, input_dict[name], data_type)
        # Secrets are read here, in the step process, only once the step will run.
        arguments.update(secret.resolve(self.step_name, parameters))
        result = function(**arguments)
        for name, value in self._match_outputs(result, signature.outputs).items():
            self._write_output(name, value, output_dict.get(name, []))

    def _read_input(self, name: str, artifacts: list[Any], data_type: type) -> Any:
        if len(artifacts) != 1:
            raise StepInterfaceError(
                f"Step '{self.step_name}': input '{name}' resolved to {len(artifacts)} "
                "artifacts; exactly one was expected."
            )
        artifact = artifacts[0]
        source = getattr(artifact, MATERIALIZER_PROPERTY_KEY, "")
        if not source:
            raise StepInterfaceError(
                f"Step '{self.step_name}': input '{name}' (artifact {artifact.uri}) records no "
                "materializer; it was not written by a stepwire step."
            )
        materializer_class = load_source_path_class(source)
        if not issubclass(materializer_class, BaseMaterializer):
            raise StepInterfaceError(
                f"Step '{self.step_name}': input '{name}' names {source} as its materializer, "
                "which is not a BaseMaterializer subclass."
            )
        try:
            value = materializer_class(artifact).handle_input(data_type)
        except StepwireError:
            raise
        except Exception as error:
            # Missing or undecodable files: the artifact store failed the step
            # before its code ran, and another attempt may find them intact.
            raise InfrastructureError(
                f"Step '{self.step_name}': cannot read input '{name}' from artifact "
                f"{artifact.uri} with {materializer_class.__name__}: {_cause(error)}"
            ) from error
        if not isinstance(value, data_type):
            raise StepInterfaceError(
                f"Step '{self.step_name}': input '{name}' is declared {data_type.__name__} but "
                f"the upstream step stored a {type(value).__name__}."
            )
        return value

    def _match_outputs(self, result: Any, outputs: dict[str, type]) -> dict[str, Any]:
        if not outputs:
            if result is not None:
                raise StepInterfaceError(
                    f"Step '{self.step_name}' declares no outputs but returned "
                    f"{_describe(result)}; annotate its return type."
                )
            return {}
        if len(outputs) == 1:
            values = [result]
        elif isinstance(result, (tuple, list)) and len(result) == len(outputs):
            values = list(result)
        else:
            raise StepInterfaceError(
                f"Step '{self.step_name}' declares {len(outputs)} outputs {list(outputs)} and "
                f"must return a tuple of that length, got {_describe(result)}."
            )
        matched: dict[str, Any] = {}
        for (name, declared), value in zip(outputs.items(), values, strict=True):
            if not isinstance(value, declared):
                raise StepInterfaceError(
                    f"Step '{self.step_name}': output '{name}' is declared {declared.__name__} "
                    f"but the function returned {type(value).__name__} {_describe(value)}."
                )
            matched[name] = value
        return matched

    def _write_output(self, name: str, value: Any, artifacts: list[Any]) -> None:
        if len(artifacts) != 1:
            raise StepInterfaceError(
                f"Step '{self.step_name}': output '{name}' has {len(artifacts)} artifacts in the "
                "IR; exactly one was expected."
            )
        materializer_class = self.materializers.get(name)
        if materializer_class is None:
            raise StepInterfaceError(
                f"Step '{self.step_name}': no materializer for output '{name}'."
            )
        artifact = artifacts[0]
        artifact.materializer = resolve_importable_class(materializer_class)
        artifact.datatype = _type_source(type(value))
        try:
            materializer_class(artifact).handle_return(value)
        except StepwireError:
            raise
        except Exception as error:
            raise InfrastructureError(
                f"Step '{self.step_name}': cannot write output '{name}' to artifact "
                f"{artifact.uri} with {materializer_class.__name__}: {_cause(error)}"
            ) from error


class StepComponent(base_component.BaseComponent):
    """A TFX component whose spec is built from keyword arguments.

    Subclasses are generated per step with ``SPEC_CLASS``, ``EXECUTOR_SPEC`` and
    ``NODE_ID`` set; the class name is the step's class name, the node id the step
    instance's name.
    """

    NODE_ID: ClassVar[str] = ""

    def __init__(self, **kwargs: Any) -> None:
        """Builds the component.

        Args:
            **kwargs: Input channels and parameter values (JSON strings) by name.

        Raises:
            StepInterfaceError: If an input is missing or an argument is unknown.
        """
        spec_class = self.SPEC_CLASS
        expected = set(spec_class.INPUTS) | set(spec_class.PARAMETERS)
        unknown = set(kwargs) - expected
        missing = set(spec_class.INPUTS) - set(kwargs)
        if unknown or missing:
            raise StepInterfaceError(
                f"Component {type(self).__name__}: missing inputs {sorted(missing)}, unknown "
                f"arguments {sorted(unknown)}."
            )
        spec_kwargs = dict(kwargs)
        for key, parameter in spec_class.OUTPUTS.items():
            spec_kwargs[key] = channel.OutputChannel(parameter.type, self, key)
        super().__init__(spec=spec_class(**spec_kwargs))
        # Without an explicit id TFX uses the class name: the step's class, which is
        # the node id unless the instance has a name of its own.
        if type(self).__name__ != self.NODE_ID:
            self.with_id(self.NODE_ID)


def generate_component_spec_class(
    step_name: str,
    input_spec: dict[str, type[BaseArtifact]],
    output_spec: dict[str, type[BaseArtifact]],
    execution_parameter_names: set[str],
) -> type[component_spec.ComponentSpec]:
    """Creates ``<step>_Spec``, the TFX component spec of a step.

    Args:
        step_name: The step name.
        input_spec: Input name to artifact class.
        output_spec: Output name to artifact class.
        execution_parameter_names: Parameter names; every value is a JSON string.

    Returns:
        The spec class.
    """
    namespace: dict[str, Any] = {
        "INPUTS": {k: component_spec.ChannelParameter(type=v) for k, v in input_spec.items()},
        "OUTPUTS": {k: component_spec.ChannelParameter(type=v) for k, v in output_spec.items()},
        "PARAMETERS": {
            k: component_spec.ExecutionParameter(type=str)  # type: ignore[no-untyped-call]
            for k in sorted(execution_parameter_names)
        },
    }
    spec_class: type[component_spec.ComponentSpec] = type(
        f"{step_name}_Spec", (component_spec.ComponentSpec,), namespace
    )
    return spec_class


def generate_component_class(
    *,
    step_name: str,
    step_module: str,
    input_spec: dict[str, type[BaseArtifact]],
    output_spec: dict[str, type[BaseArtifact]],
    execution_parameter_names: set[str],
    step_function: Callable[..., Any],
    materializers: dict[str, type[BaseMaterializer]],
    type_name: str | None = None,
) -> type[StepComponent]:
    """Creates the TFX component class of a step and its executor class.

    As a side effect, ``<step_name>_Executor`` becomes an attribute of
    ``sys.modules[step_module]``, which is where TFX's executor operator imports it
    from (the class path recorded in the IR).

    All arguments are keyword-only.

    Args:
        step_name: The step name: the node id, and the executor's name.
        type_name: The step's class name, which becomes the component class name
            (TFX records ``<module>.<type_name>`` as the node's type); the step
            name when omitted.
        step_module: Module the executor is attached to, and the component's module.
        input_spec: Input name to artifact class.
        output_spec: Output name to artifact class.
        execution_parameter_names: Names of all parameters, stepwire's own included.
        step_function: The function the executor calls.
        materializers: Output name to the materializer class that writes it.

    Returns:
        The component class; instantiate it with input channels and JSON parameters.
    """
    spec_class = generate_component_spec_class(
        step_name, input_spec, output_spec, execution_parameter_names
    )
    executor_class = type(
        f"{step_name}_Executor",
        (_FunctionExecutor,),
        {
            "_FUNCTION": staticmethod(step_function),
            "materializers": dict(materializers),
            "step_name": step_name,
            "__module__": step_module,
        },
    )
    setattr(sys.modules[step_module], executor_class.__name__, executor_class)
    component_class: type[StepComponent] = type(
        type_name or step_name,
        (StepComponent,),
        {
            "SPEC_CLASS": spec_class,
            "EXECUTOR_SPEC": executor_spec.ExecutorClassSpec(executor_class),
            "NODE_ID": step_name,
            "__module__": step_module,
        },
    )
    return component_class
