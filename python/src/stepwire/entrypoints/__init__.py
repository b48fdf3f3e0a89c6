"""The step entrypoint: run one step of a pipeline from one command line."""

from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration

__all__ = ["StepEntrypointConfiguration"]
