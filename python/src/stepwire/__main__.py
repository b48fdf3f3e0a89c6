"""``python -m stepwire``: the ``stepwire`` command line."""

import sys

from stepwire.cli import main

sys.exit(main())
