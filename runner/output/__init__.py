"""Output: a run, a graph or a catalogue -> text, JSON, JUnit and the audit log.

Takes finished ``Run``s, ``TaskGraph``s and playbooks; gives text and
documents, and never prints except through the ``Listener``s it provides:
``console`` (live progress), ``audit`` (the append-only JSONL log). ``runs``
renders plans, recaps, the JSON document and JUnit; ``verdicts`` the faults
per host, the health after a run and the diagnosis table; ``docs`` the task
graph, the inventory tree and the playbook and module docs; ``tables`` the
tables they share; ``summary`` the ``summary.md`` of a ``remedy collect`` archive;
``firstcontact`` what to do about unknown host keys.

May import: ``run``, ``plan``, ``load`` and everything they may import.
"""
