"""resolvelib's search, with its pin checks remembered: the one place envspec reaches past
resolvelib's public API: it is the same in resolvelib 1.1.0 to 1.2.1, hence `resolvelib<1.3`
in pyproject.toml, and tests/test_search.py fails if the method it replaces changes shape.

Every round resolvelib asks, of every criterion, whether the current pin satisfies all its
requirements, and once more, after a pin, of the names that were satisfied
(`Resolution._is_current_pin_satisfying`): on the seed stack some 19,000 checks over
54,000 requirements for macos-arm64 alone, nearly all asked before with the same answer. A
criterion is never changed once made (resolvelib builds a new one to add or remove
requirements, and documents it as immutable) and neither is a candidate, so one (criterion,
pin) pair always gets the same answer. It is kept by the pair's identities, with both
objects held so that their ids stay theirs. Which questions are asked, and in what order,
is resolvelib's as before: the locks are the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import Result
from resolvelib.resolvers.criterion import Criterion
from resolvelib.resolvers.resolution import Resolution, _build_result

from envspec.resolve.values import Candidate, Req

Checked = tuple[Criterion[Req, Candidate], Candidate, bool]


class _Resolution(Resolution[Req, Candidate, str]):
    """resolvelib's resolution; a pin check is answered once per (criterion, pin)."""

    def __init__(
        self,
        provider: AbstractProvider[Req, Candidate, str],
        reporter: BaseReporter[Req, Candidate, str],
    ) -> None:
        super().__init__(provider, reporter)
        self._checked: dict[tuple[int, int], Checked] = {}

    def _is_current_pin_satisfying(self, name: str, criterion: Criterion[Req, Candidate]) -> bool:
        pin = self.state.mapping.get(name)
        if pin is None:
            return False
        key = (id(criterion), id(pin))
        known = self._checked.get(key)
        if known is None:
            satisfied = super()._is_current_pin_satisfying(name, criterion)
            known = self._checked[key] = (criterion, pin, satisfied)
        return known[2]


class Search(Resolver[Req, Candidate, str]):
    """`resolvelib.Resolver` over `_Resolution`."""

    def resolve(  # type: ignore[override]
        self, requirements: Iterable[Req], max_rounds: int = 100
    ) -> Result[Req, Candidate, str]:
        state = _Resolution(self.provider, self.reporter).resolve(requirements, max_rounds)
        return _build_result(state)
