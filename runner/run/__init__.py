"""Run: execute the host plans over their connections, one terminal record per host x task.

Takes ``HostPlan``s, ``Inputs`` and ``RunOptions``; gives a finished ``Run``
(``executor.execute``) and reports every record to a ``Listener`` as it ends.
Hosts run in parallel in ``serial`` batches; each host gets one connection,
its lock (``hostlock``), and is walked by ``hostwalk`` (diagnose every play,
fix in fault order, handlers once, verify each, roll back only its own; one
play's diagnosis, fix, verification and rollback is a ``playwalk``);
``taskrun`` runs one task (``rendering`` renders it for the host, ``probing``
fetches probes ahead, ``foresight`` plans from the state earlier planned changes
leave in check mode, ``blocks`` runs block/rescue/always, ``transfer`` moves
files) with the ``context`` of its host. No exception crosses ``executor``.
The guide's diagnosis bundle: ``evidence`` says what it holds and gathers it,
``capture`` takes it on one host (masked, stored; also a run's evidence
before the first change and at the end), ``collect`` on many hosts at once.

May import: ``plan``, ``load`` and everything they may import.
"""
