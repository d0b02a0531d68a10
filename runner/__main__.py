"""``python -m runner``: the remedy command line."""

import sys

from runner.cli import main

sys.exit(main())
