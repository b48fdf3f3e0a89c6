"""The one error type of the generator."""


class ContractError(Exception):
    """A contract breaks a rule of the generator, or does not match its runtime.

    The message is one line naming the file, the element and the rule, for example
    ``entrypoint.proto: EntrypointArgs.step_source: flag "x" is used by two fields``.
    """
