"""Runs the step a command line describes: `python -m stepwire.entrypoints.step_entrypoint`."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn

# Only what the supervising parent needs is imported at module level: the step
# process forks before the codec, protobuf and fsspec are imported, so the parent
# stays small and the fork cheap (the child imports them in main()).
from stepwire import constants


def main(argv: list[str] | None = None) -> None:
    """Runs the step defined by the command line arguments.

    This only loads the ``StepEntrypointConfiguration`` subclass named by
    ``--entrypoint_config_source``, builds it with the command line and calls its
    ``run()``. (A configuration also accepts the command line without that option,
    which is what the seed's ``main()`` passed.) The command line is read by the
    contract's own scanner: the contract version first, before anything is
    imported, then the configuration source.

    Args:
        argv: The arguments after the command; ``sys.argv[1:]`` by default.

    Raises:
        ArgumentError: If the contract version is unsupported or the configuration
            source is missing, repeated or empty.
        TypeError: If the configuration source does not point to a
            ``StepEntrypointConfiguration`` subclass.
    """
    from stepwire import codec_runtime
    from stepwire.entrypoints.codec import (
        CONTRACT_VERSION,
        CONTRACT_VERSION_OPTION,
        ENTRYPOINT_CONFIG_SOURCE_OPTION,
        FLAGS,
        ArgumentError,
        ErrorKind,
        scan,
    )
    from stepwire.entrypoints.loading import load_class
    from stepwire.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration

    arguments = sys.argv[1:] if argv is None else list(argv)
    # Loading the configuration class may import the user's script: from now
    # on a module-level `pipeline.run()` there must not run a pipeline.
    constants.SHOULD_PREVENT_PIPELINE_EXECUTION = True
    # Contract section 5: a newer contract may have changed every other option,
    # so its version is checked before any of them is looked at.
    values = scan(arguments, FLAGS)
    codec_runtime.check_version_in(
        CONTRACT_VERSION_OPTION, values.get(CONTRACT_VERSION_OPTION), CONTRACT_VERSION
    )
    config_source = values.get(ENTRYPOINT_CONFIG_SOURCE_OPTION)
    if config_source is None:
        raise ArgumentError(
            ErrorKind.MISSING_OPTION,
            f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}: required option is missing",
            ENTRYPOINT_CONFIG_SOURCE_OPTION,
        )
    if not config_source:
        raise ArgumentError(
            ErrorKind.EMPTY_VALUE,
            f"--{ENTRYPOINT_CONFIG_SOURCE_OPTION}: the value is empty",
            ENTRYPOINT_CONFIG_SOURCE_OPTION,
        )
    # The same rules the contract's decoder applies to every plain option: no NUL,
    # valid UTF-8.
    codec_runtime.check_text(ENTRYPOINT_CONFIG_SOURCE_OPTION, config_source, ArgumentError)
    entrypoint_config_class = load_class(
        config_source, StepEntrypointConfiguration, "entrypoint config"
    )
    entrypoint_config: StepEntrypointConfiguration = entrypoint_config_class(arguments=arguments)
    entrypoint_config.run()


def print_help() -> None:
    """Prints the contract's options, as ``--help`` shows them."""
    import argparse

    from stepwire.entrypoints.codec import add_arguments

    parser = argparse.ArgumentParser(
        prog="python -m stepwire.entrypoints.step_entrypoint",
        description=(
            "Runs one step of a pipeline from the command line an orchestrator built "
            "(StepEntrypointConfiguration.get_entrypoint_arguments). Exit codes: 0 success, "
            "64 bad_arguments, 65 user_code_not_loadable, 66 inputs_unresolvable, "
            "67 already_succeeded, 70 step_failed, 75 infrastructure."
        ),
    )
    add_arguments(parser)
    parser.print_help()


def run_as_main(argv: list[str]) -> NoReturn:
    """Runs the step process: what ``python -m stepwire.entrypoints.step_entrypoint`` does.

    A cold process and a child of the warm parent
    (:mod:`stepwire.entrypoints.warm_parent`) both come here. It supervises the
    step (:mod:`stepwire.entrypoints.supervisor`) and leaves with the exit code
    through :func:`leave`, skipping the interpreter's teardown.

    Args:
        argv: The command line after the command.
    """
    if argv in (["--help"], ["-h"]):
        print_help()
        leave(0)
    # Before anything imports TFX: keep out what a step never runs (~0.4 s).
    from stepwire import _fast_imports

    _fast_imports.install()

    from stepwire.entrypoints import supervisor
    from stepwire.entrypoints.exit_codes import run_and_exit

    try:
        supervisor.supervise(lambda: run_and_exit(main))
    except SystemExit as exit_:
        leave(exit_.code if isinstance(exit_.code, int) else 1)
    leave(0)  # not reached: supervise() exits


def leave(code: int) -> NoReturn:
    """Ends the process: streams flushed and exit handlers run, then ``os._exit``.

    Everything the step wrote is already in the stores and ML Metadata when the
    code is known; what an interpreter's teardown adds (collecting every module,
    about 26 ms) changes nothing a step leaves, so it is skipped.

    Args:
        code: The exit code.
    """
    import atexit

    # logging.shutdown and any handler the step registered still run.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream: nothing more can be said
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run_as_main(sys.argv[1:])
