"""Pipelines: steps wired into a DAG, compiled to TFX's pipeline IR."""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any, ClassVar

from stepwire import _protos, constants
from stepwire.exceptions import PipelineInterfaceError
from stepwire.steps.base_step import BaseStep

if TYPE_CHECKING:
    from stepwire.orchestrators.base_orchestrator import BaseOrchestrator
    from stepwire.stack import Stack

logger = logging.getLogger(__name__)


class BasePipeline:
    """A pipeline: named step slots and a ``connect`` method that wires them.

    Subclass it and implement ``connect``, or decorate a function with
    :func:`stepwire.pipelines.pipeline`. The arguments of ``connect`` name the step
    slots; a pipeline instance is created with one step instance per slot, and
    ``connect`` calls each step with the outputs of upstream steps::

        @pipeline
        def training(loader, trainer):
            data = loader()
            trainer(data=data)

        p = training(loader=load(), trainer=train(lr=0.1))

    Each step is a TFX node whose id is the step name (its class name), so one step
    class can fill only one slot of a pipeline.

    Attributes:
        STEP_SPEC: The names of the step slots, in ``connect`` order.
        ENABLE_CACHE: Default for whether TFX may reuse earlier executions.
        steps: Slot name to step instance.
        enable_cache: Whether this pipeline instance allows cached executions.
    """

    STEP_SPEC: ClassVar[tuple[str, ...]] = ()
    ENABLE_CACHE: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Reads the step slots off the subclass's ``connect`` signature.

        Args:
            **kwargs: Passed on to ``object.__init_subclass__``.

        Raises:
            PipelineInterfaceError: If ``connect`` takes variadic arguments.
        """
        super().__init_subclass__(**kwargs)
        connect = cls.__dict__.get("connect")
        if connect is None:
            return
        arguments = list(inspect.signature(cls.connect).parameters.values())
        if not isinstance(connect, staticmethod):
            arguments = arguments[1:]
        for argument in arguments:
            if argument.kind not in (argument.POSITIONAL_OR_KEYWORD, argument.KEYWORD_ONLY):
                raise PipelineInterfaceError(
                    f"Pipeline '{cls.__name__}': connect argument '{argument.name}' must be a "
                    "named argument, one per step."
                )
        cls.STEP_SPEC = tuple(argument.name for argument in arguments)

    def __init__(
        self, *steps: BaseStep, enable_cache: bool | None = None, **named_steps: BaseStep
    ) -> None:
        """Fills the step slots.

        Args:
            *steps: Steps for the slots, in ``connect`` order.
            enable_cache: Overrides the class default ``ENABLE_CACHE``.
            **named_steps: Steps by slot name.

        Raises:
            PipelineInterfaceError: If the class has no connect, slots are missing,
                unknown or filled twice, a value is not a step instance, or two slots hold
                steps of the same name.
        """
        if type(self).connect is BasePipeline.connect:
            raise PipelineInterfaceError(
                f"Pipeline class {self.name} does not define connect(); subclass BasePipeline "
                "and implement it, or decorate a function with @pipeline."
            )
        if len(steps) > len(self.STEP_SPEC):
            raise PipelineInterfaceError(
                f"Pipeline '{self.name}' takes {len(self.STEP_SPEC)} steps {list(self.STEP_SPEC)}, "
                f"got {len(steps)} positional arguments."
            )
        bound: dict[str, Any] = dict(zip(self.STEP_SPEC, steps, strict=False))
        for slot, value in named_steps.items():
            if slot not in self.STEP_SPEC:
                raise PipelineInterfaceError(
                    f"Pipeline '{self.name}' has no step slot '{slot}'; slots: "
                    f"{list(self.STEP_SPEC)}."
                )
            if slot in bound:
                raise PipelineInterfaceError(f"Pipeline '{self.name}': slot '{slot}' given twice.")
            bound[slot] = value
        missing = [slot for slot in self.STEP_SPEC if slot not in bound]
        if missing:
            raise PipelineInterfaceError(f"Pipeline '{self.name}': no step for slots {missing}.")
        holders: dict[int, str] = {}
        for slot, value in bound.items():
            if isinstance(value, type) and issubclass(value, BaseStep):
                raise PipelineInterfaceError(
                    f"Pipeline '{self.name}': slot '{slot}' got the step class "
                    f"{value.__name__}; pass an instance, e.g. {value.__name__}()."
                )
            if not isinstance(value, BaseStep):
                raise PipelineInterfaceError(
                    f"Pipeline '{self.name}': slot '{slot}' needs a step, got {value!r}."
                )
            if id(value) in holders:
                raise PipelineInterfaceError(
                    f"Pipeline '{self.name}': slots '{holders[id(value)]}' and '{slot}' hold the "
                    "same step instance; a step instance runs once: give each slot its own "
                    f"({type(value).__name__}())."
                )
            holders[id(value)] = slot
        self._name_steps_used_twice(bound)
        owners: dict[str, str] = {}
        for slot, value in bound.items():
            if value.name in owners:
                raise PipelineInterfaceError(
                    f"Pipeline '{self.name}': slots '{owners[value.name]}' and '{slot}' both hold "
                    f"a step named '{value.name}'; step names are node ids and must be unique "
                    f'(name an instance: {type(value).__name__}(name="...")).'
                )
            owners[value.name] = slot
            value.pipeline_parameter_name = slot
        self.steps: dict[str, BaseStep] = {slot: bound[slot] for slot in self.STEP_SPEC}
        self.enable_cache = self.ENABLE_CACHE if enable_cache is None else enable_cache

    @staticmethod
    def _name_steps_used_twice(bound: dict[str, BaseStep]) -> None:
        """Names after their slots the unnamed instances of a class used in several slots.

        ``evaluate_small=evaluate(), evaluate_large=evaluate()`` become the steps
        ``evaluate_small`` and ``evaluate_large``; an instance named by the user
        keeps its name, and a class used once keeps its class name.
        """
        by_name: dict[str, list[str]] = {}
        for slot, value in bound.items():
            by_name.setdefault(value.name, []).append(slot)
        for slots in by_name.values():
            if len(slots) > 1:
                for slot in slots:
                    if not bound[slot].has_own_name and slot.isidentifier():
                        bound[slot].named(slot)

    @property
    def name(self) -> str:
        """The pipeline name: its class name.

        Returns:
            The name.
        """
        return type(self).__name__

    # Not an abstractmethod, for the same reason as BaseStep.entrypoint; __init__ checks.
    def connect(self, *args: BaseStep, **kwargs: BaseStep) -> None:
        """Wires the steps by calling each with upstream outputs.

        Args:
            *args: The steps, by slot.
            **kwargs: The steps, by slot.

        Raises:
            NotImplementedError: Always; subclasses override it.
        """
        raise NotImplementedError

    def compile(self, pipeline_root: str | None = None) -> _protos.Pipeline:
        """Wires the steps and compiles the pipeline with TFX's compiler (SYNC mode).

        Args:
            pipeline_root: Root of the output artifacts. Omitted (the default), the IR
                leaves it a parameter that each step process binds to the artifact
                store of its own stack; given, it is fixed in the IR and a step whose
                artifact store differs refuses to run.

        Returns:
            The pipeline IR, its run id a parameter.

        Raises:
            PipelineInterfaceError: If ``connect`` leaves a step unused.
        """
        from tfx.dsl.compiler import compiler
        from tfx.orchestration import pipeline as tfx_pipeline

        from stepwire.pipeline_ir import fix_pipeline_root, late_bind_pipeline_root

        for step in self.steps.values():
            step._reset_wiring()
        self.connect(**self.steps)
        components = []
        for slot, step in self.steps.items():
            if step.component is None:
                raise PipelineInterfaceError(
                    f"Pipeline '{self.name}': step '{step.name}' (slot '{slot}') is never called "
                    "in connect."
                )
            components.append(step.component)
        logical = tfx_pipeline.Pipeline(
            pipeline_name=self.name,
            components=components,
            # TFX wants a root to compile; which one is decided just below.
            pipeline_root=pipeline_root or _UNBOUND_ROOT,
            enable_cache=self.enable_cache,
        )
        ir = compiler.Compiler().compile(logical)
        # A step that never caches says so in its own node, so that an IR used for
        # several runs does not reuse the first run's execution of it.
        never_cached = {step.name for step in self.steps.values() if not step.ENABLE_CACHE}
        for wrapper in ir.nodes:
            node = wrapper.pipeline_node
            if node.node_info.id in never_cached:
                node.execution_options.caching_options.enable_cache = False
        if pipeline_root is None:
            late_bind_pipeline_root(ir)
        else:
            fix_pipeline_root(ir, pipeline_root)
        return ir

    def run(
        self,
        run_name: str | None = None,
        stack: Stack | None = None,
        *,
        orchestrator: BaseOrchestrator | None = None,
    ) -> Any:
        """Runs the pipeline on a stack's orchestrator.

        Returns at once, doing nothing, when pipeline execution is prevented (inside a
        step process that imports the user's script, see
        :func:`stepwire.constants.should_prevent_pipeline_execution`).

        Args:
            run_name: Name of the run; generated from the pipeline name and the time
                when omitted.
            stack: The stack to run on; resolved from this process's configuration
                when omitted (this call is then the process's entry).
            orchestrator: Runs the pipeline instead of the stack's orchestrator.

        Returns:
            Whatever the orchestrator returns, or None when execution is prevented.
        """
        if constants.should_prevent_pipeline_execution():
            logger.info(
                "Not running pipeline '%s': pipeline execution is prevented in this process.",
                self.name,
            )
            return None
        if stack is None:
            from stepwire.stack import get_active_stack

            stack = get_active_stack()
        if orchestrator is not None:
            stack.orchestrator = orchestrator
        return stack.orchestrator.run(self, run_name=run_name, stack=stack)


# A placeholder TFX compiles with; late_bind_pipeline_root() removes it from the IR.
_UNBOUND_ROOT = "stepwire-unbound-pipeline-root"
