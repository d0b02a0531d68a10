"""The blast-radius budget: at most so many hosts of a run are changed.

Run stage, shared by the host walks of one run. A host claims the budget
when its first change is about to start (after its lock and the fresh
diagnosis, before the first fix task); hosts run in parallel, so the claim is
taken under a lock. A host refused a claim changes nothing: its fix is
``not_run`` with ``budget_reason``. Check mode and diagnosis never claim.
"""

from __future__ import annotations

import threading

from runner.results import budget_reason


class ChangeBudget:
    """How many hosts may still start changes (``limit``), and which were held back."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._held: set[str] = set()

    @property
    def reason(self) -> str:
        return budget_reason(self.limit or 0)

    def claim(self, host: str) -> bool:
        """Whether ``host`` may start changing: it already did, or the budget has room for it."""
        with self._lock:
            if self.limit is None or host in self._changed:
                return True
            if len(self._changed) < self.limit:
                self._changed.add(host)
                return True
            self._held.add(host)
            return False

    def held(self) -> frozenset[str]:
        """The hosts that were refused: stopped before their first change."""
        with self._lock:
            return frozenset(self._held)
