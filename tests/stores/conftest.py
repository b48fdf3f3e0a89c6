"""Real servers on loopback, one of each per session: MariaDB, PostgreSQL, S3 (SeaweedFS)
and a two-node Ray cluster.

The servers come from ``stepwire_services`` (tools/services). A test gets a fresh
database or bucket of its own from the function-scoped fixtures; the servers are
shared, so a test that stops or restarts one should start its own instead
(``with MariaDB.start() as db:``).

A server whose programs are missing skips the tests that need it, unless
``STEPWIRE_REQUIRE_SERVICES=1`` (as in CI), which fails them instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import pytest
from stepwire_ray_cluster import RayCluster
from stepwire_services import MariaDB, PostgreSQL, S3Server, Service, ServiceUnavailable

_S = TypeVar("_S", bound=Service)
_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test of this folder ``stores``: ``nox -s stores`` runs them, ``tests`` not."""
    for item in items:
        if str(item.path).startswith(_HERE + os.sep):
            item.add_marker(pytest.mark.stores)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("STEPWIRE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (and STEPWIRE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def start_or_skip(cls: type[_S], **options: Any) -> _S:
    """Starts a service; skips (or, with STEPWIRE_REQUIRE_SERVICES=1, fails) when not installed."""
    try:
        return cls.start(**options)
    except ServiceUnavailable as missing:
        _unavailable(str(missing))


def _running(service: _S) -> _S:
    # A test that stopped the shared server and failed before starting it again
    # must not fail every test after it.
    if not service.running:
        service.start_again()
    return service


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """The session's MariaDB server (user ``stepwire``, every privilege)."""
    with start_or_skip(MariaDB) as service:
        yield service


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQL]:
    """The session's PostgreSQL server (role ``stepwire``, LOGIN CREATEDB)."""
    with start_or_skip(PostgreSQL) as service:
        yield service


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3 server (SeaweedFS), with one all-powerful identity."""
    with start_or_skip(S3Server) as service:
        yield service


@pytest.fixture
def mariadb_database(mariadb: MariaDB) -> str:
    """The name of a new, empty MariaDB database for this test."""
    return _running(mariadb).create_database()


@pytest.fixture
def postgresql_database(postgresql: PostgreSQL) -> str:
    """The name of a new, empty PostgreSQL database for this test."""
    return _running(postgresql).create_database()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """The name of a new, empty bucket for this test."""
    return _running(s3_server).create_bucket()


@pytest.fixture
def s3_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Points botocore and s3fs in this process (and its children) at the S3 server.

    Returns the variables set; those that would interfere are unset for the test.
    """
    for name in S3Server.INTERFERING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    environment = _running(s3_server).environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.fixture
def start_service() -> Iterator[Callable[..., Any]]:
    """Starts services of the test's own, as ``start_service(MariaDB, **start_options)``.

    They are stopped when the test ends, however it ends; missing programs skip the
    test as for the shared servers.
    """
    started: list[Service] = []

    def start(cls: type[_S], **options: Any) -> _S:
        service = start_or_skip(cls, **options)
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        service.stop()


# --------------------------------------------------------------------------- Ray
# A head node (127.0.0.2, ``stepwire_head``) and a worker node (127.0.0.3,
# ``stepwire_worker``). A test that kills or stops nodes starts a cluster of its own
# with ``own_ray_cluster(**start_options)``.


def start_cluster_or_skip(**options: Any) -> RayCluster:
    """Starts a cluster; skips (or, with STEPWIRE_REQUIRE_SERVICES=1, fails) without Ray."""
    # The drivers import ray: the `ray` program alone is not enough.
    if importlib.util.find_spec("ray") is None:
        _unavailable("Ray is not importable (pip install 'stepwire[ray]')")
    try:
        return RayCluster.start(**options)
    except ServiceUnavailable as missing:
        _unavailable(str(missing))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """The session's cluster: ``stepwire_head`` on 127.0.0.2, ``stepwire_worker`` on .3."""
    with start_cluster_or_skip() as cluster:
        yield cluster


@pytest.fixture
def ray_driver_env(ray_cluster: RayCluster) -> dict[str, str]:
    """The environment of a driver process of the session's cluster."""
    return ray_cluster.driver_env()


@pytest.fixture
def own_ray_cluster() -> Iterator[Callable[..., RayCluster]]:
    """Starts clusters of the test's own, as ``own_ray_cluster(**start_options)``.

    They are stopped when the test ends, however it ends.
    """
    started: list[RayCluster] = []

    def start(**options: Any) -> RayCluster:
        cluster = start_cluster_or_skip(**options)
        started.append(cluster)
        return cluster

    yield start
    for cluster in reversed(started):
        cluster.stop()
