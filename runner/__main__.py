"""``python -m runner``: the remedy command line."""

from runner.cli.program import entry

entry()
