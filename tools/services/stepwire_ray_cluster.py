"""A real Ray cluster of two nodes on loopback, for tests and benchmarks.

The head node runs on 127.0.0.2 and a worker node on 127.0.0.3, each a
``ray start --block`` process of its own (its own session and process group) with
its own ``--temp-dir``, on ports picked free beforehand, inside one temporary folder
that the cluster owns. Token authentication is on; drivers need the variables of
:meth:`RayCluster.environment`::

    with RayCluster.start() as cluster:
        env = {**os.environ, **cluster.environment()}  # RAY_ADDRESS, RAY_AUTH_* ...
        subprocess.run([sys.executable, "driver.py"], env=env, check=True)

A task lands on a chosen node through the nodes' custom resources: ``stepwire_head``
on the head, ``stepwire_worker`` on the worker (100 of each, by default)::

    @ray.remote(resources={"stepwire_worker": 1})
    def on_the_worker(): ...

Why not 127.0.0.1: Ray replaces 127.0.0.1 and ``localhost`` in a node or GCS address
with the host's external address, so traffic would leave loopback and two nodes
would claim one address; other 127/8 addresses are taken as they are.

Every process is stopped by the id it was recorded with (never ``ray stop``, which
stops every Ray process of the machine): the node's ``ray start`` process and its
group get SIGTERM, then SIGKILL after a grace period, and every descendant noted
before (Ray's workers put themselves in process groups of their own) and every
process left in the node's session gets SIGKILL. Stopping removes the folder.

:meth:`RayCluster.kill_raylet` SIGKILLs a node's raylet, as a machine failure would,
and :meth:`RayCluster.start_worker_again` brings the node back on the same ports.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar

# Private helpers of the sibling module, shared rather than copied.
from stepwire_services import (
    _LIVE,
    Service,
    ServiceError,
    ServiceUnavailable,
    _alive,
    _BindFailure,
    _descendants,
    _kill_if_alive,
    _Proc,
    _stat_fields,
    _wait_gone,
)

__all__ = [
    "FAST_NODE_FAILURE_DETECTION",
    "RayCluster",
    "RayNode",
    "ServiceError",
    "ServiceUnavailable",
]

# What `ray start` prints once its node has registered with the GCS.
_STARTED = "Ray runtime started."
# Ray refuses a smaller object store (ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES).
_MIN_OBJECT_STORE_BYTES = 75 * 1024 * 1024
# Each worker process (task or actor) binds one of these; more are waiting for one.
_WORKER_PORTS = 20
# The longest name Ray gives a session folder ("session_<date>_<time>_<usec>_<pid>")
# and the longest socket path in it, to check Linux's limit before starting.
_LONGEST_SOCKET = "ray-999/session_0000-00-00_00-00-00_000000_4194304/sockets/plasma_store"
# What Ray's servers log when one of their ports was taken after we probed it: the
# GCS and raylet (C++ gRPC), the client server (Python gRPC), the runtime env agent.
_RAY_BIND_FAILURE = re.compile(
    r"Failed to start the grpc server|Failed to bind to address|address already in use",
    re.IGNORECASE,
)
# The Ray logs whose tails explain a failed start, in the order they are shown.
_RAY_LOGS = ("gcs_server.err", "gcs_server.out", "raylet.err", "raylet.out")
_RAY_LOG_LINES = 15
_RAYLET_EXE = re.compile(r"/ray/core/src/ray/raylet/raylet$")
# What a node must not inherit from us: another cluster's address, or a token file
# that would be read instead of the cluster's token.
_NODE_INTERFERING = frozenset({"RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"})

FAST_NODE_FAILURE_DETECTION: Mapping[str, str] = {
    # The GCS' health check of each raylet: by default a missing node is declared
    # dead after about 13 s (every 3 s, 5 failures); with these, after about 1.5 s.
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
}
"""Node variables (``node_env``) for tests that kill nodes and wait for Ray to notice."""


class RayNode(Service):
    """One Ray node: a ``ray start --block`` process and everything it starts.

    Made by :class:`RayCluster`, not by :meth:`start`.

    Attributes:
        role: ``head`` or ``worker``.
        resources: The node's custom resources.
        start_seconds: Seconds from spawning ``ray start`` to the node being
            registered with the GCS, for the last start.
    """

    name = "ray-node"
    _own_ports: ClassVar[tuple[str, ...]] = (
        "node_manager",
        "object_manager",
        "metrics_export",
        "dashboard_agent_listen",
        "dashboard_agent_grpc",
        "runtime_env_agent",
    )
    _worker_ports: ClassVar[tuple[str, ...]] = tuple(f"worker_{i}" for i in range(_WORKER_PORTS))
    port_roles = _own_ports + _worker_ports
    # With RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0, SIGTERM makes `ray start` stop
    # its processes one kind after the other, giving each 1 s before a SIGKILL (the
    # head's raylet and GCS log the SIGTERM but do not finish shutting down): 0.3 s
    # for a worker node, 3.3 s for the head. Nothing of a test cluster needs that
    # care (its state is in memory), so whatever is left after 2 s is killed.
    grace_seconds = 2.0

    def __init__(
        self,
        *,
        host: str,
        startup_timeout: float,
        extra_args: Sequence[str],
        root: Path,
        head: RayNode | None,
        token: str,
        resources: Mapping[str, float],
        num_cpus: int,
        object_store_memory: int,
        node_env: Mapping[str, str],
    ) -> None:
        super().__init__(
            host=host, startup_timeout=startup_timeout, extra_args=extra_args, root=root
        )
        self.role = "head" if head is None else "worker"
        self.resources = dict(resources)
        self.start_seconds = 0.0
        self._head = head
        self._token = token
        self._num_cpus = num_cpus
        self._object_store_memory = object_store_memory
        self._node_env = dict(node_env)
        # Processes of this node seen so far: SIGKILLed at stop, even once orphaned.
        self._seen: set[_Proc] = set()
        # The last `ray start` (its pid is its session's id) and its start time.
        self._leader: _Proc | None = None
        self._log_offset = 0

    @property
    def temp_dir(self) -> Path:
        """The ``--temp-dir`` of the node's last start; logs: ``session_latest/logs``.

        Each start has its own (``ray-1``, ``ray-2``...), so that the logs of one
        start never pass for those of the next.
        """
        return self.root / f"ray-{max(1, len(self.server_pids))}"

    @property
    def logs_dir(self) -> Path:
        """The Ray logs of the node's current (or last) session."""
        return self.temp_dir / "session_latest" / "logs"

    def ray_log_tails(self, lines: int = _RAY_LOG_LINES) -> str:
        """Returns the last lines of the GCS' (head) and the raylet's logs."""
        parts = []
        for name in _RAY_LOGS:
            path = self.logs_dir / name
            if path.exists():
                # raylet.out is mostly periodic state dumps, which explain nothing.
                text = path.read_text("utf-8", "replace").splitlines()
                kept = [line for line in text if not line.startswith("[state-dump]")]
                parts.append(f"--- {name}:\n" + ("\n".join(kept[-lines:]) or "(empty)"))
        return "\n".join(parts) or f"(no Ray logs in {self.logs_dir})"

    def processes(self) -> set[_Proc]:
        """Every live process of the node, as (pid, start time): see :meth:`pids`."""
        found = set(self._seen)
        process = self._process
        if process is not None and process.poll() is None:
            fields = _stat_fields(process.pid)
            if fields is not None:
                found.add((process.pid, int(fields[19])))
            found |= _descendants(process.pid)
        found |= self._session_members()
        self._seen = {p for p in found if _alive(p)}
        return set(self._seen)

    def pids(self) -> set[int]:
        """The ids of every live process of the node.

        That is ``ray start``, the processes it started (GCS, raylet, agents, log
        monitor...), Ray's worker processes, and any of them orphaned by a kill.
        """
        return {pid for pid, _ in self.processes()}

    def raylet_pid(self) -> int | None:
        """The id of the node's raylet process, or None if it is not running."""
        if self._process is None:
            return None
        for pid, _ in _descendants(self._process.pid):
            fields = _stat_fields(pid)
            # The raylet is a child of `ray start`, recognised by its program's path
            # among this node's own processes only.
            if fields is not None and int(fields[1]) == self._process.pid:
                with contextlib.suppress(OSError):
                    if _RAYLET_EXE.search(os.readlink(f"/proc/{pid}/exe")):
                        return pid
        return None

    # -- what Service asks of a server ----------------------------------------------

    @staticmethod
    def _ray() -> str | None:
        # In a virtual environment that is not activated (nox, .venv/bin/python),
        # the program sits beside the interpreter rather than on PATH.
        beside_python = Path(sys.executable).parent / "ray"
        if os.access(beside_python, os.X_OK):
            return str(beside_python)
        return shutil.which("ray")

    @classmethod
    def _check_installed(cls) -> None:
        if cls._ray() is None:
            raise ServiceUnavailable(
                f"Ray not installed: no 'ray' beside {sys.executable} or on PATH "
                "(pip install 'stepwire[ray]')"
            )

    def _initialize(self) -> None:
        for folder in (self.root / "spill", self.root / "tmp"):
            folder.mkdir(parents=True)
        self._socket_path(_LONGEST_SOCKET)  # fails early if Ray's sockets would not fit

    @property
    def address(self) -> str:
        """The head's GCS address, ``host:port``, which is the cluster's address."""
        head = self._head or self
        return f"{head.host}:{head.ports['gcs']}"

    def _command(self) -> list[str]:
        ray = self._ray()
        assert ray is not None
        p = self.ports
        # Called just before the spawn, once per start: the log's end is where this
        # start's output begins, and the start gets a temp dir of its own.
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        temp_dir = self.root / f"ray-{len(self.server_pids) + 1}"
        temp_dir.mkdir()
        if self._head is None:
            role = [
                "--head",
                f"--port={p['gcs']}",
                # Started whenever Ray's client package is there, on 10001 if not told.
                f"--ray-client-server-port={p['client_server']}",
                "--include-dashboard=false",
            ]
        else:
            role = [f"--address={self.address}"]
        return [
            ray,
            "start",
            "--block",
            *role,
            f"--node-ip-address={self.host}",
            f"--node-manager-port={p['node_manager']}",
            f"--object-manager-port={p['object_manager']}",
            f"--metrics-export-port={p['metrics_export']}",
            f"--dashboard-agent-listen-port={p['dashboard_agent_listen']}",
            f"--dashboard-agent-grpc-port={p['dashboard_agent_grpc']}",
            f"--runtime-env-agent-port={p['runtime_env_agent']}",
            # Single free ports rather than a range, which would need a free run.
            "--worker-port-list=" + ",".join(str(p[r]) for r in self._worker_ports),
            f"--temp-dir={temp_dir}",
            # Else a worker node spills into the head's session folder.
            f"--object-spilling-directory={self.root / 'spill'}",
            f"--num-cpus={self._num_cpus}",
            "--num-gpus=0",
            f"--object-store-memory={self._object_store_memory}",
            f"--resources={json.dumps(self.resources)}",
            "--disable-usage-stats",
            "--log-style=record",
            "--log-color=false",
            *self.extra_args,
        ]

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _NODE_INTERFERING}
        env.update(_auth_environment(self._token))
        env.update(
            {
                # SIGTERM would otherwise first drain the node for up to 30 s.
                "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                # Ray's workers inherit it: the scratch files of the code they run
                # land in the node's folder, which stop() removes.
                "TMPDIR": str(self.root / "tmp"),
            }
        )
        env.update(self._node_env)
        return env

    def _ready(self) -> bool:
        process = self._process
        if process is not None and (self._leader is None or self._leader[0] != process.pid):
            # Noted at the first look after the spawn, to recognise its session later.
            fields = _stat_fields(process.pid)
            if fields is not None:
                self._leader = (process.pid, int(fields[19]))
        # Ray's servers do not exit at once when their port is taken (`ray start`
        # waits for them for 30 s or more), and some fail after the node is up.
        failure = self._bind_failure()
        if failure is not None:
            raise _BindFailure(failure)
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return _STARTED.encode() in log.read()
        except FileNotFoundError:
            return False

    def _bind_failure(self) -> str | None:
        """The first line of this start's Ray logs saying a port was taken, if any."""
        for path in sorted(self.logs_dir.glob("*.err")) + sorted(self.logs_dir.glob("*.out")):
            with contextlib.suppress(OSError):
                for line in path.read_text("utf-8", "replace").splitlines():
                    if _RAY_BIND_FAILURE.search(line):
                        return f"{path.name}: {line}"
        return None

    def _launch(self, *, new_ports: bool) -> None:
        started = time.monotonic()
        self._seen.clear()
        try:
            super()._launch(new_ports=new_ports)
        except ServiceError as error:
            raise ServiceError(f"{error}\n{self.ray_log_tails()}") from None
        self.start_seconds = time.monotonic() - started

    def _after_exit(self, *, forced: bool) -> None:
        # Ray's workers are in process groups of their own, and those a dead raylet
        # left behind are no one's descendants: kill what was seen of this node
        # and what is still in its session.
        left = {p for p in self._seen | self._session_members() if _alive(p)}
        for proc in left:
            _kill_if_alive(proc)
        _wait_gone(left, timeout=10.0)
        self._seen.clear()

    def _session_members(self) -> set[_Proc]:
        """Live processes in the session of the node's last ``ray start``."""
        if self._leader is None:
            return set()
        leader, start = self._leader
        # A session id stays reserved while any member lives, so members with our
        # leader's id are ours, unless the id now leads another session because our
        # session emptied and the pid was reused.
        fields = _stat_fields(leader)
        if fields is not None and int(fields[19]) != start:
            return set()
        found: set[_Proc] = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            fields = _stat_fields(int(entry))
            # After the name: state, ppid, pgrp, session (index 3).
            if fields is not None and int(fields[3]) == leader and fields[0] != "Z":
                found.add((int(entry), int(fields[19])))
        return found


class RayHead(RayNode):
    """The head node: the GCS, Ray's client server and a raylet."""

    name = "ray-head"
    port_roles = ("gcs", "client_server", *RayNode.port_roles)


class RayWorker(RayNode):
    """A worker node: a raylet that joined the head's GCS."""

    name = "ray-worker"


class RayCluster:
    """A head node and worker nodes on loopback, with token authentication.

    Create one with :meth:`start`, use it as a context manager or call :meth:`stop`.

    Attributes:
        root: The temporary folder holding every node's folder.
        head: The head node.
        workers: The worker nodes, the first one started with the cluster.
        token: The authentication token every node and driver needs.
        stop_seconds: How long the last :meth:`stop` took.
    """

    # A token file named here would be read instead of RAY_AUTH_TOKEN.
    INTERFERING_VARIABLES: ClassVar[tuple[str, ...]] = ("RAY_AUTH_TOKEN_PATH",)

    def __init__(
        self,
        *,
        root: Path,
        token: str,
        num_cpus: int,
        object_store_memory: int,
        startup_timeout: float,
        node_env: Mapping[str, str],
        extra_args: Sequence[str],
    ) -> None:
        self.root = root
        self.token = token
        self.workers: list[RayNode] = []
        self.stop_seconds = 0.0
        self._num_cpus = num_cpus
        self._object_store_memory = object_store_memory
        self._startup_timeout = startup_timeout
        self._node_env = dict(node_env)
        self._extra_args = tuple(extra_args)
        self._head: RayNode | None = None
        self._stopped = False

    @classmethod
    def start(
        cls,
        *,
        head_host: str = "127.0.0.2",
        worker_host: str | None = "127.0.0.3",
        head_resources: Mapping[str, float] | None = None,
        worker_resources: Mapping[str, float] | None = None,
        num_cpus: int = 2,
        object_store_memory: int = 100 * 1024 * 1024,
        startup_timeout: float = 60.0,
        node_env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> RayCluster:
        """Starts the head node, then a worker node, and waits until both serve.

        Args:
            head_host: The head's loopback address; not 127.0.0.1 (see the module).
            worker_host: The worker's loopback address; None for a head alone.
            head_resources: The head's custom resources (``{"stepwire_head": 100}``).
            worker_resources: The worker's (``{"stepwire_worker": 100}``).
            num_cpus: The CPUs each node offers.
            object_store_memory: Each node's object store, in bytes (75 MiB at least);
                it is in /dev/shm, so keep it small.
            startup_timeout: Seconds each node gets to register with the GCS.
            node_env: More variables for every node's processes (Ray's ``RAY_*``
                settings, e.g. :data:`FAST_NODE_FAILURE_DETECTION`).
            extra_args: More arguments for every ``ray start``.

        Returns:
            The running cluster.

        Raises:
            ServiceUnavailable: Ray is not installed.
            ServiceError: A node exited or did not start in time; the message holds
                the tails of ``ray start``'s output and of the GCS' and raylet's logs.
            ValueError: An address is 127.0.0.1 or not loopback, or the object
                store is too small.
        """
        for host in (head_host, worker_host):
            if host is not None:
                _check_host(host)
        if object_store_memory < _MIN_OBJECT_STORE_BYTES:
            raise ValueError(
                f"object_store_memory={object_store_memory} is below Ray's minimum "
                f"({_MIN_OBJECT_STORE_BYTES} bytes)"
            )
        RayNode._check_installed()
        cluster = cls(
            root=Path(tempfile.mkdtemp(prefix="stepwire-ray-")),
            token=secrets.token_hex(32),
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            startup_timeout=startup_timeout,
            node_env=node_env or {},
            extra_args=extra_args,
        )
        _LIVE_CLUSTERS.add(cluster)
        try:
            cluster._head = cluster._start_node(
                "head", head_host, head_resources or {"stepwire_head": 100}, head=None
            )
            if worker_host is not None:
                cluster.add_worker(worker_host, worker_resources)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def head(self) -> RayNode:
        """The head node."""
        if self._head is None:
            raise ServiceError("the cluster has no head node (it failed to start)")
        return self._head

    @property
    def worker(self) -> RayNode:
        """The first worker node."""
        if not self.workers:
            raise ServiceError("the cluster has no worker node")
        return self.workers[0]

    @property
    def nodes(self) -> list[RayNode]:
        """The head, then the workers."""
        return ([self._head] if self._head is not None else []) + self.workers

    @property
    def address(self) -> str:
        """The GCS address (``host:port``) drivers and nodes connect to."""
        return self.head.address

    @property
    def running(self) -> bool:
        """Whether every node's ``ray start`` process is alive."""
        return bool(self.nodes) and all(node.running for node in self.nodes)

    def environment(self) -> dict[str, str]:
        """Returns the variables a driver needs to ``ray.init()`` into the cluster.

        Unset :data:`INTERFERING_VARIABLES` where these are set.
        """
        return {"RAY_ADDRESS": self.address, **_auth_environment(self.token)}

    def driver_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Returns the whole environment of a driver process of the cluster.

        Args:
            base: The environment to start from (this process' when None), less
                :data:`INTERFERING_VARIABLES`.
        """
        base = os.environ if base is None else base
        kept = {k: v for k, v in base.items() if k not in self.INTERFERING_VARIABLES}
        return {**kept, **self.environment()}

    def add_worker(
        self, host: str | None = None, resources: Mapping[str, float] | None = None
    ) -> RayNode:
        """Starts another worker node and waits until it has joined.

        Args:
            host: Its loopback address; the first of 127.0.0.3, 127.0.0.4... not
                taken by a node of this cluster when None.
            resources: Its custom resources (``{"stepwire_worker": 100}``).

        Returns:
            The running node.
        """
        if host is None:
            taken = {node.host for node in self.nodes}
            host = next(f"127.0.0.{n}" for n in range(3, 255) if f"127.0.0.{n}" not in taken)
        _check_host(host)
        name = f"worker-{len(self.workers) + 1}"
        node = self._start_node(name, host, resources or {"stepwire_worker": 100}, head=self.head)
        self.workers.append(node)
        return node

    def kill_raylet(self, node: RayNode | None = None) -> int:
        """SIGKILLs a node's raylet, as a crash of its machine would.

        The node's agents exit at once and its ``ray start`` within a second (it
        kills the log monitor); Ray's worker processes, orphaned, exit within about
        1.5 s. The GCS declares the node dead when its health check fails: after
        about 13 s by default, 1.5 s with :data:`FAST_NODE_FAILURE_DETECTION`.
        Call :meth:`start_worker_again` to bring the node back.

        Args:
            node: The node; the first worker when None.

        Returns:
            The raylet's process id.

        Raises:
            ServiceError: The node's raylet is not running.
        """
        node = node or self.worker
        # Noted now, so that stop() kills whatever the raylet's death orphans.
        node.processes()
        pid = node.raylet_pid()
        if pid is None:
            raise ServiceError(f"{node.name} {node.host} has no running raylet")
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_worker_raylet(self) -> int:
        """SIGKILLs the first worker's raylet: see :meth:`kill_raylet`."""
        return self.kill_raylet(self.worker)

    def start_worker_again(self, node: RayNode | None = None) -> None:
        """Stops what is left of a worker node and starts it again, same ports.

        It joins as a new node (a new node id) with the same address and resources.

        Args:
            node: The worker node; the first one when None.
        """
        node = node or self.worker
        if node is self._head:
            raise ServiceError("the head cannot be started again: the GCS state is lost")
        node.stop(keep_data=True)
        node.start_again()

    def processes(self) -> set[_Proc]:
        """Every live process of the cluster, as (pid, start time)."""
        found: set[_Proc] = set()
        for node in self.nodes:
            found |= node.processes()
        return found

    def pids(self) -> set[int]:
        """The ids of every live process of the cluster (see :meth:`RayNode.pids`)."""
        return {pid for pid, _ in self.processes()}

    def memory_bytes(self) -> int:
        """The resident memory of the cluster's processes: the sum of their VmRSS.

        Shared pages (the object store, the Python runtime's libraries) count once
        per process that maps them.
        """
        return sum(_rss_bytes(pid) for pid in self.pids())

    def stop(self) -> None:
        """Stops every node, by process id, and removes the cluster's folder.

        Safe to call more than once, and after a failed start.

        Raises:
            ServiceError: A process outlived SIGKILL; the others were stopped.
        """
        if self._stopped:
            return
        started = time.monotonic()
        # Every node at once, so that a stop costs one grace period, not one per node.
        errors = _in_parallel([node.stop for node in self.nodes])
        self._stopped = True
        _LIVE_CLUSTERS.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)
        self.stop_seconds = time.monotonic() - started
        if errors:
            raise errors[0]

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_node(
        self, name: str, host: str, resources: Mapping[str, float], *, head: RayNode | None
    ) -> RayNode:
        node = (RayHead if head is None else RayWorker)(
            host=host,
            startup_timeout=self._startup_timeout,
            extra_args=self._extra_args,
            root=self.root / name,
            head=head,
            token=self.token,
            resources=resources,
            num_cpus=self._num_cpus,
            object_store_memory=self._object_store_memory,
            node_env=self._node_env,
        )
        _LIVE.add(node)
        try:
            node._initialize()
            node._launch(new_ports=True)
        except BaseException:
            node.stop()
            raise
        return node


# Clusters that may be running, stopped at exit if their owner forgot. Registered
# after stepwire_services' own hook, so this one runs first and the nodes' folders
# go with the cluster's.
_LIVE_CLUSTERS: set[RayCluster] = set()


@atexit.register
def _stop_forgotten_clusters() -> None:
    for cluster in list(_LIVE_CLUSTERS):
        with contextlib.suppress(Exception):
            cluster.stop()


def _auth_environment(token: str) -> dict[str, str]:
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        # "0" (which someone may have set for macOS or Windows) makes every process
        # take 127.0.0.1 as its own address and a worker node refuse to start.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
    }


def _check_host(host: str) -> None:
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(p.isdigit() for p in parts):
        raise ValueError(f"{host!r} is not a loopback IPv4 address (127.0.0.0/8)")
    if host == "127.0.0.1":
        raise ValueError("Ray replaces 127.0.0.1 with the host's external address")


def _rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def _in_parallel(calls: Sequence[Callable[[], object]]) -> list[BaseException]:
    """Runs the calls in threads of their own; returns what they raised."""
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
