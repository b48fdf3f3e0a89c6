"""Short runs of the stress tools of ``tools/stress``: each reports no problem.

The full runs are for people, and give the robustness figures the README quotes::

    python tools/stress/bad_inputs.py --jobs 2          # every malformed input
    python tools/stress/sigkill_sweep.py --concurrent 10  # 69 moments x 2 modes
    python tools/stress/explain_fuzz.py --count 20000 --isolated
    python tools/stress/argv_fuzz.py --count 20000

Here each runs on a budget of seconds: a few malformed inputs through real step
processes, a SIGKILL at three moments in each mode and one round of simultaneous
launches, 200 explain cases. The tests marked ``xfail`` pin what the tools found
wrong in ``python/src`` (strict: each fails loudly once it is fixed, so the mark
goes with the fix).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import bad_inputs
import explain_fuzz
import pytest
import sigkill_sweep

# Malformed inputs of every family that are handled cleanly today.
SMOKE_CASES = [
    "run: the unbroken command line",
    "--step_source: missing",
    "--run_name: not UTF-8 (byte 0xff)",
    "zlib: truncated stream",
    "ref: a link to /dev/zero",
    "--contract_version '2'",
    "IR: output key ../../x",
    "code: step module raises at import",
    "stack: zero-length metadata file",
    "step segfaults (ctypes.string_at(0))",
    "step raises an exception whose __str__ raises",
    "run: the consumer without its producer",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> bad_inputs.Project:
    """The bad-inputs pipeline, planned once for the module."""
    return bad_inputs.Project.create(tmp_path_factory.mktemp("bad-inputs"))


def _case(name: str) -> tuple[int, bad_inputs.Case]:
    [found] = [(i, c) for i, c in enumerate(bad_inputs.corpus()) if c.name == name]
    return found


def _explain(result: bad_inputs.Result) -> str:
    return f"{result.case.name}: expected {result.case.expect}, got {result.got}: {result.problems}"


def test_the_corpus_covers_every_family_of_bad_input() -> None:
    cases = bad_inputs.corpus()
    assert len(cases) >= 100
    names = " | ".join(c.name for c in cases)
    for fragment in [
        "missing",
        "empty",
        "repeated",
        "unknown option",
        "not UTF-8",
        "not base64",
        "JSON: truncated",
        "shape:",
        "zlib: truncated",
        "bytes after the stream",
        "size:",
        "outside the store",
        "a link to",
        "a FIFO",
        "/dev/zero",
        "missing file",
        "sha256 mismatch",
        "--contract_version",
        "custom driver",
        "executor class of another step",
        "pipelineRoot fixed outside",
        "output key ../../x",
        "undeclared parameter",
        "non-JSON parameter",
        "step module does not import",
        "step module raises at import",
        "metadata folder under a plain file",
        "zero-length metadata file",
        "unknown metadata store type",
        "step raises",
        "os._exit(0)",
        "segfaults",
        "SIGKILLs itself",
        "__str__ raises",
        "lone surrogates",
        "10 KB name",
    ]:
        assert fragment in names, fragment
    assert all(c.expect in {0, *bad_inputs.KINDS} for c in cases)


def test_malformed_inputs_of_every_family_are_handled_cleanly(
    project: bad_inputs.Project,
) -> None:
    results = [
        bad_inputs.run_case(project, case, index, timeout=60)
        for index, case in map(_case, SMOKE_CASES)
    ]
    assert [_explain(r) for r in results if not r.clean] == []


# Before the launch, while the step runs, after it published: moments keyed on events
# (a time offset could fall where a known gap is, see the xfail tests below).
SWEEP_EVENTS = ["child forked", "step function entered", "'completed' logged"]


def test_a_sigkill_at_three_moments_in_each_mode_leaves_no_anomaly(tmp_path: Path) -> None:
    found = sigkill_sweep.sweep(
        0,
        ["group", "child"],
        rounds=1,
        launches=2,
        calibration_runs=1,
        events=SWEEP_EVENTS,
        root=tmp_path,
    )
    assert len(found.kills) == 6
    assert len(found.rounds) == 1
    anomalies = [(k.mode, k.moment.label, k.anomalies) for k in found.kills if k.anomalies]
    anomalies += [(f"round {r.index}", "", r.anomalies) for r in found.rounds if r.anomalies]
    assert anomalies == []


def test_explain_fuzz_finds_no_undeclared_error_in_200_cases(tmp_path: Path) -> None:
    # The first 200 cases of this seed meet none of the errors pinned below (about one
    # case in 150 of other seeds does); anything they meet is new.
    report = explain_fuzz.fuzz(200, seed=4, root=tmp_path)
    assert report.cases == 200
    assert report.undeclared == 0, report.examples
    assert set(report.codes) <= explain_fuzz.DOCUMENTED


# --------------------------------------------------------------------------- what they found


def test_a_config_source_that_is_not_utf8_is_bad_arguments(project: bad_inputs.Project) -> None:
    result = bad_inputs.run_case(
        project, *_swap(_case("--entrypoint_config_source: not UTF-8 (byte 0xff)"))
    )
    assert result.clean, _explain(result)


def test_a_reference_above_the_limit_is_payload_too_large(project: bad_inputs.Project) -> None:
    result = bad_inputs.run_case(project, *_swap(_case("ref: 65 MiB file")))
    assert result.clean, _explain(result)


def test_an_ir_node_without_contexts_is_refused(project: bad_inputs.Project) -> None:
    result = bad_inputs.run_case(project, *_swap(_case("IR: node has no contexts")))
    assert result.clean, _explain(result)


def test_a_step_raising_keyboard_interrupt_says_so_first(project: bad_inputs.Project) -> None:
    result = bad_inputs.run_case(project, *_swap(_case("step raises KeyboardInterrupt")))
    assert result.clean, _explain(result)


def test_a_launch_failing_before_its_executor_leaves_no_running_execution(
    project: bad_inputs.Project,
) -> None:
    result = bad_inputs.run_case(
        project, *_swap(_case("step with a 10 KB name (a named instance)"))
    )
    assert result.clean, _explain(result)


def test_a_map_value_that_overflows_a_double_is_bad_json(project: bad_inputs.Project) -> None:
    from stepwire.entrypoints import codec

    args = bad_inputs.replace(
        project.args("produce"), "materializer_sources", bad_inputs.b64('{"output": 1e999}')
    )
    with pytest.raises(codec.ArgumentError) as refused:
        codec.decode([str(a) for a in args])
    assert refused.value.kind is codec.ErrorKind.BAD_JSON


def _swap(found: tuple[int, bad_inputs.Case]) -> tuple[bad_inputs.Case, int, float]:
    index, case = found
    return case, index, 60.0


@pytest.fixture
def material(tmp_path: Path) -> Iterator[explain_fuzz.Material]:
    made = explain_fuzz.make_material(tmp_path)
    with explain_fuzz.fuzz_environment(tmp_path):
        yield made


def test_explain_a_container_whose_command_is_a_number(
    material: explain_fuzz.Material,
) -> None:
    material.file.write_text(json.dumps({"command": 5, "args": []}))
    outcome = explain_fuzz.call_main(["args", "explain", "--from-file", str(material.file)])
    assert outcome.errors == []


def test_explain_an_argv_file_with_a_lone_surrogate(material: explain_fuzz.Material) -> None:
    argv = [*material.commands["produce"][3:], "--\ud800"]
    material.file.write_text(json.dumps(argv))
    outcome = explain_fuzz.call_main(["args", "explain", "--from-file", str(material.file)])
    assert outcome.errors == []


@pytest.mark.slow
def test_explain_an_alias_tree_in_a_template_name(tmp_path: Path) -> None:
    found = dict(explain_fuzz.run_isolated(tmp_path))
    assert list(found.values()) == [""] * len(found), found


def test_a_child_killed_right_after_its_claim_has_it_released(tmp_path: Path) -> None:
    found = sigkill_sweep.sweep(
        0, ["child"], calibration_runs=1, events=["attempt claimed"], root=tmp_path
    )
    assert [k.anomalies for k in found.kills] == [[]]


def test_a_store_whose_schema_creation_was_killed_opens_again(tmp_path: Path) -> None:
    import sqlite3
    import subprocess
    import sys

    database = tmp_path / "metadata.db"
    killed = (
        "import os, sqlite3\n"
        f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); c.execute('CREATE TABLE t (x)')\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", killed], check=False, timeout=60)
    assert database.stat().st_size == 0
    assert Path(f"{database}-journal").exists()
    env = bad_inputs.python_env()
    env.update(
        STEPWIRE_CONFIG="",
        STEPWIRE_METADATA_URI=str(database),
        STEPWIRE_ARTIFACT_STORE=str(tmp_path / "artifacts"),
    )
    init = subprocess.run(
        [sys.executable, "-m", "stepwire", "metadata", "init"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM Type").fetchone()[0] > 0


def test_the_warm_parent_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    import threading

    from stepwire.orchestrators.warm_launch import WarmLauncher

    project = sigkill_sweep.Project.create(tmp_path)
    env = bad_inputs.python_env([str(project.code)])
    codes: list[int | None] = []

    def launch(index: int) -> None:
        stack = sigkill_sweep.Stack(tmp_path / f"stack-{index}", project)
        stack.marks.mkdir(parents=True)
        with (tmp_path / f"output-{index}.log").open("wb") as output:
            codes.append(launcher.call(project.commands["produce"], stack.env(), output.fileno()))

    with WarmLauncher(env) as launcher:
        for index in range(2):
            thread = threading.Thread(target=launch, args=(index,))
            thread.start()
            thread.join()
        starts = launcher.starts
    assert codes == [0, 0]
    assert starts == 1
