"""A stepwire step process with its phases timed: ``phases_step.py ARGS...``.

ARGS are the arguments of ``python -m stepwire.entrypoints.step_entrypoint``. This
script does what that module's ``__main__`` block does (install the import
stand-ins unless ``STEPWIRE_FULL_TFX_IMPORTS`` is set, then ``main()`` through
``run_and_exit``), with the imports done up front, one group at a time, and the
functions ``StepEntrypointConfiguration.run()`` calls wrapped to time them
(tools/bench/phase_timer.py). The runtime itself is not modified. Phase times go to
``$BENCH_PHASES_OUT``.
"""

import time

START = time.monotonic()

import sys  # noqa: E402

from phase_timer import PhaseTimer  # noqa: E402

TIMER = PhaseTimer(START)

from stepwire import _fast_imports  # noqa: E402

_fast_imports.install()

import stepwire.entrypoints.step_entrypoint as entrypoint  # noqa: E402

TIMER.mark("imports: stepwire entrypoint")

# What StepEntrypointConfiguration.run() imports.
import stepwire.materializers  # noqa: E402, F401
from stepwire._protos import Pipeline  # noqa: E402, F401
from stepwire.entrypoints import exit_codes  # noqa: E402
from stepwire.exceptions import DuplicateRunNameError  # noqa: E402, F401
from stepwire.stack import get_active_stack  # noqa: E402, F401
from stepwire.steps.base_step import BaseStep  # noqa: E402, F401

TIMER.mark("imports: stepwire runtime")

# What stepwire.step_launcher.launch_step imports.
from tfx.orchestration import metadata  # noqa: E402, F401
from tfx.orchestration.local import runner_utils  # noqa: E402, F401
from tfx.orchestration.portable import launcher  # noqa: E402, F401
from tfx.orchestration.portable.mlmd import execution_lib  # noqa: E402, F401

TIMER.mark("imports: TFX launcher + MLMD")

INSTRUMENTATION = "bench instrumentation (imports some first-use modules early)"


def _instrument() -> None:
    import builtins
    import contextlib

    import google.protobuf.json_format

    import stepwire.stack
    import stepwire.step_launcher
    from stepwire.entrypoints import loading, step_runner
    from stepwire.entrypoints import step_entrypoint_configuration as sec

    # stepwire's own ML Metadata connection class, where there is one.
    with contextlib.suppress(ImportError):
        import stepwire.mlmd_guard
    config = sec.StepEntrypointConfiguration

    def by_what(source: str, base: type, what: str) -> str:
        if what == "entrypoint config":
            return "load configuration class"
        if what == "step":
            return "import user module"
        return "executor generation"

    TIMER.wrap(config, "_decode_arguments", "decode arguments")
    TIMER.wrap(google.protobuf.json_format, "Parse", "decode arguments", top_level_only=True)
    TIMER.wrap(sec, "load_class", by_what)
    TIMER.wrap(step_runner, "load_class", by_what)
    TIMER.wrap(loading, "load_class", by_what)  # main() imports it when it runs
    TIMER.wrap(step_runner, "import_user_module", "import user module")
    TIMER.wrap(config, "_create_executor_class", "executor generation")
    TIMER.wrap(stepwire.stack, "get_active_stack", "stack configuration")
    TIMER.wrap_tfx_launcher()
    TIMER.wrap(stepwire.step_launcher, "launch_step", "stepwire: rerun check, outcome")
    # Import statements run while the step runs (modules imported on first use).
    TIMER.wrap(builtins, "__import__", "imports on first use (during the run)")


def _main() -> None:
    _instrument()
    TIMER.mark(INSTRUMENTATION)
    entrypoint.main(sys.argv[1:])
    TIMER.write()


if __name__ == "__main__":
    exit_codes.run_and_exit(_main)
