"""Real MariaDB, PostgreSQL and S3 (SeaweedFS) servers on loopback, one of each per session.

The servers come from ``stepwire_services`` (tools/services). A test gets a fresh
database or bucket of its own from the function-scoped fixtures; the servers are
shared, so a test that stops or restarts one should start its own instead
(``with MariaDB.start() as db:``).

A server whose programs are missing skips the tests that need it, unless
``STEPWIRE_REQUIRE_SERVICES=1`` (as in CI), which fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from stepwire_services import MariaDB, PostgreSQL, S3Server, Service, ServiceUnavailable

_S = TypeVar("_S", bound=Service)
_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test of this folder ``stores``: ``nox -s stores`` runs them, ``tests`` not."""
    for item in items:
        if str(item.path).startswith(_HERE + os.sep):
            item.add_marker(pytest.mark.stores)


def start_or_skip(cls: type[_S], **options: Any) -> _S:
    """Starts a service; skips (or, with STEPWIRE_REQUIRE_SERVICES=1, fails) when not installed."""
    try:
        return cls.start(**options)
    except ServiceUnavailable as missing:
        if os.environ.get("STEPWIRE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{missing} (and STEPWIRE_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(str(missing))


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
