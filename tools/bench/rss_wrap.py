"""Runs a command and records its wall time and its own peak RSS: ``rss_wrap.py OUT CMD...``.

A child's ``ru_maxrss`` on Linux includes the resident size of the process it was
forked from (the high-water mark survives ``exec``), so a large benchmark process
would inflate every child's figure. This wrapper is started with ``python -S`` (a
few MiB), spawns the command and reaps it with ``os.wait4``; the JSON written to OUT
has the spawn and exit stamps (``time.monotonic()``, one clock for all processes),
the wall time, the peak RSS in KiB, the CPU times and the exit code, which is also
this wrapper's exit code.
"""

import json
import os
import sys
import time

out, command = sys.argv[1], sys.argv[2:]
spawned = time.monotonic()
pid = os.posix_spawnp(command[0], command, os.environ)
_, status, usage = os.wait4(pid, 0)
exited = time.monotonic()
code = os.waitstatus_to_exitcode(status)
with open(out, "w", encoding="utf-8") as f:
    json.dump(
        {
            "seconds": exited - spawned,
            "max_rss_kib": usage.ru_maxrss,
            "user_seconds": usage.ru_utime,
            "system_seconds": usage.ru_stime,
            "exit_code": code,
            "spawned": spawned,
            "exited": exited,
        },
        f,
    )
sys.exit(code if code >= 0 else 128 - code)
