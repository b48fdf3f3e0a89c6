"""Pins the private parts of TFX's ``metadata.Metadata`` that ``GuardedMetadata`` writes.

``GuardedMetadata.__enter__`` puts its guarded store into ``_store`` and counts
itself in ``_users``, reads ``_connection_config``, and inherits TFX's
``__exit__`` and ``store``. An ml-pipelines-sdk release that renames or repurposes
any of them would otherwise break the guard quietly (TFX opening its own unguarded
store, or ``m.store`` raising "not in enter state"); these tests fail loudly instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from stepwire_testkit import sqlite_config
from tfx.orchestration import metadata

from stepwire import mlmd_guard
from stepwire.mlmd_guard import GuardedMetadata, GuardedMetadataStore

TFX_PRIVATES = {"_connection_config", "_store", "_users"}
UPGRADED = (
    "ml-pipelines-sdk changed tfx.orchestration.metadata.Metadata: {what}. "
    "stepwire.mlmd_guard.GuardedMetadata writes its private attributes; adapt it, "
    "then TFX_VERSION_WRITTEN_FOR and these pins."
)


def test_installed_tfx_is_the_release_the_guard_was_written_for() -> None:
    import importlib.metadata

    installed = mlmd_guard.installed_tfx_version()
    assert installed == mlmd_guard.TFX_VERSION_WRITTEN_FOR, UPGRADED.format(
        what=f"version {installed}, the guard was written for {mlmd_guard.TFX_VERSION_WRITTEN_FOR}"
    )
    # The guard reads tfx.version (cheaper than the package metadata): the same release.
    assert importlib.metadata.version("ml-pipelines-sdk") == installed


def test_a_fresh_metadata_has_exactly_the_attributes_the_guard_writes(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "m.db")
    connection = metadata.Metadata(config)
    assert set(vars(connection)) == TFX_PRIVATES, UPGRADED.format(
        what=f"instance attributes {sorted(vars(connection))}"
    )
    assert connection._connection_config is config
    assert connection._store is None
    assert connection._users == 0
    assert connection.connection_config == config  # a copy of the attribute


def test_store_and_users_are_tfx_store_and_reference_count(tmp_path: Path) -> None:
    connection = metadata.Metadata(sqlite_config(tmp_path / "m.db"))
    with connection as m:
        assert m is connection
        assert isinstance(connection._store, metadata_store.MetadataStore), UPGRADED.format(
            what=f"_store holds a {type(connection._store).__name__} while entered"
        )
        assert m.store is connection._store
        assert connection._users == 1
        with connection:
            assert connection._users == 2
        # Leaving an inner block keeps the store; only the last one drops it.
        assert connection._users == 1
        assert connection._store is not None
    assert connection._users == 0
    assert connection._store is None
    with pytest.raises(RuntimeError, match="not in enter state"):
        _ = connection.store
    assert set(vars(connection)) == TFX_PRIVATES


def test_store_property_returns_whatever_the_attribute_holds(tmp_path: Path) -> None:
    # The guard relies on this: it sets _store to its own object, not a MetadataStore.
    connection = metadata.Metadata(sqlite_config(tmp_path / "m.db"))
    stand_in = object()
    connection._store = stand_in
    assert connection.store is stand_in
    assert isinstance(vars(metadata.Metadata)["store"], property)


def test_guarded_metadata_overrides_only_enter() -> None:
    # __exit__ (decrement _users, drop _store at 0) and store stay TFX's.
    overridden = {
        name
        for name in ("__init__", "__enter__", "__exit__", "store", "connection_config")
        if name in vars(GuardedMetadata)
    }
    assert overridden == {"__init__", "__enter__"}


def test_guarded_store_sits_in_tfx_attribute_while_entered(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path / "m.db")
    connection = GuardedMetadata(config)
    assert set(vars(connection)) >= TFX_PRIVATES
    assert connection._connection_config is config
    with connection as m:
        assert isinstance(m.store, GuardedMetadataStore)
        assert m.store is connection._store
        assert connection._users == 1
        with connection as nested:
            assert nested.store is m.store
            assert connection._users == 2
        # TFX's own methods go through the guarded store.
        assert m.store.get_context_types() == []
        first = m.store
    assert connection._users == 0
    assert connection._store is None
    with pytest.raises(RuntimeError, match="not in enter state"):
        _ = connection.store
    with connection as m:
        assert m.store is first


@pytest.fixture
def fresh_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forgets that this process already compared the TFX version."""
    monkeypatch.setattr(mlmd_guard, "_tfx_checked", False)


@pytest.mark.usefixtures("fresh_check")
def test_another_tfx_release_logs_one_warning_at_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mlmd_guard, "installed_tfx_version", lambda: "9.9.9")
    with caplog.at_level(logging.WARNING, logger=mlmd_guard.__name__):
        for _ in range(3):
            with GuardedMetadata(sqlite_config(tmp_path / "m.db")) as m:
                assert m.store.get_context_types() == []  # a warning, not a failure
    warnings = [r for r in caplog.records if r.name == mlmd_guard.__name__]
    assert len(warnings) == 1
    [record] = warnings
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "9.9.9" in message
    assert mlmd_guard.TFX_VERSION_WRITTEN_FOR in message
    assert "\n" not in message


@pytest.mark.usefixtures("fresh_check")
def test_the_expected_tfx_release_logs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        mlmd_guard, "installed_tfx_version", lambda: mlmd_guard.TFX_VERSION_WRITTEN_FOR
    )
    with caplog.at_level(logging.WARNING, logger=mlmd_guard.__name__):
        GuardedMetadata(sqlite_config(tmp_path / "m.db"))
    assert not [r for r in caplog.records if r.name == mlmd_guard.__name__]
    assert mlmd_guard.warn_if_tfx_differs() is False  # checked once per process
