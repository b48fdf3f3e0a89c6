"""Entrypoint configurations the benchmarks build arguments with (importable by name)."""

from stepwire.entrypoints import budgets
from stepwire.orchestrators.subprocess_orchestrator import SubprocessEntrypointConfiguration


class AwsBatchConfiguration(SubprocessEntrypointConfiguration):
    """The subprocess configuration fitted to AWS Batch's 8192-character budget."""

    ARGUMENT_BUDGET = budgets.AWS_BATCH
