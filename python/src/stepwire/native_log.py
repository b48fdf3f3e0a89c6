"""What ML Metadata's C++ client writes to the process's stderr while it connects.

ML Metadata's MySQL and PostgreSQL clients log through glog straight to file
descriptor 2: two INFO lines on every connection, and the only useful text of a
failure ("password authentication failed for user ..."), while the Python exception
says no more than "connection pointer is NULL". Those lines would precede a step's
``stepwire: <kind>: ...`` line, which must be the first one a launcher reads.

:func:`capture_native_stderr` points descriptor 2 at a temporary file for the
duration of a call, then hands back glog's error lines so that the caller can put
them in its own one-line message. ``STEPWIRE_TFX_LOGS=1`` passes everything through
as well, for debugging.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

ENV_TFX_LOGS = "STEPWIRE_TFX_LOGS"

_MAX_CAPTURED = 64 * 1024
# glog's prefix: severity letter, MMDD, time, thread id, file:line, then "] ".
_GLOG_LINE = re.compile(r"^(?P<severity>[IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] ?(?P<message>.*)$")


@dataclass
class NativeLog:
    """What the native client wrote during one call.

    Attributes:
        text: Everything written to descriptor 2 (at most 64 KiB).
    """

    text: str = field(default="")

    def errors(self) -> str:
        """The ERROR and FATAL messages glog wrote, joined in one line.

        Returns:
            The messages without glog's prefixes, separated by ``"; "``.
        """
        messages = []
        for line in self.text.splitlines():
            match = _GLOG_LINE.match(line.strip())
            if match and match["severity"] in "EF":
                message = " ".join(match["message"].split())
                if message and message not in messages:
                    messages.append(message)
        return "; ".join(messages)


@contextlib.contextmanager
def capture_native_stderr() -> Iterator[NativeLog]:
    """Captures what is written to file descriptor 2 inside the ``with`` block.

    Python's own ``sys.stderr`` is flushed first, so nothing written before the
    block lands in the capture. Other threads writing to descriptor 2 meanwhile
    are captured too; the block is meant for a single short call.

    Yields:
        A :class:`NativeLog`, filled when the block ends.
    """
    log = NativeLog()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        # No descriptor 2 at all (a daemon): nothing to capture.
        yield log
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            data = sink.read(_MAX_CAPTURED)
            log.text = data.decode("utf-8", errors="replace")
            if os.environ.get(ENV_TFX_LOGS) == "1" and data:
                with contextlib.suppress(OSError):
                    os.write(2, data)
