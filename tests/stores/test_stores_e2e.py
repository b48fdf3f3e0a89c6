"""Pipelines on real servers: ML Metadata on MariaDB or PostgreSQL, artifacts on S3.

Every step runs in its own process through the subprocess orchestrator, with the
stack handed across in the environment. The servers are the session's (conftest);
a test that stops one starts its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chain_pipeline import MODULE, step_name, write_chains
from ml_metadata.proto import metadata_store_pb2
from stepwire_services import MariaDB, PostgreSQL, S3Server
from stepwire_testkit import EXAMPLES, StackDir, explain

from stepwire.materializers import value_codec
from stepwire.metadata_store import metadata_store_from_config
from stepwire.runs import RunReader
from stepwire.stack_config import load_stack_config

DEMO = f"{EXAMPLES}/wine_pipeline.py:wine_pipeline"
INFRA = 75
COMPLETE = metadata_store_pb2.Execution.COMPLETE


class ServerStack(StackDir):
    """A stack whose ML Metadata is on a database server and artifacts in a bucket."""

    def __init__(self, root: Path, server: dict[str, str], **values: str) -> None:
        super().__init__(root, orchestrator="subprocess", drop=("PYTHON",), **values)
        self.server = server

    def env(self, **values: str | None) -> dict[str, str]:
        return super().env(STEPWIRE_METADATA_URI=None, **{**self.server, **values})

    def store(self) -> Any:
        config = load_stack_config(environ=self.env(), cwd=self.root)
        return metadata_store_from_config(config.metadata_store).open_store()

    @property
    def artifact_root(self) -> str:
        return self.server["STEPWIRE_ARTIFACT_STORE"]

    def s3(self) -> Any:
        """An s3fs filesystem configured from this stack's environment only."""
        import s3fs

        env = self.env()
        return s3fs.S3FileSystem(
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=env["AWS_ENDPOINT_URL"],
            skip_instance_cache=True,
        )


def _server_env(database: Any, name: str, s3: S3Server, bucket: str) -> dict[str, str]:
    return {
        **database.environment(name),
        **s3.environment(),
        "STEPWIRE_ARTIFACT_STORE": f"s3://{bucket}/artifacts",
    }


@pytest.fixture(params=["mariadb", "postgresql"])
def server_stack(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> ServerStack:
    """A stack on a new database of the session's MariaDB or PostgreSQL, and a new bucket."""
    database = request.getfixturevalue(request.param)
    name = database.unique_database_name()
    # Not created: `stepwire metadata init` (or the orchestrator) creates it.
    tmp_path.mkdir(exist_ok=True)
    return ServerStack(tmp_path, _server_env(database, name, s3_server, s3_bucket))


def test_metadata_init_creates_the_database_and_schema_once(server_stack: ServerStack) -> None:
    first = server_stack.cli(["metadata", "init"], server_stack.root)
    assert first.returncode == 0, explain(first)
    assert "ML Metadata is ready in the " in first.stdout
    assert server_stack.server["STEPWIRE_METADATA_PASSWORD"] not in first.stdout + first.stderr
    # The C++ client's log lines are not shown.
    assert "metadata_source.cc" not in first.stderr
    again = server_stack.cli(["metadata", "init"], server_stack.root)
    assert again.returncode == 0, explain(again)
    assert server_stack.store().get_context_types() == []


def test_a_wrong_password_is_one_line_and_75_without_the_password(
    server_stack: ServerStack,
) -> None:
    wrong = "not-the-Password-7"
    proc = server_stack.cli(
        ["metadata", "init"], server_stack.root, STEPWIRE_METADATA_PASSWORD=wrong
    )
    assert proc.returncode == INFRA, explain(proc)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("stepwire: infrastructure: the metadata store "), line
    assert f"{server_stack.server['STEPWIRE_METADATA_USER']}@127.0.0.1:" in line
    # PostgreSQL's client says why; ML Metadata's MySQL client only that it failed.
    assert "password authentication failed" in line or "mysql_real_connect failed" in line, line
    assert wrong not in proc.stdout + proc.stderr


def test_the_demo_runs_then_reruns_from_the_cache_with_s3_uris(server_stack: ServerStack) -> None:
    first = server_stack.cli(["run", DEMO, "--run-name", "demo-1"], server_stack.root)
    assert first.returncode == 0, explain(first)
    assert "run succeeded: 8 steps: 8 completed, 0 cached, 0 failed" in first.stdout
    second = server_stack.cli(["run", DEMO, "--run-name", "demo-2"], server_stack.root)
    assert second.returncode == 0, explain(second)
    assert "8 steps: 0 completed, 8 cached" in second.stdout

    shown = server_stack.cli(["runs", "show", "demo-1"], server_stack.root)
    assert shown.returncode == 0, explain(shown)
    run = server_stack.run_record("demo-1")
    assert len(run.steps) == 8
    assert {s.status for s in run.steps} == {"completed"}
    s3 = server_stack.s3()
    for record in run.steps:
        assert f" {record.step} " in shown.stdout
        for output in record.outputs:
            assert output.uri.startswith(f"{server_stack.artifact_root}/{record.step}/")
            assert output.uri in shown.stdout
            assert s3.ls(output.uri), f"{output.uri} holds nothing"
    assert {s.status for s in server_stack.run_record("demo-2").steps} == {"cached"}
    report = json.loads(s3.cat(f"{server_stack.output_uri('demo-1', 'report')}/data.json"))
    assert value_codec.loads(json.dumps(report))["best"] in {
        "logistic regression",
        "ridge classifier",
    }
    assert server_stack.server["STEPWIRE_METADATA_PASSWORD"] not in first.stdout + first.stderr


FLAKY = textwrap.dedent(
    """
    import os

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step
    def source() -> int:
        return 20


    @step
    def flaky(value: int) -> int:
        if os.path.exists(os.environ["FLAKY_FLAG"]):
            raise ValueError(f"flaky step refused {value}: the flag file exists")
        return value + 1


    @step
    def sink(value: int) -> int:
        return value * 2


    @pipeline
    def resuming(source, flaky, sink):
        sink(value=flaky(value=source()))


    resuming_pipeline = resuming(source=source(), flaky=flaky(), sink=sink())
    """
)


def test_a_failed_step_is_recorded_with_its_exception_and_the_rerun_resumes(
    server_stack: ServerStack,
) -> None:
    (server_stack.root / "flaky_pipeline.py").write_text(FLAKY)
    flag = server_stack.root / "flag"
    flag.touch()
    target = f"{server_stack.root}/flaky_pipeline.py:resuming_pipeline"
    failed = server_stack.cli(
        ["run", target, "--run-name", "r1"], server_stack.root, FLAKY_FLAG=str(flag)
    )
    assert failed.returncode == 1, explain(failed)
    assert "flaky step refused 20" in failed.stdout + failed.stderr
    statuses = server_stack.statuses("r1")
    assert statuses["source"] == "completed"
    assert statuses["flaky"] == "failed"
    assert "sink" not in statuses

    flag.unlink()
    resumed = server_stack.cli(
        ["run", target, "--run-name", "r2"], server_stack.root, FLAKY_FLAG=str(flag)
    )
    assert resumed.returncode == 0, explain(resumed)
    assert server_stack.statuses("r2") == {
        "source": "cached",
        "flaky": "completed",
        "sink": "completed",
    }
    s3 = server_stack.s3()
    sink_uri = server_stack.output_uri("r2", "sink")
    assert value_codec.loads(s3.cat(f"{sink_uri}/data.json").decode()) == 42


CHAINS, LENGTH, PARALLEL = 25, 8, 8


def test_8_processes_launching_200_steps_lose_nothing(server_stack: ServerStack) -> None:
    module = write_chains(server_stack.root, CHAINS, LENGTH)
    proc = server_stack.cli(
        ["run", f"{module}:{MODULE}", "--run-name", "many"],
        server_stack.root,
        timeout=1500,
        STEPWIRE_MAX_PARALLEL=str(PARALLEL),
    )
    assert proc.returncode == 0, explain(proc)
    total = CHAINS * LENGTH
    assert f"run succeeded: {total} steps: {total} completed, 0 cached, 0 failed" in proc.stdout
    store = server_stack.store()
    run = store.get_context_by_type_and_name("pipeline_run", "many")
    executions = store.get_executions_by_context(run.id)
    assert len(executions) == total
    assert [e.last_known_state for e in executions].count(COMPLETE) == total
    # Every launch went through the guard, and ML Metadata's own client never
    # retried a call by itself (it logs "mlmd client retry" and sleeps 2 s).
    logs = [p.read_text() for p in (server_stack.root / ".stepwire/.logs/many").glob("*.log")]
    assert len(logs) == total
    assert all(" ms waiting for other processes" in text for text in logs)
    assert not [text for text in logs if "mlmd client retry" in text]
    steps = {s.step: s for s in RunReader(store).get_run("many").steps}
    s3 = server_stack.s3()
    for chain in range(CHAINS):
        [last] = steps[step_name(chain, LENGTH - 1)].outputs
        assert value_codec.loads(s3.cat(f"{last.uri}/data.json").decode()) == chain + LENGTH - 1


SLOW_MIDDLE = textwrap.dedent(
    """
    import os
    import pathlib
    import time

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step
    def first() -> int:
        return 1


    @step(enable_cache=False)
    def middle(value: int) -> int:
        # Tell the test this step runs, then wait until it has stopped a server.
        pathlib.Path(os.environ["MIDDLE_STARTED"]).touch()
        deadline = time.monotonic() + 120
        while not os.path.exists(os.environ["MIDDLE_GO"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return value + 1


    @step
    def last(value: int) -> int:
        return value + 1


    @pipeline
    def interrupted(first, middle, last):
        last(value=middle(value=first()))


    interrupted_pipeline = interrupted(first=first(), middle=middle(), last=last())
    """
)


def _run_until_middle(stack: ServerStack, **values: str) -> tuple[subprocess.Popen[str], Path]:
    (stack.root / "interrupted_pipeline.py").write_text(SLOW_MIDDLE)
    started, go = stack.root / "started", stack.root / "go"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stepwire",
            "run",
            f"{stack.root}/interrupted_pipeline.py:interrupted_pipeline",
            "--run-name",
            "interrupted",
        ],
        cwd=stack.root,
        env=stack.env(MIDDLE_STARTED=str(started), MIDDLE_GO=str(go), **values),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the middle step never started"
        time.sleep(0.05)
    return proc, go


def _node_states(store: Any, run_name: str) -> dict[str, int]:
    """The state of each node's execution in a run, by node context name."""
    node_type = store.get_context_type("node").id
    run = store.get_context_by_type_and_name("pipeline_run", run_name)
    states = {}
    for execution in store.get_executions_by_context(run.id):
        [node] = [
            c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type
        ]
        states[node.name] = execution.last_known_state
    return states


@pytest.fixture(params=["mariadb", "postgresql"])
def own_database(
    request: pytest.FixtureRequest, start_service: Callable[..., Any]
) -> MariaDB | PostgreSQL:
    """A database server of this test's own, which it may stop."""
    kind: type[MariaDB | PostgreSQL] = MariaDB if request.param == "mariadb" else PostgreSQL
    server: MariaDB | PostgreSQL = start_service(kind)
    return server


def test_a_metadata_server_that_goes_away_gives_75_and_loses_nothing_published(
    own_database: MariaDB | PostgreSQL, tmp_path: Path, s3_server: S3Server, s3_bucket: str
) -> None:
    stack = ServerStack(
        tmp_path,
        _server_env(own_database, own_database.unique_database_name(), s3_server, s3_bucket),
    )
    proc, go = _run_until_middle(stack)
    own_database.stop(keep_data=True)
    go.touch()
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output
    assert "middle" in output
    assert "infrastructure" in output, output
    own_database.start_again()

    states = _node_states(stack.store(), "interrupted")
    assert states["interrupted.first"] == COMPLETE
    assert states["interrupted.middle"] != COMPLETE
    assert "interrupted.last" not in states
    [first_output] = stack.step_record("interrupted", "first").outputs
    assert stack.s3().ls(first_output.uri)


def test_an_object_store_that_goes_away_gives_75_and_loses_nothing_published(
    tmp_path: Path, postgresql: PostgreSQL, start_service: Callable[..., Any]
) -> None:
    with start_service(S3Server) as own_s3:
        bucket = own_s3.create_bucket()
        stack = ServerStack(
            tmp_path,
            _server_env(postgresql, postgresql.unique_database_name(), own_s3, bucket),
        )
        proc, go = _run_until_middle(stack)
        own_s3.stop(keep_data=True)
        go.touch()
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 1, output
        assert "infrastructure" in output, output
        own_s3.start_again()
        steps = {s.step: s for s in stack.run_record("interrupted").steps}
        assert steps["first"].status == "completed"
        assert steps["middle"].status == "failed"
        assert "last" not in steps
        [first_output] = steps["first"].outputs
        assert stack.s3().ls(first_output.uri)


BUILD_ARGV = textwrap.dedent(
    """
    import json, sys
    from stepwire import constants
    from stepwire.orchestrators.subprocess_orchestrator import (
        SubprocessEntrypointConfiguration as Config,
    )
    from stepwire.stack import get_active_stack

    constants.USER_MAIN_MODULE = "flaky_pipeline"
    import flaky_pipeline

    p = flaky_pipeline.resuming_pipeline
    argv = Config.get_entrypoint_command() + Config.get_entrypoint_arguments(
        step=p.steps["source"],
        pb2_pipeline=p.compile(),
        run_name="by-hand",
        stack=get_active_stack(),
    )
    print(json.dumps(argv))
    """
)


def test_the_password_is_never_in_argv_explain_stderr_or_the_failure_record(
    server_stack: ServerStack,
) -> None:
    (server_stack.root / "flaky_pipeline.py").write_text(FLAKY)
    password = server_stack.server["STEPWIRE_METADATA_PASSWORD"]
    built = server_stack.run(
        [sys.executable, "-c", BUILD_ARGV],
        server_stack.root,
        PYTHONPATH=str(server_stack.root),
    )
    assert built.returncode == 0, explain(built)
    argv = json.loads(built.stdout)
    assert password not in " ".join(argv)

    (server_stack.root / "argv.json").write_text(json.dumps(argv))
    explained = server_stack.cli(
        ["args", "explain", "--from-file", str(server_stack.root / "argv.json")],
        server_stack.root,
    )
    assert explained.returncode == 0, explain(explained)
    assert "source" in explained.stdout
    assert password not in explained.stdout + explained.stderr

    wrong = "wrong-Password-3"
    record = server_stack.root / "record.json"
    ran = server_stack.run(
        argv,
        server_stack.root,
        PYTHONPATH=str(server_stack.root),
        STEPWIRE_METADATA_PASSWORD=wrong,
        STEPWIRE_FAILURE_RECORD=str(record),
    )
    assert ran.returncode == INFRA, explain(ran)
    first = ran.stderr.splitlines()[0]
    assert first.startswith("stepwire: infrastructure: the metadata store "), first
    data = record.read_text()
    assert json.loads(data)["kind"] == "infrastructure"
    for secret in (password, wrong):
        assert secret not in ran.stdout + ran.stderr + data


HEARTBEAT = textwrap.dedent(
    """
    import time

    from stepwire.pipelines import pipeline
    from stepwire.steps import step


    @step
    def long_one() -> int:
        time.sleep(6)
        return 1


    @pipeline
    def beating(long_one):
        long_one()


    beating_pipeline = beating(long_one=long_one())
    """
)


def test_a_long_step_keeps_its_claim_alive_on_a_database_server(
    server_stack: ServerStack,
) -> None:
    (server_stack.root / "beating_pipeline.py").write_text(HEARTBEAT)
    target = f"{server_stack.root}/beating_pipeline.py:beating_pipeline"
    started = time.time()
    # A 1.5 s lease renewed every 0.5 s while the step sleeps 6 s: the heartbeat's
    # connection of its own works beside the launch's.
    proc = server_stack.cli(
        ["run", target, "--run-name", "beats"], server_stack.root, STEPWIRE_ATTEMPT_LEASE="1.5"
    )
    assert proc.returncode == 0, explain(proc)
    store = server_stack.store()
    [claim] = store.get_contexts_by_type("stepwire_attempt")
    assert claim.name.endswith("@beats#1")
    assert claim.custom_properties["state"].string_value == "completed"
    assert claim.custom_properties["lease_until"].double_value == 0.0  # released
    # Renewed well after the lease it started with would have expired.
    assert claim.last_update_time_since_epoch / 1000 > started + 4
