"""One live attempt per step and run: a claim with an owner and a lease, in ML Metadata.

TFX reuses an unfinished execution (its id and its output paths) for the next launch
of a step in a run, and stepwire removes what an earlier attempt left there. That is
right when the earlier attempt is dead, and destroys a live one's files when it is
not: a pod rescheduled while the first still runs, an engine's speculative retry.

So a launch first claims the step's next attempt number. A claim is an ML Metadata
context of type ``stepwire_attempt`` named after the run, the node and the number.
Context names are unique per type, so creating one is atomic: of two launches that
claim the same number, one gets ``AlreadyExistsError``. A claim holds its owner (host,
process id, a random token) and a lease (``lease_until``, seconds since the epoch as
a double: ML Metadata's integer properties are 32 bits on MySQL) that a heartbeat
renews while the attempt runs; the attempt releases it when it ends, and the step's
supervisor releases it when the attempt's process dies.

A launch that finds a live claim waits (``$STEPWIRE_ATTEMPT_WAIT`` seconds, twice the
lease by default) for it to be released or to expire, then claims the next number; if
the claim is still live after the wait it exits 75 without touching any file. Only
the holder of the newest claim, all older ones dead, cleans up and launches.

Leases compare clocks of different machines: keep them within a few seconds of each
other (NTP), well under the lease (``$STEPWIRE_ATTEMPT_LEASE``, 30 seconds).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stepwire import _protos
from stepwire.exceptions import InfrastructureError

if TYPE_CHECKING:
    from stepwire.mlmd_guard import GuardedMetadata

logger = logging.getLogger(__name__)

CLAIM_TYPE = "stepwire_attempt"
"""The ML Metadata context type of attempt claims."""
ENV_LEASE = "STEPWIRE_ATTEMPT_LEASE"
"""Seconds an attempt's claim lives without a heartbeat (default 30)."""
ENV_WAIT = "STEPWIRE_ATTEMPT_WAIT"
"""Seconds a launch waits for another live attempt of its step (default: twice the lease)."""
DEFAULT_LEASE = 30.0
_MAX_NAME = 200
_POLL = 0.5


class AttemptInProgressError(InfrastructureError):
    """Another attempt of the step in the same run is alive: this launch did nothing."""


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def lease_seconds() -> float:
    """The configured lease.

    Returns:
        ``$STEPWIRE_ATTEMPT_LEASE``, or 30.
    """
    return _seconds(ENV_LEASE, DEFAULT_LEASE)


def wait_seconds() -> float:
    """How long a launch waits for a live attempt.

    Returns:
        ``$STEPWIRE_ATTEMPT_WAIT``, or twice the lease.
    """
    return _seconds(ENV_WAIT, 2 * lease_seconds())


def owner_prefix(host: str, pid: int) -> str:
    """The start of the owner of every claim a process makes.

    Args:
        host: The host name.
        pid: The process id.

    Returns:
        ``host:pid:``.
    """
    return f"{host}:{pid}:"


def claim_name(node_context: str, run_name: str, attempt: int) -> str:
    """The claim's context name: unique per run, node and attempt number.

    Args:
        node_context: The node's context name (``pipeline.node``).
        run_name: The run.
        attempt: The attempt number.

    Returns:
        ``<node>@<run>#<n>``, with the run hashed when the whole would be too long
        for a database column.
    """
    name = f"{node_context}@{run_name}#{attempt}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{node_context}@{run_name}".encode()).hexdigest()[:32]
    return f"{node_context[:120]}@sha256:{digest}#{attempt}"


def _now() -> float:
    return time.time()


def _float(context: Any, key: str) -> float:
    value = context.custom_properties.get(key)
    return float(value.double_value) if value is not None else 0.0


def _int(context: Any, key: str) -> int:
    value = context.custom_properties.get(key)
    return int(value.int_value) if value is not None else 0


def _str(context: Any, key: str) -> str:
    value = context.custom_properties.get(key)
    return str(value.string_value) if value is not None else ""


def is_live(context: Any, now: float | None = None) -> bool:
    """Whether a claim's attempt may still be running.

    Args:
        context: The claim's context.
        now: The time, seconds since the epoch (now by default).

    Returns:
        True while its lease has not expired and it was not released.
    """
    return _float(context, "lease_until") > (_now() if now is None else now)


@dataclass
class Claim:
    """This process's claim on one attempt of a step in a run.

    Attributes:
        attempt: The attempt number (from 1).
        name: The claim's context name.
        context_id: Its context id.
        owner: Who holds it.
        type_id: The id of the claims' context type.
        store_lost: Set when the metadata store stopped answering during the
            attempt: the claim is then left to expire, not released.
    """

    attempt: int
    name: str
    context_id: int
    owner: str
    type_id: int
    store_lost: bool = False


def _context_type_id(store: Any) -> int:
    claim_type = _protos.MLMDContextType(name=CLAIM_TYPE)
    type_id: int = store.put_context_type(claim_type, can_add_fields=True)
    return type_id


def _try_create(store: Any, type_id: int, name: str, attempt: int, owner: str) -> int | None:
    """Creates the claim context; None if another launch created it first."""
    from ml_metadata import errors as mlmd_errors

    context = _protos.MLMDContext(type_id=type_id, name=name)
    context.custom_properties["owner"].string_value = owner
    context.custom_properties["attempt"].int_value = attempt
    context.custom_properties["lease_until"].double_value = _now() + lease_seconds()
    context.custom_properties["state"].string_value = "running"
    try:
        [context_id] = store.put_contexts([context])
    except mlmd_errors.AlreadyExistsError:
        return None
    return int(context_id)


def claim_attempt(
    mlmd: GuardedMetadata,
    node_context: str,
    run_name: str,
    *,
    step: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Claim:
    """Claims the next attempt of a step in a run, waiting for a live one to end.

    Args:
        mlmd: The launch's guarded connection, not entered.
        node_context: The node's context name (``pipeline.node``).
        run_name: The run.
        step: The step's name, for the error.
        sleep: Waits (a test hook).

    Returns:
        The claim, held by this process.

    Raises:
        AttemptInProgressError: If another attempt's claim is still live after
            the wait (exit code 75: a retry later finds it ended).
    """
    owner = owner_prefix(socket.gethostname(), os.getpid()) + secrets.token_hex(6)
    deadline = time.monotonic() + wait_seconds()
    attempt = 1
    while True:
        name = claim_name(node_context, run_name, attempt)
        with mlmd as m:
            existing = m.store.get_context_by_type_and_name(CLAIM_TYPE, name)
            if existing is None:
                type_id = _context_type_id(m.store)
                created = _try_create(m.store, type_id, name, attempt, owner)
                if created is not None:
                    return Claim(attempt, name, created, owner, type_id)
                continue  # another launch took this number: look at its claim
        if not is_live(existing):
            attempt += 1
            continue
        if time.monotonic() >= deadline:
            until = _float(existing, "lease_until")
            raise AttemptInProgressError(
                f"step '{step}' of run '{run_name}' is being run by another attempt "
                f"(attempt {attempt}, {_str(existing, 'owner')}, lease until "
                f"{time.strftime('%H:%M:%S', time.gmtime(until))} UTC); nothing was done"
            )
        sleep(_POLL)


def _claim_context(claim: Claim, lease_until: float, state: str) -> Any:
    """The claim's context as this process, its only writer while it lives, has it."""
    context = _protos.MLMDContext(id=claim.context_id, type_id=claim.type_id, name=claim.name)
    context.custom_properties["owner"].string_value = claim.owner
    context.custom_properties["attempt"].int_value = claim.attempt
    context.custom_properties["lease_until"].double_value = lease_until
    context.custom_properties["state"].string_value = state
    return context


def _update(mlmd: GuardedMetadata, claim: Claim, lease_until: float, state: str) -> None:
    # Only this process writes its claim while it is alive (the supervisor's
    # release_claims_of runs once it is dead), so the claim need not be read first.
    with mlmd as m:
        m.store.put_contexts([_claim_context(claim, lease_until, state)])


def release(mlmd: GuardedMetadata, claim: Claim, state: str) -> None:
    """Ends a claim: the next launch takes the next attempt at once.

    Best effort: a claim that cannot be released expires with its lease.

    Args:
        mlmd: A guarded connection, not entered.
        claim: The claim.
        state: How the attempt ended, recorded on the claim (``completed``...).
    """
    if claim.store_lost:
        logger.warning("Not releasing the claim %s: the metadata store is gone", claim.name)
        return
    try:
        _update(mlmd, claim, 0.0, state)
    except Exception as e:  # the lease expires anyway
        logger.warning("Could not release the claim %s: %s", claim.name, e)


class Heartbeat:
    """Renews a claim's lease every third of the lease while the attempt runs.

    Args:
        connect: Makes a connection of its own (the launch's is not shared
            across threads).
        claim: The claim.
    """

    def __init__(self, connect: Callable[[], GuardedMetadata], claim: Claim) -> None:
        self._connect = connect
        self._claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="stepwire-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        period = lease_seconds() / 3
        mlmd: GuardedMetadata | None = None
        while not self._stop.wait(period):
            try:
                mlmd = mlmd or self._connect()
                until = _now() + lease_seconds()
                _update(mlmd, self._claim, until, "running")
            except Exception as e:  # renewed at the next beat, or the lease expires
                logger.warning("Could not renew the claim %s: %s", self._claim.name, e)


def release_claims_of(
    mlmd: GuardedMetadata, node_context: str, run_name: str, owner_start: str
) -> list[int]:
    """Releases the live claims a dead process held on a step of a run.

    Args:
        mlmd: A guarded connection, not entered.
        node_context: The node's context name.
        run_name: The run.
        owner_start: :func:`owner_prefix` of the dead process.

    Returns:
        The attempt numbers released.
    """
    released = []
    attempt = 1
    with mlmd as m:
        while True:
            context = m.store.get_context_by_type_and_name(
                CLAIM_TYPE, claim_name(node_context, run_name, attempt)
            )
            if context is None:
                break
            if is_live(context) and _str(context, "owner").startswith(owner_start):
                context.custom_properties["lease_until"].double_value = 0.0
                context.custom_properties["state"].string_value = "died"
                m.store.put_contexts([context])
                released.append(attempt)
            attempt += 1
    return released
