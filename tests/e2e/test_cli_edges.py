"""Rough edges of the ``stepwire`` command line, each as a user meets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stepwire_testkit import clean_environment, explain

ARGV = [
    "--entrypoint_config_source",
    "stepwire.orchestrators.subprocess_orchestrator.SubprocessEntrypointConfiguration",
    "--step_source",
    "a.b",
    "--pipeline_json",
    "e30=",
    "--input_artifact_sources",
    "e30=",
    "--materializer_sources",
    "e30=",
    "--main_module_source",
    "a",
    "--contract_version",
    "1",
    "--run_name",
    "r",
]


def _stepwire(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepwire", *args],
        cwd=cwd,
        env=clean_environment(STEPWIRE_CONFIG=""),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version_and_help_without_markup(tmp_path: Path) -> None:
    from importlib.metadata import version

    shown = _stepwire(tmp_path, "--version")
    assert shown.returncode == 0, explain(shown)
    assert shown.stdout.strip() == f"stepwire {version('stepwire')}"
    helped = _stepwire(tmp_path, "--help")
    assert helped.returncode == 0
    assert "``" not in helped.stdout
    assert "The stepwire command line" in helped.stdout


def test_explain_takes_pasted_arguments_without_a_separator_and_refuses_an_empty_ir(
    tmp_path: Path,
) -> None:
    pasted = _stepwire(tmp_path, "args", "explain", *ARGV)
    assert pasted.returncode == 64, explain(pasted)
    # Parsed as the step's arguments (no argparse error about unknown options)...
    assert "unrecognized arguments" not in pasted.stderr
    # ...and the empty IR is reported, not shown as a pipeline named "".
    assert pasted.stderr.strip() == (
        "stepwire: bad_arguments: --pipeline_json: the pipeline IR carries no node (an "
        "empty IR such as e30=, base64 of {}, describes no step)"
    )
    separated = _stepwire(tmp_path, "args", "explain", "--", *ARGV)
    assert (separated.returncode, separated.stderr) == (pasted.returncode, pasted.stderr)


def test_run_names_a_missing_file_and_a_missing_dependency(tmp_path: Path) -> None:
    missing = _stepwire(tmp_path, "run", "nosuch.py:p")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "stepwire: 'nosuch.py': no such file (from 'nosuch.py:p')"

    (tmp_path / "needs.py").write_text("import a_package_that_is_not_installed\n")
    needs = _stepwire(tmp_path, "run", "needs.py:p")
    assert needs.returncode == 2
    assert needs.stderr.strip() == (
        "stepwire: 'needs.py' imports 'a_package_that_is_not_installed', which is not "
        f"installed in this environment ({sys.executable})"
    )


def test_reading_runs_in_an_empty_folder_creates_nothing_and_names_the_store(
    tmp_path: Path,
) -> None:
    listed = _stepwire(tmp_path, "runs", "list")
    assert listed.returncode == 0, explain(listed)
    store = tmp_path / ".stepwire" / "metadata.db"
    assert listed.stdout.strip() == (
        f"no runs recorded yet in the metadata store SQLite file {store} (it does not exist yet)"
    )
    shown = _stepwire(tmp_path, "runs", "show", "r")
    assert shown.returncode == 1
    assert shown.stderr.strip() == (
        f"stepwire: no run named 'r' in the metadata store SQLite file {store} "
        "(it does not exist yet)"
    )
    logs = _stepwire(tmp_path, "logs", "r", "s")
    assert logs.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_default_run_names_sort_in_the_order_runs_started() -> None:
    import re
    import time

    from stepwire.orchestrators.base_orchestrator import default_run_name

    first = default_run_name("p")
    time.sleep(0.002)
    second = default_run_name("p")
    pattern = r"p-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{6}Z"
    assert re.fullmatch(pattern, first), first
    assert re.fullmatch(pattern, second), second
    assert sorted([second, first]) == [first, second]


def test_the_step_entrypoint_shows_its_help_and_exits_0(tmp_path: Path) -> None:
    for flag in ("--help", "-h"):
        shown = subprocess.run(
            [sys.executable, "-m", "stepwire.entrypoints.step_entrypoint", flag],
            cwd=tmp_path,
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, explain(shown)
        assert shown.stdout.startswith("usage: python -m stepwire.entrypoints.step_entrypoint")
        assert "--pipeline_json" in shown.stdout
        assert "70 step_failed" in shown.stdout
