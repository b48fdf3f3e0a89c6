"""What-if, not in the runtime: the step entrypoint ending with ``os._exit`` after flushing.

Runs exactly what ``python -m stepwire.entrypoints.step_entrypoint ARGS`` runs (the
stand-ins, then ``main()`` through ``run_and_exit``) and then, instead of the
interpreter's normal finalization (tearing down every module and object), flushes
the standard streams and logging and leaves with ``os._exit(code)``. It measures what
that change to ``exit_codes.run_and_exit`` would save.
"""

import logging
import os
import sys

from stepwire import _fast_imports

_fast_imports.install()

from stepwire.entrypoints.exit_codes import run_and_exit  # noqa: E402
from stepwire.entrypoints.step_entrypoint import main  # noqa: E402

if __name__ == "__main__":
    try:
        run_and_exit(main)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
