"""The import stand-ins of a step process (``stepwire._fast_imports``).

Stand-ins change ``sys.modules`` and ``sys.meta_path`` for good, so every case runs in
a fresh interpreter (``sys.executable -c``) and reports what it saw as one JSON line.
The cases that import TFX's launcher take about a second each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stepwire import _fast_imports

ENV = _fast_imports.ENV_FULL_TFX_IMPORTS
PORTABLE = "tfx.orchestration.portable"
BEAM = f"{PORTABLE}.beam_executor_operator"
DOCKER = f"{PORTABLE}.docker_executor_operator"
# What stays a stand-in once TFX's launcher is imported: the two operator modules, and
# the empty module tfx/__init__ puts in place of tfx_bsl's (a MagicMock in full).
STAYING = sorted([BEAM, DOCKER, "tfx_bsl.arrow.sql_util"])

# Run before each case's code: keeps the module's log records, and gives the helpers
# the cases share.
PRELUDE = """
import json
import logging
import sys

from stepwire import _fast_imports as fi

RECORDS = []


class Keep(logging.Handler):
    def emit(self, record):
        RECORDS.append([record.levelname, record.getMessage()])


if "--keep-logs" in sys.argv:
    logging.getLogger("stepwire._fast_imports").addHandler(Keep())


def is_stand_in(name):
    return getattr(sys.modules.get(name), fi.STAND_IN_MARK, False) is True


def stand_ins():
    return sorted(n for n in list(sys.modules) if is_stand_in(n))


def scoped_finders():
    return sum(type(f).__name__ == "_ScopedStandInFinder" for f in sys.meta_path)


def tfx_imported():
    return sorted(
        n for n in sys.modules if (n == "tfx" or n.startswith("tfx.")) and not is_stand_in(n)
    )


def make_launcher(executor_spec):
    # What stepwire's orchestrator builds (base_orchestrator.launch_step): the
    # launcher picks, and instantiates, the executor operator for the spec's type.
    from tfx.orchestration.portable import launcher
    from tfx.proto.orchestration import pipeline_pb2

    return launcher.Launcher(
        pipeline_node=pipeline_pb2.PipelineNode(),
        mlmd_connection=None,
        pipeline_info=pipeline_pb2.PipelineInfo(id="p"),
        pipeline_runtime_spec=pipeline_pb2.PipelineRuntimeSpec(),
        executor_spec=executor_spec,
    )


def report(**values):
    print(json.dumps(dict(values, records=RECORDS)))
"""


def run(
    code: str, *args: str, full_imports: str | None = None, keep_logs: bool = True
) -> tuple[dict[str, Any], str]:
    """Runs PRELUDE + ``code`` in a fresh interpreter; its report and its stderr."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if full_imports is not None:
        env[ENV] = full_imports
    argv = [*args, "--keep-logs"] if keep_logs else list(args)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_a_python_executor_spec_gets_tfx_s_real_python_executor_operator() -> None:
    result, _ = run("""
        installed = fi.install()
        from tfx.orchestration.portable import launcher, python_executor_operator
        from tfx.proto.orchestration import executable_spec_pb2

        spec = executable_spec_pb2.PythonClassExecutableSpec(
            class_path="tfx.dsl.components.base.base_executor.BaseExecutor"
        )
        operator = make_launcher(spec)._executor_operator
        real = python_executor_operator.PythonExecutorOperator
        report(
            installed=installed,
            stand_ins=stand_ins(),
            operator=f"{type(operator).__module__}.{type(operator).__qualname__}",
            is_real_class=type(operator) is real,
            registry_is_real=launcher.DEFAULT_EXECUTOR_OPERATORS[type(spec)] is real,
            module_is_stand_in=is_stand_in(python_executor_operator.__name__),
            module_file=python_executor_operator.__file__,
        )
    """)
    # The stand-ins were in place (else this case would prove nothing)...
    assert BEAM in result["installed"]
    assert result["stand_ins"] == STAYING
    # ... and the launcher still built TFX's own operator from TFX's own module.
    assert result["operator"] == f"{PORTABLE}.python_executor_operator.PythonExecutorOperator"
    assert result["is_real_class"] is True
    assert result["registry_is_real"] is True
    assert result["module_is_stand_in"] is False
    assert Path(result["module_file"]).parts[-4:] == (
        "tfx",
        "orchestration",
        "portable",
        "python_executor_operator.py",
    )
    assert result["records"] == []


@pytest.mark.parametrize(
    ("spec", "operator", "needs"),
    [
        ("BeamExecutableSpec", f"{BEAM}.BeamExecutorOperator", "apache-beam"),
        ("ContainerExecutableSpec", f"{DOCKER}.DockerExecutorOperator", "docker"),
    ],
)
def test_b_other_executable_specs_raise_the_skipped_error(
    spec: str, operator: str, needs: str
) -> None:
    result, _ = run(
        """
        fi.install()
        from tfx.proto.orchestration import executable_spec_pb2

        try:
            make_launcher(getattr(executable_spec_pb2, sys.argv[1])())
        except Exception as e:
            report(
                error=f"{type(e).__module__}.{type(e).__qualname__}",
                is_skipped=isinstance(e, fi.SkippedOperatorError),
                message=str(e),
            )
        else:
            report(error=None)
        """,
        spec,
    )
    assert result["error"] == "stepwire._fast_imports.SkippedOperatorError"
    assert result["is_skipped"] is True
    message = result["message"]
    assert message.startswith(f"{operator} is not loaded in a stepwire step process")
    assert needs in message
    assert f"Set {ENV}=1 to load the real module." in message


IMPORT_LAUNCHER = """
    installed = fi.install()
    from tfx.orchestration.portable import launcher
    from tfx.utils import telemetry_utils

    http = sys.modules.get("googleapiclient.http")
    report(
        installed=installed,
        stand_ins=stand_ins(),
        finders=scoped_finders(),
        operator_files=[getattr(sys.modules[n], "__file__", None) for n in sys.argv[1:3]],
        googleapiclient_http=None if http is None else not is_stand_in("googleapiclient.http"),
        real_http_request_base=(
            http is not None and http.HttpRequest in telemetry_utils.TFXHttpRequest.__mro__
        ),
    )
"""


@pytest.mark.parametrize("value", ["1", "yes"])
def test_c_the_opt_out_loads_the_real_modules(value: str) -> None:
    result, _ = run(IMPORT_LAUNCHER, BEAM, DOCKER, full_imports=value)
    assert result["installed"] == []
    assert result["stand_ins"] == []
    assert result["finders"] == 0
    assert all(f and f.endswith(".py") for f in result["operator_files"]), result
    # telemetry_utils imported the real googleapiclient.http and subclasses its class.
    assert result["googleapiclient_http"] is True
    assert result["real_http_request_base"] is True
    # Opting out is not a mismatch: nothing to warn about.
    assert result["records"] == []


@pytest.mark.parametrize("value", [None, "", "0"])
def test_c_without_the_opt_out_the_same_modules_are_stand_ins(value: str | None) -> None:
    result, _ = run(IMPORT_LAUNCHER, BEAM, DOCKER, full_imports=value)
    assert result["stand_ins"] == STAYING
    assert result["operator_files"] == [None, None]
    # The scoped googleapiclient.http stand-in is gone once telemetry_utils ran.
    assert result["googleapiclient_http"] is None
    assert result["real_http_request_base"] is False
    assert result["finders"] == 0  # The finder removes itself once its work is done.


# Installs under a patched gate, and checks nothing changed but one warning.
MISMATCH = """
    import importlib.metadata

    patch = sys.argv[1]
    if patch == "written-for":
        fi.WRITTEN_FOR_TFX = sys.argv[2]
    elif patch == "lookup":
        fi._installed_version = lambda distribution: sys.argv[2]
    elif patch == "distribution":
        fi.TFX_DISTRIBUTION = sys.argv[2]
    meta_path = list(sys.meta_path)
    results = [fi.install(), fi.install(), fi.enabled(), fi.enabled()]
    report(
        results=results,
        stand_ins=stand_ins(),
        meta_path_unchanged=sys.meta_path == meta_path,
        tfx=tfx_imported(),
        real=importlib.metadata.version("ml-pipelines-sdk"),
    )
"""


@pytest.mark.parametrize(
    ("patch", "value", "found"),
    [
        # Exact string equality: neither PEP 440 equality ("1.21" == "1.21.0") nor
        # string ordering ("1.3.0" > "1.21.0") decides.
        ("written-for", "1.21", "{real!r} is installed"),
        ("written-for", "1.21.0.0", "{real!r} is installed"),
        ("written-for", "1.3.0", "{real!r} is installed"),
        ("written-for", "1.100.0", "{real!r} is installed"),
        ("lookup", "1.22.0", "'1.22.0' is installed"),
        ("lookup", "1.21.0 ", "'1.21.0 ' is installed"),
        ("distribution", "stepwire-no-such-distribution", "none is installed"),
    ],
)
def test_d_a_version_mismatch_installs_nothing_and_logs_one_line(
    patch: str, value: str, found: str
) -> None:
    result, _ = run(MISMATCH, patch, value)
    assert result["results"] == [[], [], False, False]
    assert result["stand_ins"] == []
    assert result["meta_path_unchanged"] is True
    assert result["tfx"] == []
    assert len(result["records"]) == 1, result["records"]
    level, message = result["records"][0]
    assert level == "WARNING"
    assert "\n" not in message
    written_for = value if patch == "written-for" else "1.21.0"
    distribution = value if patch == "distribution" else "ml-pipelines-sdk"
    assert f"written for {distribution} {written_for!r} but " in message
    assert found.format(real=result["real"]) in message
    assert f"Set {ENV}=1 to silence this warning." in message


def test_d_the_warning_is_one_stderr_line_when_logging_is_not_configured() -> None:
    result, stderr = run(MISMATCH, "lookup", "1.22.0", keep_logs=False)
    assert result["results"] == [[], [], False, False]
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "'1.22.0' is installed" in lines[0]


def test_d_a_shadowing_distribution_on_sys_path_is_the_one_checked(tmp_path: Path) -> None:
    # A real mismatch, no patching: another ml-pipelines-sdk first on sys.path, named
    # as loosely as importlib.metadata allows.
    info = tmp_path / "ML.Pipelines_SDK-1.22.0rc1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ml-pipelines-sdk\nversion: 1.22.0rc1\n\nVersion: 9\n",
        encoding="utf-8",
    )
    result, _ = run(
        """
        sys.path.insert(0, sys.argv[1])
        import importlib.metadata

        installed = fi.install()
        report(
            installed=installed,
            looked_up=fi._installed_version("ml-pipelines-sdk"),
            importlib=importlib.metadata.version("ml-pipelines-sdk"),
        )
        """,
        str(tmp_path),
    )
    assert result["installed"] == []
    assert result["looked_up"] == result["importlib"] == "1.22.0rc1"
    assert len(result["records"]) == 1
    assert "'1.22.0rc1' is installed" in result["records"][0][1]


def test_d_the_matching_version_is_read_cheaply_and_installs() -> None:
    result, _ = run("""
        installed = fi.install()
        cheap = "importlib.metadata" not in sys.modules
        tfx = tfx_imported()
        import importlib.metadata

        report(
            installed=installed,
            cheap=cheap,
            tfx=tfx,
            looked_up=fi._installed_version("ml-pipelines-sdk"),
            importlib=importlib.metadata.version("ml-pipelines-sdk"),
        )
    """)
    assert result["looked_up"] == result["importlib"] == _fast_imports.WRITTEN_FOR_TFX
    assert result["installed"]
    # The lookup neither imports importlib.metadata (~55 ms) nor anything of TFX.
    assert result["cheap"] is True
    assert result["tfx"] == []
    assert result["records"] == []


def test_e_enabled_and_install_are_idempotent() -> None:
    result, _ = run(
        """
        enabled = [fi.enabled(), fi.enabled()]
        first = fi.install()
        operators = [sys.modules[n] for n in sys.argv[1:3]]
        again = [fi.install(), fi.install()]
        finders = scoped_finders()
        enabled.append(fi.enabled())
        from tfx.orchestration.portable import python_executor_operator
        from tfx.proto.orchestration import executable_spec_pb2

        spec = executable_spec_pb2.PythonClassExecutableSpec(
            class_path="tfx.dsl.components.base.base_executor.BaseExecutor"
        )
        operator = make_launcher(spec)._executor_operator
        report(
            enabled=enabled,
            first=first,
            again=again,
            after_launcher=fi.install(),
            finders=finders,
            same_operators=all(sys.modules[n] is m for n, m in zip(sys.argv[1:3], operators)),
            stand_ins=stand_ins(),
            python_operator=type(operator) is python_executor_operator.PythonExecutorOperator,
        )
        """,
        BEAM,
        DOCKER,
    )
    assert result["enabled"] == [True, True, True]
    assert sorted(result["first"]) == sorted([BEAM, DOCKER, "tfx", "tfx.utils.telemetry_utils"])
    assert result["again"] == [[], []]
    assert result["after_launcher"] == []
    assert result["finders"] == 1
    assert result["same_operators"] is True
    assert result["stand_ins"] == STAYING
    assert result["python_operator"] is True
    assert result["records"] == []
