"""The loopback Ray cluster of tools/services itself: placement, token, kill, stop.

Every driver is a process of its own, as stepwire's steps are.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepwire_ray_cluster import FAST_NODE_FAILURE_DETECTION, RayCluster
from stepwire_services import _alive

DRIVER_TIMEOUT = 120

WHERE = textwrap.dedent(
    """
    import json

    import ray

    ray.init(logging_level="ERROR")


    @ray.remote(num_cpus=0)
    def where():
        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()


    on_head = where.options(resources={"stepwire_head": 1}).remote()
    on_worker = where.options(resources={"stepwire_worker": 1}).remote()
    print(json.dumps({"head": ray.get(on_head), "worker": ray.get(on_worker)}))
    """
)

# Polls the cluster's view of the nodes until the one at argv[1] is dead.
WAIT_DEAD = textwrap.dedent(
    """
    import json
    import sys
    import time

    import ray

    ray.init(logging_level="ERROR")
    begin = time.monotonic()
    while time.monotonic() - begin < float(sys.argv[2]):
        nodes = [n for n in ray.nodes() if n["NodeManagerAddress"] == sys.argv[1]]
        if nodes and not any(n["Alive"] for n in nodes):
            print(json.dumps({"seconds": time.monotonic() - begin}))
            break
        time.sleep(0.1)
    else:
        sys.exit("still alive")
    """
)


def _driver(
    script: str, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
        check=False,
    )


def _where(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = _driver(WHERE, env, cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _gone(pid: int, start: int) -> bool:
    # Gone, its pid reused, or a zombie waiting for init to reap it.
    return not _alive((pid, start))


def _ray_leftovers() -> set[str]:
    # Where Ray puts things by default: /tmp/ray (temp dir, session_latest link,
    # ray_current_cluster), /dev/shm (plasma files), ~/.ray (a generated token).
    # (Not /tmp/stepwire-ray-*: other clusters of this machine may come and go.)
    found = set()
    for folder, prefixes in (("/tmp", ("ray",)), ("/dev/shm", ("plasma", "ray"))):
        found |= {f"{folder}/{n}" for n in os.listdir(folder) if n.startswith(prefixes)}
    if (Path.home() / ".ray").exists():
        found.add(str(Path.home() / ".ray"))
    return found


def test_tasks_run_on_the_node_whose_resource_they_ask_for(
    ray_cluster: RayCluster, ray_driver_env: dict[str, str], tmp_path: Path
) -> None:
    placed = _where(ray_driver_env, tmp_path)
    (head_id, head_ip), (worker_id, worker_ip) = placed["head"], placed["worker"]
    assert head_id != worker_id
    assert (head_ip, worker_ip) == ("127.0.0.2", "127.0.0.3")
    assert ray_cluster.address.startswith("127.0.0.2:")


def test_a_driver_without_the_cluster_token_is_refused(
    ray_cluster: RayCluster, ray_driver_env: dict[str, str], tmp_path: Path
) -> None:
    no_token = {k: v for k, v in ray_driver_env.items() if not k.startswith("RAY_AUTH_")}
    wrong_token = {**ray_driver_env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    for env in (no_token, wrong_token):
        # HOME without ~/.ray/auth_token; 2 tries at the GCS rather than 20 (1 s apart).
        env.update(HOME=str(tmp_path), RAY_gcs_server_port_wait_time_s="2")
        done = _driver(WHERE, env, tmp_path)
        assert done.returncode != 0
        assert "Authentication token is missing or incorrect" in done.stderr, done.stderr[-3000:]
        assert "Unauthenticated" in done.stderr


def test_stop_leaves_no_process_and_no_file(
    own_ray_cluster: Callable[..., RayCluster], tmp_path: Path
) -> None:
    before = _ray_leftovers()
    cluster = own_ray_cluster()
    _where(cluster.driver_env(), tmp_path)  # so that Ray's workers exist too
    processes = cluster.processes()
    assert len(processes) > 10
    assert cluster.memory_bytes() > 100 * 2**20
    assert cluster.head.start_seconds > 0
    assert cluster.worker.start_seconds > 0

    cluster.stop()

    assert [pid for pid, start in processes if not _gone(pid, start)] == []
    assert not cluster.root.exists()
    assert _ray_leftovers() - before == set()
    assert cluster.pids() == set()


def test_a_killed_worker_raylet_is_a_dead_node_and_the_worker_can_start_again(
    own_ray_cluster: Callable[..., RayCluster], tmp_path: Path
) -> None:
    cluster = own_ray_cluster(node_env=FAST_NODE_FAILURE_DETECTION)
    env = cluster.driver_env()
    first = _where(env, tmp_path)
    worker_processes = cluster.worker.processes()

    cluster.kill_worker_raylet()

    dead = _driver(WAIT_DEAD, env, tmp_path, "127.0.0.3", "30")
    assert dead.returncode == 0, dead.stderr[-3000:]
    # `ray start` sees its raylet die and takes the node's other processes with it;
    # the workers, in process groups of their own, follow within a few seconds.
    deadline = time.monotonic() + 15
    while not all(_gone(*p) for p in worker_processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in worker_processes if not _gone(*p)] == []
    assert not cluster.worker.running
    assert cluster.head.running

    cluster.start_worker_again()

    again = _where(env, tmp_path)
    assert again["worker"][1] == "127.0.0.3"
    assert again["worker"][0] != first["worker"][0]  # a new node, same address
    assert again["head"] == first["head"]
