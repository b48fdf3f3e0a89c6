"""Process-wide switches and names shared by the stepwire runtime."""

from __future__ import annotations

import os

#: Set by the step entrypoint before it imports user code, so that a module-level
#: ``pipeline.run()`` in the user's script does not start a whole pipeline from
#: inside a step process. Also honoured through the environment variable named by
#: :data:`ENV_PREVENT_PIPELINE_EXECUTION` (see :func:`should_prevent_pipeline_execution`).
SHOULD_PREVENT_PIPELINE_EXECUTION: bool = False

#: Importable module source of the script the user ran (e.g. ``"run"`` for
#: ``python run.py``). Set by the step entrypoint, where ``__main__`` is the
#: entrypoint itself, so that nested launches still name the user's module.
USER_MAIN_MODULE: str | None = None

#: Environment variable that, when truthy, has the same effect as
#: :data:`SHOULD_PREVENT_PIPELINE_EXECUTION`.
ENV_PREVENT_PIPELINE_EXECUTION = "STEPWIRE_PREVENT_PIPELINE_EXECUTION"

#: Prefix of the execution properties stepwire adds for itself (cache busting);
#: they are dropped before the step function sees its parameters.
INTERNAL_EXECUTION_PARAMETER_PREFIX = "stepwire-"

#: Name of the single output of a step whose return annotation is not ``Output(...)``.
SINGLE_RETURN_OUT_NAME = "output"

_TRUTHY = frozenset({"1", "true", "yes", "on"})


def should_prevent_pipeline_execution() -> bool:
    """Tells whether ``BasePipeline.run()`` must return without running anything.

    Returns:
        True if :data:`SHOULD_PREVENT_PIPELINE_EXECUTION` is set or the environment
        variable ``STEPWIRE_PREVENT_PIPELINE_EXECUTION`` holds a truthy value
        (``1``, ``true``, ``yes``, ``on``; case-insensitive).
    """
    if SHOULD_PREVENT_PIPELINE_EXECUTION:
        return True
    return os.environ.get(ENV_PREVENT_PIPELINE_EXECUTION, "").strip().lower() in _TRUTHY


#: Environment variable that, when truthy, makes the step entrypoint exit 0 with a
#: plain message instead of failing when its step already succeeded in the run.
ENV_TOLERATE_RERUN = "STEPWIRE_TOLERATE_RERUN"


def tolerate_rerun() -> bool:
    """Tells whether re-launching a step that already succeeded in its run is tolerated.

    Returns:
        True if ``STEPWIRE_TOLERATE_RERUN`` holds a truthy value.
    """
    return os.environ.get(ENV_TOLERATE_RERUN, "").strip().lower() in _TRUTHY


#: Environment variable that, when truthy, lets TFX's and absl's INFO lines (the
#: whole protobuf node of the step, twice per step) through in a step process; by
#: default only their warnings and errors are printed, beside stepwire's own lines.
ENV_TFX_LOGS = "STEPWIRE_TFX_LOGS"


def show_tfx_logs() -> bool:
    """Tells whether TFX's INFO logs are wanted in a step process.

    Returns:
        True if ``STEPWIRE_TFX_LOGS`` holds a truthy value.
    """
    return os.environ.get(ENV_TFX_LOGS, "").strip().lower() in _TRUTHY
