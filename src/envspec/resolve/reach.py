"""Which phases reach an identifier: the requirement edges of one resolution attempt.

resolvelib reports every requirement it adds (`adding_requirement`): a phase's own with no
parent, a dependency with the candidate that asked for it. When a source fails while an
identifier is being worked on (a git repository that cannot be read, an sdist whose build
fails), the phases whose requirements lead to that identifier decide what happens: only
optional ones, and they are skipped; any required one, and the lock fails.

It also tells `on_round`, after each round, how many packages are pinned (`lock`'s progress).

The edges are never removed when resolvelib backtracks, so a phase may be counted as
reaching a name through a choice since undone. That errs toward failing, never toward
skipping a phase the failure has nothing to do with: the resolution is retried without the
skipped phases, and a required phase that still needs the name meets the same failure then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from resolvelib import BaseReporter

from envspec.resolve.values import PYTHON, Candidate, Req


class Reach(BaseReporter[Req, Candidate, str]):
    """Records who asked for each identifier during one resolution attempt."""

    def __init__(self, on_round: Callable[[int], None] | None = None) -> None:
        self._parents: dict[str, set[str]] = {}
        self._phases: dict[str, set[str]] = {}
        self._on_round = on_round

    def ending_round(self, index: int, state: Any) -> None:
        if self._on_round is not None:
            self._on_round(sum(1 for key in state.mapping if "[" not in key and key != PYTHON))

    def adding_requirement(self, requirement: Req, parent: Candidate | None) -> None:
        if parent is not None:
            self._parents.setdefault(requirement.key, set()).add(parent.key)
        elif requirement.origin.phase is not None:
            self._phases.setdefault(requirement.key, set()).add(requirement.origin.phase)

    def phases(self, identifier: str) -> set[str]:
        """The phases whose requirements lead to `identifier` (empty when none was seen)."""
        found: set[str] = set()
        seen = {identifier}
        queue = deque([identifier])
        while queue:
            key = queue.popleft()
            found |= self._phases.get(key, set())
            for parent in self._parents.get(key, ()):
                if parent not in seen:
                    seen.add(parent)
                    queue.append(parent)
        return found
