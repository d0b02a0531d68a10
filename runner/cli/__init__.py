"""The ``remedy`` command line: parse the arguments, call the stages, print, exit with a code.

Takes ``argv``; gives an exit code (``main``; ``entry`` is the program).
``parser`` defines the command line, ``program`` dispatches each subcommand
and turns errors into exit codes, ``commands`` wires ``run``/``plan``/
``diagnose`` (options, audit log, signals, execution, rendering), ``apply``
checks a saved plan and runs it once, ``collect`` packs the hosts' diagnosis
bundles into one archive, ``alerting`` turns alerts into runs, ``demo`` runs
the embedded sandbox remediation.

May import: every stage (``output``, ``run``, ``plan``, ``load``) and below;
nothing imports it but ``runner.__main__``.
"""

from __future__ import annotations

from runner.cli.program import entry, main

__all__ = ["entry", "main"]
