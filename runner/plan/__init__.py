"""Plan: validated inputs + the run's options -> one ``HostPlan`` per selected host.

Takes ``load.Inputs`` and ``RunOptions``; gives ``HostPlan``s (``hosts``):
the plays that apply to each host in fault order with their merged
variables, the host's task nodes, its connection parameters and the secret
values its variables hold (``secrets``), all decided before any host is
contacted; and reads back a saved plan (``saved``) to compare a run or a
fresh plan with it; ``artifact`` seals, signs and checks a saved plan.
What each task would change is predicted by running the plan in check
mode (``run``).

May import: ``load`` and everything it may import.
"""
