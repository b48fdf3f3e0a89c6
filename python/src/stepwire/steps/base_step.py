"""The base class of steps, and how a step turns into a TFX component."""

from __future__ import annotations

import hashlib
import inspect
import json
import keyword
import logging
import secrets
from typing import TYPE_CHECKING, Any, ClassVar

from tfx.types.channel import BaseChannel

from stepwire.artifacts.base_artifact import BaseArtifact
from stepwire.artifacts.type_registry import type_registry
from stepwire.constants import INTERNAL_EXECUTION_PARAMETER_PREFIX
from stepwire.exceptions import PipelineInterfaceError, StepInterfaceError
from stepwire.materializers.base_materializer import BaseMaterializer
from stepwire.materializers.materializer_registry import default_materializer_registry
from stepwire.steps.executor import generate_component_class
from stepwire.steps.resources import Resources
from stepwire.steps.secret import Secret
from stepwire.steps.signature import check_parameter_value, parse_entrypoint

if TYPE_CHECKING:
    from tfx.dsl.components.base.base_component import BaseComponent

logger = logging.getLogger(__name__)

#: Attribute set on the output channels a step returns, holding the output's Python
#: type, so wiring can check it against the consumer's declared input type.
_OUTPUT_TYPE_ATTRIBUTE = "_stepwire_output_type"


def _hash_source(obj: Any) -> str:
    """Returns the SHA-256 of an object's source, so a code change busts the cache."""
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        # No source (interactive session): fall back to the name, so only renames bust
        # the cache. Logged because stale cache hits are then possible.
        source = f"{obj.__module__}.{obj.__qualname__}"
        logger.info("No source for %s; its cache key ignores code changes.", source)
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class BaseStep:
    """A step: a unit of a pipeline that runs one function on its inputs.

    Subclass it and implement :meth:`entrypoint`, or decorate a function with
    :func:`stepwire.steps.step`. Arguments of ``entrypoint`` without a default are
    inputs (outputs of upstream steps), arguments with a default are parameters,
    the return annotation declares the outputs (see :mod:`stepwire.steps.signature`).

    A step class must be importable and constructible **without arguments** in another
    process: the step process recreates it with ``step_class()`` and takes the
    parameter values from the pipeline IR, not from the constructor.

    Attributes:
        INPUT_SIGNATURE: Input name to the Python class of its value.
        OUTPUT_SIGNATURE: Output name to the Python class of its value.
        PARAM_SPEC: Parameter name to value: the declared defaults on the class; on an
            instance, the defaults overridden by the constructor arguments.
        PARAM_TYPES: Parameter name to the class its annotation names, if annotated.
        ENABLE_CACHE: Whether TFX may reuse an earlier execution with the same cache key.
        RESOURCES: What the step needs from the machine it runs on.
        RETRIES: How many more launches an orchestrator that retries may make when the
            step exits 70 or 75.
        INPUT_SPEC: Input name to the artifact class of the channel wired to it; filled
            when the step is called inside a pipeline's ``connect``.
        component: The TFX component built by the last call, or None.
        pipeline_parameter_name: Name under which the step was passed to its pipeline.
    """

    INPUT_SIGNATURE: ClassVar[dict[str, type]] = {}
    OUTPUT_SIGNATURE: ClassVar[dict[str, type]] = {}
    # Not a ClassVar: an instance replaces it with its own values.
    PARAM_SPEC: dict[str, Any] = {}  # noqa: RUF012
    PARAM_TYPES: ClassVar[dict[str, type]] = {}
    ENABLE_CACHE: ClassVar[bool] = True
    RESOURCES: ClassVar[Resources] = Resources()
    RETRIES: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Reads the subclass's entrypoint signature into the class attributes.

        Args:
            **kwargs: Passed on to ``object.__init_subclass__``.
        """
        super().__init_subclass__(**kwargs)
        entrypoint = cls.__dict__.get("entrypoint")
        if entrypoint is None:
            return
        is_static = isinstance(entrypoint, staticmethod)
        signature = parse_entrypoint(cls.entrypoint, cls.__name__, skip_first=not is_static)
        cls.INPUT_SIGNATURE = signature.inputs
        cls.OUTPUT_SIGNATURE = signature.outputs
        cls.PARAM_SPEC = signature.parameters
        cls.PARAM_TYPES = signature.parameter_types

    def __init__(self, **parameters: Any) -> None:
        """Creates a step with parameter values.

        Args:
            **parameters: Values for parameters (entrypoint arguments with defaults),
                and ``name``: the name of this instance in a pipeline (its node id),
                for a step used more than once (``train(lr=0.1, name="train_small")``);
                by default the class name. A step whose entrypoint has a parameter
                called ``name`` takes it as that parameter: name such an instance
                with :meth:`named`.

        Raises:
            StepInterfaceError: If the class has no entrypoint, a name is not a parameter,
                or a value is invalid.
        """
        cls = type(self)
        if cls.entrypoint is BaseStep.entrypoint:
            raise StepInterfaceError(
                f"Step class {cls.__name__} does not define entrypoint(); subclass BaseStep "
                "and implement it, or decorate a function with @step."
            )
        self._instance_name: str | None = None
        if "name" in parameters and "name" not in cls.PARAM_SPEC:
            self.named(parameters.pop("name"))
        for name, value in parameters.items():
            if name in cls.INPUT_SIGNATURE:
                raise StepInterfaceError(
                    f"Step '{self.name}': '{name}' is an input (no default in entrypoint), "
                    "so it comes from an upstream step in the pipeline, not from the "
                    "constructor. Give it a default to make it a parameter."
                )
            if name not in cls.PARAM_SPEC:
                raise StepInterfaceError(
                    f"Step '{self.name}' has no parameter '{name}'; parameters: "
                    f"{sorted(cls.PARAM_SPEC)}."
                )
            check_parameter_value(self.name, name, value, cls.PARAM_TYPES.get(name))
        self.PARAM_SPEC = {**cls.PARAM_SPEC, **parameters}
        self.INPUT_SPEC: dict[str, type[BaseArtifact]] = {}
        self.component: BaseComponent | None = None
        self.pipeline_parameter_name: str | None = None
        self._explicit_materializers: dict[str, type[BaseMaterializer]] = {}

    @property
    def name(self) -> str:
        """The step name, also the TFX node id: the instance's name, else the class name.

        Returns:
            The name.
        """
        return self._instance_name or type(self).__name__

    @property
    def has_own_name(self) -> bool:
        """Whether this instance was given a name of its own (not its class name)."""
        return self._instance_name is not None

    def named(self, name: str) -> BaseStep:
        """Names this instance in its pipeline: the node id, its outputs and cache entries.

        Args:
            name: A Python identifier (the executor class is ``<name>_Executor``).

        Returns:
            The step itself.

        Raises:
            StepInterfaceError: If the name is not an identifier, or the step is
                already wired into a pipeline.
        """
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise StepInterfaceError(
                f"Step {type(self).__name__}: the name {name!r} is not a Python identifier "
                "(it names the step's node and executor class)"
            )
        if getattr(self, "component", None) is not None:
            raise StepInterfaceError(
                f"Step '{self.name}' is already wired into a pipeline: name it before"
            )
        self._instance_name = name
        return self

    # Not an abstractmethod: type checkers would then refuse BaseStep wherever a
    # type[BaseStep] is expected (loading step classes by source); __init__ checks it.
    def entrypoint(self, *args: Any, **kwargs: Any) -> Any:
        """Runs the step's logic; subclasses define the real signature.

        Args:
            *args: Inputs and parameters, see the class docstring.
            **kwargs: Inputs and parameters, see the class docstring.

        Returns:
            The output value, a tuple for several outputs, or None.

        Raises:
            NotImplementedError: Always; subclasses override it.
        """
        raise NotImplementedError

    @classmethod
    def _source_object(cls) -> Any:
        """Returns the object whose source defines the step, hashed for the cache key."""
        return cls

    def get_materializers(self, ensure_complete: bool = False) -> dict[str, type[BaseMaterializer]]:
        """Returns the materializer of every output that has one.

        Args:
            ensure_complete: Raise instead of leaving out an output without one.

        Returns:
            Output name to materializer class: those passed to
            :meth:`with_return_materializers`, else the registry's choice.

        Raises:
            StepInterfaceError: If ``ensure_complete`` and some output has no materializer.
        """
        materializers: dict[str, type[BaseMaterializer]] = {}
        for name, output_type in self.OUTPUT_SIGNATURE.items():
            explicit = self._explicit_materializers.get(name)
            if explicit is not None:
                materializers[name] = explicit
            elif ensure_complete or default_materializer_registry.is_registered(output_type):
                try:
                    materializers[name] = default_materializer_registry[output_type]
                except StepInterfaceError as e:
                    raise StepInterfaceError(f"Step '{self.name}', output '{name}': {e}") from e
        return materializers

    def with_return_materializers(
        self, materializers: type[BaseMaterializer] | dict[str, type[BaseMaterializer]]
    ) -> BaseStep:
        """Chooses the materializers that write this step's outputs.

        Args:
            materializers: One class for a step with a single output, or output name to
                class.

        Returns:
            The step itself, for chaining.

        Raises:
            StepInterfaceError: For unknown outputs, non-materializers, or materializers
                that do not handle the output's type.
        """
        if isinstance(materializers, dict):
            chosen = dict(materializers)
        elif len(self.OUTPUT_SIGNATURE) == 1:
            chosen = {next(iter(self.OUTPUT_SIGNATURE)): materializers}
        else:
            raise StepInterfaceError(
                f"Step '{self.name}' has {len(self.OUTPUT_SIGNATURE)} outputs; pass a dict "
                "of output name to materializer."
            )
        for name, materializer in chosen.items():
            if name not in self.OUTPUT_SIGNATURE:
                raise StepInterfaceError(
                    f"Step '{self.name}' has no output '{name}'; outputs: "
                    f"{list(self.OUTPUT_SIGNATURE)}."
                )
            if not (isinstance(materializer, type) and issubclass(materializer, BaseMaterializer)):
                raise StepInterfaceError(f"{materializer!r} is not a BaseMaterializer subclass.")
            output_type = self.OUTPUT_SIGNATURE[name]
            if not issubclass(output_type, materializer.ASSOCIATED_TYPES):
                raise StepInterfaceError(
                    f"Step '{self.name}', output '{name}': {materializer.__name__} does not "
                    f"handle {output_type.__name__}."
                )
        self._explicit_materializers.update(chosen)
        return self

    @property
    def _internal_execution_parameters(self) -> dict[str, str]:
        """Stepwire's own execution properties, which steer TFX's cache key.

        Returns:
            ``stepwire-``-prefixed names to string values: a SHA-256 of the step source
            and of each output materializer's source (a code change busts the cache),
            the pipeline parameter name, and a random value if caching is disabled.
        """
        prefix = INTERNAL_EXECUTION_PARAMETER_PREFIX
        parameters = {
            f"{prefix}step_source": _hash_source(self._source_object()),
            f"{prefix}pipeline_parameter_name": self.pipeline_parameter_name or "",
        }
        for name, materializer in self.get_materializers(ensure_complete=True).items():
            parameters[f"{prefix}{name}_materializer_source"] = _hash_source(materializer)
        if not self.ENABLE_CACHE:
            # A value that never repeats makes the cache key unique.
            parameters[f"{prefix}disable_cache"] = secrets.token_hex(16)
        return parameters

    @property
    def _internal_execution_parameter_names(self) -> set[str]:
        """The names of :attr:`_internal_execution_parameters`, without hashing any source.

        The step process needs only the names (the values are in the pipeline IR);
        hashing the sources again there would cost ``inspect.getsource`` per step.

        Returns:
            The ``stepwire-``-prefixed names.
        """
        prefix = INTERNAL_EXECUTION_PARAMETER_PREFIX
        names = {f"{prefix}step_source", f"{prefix}pipeline_parameter_name"}
        names.update(
            f"{prefix}{name}_materializer_source"
            for name in self.get_materializers(ensure_complete=True)
        )
        if not self.ENABLE_CACHE:
            names.add(f"{prefix}disable_cache")
        return names

    def _bind_inputs(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, BaseChannel[Any]]:
        names = list(self.INPUT_SIGNATURE)
        if len(args) > len(names):
            raise PipelineInterfaceError(
                f"Step '{self.name}' takes {len(names)} inputs {names}, got {len(args)} "
                "positional arguments."
            )
        bound: dict[str, Any] = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in self.INPUT_SIGNATURE:
                raise PipelineInterfaceError(
                    f"Step '{self.name}' has no input '{name}'; inputs: {names}."
                )
            if name in bound:
                raise PipelineInterfaceError(f"Step '{self.name}': input '{name}' given twice.")
            bound[name] = value
        missing = [name for name in names if name not in bound]
        if missing:
            raise PipelineInterfaceError(f"Step '{self.name}': inputs {missing} are not wired.")
        for name, value in bound.items():
            if not isinstance(value, BaseChannel):
                raise PipelineInterfaceError(
                    f"Step '{self.name}': input '{name}' must be an output of another step, got "
                    f"{type(value).__name__}. Constant values are parameters: give the "
                    "argument a default and pass the value to the step's constructor."
                )
            produced = getattr(value, _OUTPUT_TYPE_ATTRIBUTE, None)
            expected = self.INPUT_SIGNATURE[name]
            if produced is not None and not issubclass(produced, expected):
                raise PipelineInterfaceError(
                    f"Step '{self.name}': input '{name}' is declared {expected.__name__} but is "
                    f"wired to an output of type {produced.__name__}."
                )
        return bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Wires the step into the pipeline being connected and builds its TFX component.

        Args:
            *args: Output channels of upstream steps, in input order.
            **kwargs: Output channels of upstream steps, by input name.

        Returns:
            None for no outputs, the output channel for one, a tuple of channels in
            declaration order for several.

        Raises:
            PipelineInterfaceError: If the step is wired twice or its inputs do not fit.
        """
        if self.component is not None:
            raise PipelineInterfaceError(
                f"Step '{self.name}' was already called in this pipeline; a step instance "
                "runs once per pipeline."
            )
        channels = self._bind_inputs(args, kwargs)
        self.INPUT_SPEC = {}
        for name, input_channel in channels.items():
            artifact_type = input_channel.type
            if not issubclass(artifact_type, BaseArtifact):
                raise PipelineInterfaceError(
                    f"Step '{self.name}': input '{name}' carries {artifact_type.__name__}, "
                    "not a stepwire artifact."
                )
            self.INPUT_SPEC[name] = artifact_type
        output_spec = {
            name: type_registry.get_artifact_type(output_type)[0]
            for name, output_type in self.OUTPUT_SIGNATURE.items()
        }
        execution_parameters = {**self.PARAM_SPEC, **self._internal_execution_parameters}
        component_class = generate_component_class(
            step_name=self.name,
            type_name=type(self).__name__,
            step_module=self.__module__,
            input_spec=self.INPUT_SPEC,
            output_spec=output_spec,
            execution_parameter_names=set(execution_parameters),
            step_function=self.entrypoint,
            materializers=self.get_materializers(ensure_complete=True),
        )
        # Every value travels as a JSON string: TFX stores it in the IR and in ML
        # Metadata as is, and the executor decodes it.
        # A secret travels as its reference only; the step process reads its value.
        json_parameters = {
            key: json.dumps(value.to_json() if isinstance(value, Secret) else value)
            for key, value in execution_parameters.items()
        }
        self.component = component_class(**channels, **json_parameters)
        outputs = []
        for name, output_type in self.OUTPUT_SIGNATURE.items():
            output_channel = self.component.outputs[name]
            setattr(output_channel, _OUTPUT_TYPE_ATTRIBUTE, output_type)
            outputs.append(output_channel)
        if not outputs:
            return None
        if len(outputs) == 1:
            return outputs[0]
        return tuple(outputs)

    def _reset_wiring(self) -> None:
        """Forgets the component of an earlier ``connect``, so the pipeline can rebuild it."""
        self.component = None
        self.INPUT_SPEC = {}
