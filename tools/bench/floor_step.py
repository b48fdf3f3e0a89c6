"""The floor: one node of a compiled pipeline run with TFX's portable launcher, nothing else.

Usage: ``floor_step.py PIPELINE_B64 RUN_ID METADATA_DB [--stand-ins]``. PIPELINE_B64 is
the base64 of the compact JSON of the IR cut down to one node (what a stepwire step
receives too); the run id is substituted as stepwire and TFX's local runner do
(``runtime_parameter_utils``, ``runner_utils``, ``launcher.Launcher(...).launch()``,
REFERENCE section 4.1). Nothing of stepwire is imported, except with ``--stand-ins``:
then ``stepwire._fast_imports`` (standard library only) first, to measure the floor
with the same import savings. With ``$BENCH_PHASES_OUT`` set, phase times are
written there (tools/bench/phase_timer.py).
"""

import time

START = time.monotonic()

import os  # noqa: E402
import sys  # noqa: E402

INSTRUMENTED = bool(os.environ.get("BENCH_PHASES_OUT"))
if INSTRUMENTED:
    from phase_timer import PhaseTimer

    TIMER = PhaseTimer(START)
if "--stand-ins" in sys.argv:
    from stepwire import _fast_imports

    _fast_imports.install()

import base64  # noqa: E402

from google.protobuf import json_format  # noqa: E402
from tfx.dsl.compiler import constants  # noqa: E402
from tfx.orchestration import metadata  # noqa: E402
from tfx.orchestration.local import runner_utils  # noqa: E402
from tfx.orchestration.portable import launcher, runtime_parameter_utils  # noqa: E402
from tfx.proto.orchestration import pipeline_pb2  # noqa: E402


def main() -> None:
    if INSTRUMENTED:
        TIMER.mark("imports: TFX launcher + MLMD")
        TIMER.wrap_tfx_launcher()
        TIMER.mark("bench instrumentation (imports some first-use modules early)")
    encoded, run_id, database = sys.argv[1:4]
    pipeline = pipeline_pb2.Pipeline()
    json_format.Parse(base64.b64decode(encoded), pipeline)
    if INSTRUMENTED:
        TIMER.mark("decode arguments")
    node = pipeline.nodes[0].pipeline_node
    deployment_config = runner_utils.extract_local_deployment_config(pipeline)
    executor_spec = runner_utils.extract_executor_spec(deployment_config, node.node_info.id)
    # The user's module: what the executor class path names.
    __import__(executor_spec.class_path.rpartition(".")[0])
    if INSTRUMENTED:
        TIMER.mark("import user module")
    runtime_parameter_utils.substitute_runtime_parameter(
        pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    custom_driver_spec = runner_utils.extract_custom_driver_spec(
        deployment_config, node.node_info.id
    )
    connection_config = metadata.sqlite_metadata_connection_config(database)
    launcher.Launcher(
        pipeline_node=node,
        mlmd_connection=metadata.Metadata(connection_config),
        pipeline_info=pipeline.pipeline_info,
        pipeline_runtime_spec=pipeline.runtime_spec,
        executor_spec=executor_spec,
        custom_driver_spec=custom_driver_spec,
    ).launch()
    if INSTRUMENTED:
        TIMER.write()


if __name__ == "__main__":
    main()
