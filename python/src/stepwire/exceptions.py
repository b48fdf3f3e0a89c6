"""Typed errors of the stepwire runtime, each carrying one line a person can act on."""

from __future__ import annotations


class StepwireError(Exception):
    """Base class of every error stepwire raises on purpose."""


class StepInterfaceError(StepwireError):
    """A step's declared inputs, outputs, parameters or materializers do not fit together.

    Raised when a step is defined, wired, or when its function returns values that do
    not match its declared outputs.
    """


class MissingStepParameterError(StepwireError):
    """A step argument received no value: it is neither a wired input nor a parameter."""

    def __init__(self, step_name: str, argument: str) -> None:
        super().__init__(
            f"Step '{step_name}': argument '{argument}' got no value; it is neither an input "
            "in the pipeline IR nor a parameter, and it has no default."
        )
        self.step_name = step_name
        self.argument = argument


class PipelineInterfaceError(StepwireError):
    """A pipeline was built from the wrong steps or wired inconsistently."""


class DuplicateRunNameError(StepwireError):
    """A step (or pipeline) already completed under this run name."""

    def __init__(self, run_name: str, detail: str) -> None:
        super().__init__(
            f"Run name '{run_name}' was already used: {detail}. Use a new run name for a new run."
        )
        self.run_name = run_name


class InputResolutionError(StepwireError):
    """A step's inputs could not be found in ML Metadata for its run.

    The usual cause is a run-name mismatch: the upstream steps ran under another run
    name (or have not run yet), so the run-scoped input queries find nothing. When an
    upstream step does have an execution in the run that never completed, the message
    says that instead.
    """

    def __init__(
        self, step_name: str, run_name: str, detail: str = "", unfinished_upstream: str = ""
    ) -> None:
        if unfinished_upstream:
            message = (
                f"Step '{step_name}' could not resolve its inputs in run '{run_name}': "
                f"{unfinished_upstream}."
            )
        else:
            message = (
                f"Step '{step_name}' could not resolve its inputs in run '{run_name}': no "
                "published upstream outputs were found for that run. Check that every step "
                "of the run got the same run name and that the upstream steps succeeded."
            )
        if detail:
            message = f"{message} ({detail})"
        super().__init__(message)
        self.step_name = step_name
        self.run_name = run_name


class StackConfigError(StepwireError):
    """The stack configuration (``stepwire.yaml`` or ``STEPWIRE_*`` variables) is invalid."""


class InfrastructureError(StepwireError):
    """The metadata store or the artifact store failed, not the step's own code.

    Raised, for example, when an input artifact's files are missing or corrupt, or
    an output cannot be written. Worth retrying once the store is healthy again.
    """


class PipelineIRError(StepwireError, ValueError):
    """The pipeline IR on a command line cannot describe the step it is to run.

    For example it has no node of that step, its executor is not a Python class, a
    parameter is not declared, or it fixes a pipeline root other than the step's
    artifact store. Deterministic: running the same command again fails the same way.
    """
