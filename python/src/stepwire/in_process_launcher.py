"""TFX's portable launcher, without the gRPC server an in-process executor never calls.

For every execution it runs, TFX's ``Launcher.launch`` picks a free port and starts
an ``ExecutionWatcher``: a gRPC server, with its threads, through which an executor
running in another process may update its execution in ML Metadata. A stepwire
executor runs in the launcher's own process and reports through its return value,
so nothing calls that server; starting and stopping it cost a step 12-30 ms
(measured in a warm step process, about a fifth of the step) and left native threads
in the step process while the user's function ran.

:class:`InProcessLauncher` is TFX's launcher with ``launch`` doing what TFX's does for
a node with an executor (prepare, run the executor, publish it FAILED or COMPLETE,
clean up) and nothing else. Everything else, the driver, the input resolution, the
publishing, is TFX's own code. ``tests/integration/test_in_process_launcher_pins.py``
fails if a TFX release changes the steps of ``launch`` it repeats.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from tfx.orchestration.portable import launcher

# TFX's own lines go through absl's logger, as TFX's launcher writes them: they are
# shown, like the rest of TFX's, with STEPWIRE_TFX_LOGS=1.
_tfx_log = logging.getLogger("absl")


class InProcessLauncher(launcher.Launcher):
    """TFX's portable launcher for executors that run in the launching process."""

    def launch(self) -> Any:
        """Runs the node: prepares its execution, runs the executor and publishes it.

        Returns:
            The execution's ``ExecutionInfo`` as TFX's launcher returns it (``None``
            when its driver decides nothing is to run).

        Raises:
            Exception: What the executor raised, after its execution is published
                FAILED.
        """
        if self._system_node_handler is not None or self._executor_operator is None:
            return super().launch()
        _tfx_log.info("Running launcher for %s", self._pipeline_node)
        prepared = self._prepare_execution()
        info = prepared.execution_info
        if not prepared.is_execution_needed:
            return info
        # Registered by the preparation whenever the execution is needed.
        execution_id = cast(int, info.execution_id)
        try:
            executor_output = self._run_executor(info)
        except Exception as error:
            failed_output = (
                error.executor_output if isinstance(error, launcher._ExecutionFailedError) else None
            )
            self._publish_failed_execution(execution_id, prepared.contexts, failed_output)
            _tfx_log.error("Execution %d failed.", execution_id)
            raise
        finally:
            self._clean_up_stateless_execution_info(info)
        _tfx_log.info("Execution %d succeeded.", execution_id)
        self._clean_up_stateful_execution_info(info)
        _tfx_log.info(
            "Publishing output artifacts %s for execution %s", info.output_dict, execution_id
        )
        self._publish_successful_execution(
            execution_id, prepared.contexts, info.output_dict, executor_output
        )
        return info
