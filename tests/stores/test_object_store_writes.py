"""Writes to an object store through stepwire's file layer, on the S3 server."""

from __future__ import annotations

import gc

import pytest

from stepwire import io_utils


def test_a_failed_write_publishes_nothing_and_a_whole_one_reads_back(
    s3_environment: dict[str, str], s3_bucket: str
) -> None:
    import s3fs

    # Instances are cached by their arguments, not by the environment they read.
    s3fs.S3FileSystem.clear_instance_cache()
    target = f"s3://{s3_bucket}/outputs/value.bin"

    def dying_writer() -> None:
        with io_utils.write_whole(target) as file:
            file.write(b"x" * 4096)
            raise RuntimeError("the writer dies")

    with pytest.raises(RuntimeError, match="the writer dies"):
        dying_writer()
    # Neither the end of the block nor garbage collection may commit the upload.
    gc.collect()
    assert not io_utils.exists(target)

    io_utils.write_bytes(target, b"whole")
    assert io_utils.read_bytes(target) == b"whole"
