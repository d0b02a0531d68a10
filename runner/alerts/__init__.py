"""Alerts: Alertmanager notifications -> guarded remedy runs (``remedy trigger``, ``remedy listen``).

Takes webhook payloads, a rules file and the inventory; gives decisions (one
per alert: run, plan, or why not) and ``TriggeredRun``s, which ``cli`` runs
as normal runs through a function it passes in. The flow inside:
``payload`` checks a notification, ``rules`` reads the rules file (strictly,
through ``load``), ``targets`` matches each alert to its rule and inventory
host, ``guards`` decides (dedup, cooldown, storm, restart loop) over the
state that ``store`` keeps in a file, ``dispatch`` ties them together and
records each decision in the audit log, ``server`` is the HTTP receiver with
its bounded worker queue.

May import: ``output``, ``run``, ``plan``, ``load`` and everything they may
import; only ``cli`` imports it.
"""
