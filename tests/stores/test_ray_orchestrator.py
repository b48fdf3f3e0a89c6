"""The ray orchestrator on a real two-node Ray cluster, with ML Metadata on MariaDB and
artifacts on S3.

The head node is 127.0.0.2 and offers the custom resource ``stepwire_head``; the
worker node is 127.0.0.3 and offers ``stepwire_worker``: a step that asks for one of
them runs on that node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stepwire_ray_cluster import FAST_NODE_FAILURE_DETECTION, RayCluster
from stepwire_testkit import EXAMPLES, StackDir, explain

from stepwire.metadata_store import metadata_store_from_config
from stepwire.stack_config import load_stack_config

PIPELINE = textwrap.dedent(
    """
    import os
    import pathlib
    import sys

    from stepwire.pipelines import pipeline
    from stepwire.steps import Resources, step


    @step(resources=Resources(custom={"stepwire_head": 1}))
    def on_head() -> int:
        return 20


    @step(resources=Resources(custom={"stepwire_worker": 1}), retries=1)
    def on_worker(value: int) -> int:
        # Fails the first time it runs when FLAKY_MARKER is set: exit 70, retried.
        marker = os.environ.get("FLAKY_MARKER")
        if marker and not os.path.exists(marker):
            pathlib.Path(marker).touch()
            raise RuntimeError("the first attempt fails")
        return value + 1


    @step(retries=3)
    def join(value: int) -> int:
        # Not loadable in a step process when BROKEN is set: exit 65, never retried.
        return value * 2


    @pipeline
    def spread(on_head, on_worker, join):
        join(value=on_worker(value=on_head()))


    spread_pipeline = spread(on_head=on_head(), on_worker=on_worker(), join=join())

    if os.environ.get("BROKEN") and sys.argv[0].endswith("step_entrypoint.py"):
        raise RuntimeError("this module refuses to load in a step process")
    """
)

UNPLACEABLE = textwrap.dedent(
    """
    from stepwire.pipelines import pipeline
    from stepwire.steps import Resources, step


    @step(resources=Resources(custom={"stepwire_nowhere": 1}))
    def nowhere() -> int:
        return 1


    @pipeline
    def lost(nowhere):
        nowhere()


    lost_pipeline = lost(nowhere=nowhere())
    """
)


# Two steps that each take the one "slot" a node offers, so one runs on each node;
# each says where it started, then holds until the test lets it go.
HOLDING = textwrap.dedent(
    """
    import os
    import pathlib
    import time

    from stepwire.pipelines import pipeline
    from stepwire.steps import Resources, step


    def _hold(name: str) -> None:
        folder = pathlib.Path(os.environ["HOLD_FOLDER"])
        (folder / f"started-{name}-{os.environ['STEPWIRE_NODE']}").touch()
        deadline = time.monotonic() + 120
        while not (folder / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("nobody let the step go")
            time.sleep(0.1)


    @step(resources=Resources(custom={"slot": 1}))
    def left() -> int:
        _hold("left")
        return 1


    @step(resources=Resources(custom={"slot": 1}))
    def right() -> int:
        _hold("right")
        return 2


    @pipeline
    def holding(left, right):
        left()
        right()


    holding_pipeline = holding(left=left(), right=right())
    """
)


class RayStack(StackDir):
    """A stack on MariaDB and S3 whose orchestrator is the ray orchestrator."""

    def __init__(self, root: Path, values: dict[str, str]) -> None:
        super().__init__(root, orchestrator="ray", drop=("PYTHON",))
        self.server = values

    def env(self, **values: str | None) -> dict[str, str]:
        return super().env(STEPWIRE_METADATA_URI=None, **{**self.server, **values})

    def store(self) -> Any:
        config = load_stack_config(environ=self.env(), cwd=self.root)
        return metadata_store_from_config(config.metadata_store).open_store()


@pytest.fixture
def ray_stack(
    tmp_path: Path, ray_cluster: Any, mariadb: Any, s3_server: Any, s3_bucket: str
) -> RayStack:
    (tmp_path / "spread_pipeline.py").write_text(PIPELINE)
    (tmp_path / "lost_pipeline.py").write_text(UNPLACEABLE)
    return RayStack(
        tmp_path,
        {
            **ray_cluster.environment(),
            **mariadb.environment(mariadb.unique_database_name()),
            **s3_server.environment(),
            "STEPWIRE_ARTIFACT_STORE": f"s3://{s3_bucket}/artifacts",
        },
    )


def _line(output: str, step: str) -> str:
    [line] = [x for x in output.splitlines() if f"] {step} " in x and "submitted" not in x]
    return line


def test_steps_run_on_the_nodes_they_ask_for_then_from_the_cache(ray_stack: RayStack) -> None:
    target = f"{ray_stack.root}/spread_pipeline.py:spread_pipeline"
    first = ray_stack.cli(["run", target, "--run-name", "spread-1"], ray_stack.root)
    assert first.returncode == 0, explain(first)
    assert "run succeeded: 3 steps: 3 completed" in first.stdout
    assert "(on 127.0.0.2, attempt 1)" in _line(first.stdout, "on_head")
    assert "(on 127.0.0.3, attempt 1)" in _line(first.stdout, "on_worker")
    statuses = ray_stack.statuses("spread-1")
    assert statuses == {"on_head": "completed", "on_worker": "completed", "join": "completed"}

    second = ray_stack.cli(["run", target, "--run-name", "spread-2"], ray_stack.root)
    assert second.returncode == 0, explain(second)
    assert "3 steps: 0 completed, 3 cached" in second.stdout
    uri = ray_stack.output_uri("spread-1", "join")
    assert uri.startswith("s3://")


def test_the_demo_runs_across_both_nodes_then_fully_from_the_cache(ray_stack: RayStack) -> None:
    target = f"{EXAMPLES}/wine_pipeline.py:wine_pipeline"
    first = ray_stack.cli(
        ["run", target, "--run-name", "demo-1"], ray_stack.root, STEPWIRE_RAY_SCHEDULING="SPREAD"
    )
    assert first.returncode == 0, explain(first)
    assert "run succeeded: 8 steps: 8 completed" in first.stdout, explain(first)
    nodes = {step.step: step.node for step in ray_stack.run_record("demo-1").steps}
    print("where each step ran:", nodes)
    assert set(nodes.values()) == {"127.0.0.2", "127.0.0.3"}, nodes
    for step, node in nodes.items():
        assert f"(on {node}, attempt 1)" in _line(first.stdout, step)
    assert ray_stack.output_uri("demo-1", "report").startswith("s3://")

    second = ray_stack.cli(["run", target, "--run-name", "demo-2"], ray_stack.root)
    assert second.returncode == 0, explain(second)
    assert "8 steps: 0 completed, 8 cached" in second.stdout, explain(second)


def test_a_step_that_fails_with_70_is_retried_and_the_run_completes(
    ray_stack: RayStack,
) -> None:
    target = f"{ray_stack.root}/spread_pipeline.py:spread_pipeline"
    marker = ray_stack.root / "failed-once"
    proc = ray_stack.cli(
        ["run", target, "--run-name", "flaky"], ray_stack.root, FLAKY_MARKER=str(marker)
    )
    assert proc.returncode == 0, explain(proc)
    assert marker.exists()
    assert "attempt 2" in _line(proc.stdout, "on_worker")
    # TFX reuses the failed attempt's execution for the retry, which published it.
    from ml_metadata.proto import metadata_store_pb2 as pb

    [execution] = ray_stack.executions("flaky", "spread", "on_worker")
    assert execution.last_known_state == pb.Execution.COMPLETE
    assert ray_stack.statuses("flaky")["join"] == "completed"


def test_a_step_that_cannot_be_loaded_is_not_retried(ray_stack: RayStack) -> None:
    target = f"{ray_stack.root}/spread_pipeline.py:spread_pipeline"
    proc = ray_stack.cli(["run", target, "--run-name", "broken"], ray_stack.root, BROKEN="1")
    assert proc.returncode == 1, explain(proc)
    line = _line(proc.stdout, "on_head")
    assert "FAILED" in line
    assert "attempt 1" in line, line
    assert "user_code_not_loadable" in line or "cannot be loaded" in line, line
    assert "skipped (upstream on_head failed)" in proc.stdout


def test_a_step_no_node_can_run_is_one_line_after_the_wait(ray_stack: RayStack) -> None:
    target = f"{ray_stack.root}/lost_pipeline.py:lost_pipeline"
    proc = ray_stack.cli(
        ["run", target, "--run-name", "lost"], ray_stack.root, STEPWIRE_RAY_RESOURCE_WAIT="2"
    )
    assert proc.returncode == 2, explain(proc)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("stepwire: step 'nowhere' needs stepwire_nowhere=1"), line
    assert "after 2s (STEPWIRE_RAY_RESOURCE_WAIT)" in line
    assert "stepwire_worker=100" in line


def test_a_step_whose_node_dies_mid_step_is_retried_on_the_other_node(
    tmp_path: Path,
    own_ray_cluster: Callable[..., RayCluster],
    mariadb: Any,
    s3_server: Any,
    s3_bucket: str,
) -> None:
    cluster = own_ray_cluster(
        node_env=FAST_NODE_FAILURE_DETECTION,
        head_resources={"stepwire_head": 100, "slot": 1},
        worker_resources={"stepwire_worker": 100, "slot": 1},
    )
    (tmp_path / "holding_pipeline.py").write_text(HOLDING)
    stack = RayStack(
        tmp_path,
        {
            **cluster.environment(),
            **mariadb.environment(mariadb.unique_database_name()),
            **s3_server.environment(),
            "STEPWIRE_ARTIFACT_STORE": f"s3://{s3_bucket}/artifacts",
        },
    )
    holds = tmp_path / "holds"
    holds.mkdir()
    target = f"{tmp_path}/holding_pipeline.py:holding_pipeline"
    with (tmp_path / "run.out").open("w") as out, (tmp_path / "run.err").open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "stepwire", "run", target, "--run-name", "node-lost"],
            cwd=tmp_path,
            env=stack.env(HOLD_FOLDER=str(holds)),
            stdout=out,
            stderr=err,
        )
    try:
        started = _wait_for(lambda: sorted(p.name for p in holds.iterdir()), count=2)
        [on_worker] = [name.split("-")[1] for name in started if name.endswith("127.0.0.3")]
        cluster.kill_worker_raylet()
        # Ray notices the dead node within about 1.5 s and resubmits the step's task,
        # which waits for the head's slot: let the steps finish.
        time.sleep(3)
        (holds / "go").touch()
        code = run.wait(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    stdout, stderr = (tmp_path / "run.out").read_text(), (tmp_path / "run.err").read_text()
    why = f"exit {code}\n--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
    assert code == 0, why
    assert "run succeeded: 2 steps: 2 completed" in stdout, why
    assert "(on 127.0.0.2, attempt 2)" in _line(stdout, on_worker), why
    assert f"started-{on_worker}-127.0.0.2" in os.listdir(holds)

    record = stack.step_record("node-lost", on_worker)
    assert (record.status, record.attempt, record.node) == ("completed", 2, "127.0.0.2")
    assert record.history[-1] == "2 on 127.0.0.2: COMPLETE", record.history


def _wait_for(names: Callable[[], list[str]], count: int, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(found := names()) < count:
        assert time.monotonic() < deadline, f"only {found} after {timeout}s"
        time.sleep(0.1)
    return found
