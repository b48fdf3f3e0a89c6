"""By-reference values: whole files only, an existing file trusted only if it hashes right."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stepwire import io_utils
from stepwire.entrypoints.references import ArtifactStoreReferences


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_partial_file_at_the_name_is_replaced(tmp_path: Path) -> None:
    references = ArtifactStoreReferences(str(tmp_path / "store"))
    payload = b"x" * 100_000
    uri = io_utils.join(references.folder, _sha(payload))
    io_utils.write_bytes(uri, payload[:1000])  # what a killed writer used to leave
    assert references.put(payload, _sha(payload)) == uri
    assert _sha(references.read(uri)) == _sha(payload)


def test_a_whole_file_at_the_name_is_kept(tmp_path: Path) -> None:
    references = ArtifactStoreReferences(str(tmp_path / "store"))
    payload = b"payload"
    uri = references.put(payload, _sha(payload))
    inode = Path(uri).stat().st_ino
    assert references.put(payload, _sha(payload)) == uri
    assert Path(uri).stat().st_ino == inode


def test_a_failed_write_leaves_neither_the_file_nor_a_partial_one(tmp_path: Path) -> None:
    target = tmp_path / "folder" / "file"
    with pytest.raises(TypeError):
        io_utils.write_bytes(str(target), "not bytes")  # type: ignore[arg-type]
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from stepwire.entrypoints.references import ArtifactStoreReferences

    payload = bytes(range(256)) * (32 * 1024 * 1024 // 256)
    sha = hashlib.sha256(payload).hexdigest()
    references = ArtifactStoreReferences(sys.argv[1])
    # What a launcher does: put the value, then the step reads it back by its URI.
    uri = references.put(payload, sha)
    sys.exit(0 if hashlib.sha256(references.read(uri)).hexdigest() == sha else 3)
    """
)


def test_two_writers_of_one_large_value_never_mix_it(tmp_path: Path) -> None:
    # Measured before: 4 mismatches in 10 races of two 32 MiB writers on one file.
    payload = bytes(range(256)) * (32 * 1024 * 1024 // 256)
    for trial in range(10):
        store = tmp_path / f"store{trial}"
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(store)]) for _ in range(2)]
        # 3: a writer read back something else than it put (a partial file).
        assert [w.wait(timeout=120) for w in writers] == [0, 0], f"trial {trial}"
        references = ArtifactStoreReferences(str(store))
        data = references.read(io_utils.join(references.folder, _sha(payload)))
        assert _sha(data) == _sha(payload), f"trial {trial}"
        assert [p.name for p in Path(references.folder).iterdir()] == [_sha(payload)]


@pytest.mark.parametrize("kind", ["link to /dev/zero", "link outside the store", "fifo"])
def test_only_a_regular_file_inside_the_store_is_read(tmp_path: Path, kind: str) -> None:
    references = ArtifactStoreReferences(str(tmp_path / "store"))
    folder = Path(references.folder)
    folder.mkdir(parents=True)
    name = folder / ("ab" * 32)
    if kind == "fifo":
        os.mkfifo(name)  # nothing ever writes: a blocking read would hang the step
    else:
        outside = tmp_path / "secret"
        outside.write_bytes(b"secret")
        name.symlink_to("/dev/zero" if kind == "link to /dev/zero" else outside)
    started = time.monotonic()
    with pytest.raises(PermissionError):
        references.read(str(name))
    assert time.monotonic() - started < 5


def test_a_reference_larger_than_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepwire.entrypoints import references as module

    monkeypatch.setattr(module, "MAX_PAYLOAD_BYTES", 10)
    store = ArtifactStoreReferences(str(tmp_path / "store"))
    uri = io_utils.join(store.folder, "cd" * 32)
    io_utils.write_bytes(uri, b"x" * 11)
    with pytest.raises(ValueError, match="more than the 10 bytes"):
        store.read(uri)
    io_utils.write_bytes(uri, b"x" * 10)
    assert store.read(uri) == b"x" * 10


@pytest.mark.parametrize(
    ("uri", "inside"),
    [
        ("/store/a/b", True),
        ("/store", True),
        ("/store/../victim", False),
        ("/store/a/../../victim", False),
        ("/storefront/a", False),
        ("s3://bucket/store/a", True),
        ("s3://bucket/store/../x", False),
        ("gs://bucket/store/a", False),
    ],
)
def test_is_inside_resolves_dot_dot(uri: str, inside: bool) -> None:
    root = "s3://bucket/store" if "://" in uri else "/store"
    assert io_utils.is_inside(uri, root) is inside
