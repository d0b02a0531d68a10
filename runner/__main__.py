"""``python -m runner``: the remedy command line."""

from runner.cli import entry

entry()
