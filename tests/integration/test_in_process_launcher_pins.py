"""Pins what ``stepwire.in_process_launcher`` relies on in TFX's portable launcher.

``InProcessLauncher.launch`` does what TFX's ``Launcher.launch`` does for a node with
an executor, without the ``ExecutionWatcher``, by calling the launcher's private
steps in TFX's order. An ml-pipelines-sdk release that adds a step to ``launch``,
renames one, or starts the watcher elsewhere fails these tests instead of changing
quietly what a step does.
"""

from __future__ import annotations

import inspect
import re

from tfx.orchestration.portable import launcher

from stepwire.in_process_launcher import InProcessLauncher

# TFX's launch(), in order, for a node with an executor.
STEPS = (
    "self._prepare_execution()",
    "execution_watcher.ExecutionWatcher(",
    "self._run_executor(",
    "self._publish_failed_execution(",
    "self._clean_up_stateless_execution_info(",
    "self._clean_up_stateful_execution_info(",
    "self._publish_successful_execution(",
)
UPGRADED = (
    "ml-pipelines-sdk changed Launcher.launch: {what}. stepwire.in_process_launcher "
    "repeats its steps without the ExecutionWatcher; adapt it, then these pins."
)


def test_tfx_launch_takes_the_steps_the_in_process_launcher_repeats() -> None:
    source = inspect.getsource(launcher.Launcher.launch)
    positions = [source.find(step) for step in STEPS]
    missing = [step for step, at in zip(STEPS, positions, strict=True) if at < 0]
    assert not missing, UPGRADED.format(what=f"no {missing}")
    assert positions == sorted(positions), UPGRADED.format(what="its steps are in another order")
    # Nothing else of the launcher's is called there (the system-node branch aside).
    called = set(re.findall(r"self\.(_[a-z_]+(?:\.[a-z_]+)*)\(", source))
    assert called == {
        "_system_node_handler.run",
        "_prepare_execution",
        "_executor_operator.with_execution_watcher",
        "_run_executor",
        "_publish_failed_execution",
        "_clean_up_stateless_execution_info",
        "_clean_up_stateful_execution_info",
        "_publish_successful_execution",
    }, UPGRADED.format(what=f"it calls {sorted(called)}")


def test_the_private_names_it_uses_exist() -> None:
    for name in (
        "_prepare_execution",
        "_run_executor",
        "_publish_failed_execution",
        "_clean_up_stateless_execution_info",
        "_clean_up_stateful_execution_info",
        "_publish_successful_execution",
    ):
        assert callable(getattr(launcher.Launcher, name, None)), UPGRADED.format(what=f"no {name}")
    assert issubclass(launcher._ExecutionFailedError, Exception)
    assert "executor_output" in inspect.getsource(launcher._ExecutionFailedError)
    assert issubclass(InProcessLauncher, launcher.Launcher)
