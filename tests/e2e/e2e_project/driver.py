"""The step side in miniature: recreate one step from its sources and launch it.

Usage: driver.py ARGUMENTS_JSON RUN_NAME. Prints ``OUTCOME {...}``; exit code 3 for
InputResolutionError, 4 for DuplicateRunNameError, 2 for other stepwire errors.
"""

import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

from google.protobuf import json_format  # noqa: E402
from tfx.orchestration.portable import launcher  # noqa: E402, F401  (counted in import time)

import stepwire.materializers  # noqa: E402, F401  (registers the built-in materializers)
from stepwire import _protos, constants, source_utils  # noqa: E402
from stepwire.artifacts.type_registry import type_registry  # noqa: E402
from stepwire.exceptions import (  # noqa: E402
    DuplicateRunNameError,
    InputResolutionError,
    StepwireError,
)
from stepwire.stack import get_active_stack  # noqa: E402
from stepwire.step_launcher import launch_step  # noqa: E402
from stepwire.steps.executor import generate_component_class  # noqa: E402

IMPORTED = time.perf_counter()


def main():
    constants.SHOULD_PREVENT_PIPELINE_EXECUTION = True
    with open(sys.argv[1], encoding="utf-8") as f:
        arguments = json.load(f)
    run_name = sys.argv[2]
    pb2_pipeline = _protos.Pipeline()
    json_format.Parse(arguments["pipeline_json"], pb2_pipeline)
    main_module = arguments["main_module_source"]
    source_utils.import_main_module(main_module)
    constants.USER_MAIN_MODULE = main_module

    step_source = source_utils.strip_pin(arguments["step_source"])
    step = source_utils.load_source_path_class(step_source)()
    step_module = step_source.rsplit(".", 1)[0]
    # The IR names the executor by the module the step had on the client side:
    # `__main__` when the user ran `python run.py`.
    step.__module__ = "__main__" if step_module == main_module else step_module
    load = source_utils.load_source_path_class
    generate_component_class(
        step_name=step.name,
        step_module=step.__module__,
        input_spec={k: load(v) for k, v in arguments["input_artifact_sources"].items()},
        output_spec={
            k: type_registry.get_artifact_type(t)[0] for k, t in step.OUTPUT_SIGNATURE.items()
        },
        execution_parameter_names=set(step.PARAM_SPEC) | set(step._internal_execution_parameters),
        step_function=step.entrypoint,
        materializers={k: load(v) for k, v in arguments["materializer_sources"].items()},
    )
    stack = get_active_stack()
    launched = time.perf_counter()
    result = launch_step(step, run_name, pb2_pipeline, stack)
    done = time.perf_counter()
    report = {
        "outcome": result.outcome.value,
        "execution_id": result.execution_id,
        "import_seconds": round(IMPORTED - START, 3),
        "launch_seconds": round(done - launched, 3),
    }
    print("OUTCOME " + json.dumps(report))


if __name__ == "__main__":
    try:
        main()
    except InputResolutionError as e:
        print(f"ERROR InputResolutionError: {e}")
        sys.exit(3)
    except DuplicateRunNameError as e:
        print(f"ERROR DuplicateRunNameError: {e}")
        sys.exit(4)
    except StepwireError as e:
        print(f"ERROR {type(e).__name__}: {e}")
        sys.exit(2)
