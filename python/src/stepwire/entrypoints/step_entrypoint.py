"""Runs the step a command line describes: `python -m stepwire.entrypoints.step_entrypoint`."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from stepwire import constants
from stepwire.entrypoints.codec import ENTRYPOINT_CONFIG_SOURCE_OPTION, ArgumentError, ErrorKind
from stepwire.entrypoints.loading import load_class
from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(
            ErrorKind.MISSING_OPTION,
            f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}: required option is missing ({message})",
            ENTRYPOINT_CONFIG_SOURCE_OPTION,
        )


def main(argv: list[str] | None = None) -> None:
    """Runs the step defined by the command line arguments.

    This only loads the ``StepEntrypointConfiguration`` subclass named by
    ``--entrypoint_config_source``, builds it with the whole command line and
    calls its ``run()``.

    Args:
        argv: The arguments after the command; ``sys.argv[1:]`` by default.

    Raises:
        TypeError: If the configuration source does not point to a
            ``StepEntrypointConfiguration`` subclass.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    # Loading the configuration class may import the user's script: from now
    # on a module-level `pipeline.run()` there must not run a pipeline.
    constants.SHOULD_PREVENT_PIPELINE_EXECUTION = True
    # Only the configuration class is read here: it decides which custom
    # options the rest of the command line has.
    parser = _Parser(add_help=False, allow_abbrev=False)
    parser.add_argument(f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}", required=True)
    known, _ = parser.parse_known_args(arguments)
    config_source: str = getattr(known, ENTRYPOINT_CONFIG_SOURCE_OPTION)
    if not config_source or "\x00" in config_source:
        # The same rule the contract's decoder applies to every plain option.
        raise ArgumentError(
            ErrorKind.EMPTY_VALUE if not config_source else ErrorKind.BAD_VALUE,
            f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}: the value is empty or holds a NUL character",
            ENTRYPOINT_CONFIG_SOURCE_OPTION,
        )
    entrypoint_config_class = load_class(
        config_source, StepEntrypointConfiguration, "entrypoint config"
    )
    entrypoint_config: StepEntrypointConfiguration = entrypoint_config_class(arguments=arguments)
    entrypoint_config.run()


if __name__ == "__main__":
    # Before anything imports TFX: keep out what a step never runs (~0.4 s).
    from stepwire import _fast_imports

    _fast_imports.install()

    from stepwire.entrypoints.exit_codes import run_and_exit

    run_and_exit(main)
