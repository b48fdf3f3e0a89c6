"""Abstract base class for entrypoint configurations that run a single step."""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from google.protobuf import json_format

from stepwire import constants, source_utils
from stepwire.entrypoints import codec
from stepwire.entrypoints.budgets import LINUX, ArgumentBudget, fit_arguments
from stepwire.entrypoints.codec import (
    ENTRYPOINT_CONFIG_SOURCE_OPTION,
    INPUT_ARTIFACT_SOURCES_OPTION,
    MAIN_MODULE_SOURCE_OPTION,
    MATERIALIZER_SOURCES_OPTION,
    PIPELINE_JSON_OPTION,
    STEP_SOURCE_OPTION,
)
from stepwire.entrypoints.loading import load_class
from stepwire.entrypoints.references import ArtifactStoreReferences

if TYPE_CHECKING:
    from tfx.orchestration.portable import data_types

    from stepwire._protos import Pipeline as Pb2Pipeline
    from stepwire._protos import PipelineNode as Pb2PipelineNode
    from stepwire.stack import Stack
    from stepwire.steps.base_step import BaseStep

logger = logging.getLogger(__name__)

DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND = [
    "python",
    "-m",
    "stepwire.entrypoints.step_entrypoint",
]
"""The command that runs the entrypoint where the interpreter is ``python``."""


class StepEntrypointConfiguration(ABC):
    """Abstract base class for entrypoint configurations that run a single step.

    If an orchestrator needs to run steps in a separate process or environment
    (a container, a pod, a worker), it subclasses this class and runs
    ``get_entrypoint_command() + get_entrypoint_arguments(...)`` there.

    How to subclass:
        Only ``get_run_name(...)`` is mandatory. It returns a string that is the
        same for all steps of one pipeline run (for example an environment
        variable the orchestration engine sets in every pod).

    Passing additional arguments to the entrypoint:
        Implement ``get_custom_entrypoint_options()`` (the option names) and
        ``get_custom_entrypoint_arguments(...)`` (``["--name", "value", ...]``
        for all of them). Their values are in ``self.entrypoint_args[name]``.
        Custom options are plain text, so an engine's placeholders may be
        substituted in them at launch; they must not reuse a contract flag.

    Running custom code inside the entrypoint:
        Override ``setup(...)`` and ``post_run(...)``, which run before user
        code is imported and after the step ran.

    Example:
        ```python
        class MyStepEntrypointConfiguration(StepEntrypointConfiguration):
            def get_run_name(self, pipeline_name: str) -> str:
                return os.environ["MY_ENGINE_RUN_ID"]

        cmd = MyStepEntrypointConfiguration.get_entrypoint_command()
        for step in sorted_list_of_steps:
            args = MyStepEntrypointConfiguration.get_entrypoint_arguments(
                step=step, pb2_pipeline=pb2_pipeline
            )
            subprocess.check_call(cmd + args)
        ```
    """

    ARGUMENT_BUDGET: ClassVar[ArgumentBudget] = LINUX
    """Limits of the launch target; arguments are fitted to them when built."""

    def __init__(self, arguments: list[str], *, stack: Stack | None = None) -> None:
        """Initializes the entrypoint configuration.

        Args:
            arguments: Command line arguments to configure this object: the argv
                after the command. ``--entrypoint_config_source`` may be left out,
                as the seed's ``main()`` does (it then names this class).
            stack: The stack the step runs on. Omitted, it is resolved once from
                this process's configuration when first needed.
        """
        self._stack = stack
        self.decoded_args: codec.DecodedArgs = self._decode_arguments(
            arguments, reader=self._read_reference
        )
        """The options decoded: ``decoded_args.args`` is the typed
        ``EntrypointArgs`` message (maps as dicts, the pipeline as JSON text),
        ``decoded_args.custom`` the custom options' values."""
        self.entrypoint_args: dict[str, str] = self._raw_values(arguments)
        """Each option's value exactly as given on the command line (a string),
        as the seed held it; the custom options included."""

    @property
    def stack(self) -> Stack:
        """The stack this step runs on, resolved once per configuration.

        Returns:
            The stack given at construction, else the one this process's
            configuration (``stepwire.yaml`` and ``STEPWIRE_*``) resolves to.
        """
        if self._stack is None:
            from stepwire.stack import get_active_stack

            self._stack = get_active_stack()
        return self._stack

    def _read_reference(self, uri: str) -> bytes:
        return ArtifactStoreReferences(self.stack.artifact_store.path).read(uri)

    @classmethod
    def get_custom_entrypoint_options(cls) -> set[str]:
        """Custom options for this entrypoint in addition to the contract's.

        The names have no ``--`` prefix. The entrypoint expects each as
        ``--my_option my_value``; read it as ``self.entrypoint_args["my_option"]``.

        Returns:
            A set of strings with the custom options.
        """
        return set()

    @classmethod
    def get_custom_entrypoint_arguments(cls, step: BaseStep, **kwargs: Any) -> list[str]:
        """Custom arguments that the entrypoint command should be called with.

        They must provide values for all options of
        ``get_custom_entrypoint_options()``, as ``["--some_option", "value"]`` or
        ``["--some_option=value"]``.

        Args:
            step: The step that the entrypoint should run.
            **kwargs: The keyword arguments given to ``get_entrypoint_arguments``.

        Returns:
            A list of strings with the arguments.
        """
        return []

    @abstractmethod
    def get_run_name(self, pipeline_name: str) -> str:
        """Returns the run name.

        Subclasses must return a run name that is the same for all steps of
        this pipeline run, for example an id the orchestration engine sets in
        every pod's environment, or a custom option's value.

        Args:
            pipeline_name: The name of the pipeline.

        Returns:
            The run name.
        """

    def setup(self, pipeline_name: str, step_name: str) -> None:
        """Code that runs before user code is imported or the step is executed.

        Subclasses that override it should in most cases call ``super().setup(...)``.

        Args:
            pipeline_name: Name of the parent pipeline of the step.
            step_name: Name of the step that will be executed.
        """
        logging.basicConfig(stream=sys.stdout, level=logging.INFO)
        logging.getLogger().setLevel(logging.INFO)

    def post_run(  # noqa: B027 - a hook, empty by design, as in the seed API
        self,
        pipeline_name: str,
        step_name: str,
        pipeline_node: Pb2PipelineNode,
        execution_info: data_types.ExecutionInfo | None = None,
    ) -> None:
        """Does cleanup or post-processing after the step finished running.

        Args:
            pipeline_name: Name of the parent pipeline of the step.
            step_name: Name of the step that was executed.
            pipeline_node: Protobuf node corresponding to the step.
            execution_info: Info about the finished step execution.
        """

    @classmethod
    def get_entrypoint_command(cls) -> list[str]:
        """Returns a command that runs the entrypoint module.

        Defaults to ``python -m stepwire.entrypoints.step_entrypoint``, the
        interpreter found on the ``PATH`` where the step runs. It needs the
        arguments of ``get_entrypoint_arguments(...)``.

        Returns:
            A list of strings with the command.
        """
        return list(DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND)

    @classmethod
    def get_argument_budget(cls) -> ArgumentBudget:
        """The command-line limits of the target this configuration launches on.

        Override it (or set ``ARGUMENT_BUDGET``) for a tighter launcher, for
        example ``budgets.AWS_BATCH`` for AWS Batch and ECS.

        Returns:
            The budget; Linux's by default.
        """
        return cls.ARGUMENT_BUDGET

    @classmethod
    def get_entrypoint_options(cls) -> set[str]:
        """Gets all options required for running an entrypoint with this configuration.

        Subclasses add options with ``get_custom_entrypoint_options()``.

        Returns:
            The contract's required options and the custom options.
        """
        return set(codec.REQUIRED_FLAGS) | cls.get_custom_entrypoint_options()

    @classmethod
    def get_entrypoint_arguments(
        cls,
        step: BaseStep,
        pb2_pipeline: Pb2Pipeline,
        **kwargs: Any,
    ) -> list[str]:
        """Gets all arguments that the entrypoint command should be called with.

        The arguments carry only what this step needs: its own node, the
        pipeline info, the runtime spec and its executor spec. They are
        validated before they are returned, so a bad argument fails here and
        not inside a pod.

        Args:
            step: The step that the entrypoint should run.
            pb2_pipeline: The compiled pipeline the step belongs to.
            **kwargs: Passed to ``get_custom_entrypoint_arguments()``. A
                ``run_name`` keyword is also written into the contract's
                late-bound ``--run_name`` option; a ``stack`` keyword is the
                stack whose artifact store holds by-reference values (inside
                ``BaseOrchestrator.run``, the run's stack by default); a
                ``pipeline_index`` keyword (a ``PipelineIndex`` of
                ``pb2_pipeline``) saves unpacking the IR again for every step.

        Returns:
            A list of strings with the arguments.

        Raises:
            EncodeError: If the arguments cannot be encoded (for example a
                custom argument is undeclared, repeated or clashes with a
                contract option).
            ArgumentError: If the result does not parse (for example a custom
                option has no argument).
        """
        from stepwire.pipelines.dehydrate import dehydrate
        from stepwire.run_context import current_run_stack

        main_module_source = constants.USER_MAIN_MODULE or (
            source_utils.get_module_source_from_module(sys.modules["__main__"])
        )

        def _resolve_class(class_: type[Any]) -> str:
            # A class defined in the script the user ran lives in `__main__`,
            # which is the entrypoint itself on the other side: name it by the
            # script's importable module instead.
            module_source, class_name = source_utils.resolve_class(class_).rsplit(".", 1)
            if module_source == "__main__":
                module_source = main_module_source
            return f"{module_source}.{class_name}"

        args = codec.EntrypointArgs(
            entrypoint_config_source=_resolve_class(cls),
            main_module_source=main_module_source,
            step_source=_resolve_class(step.__class__),
            pipeline_json=json_format.MessageToJson(
                dehydrate(pb2_pipeline, step.name, kwargs.get("pipeline_index")), indent=None
            ),
            input_artifact_sources={
                name: _resolve_class(artifact) for name, artifact in step.INPUT_SPEC.items()
            },
            materializer_sources={
                name: _resolve_class(materializer)
                for name, materializer in step.get_materializers(ensure_complete=True).items()
            },
            contract_version=codec.CONTRACT_VERSION,
        )
        run_name = kwargs.get("run_name")
        if run_name is not None:
            args.run_name = str(run_name)
        stack: Stack | None = kwargs.get("stack") or current_run_stack()
        custom = codec.parse_custom_arguments(
            cls.get_custom_entrypoint_arguments(step=step, **kwargs),
            codec.check_custom_options(frozenset(cls.get_custom_entrypoint_options())),
        )
        # By-reference values go to the artifact store of the stack the arguments
        # are built for; without one, a value that needs a reference is an error
        # of the codec's (needs_reference_store) naming the option.
        references = ArtifactStoreReferences(stack.artifact_store.path) if stack else None
        arguments = fit_arguments(
            args,
            custom,
            cls.get_entrypoint_command(),
            budget=cls.get_argument_budget(),
            store=references,
        )
        # Parse what was produced, so an invalid command line fails here.
        cls._decode_arguments(arguments, reader=references.read if references else None)
        return arguments

    @classmethod
    def _parse_arguments(cls, arguments: list[str]) -> dict[str, str]:
        """Parses command line arguments with the generated decoder.

        Every option is decoded and checked; what is returned is what the seed
        returned: each option's value as given.

        Args:
            arguments: The argv after the command, in any form the contract
                accepts (``--option value`` or ``--option=value``);
                ``--entrypoint_config_source`` may be left out (``main()`` has
                read it), as in the seed.

        Returns:
            The raw option values by name: the contract's and the custom ones.

        Raises:
            ArgumentError: If the arguments are not valid; it is a ``ValueError``
                whose ``kind`` says what was wrong.
        """
        cls._decode_arguments(arguments, reader=None)
        return cls._raw_values(arguments)

    @classmethod
    def _with_config_source(cls, arguments: list[str]) -> list[str]:
        """The arguments, naming this class if they do not name a configuration."""
        found = codec.scan(arguments, frozenset({ENTRYPOINT_CONFIG_SOURCE_OPTION}))
        if ENTRYPOINT_CONFIG_SOURCE_OPTION in found:
            return list(arguments)
        # main() has consumed the option to find this very class (the seed's
        # _parse_arguments skips it for the same reason).
        source = source_utils.resolve_importable_class(cls)
        return [f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}={source}", *arguments]

    @classmethod
    def _decode_arguments(
        cls, arguments: list[str], *, reader: codec.ReferenceReader | None
    ) -> codec.DecodedArgs:
        """Decodes and checks every option of a command line."""
        return codec.decode(
            cls._with_config_source(arguments),
            custom_options=frozenset(cls.get_custom_entrypoint_options()),
            read_reference=reader,
        )

    @classmethod
    def _raw_values(cls, arguments: list[str]) -> dict[str, str]:
        """Each known option's value as given, read by the codec's scanner."""
        custom = frozenset(cls.get_custom_entrypoint_options())
        return codec.scan(cls._with_config_source(arguments), codec.FLAGS | custom)

    @staticmethod
    def _create_executor_class(
        step: BaseStep,
        input_artifact_sources: dict[str, str],
        materializer_sources: dict[str, str],
    ) -> None:
        """Creates the executor class of a step where the pipeline IR names it.

        Args:
            step: The step for which the executor class should be created.
            input_artifact_sources: Input names to artifact class sources.
            materializer_sources: Output names to materializer class sources.

        Raises:
            TypeError: If a source does not point to the expected kind of class.
        """
        from stepwire.artifacts import BaseArtifact, type_registry
        from stepwire.materializers import BaseMaterializer
        from stepwire.steps.executor import generate_component_class

        input_spec: dict[str, type[BaseArtifact]] = {}
        for input_name, source in input_artifact_sources.items():
            input_spec[input_name] = load_class(
                source, BaseArtifact, f"artifact of input {input_name!r}"
            )
        output_spec = {
            name: type_registry.get_artifact_type(value)[0]
            for name, value in step.OUTPUT_SIGNATURE.items()
        }
        materializers: dict[str, type[BaseMaterializer]] = {}
        for output_name, source in materializer_sources.items():
            materializers[output_name] = load_class(
                source, BaseMaterializer, f"materializer of output {output_name!r}"
            )
        generate_component_class(
            step_name=step.name,
            type_name=type(step).__name__,
            step_module=step.__module__,
            input_spec=input_spec,
            output_spec=output_spec,
            execution_parameter_names=set(step.PARAM_SPEC)
            | step._internal_execution_parameter_names,
            step_function=step.entrypoint,
            materializers=materializers,
        )

    def run(self) -> None:
        """Runs a single step.

        Subclasses should customise ``setup(...)`` and ``post_run(...)`` rather
        than this method. The work is :func:`stepwire.entrypoints.step_runner.run_step`'s.

        Raises:
            TypeError: If the arguments point to classes of the wrong kind.
        """
        from stepwire.entrypoints.step_runner import run_step

        run_step(self)


__all__ = [
    "DEFAULT_SINGLE_STEP_CONTAINER_ENTRYPOINT_COMMAND",
    "ENTRYPOINT_CONFIG_SOURCE_OPTION",
    "INPUT_ARTIFACT_SOURCES_OPTION",
    "MAIN_MODULE_SOURCE_OPTION",
    "MATERIALIZER_SOURCES_OPTION",
    "PIPELINE_JSON_OPTION",
    "STEP_SOURCE_OPTION",
    "StepEntrypointConfiguration",
]
