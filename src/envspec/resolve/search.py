"""resolvelib's search, with its pin checks remembered and its preference questions asked
of each criterion's own list: the one place envspec reaches past resolvelib's public API. Both
methods it replaces are the same in resolvelib 1.1.0 to 1.2.1, hence `resolvelib<1.3` in
pyproject.toml, and tests/test_search.py fails if either changes shape.

Every round resolvelib asks, of every criterion, whether the current pin satisfies all its
requirements, and once more, after a pin, of the names that were satisfied
(`Resolution._is_current_pin_satisfying`): on the seed stack some 19,000 checks over
54,000 requirements for macos-arm64 alone, nearly all asked before with the same answer. A
criterion is never changed once made (resolvelib builds a new one to add or remove
requirements, and documents it as immutable) and neither is a candidate, so one (criterion,
pin) pair always gets the same answer. Each criterion keeps the answer for its last pin, by
the criterion's identity, with both objects held so that their ids stay theirs. Which
questions are asked, and in what order, is resolvelib's as before: the locks are the same
bytes.

For the preference of each unsatisfied name, every round, resolvelib wraps the state in two
fresh mappings and the provider copies the name's information out of them: 9,500 times for
the seed stack's three targets. A provider with `preference` (`Provider`) is handed the
criterion's information list itself, and works out what the list says once per list.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol

from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import RequirementInformation, Result
from resolvelib.resolvers.criterion import Criterion
from resolvelib.resolvers.resolution import Resolution, _build_result

from envspec.resolve.values import Candidate, Req

Checked = tuple[Criterion[Req, Candidate], Candidate, bool]
Information = Collection[RequirementInformation[Req, Candidate]]


class Prefers(Protocol):
    """`get_preference` from a criterion's `information` list (`Provider.preference`)."""

    def __call__(self, identifier: str, information: Information, causes: Information) -> Any: ...


class _Resolution(Resolution[Req, Candidate, str]):
    """resolvelib's resolution; a pin check is answered once per (criterion, pin), and a
    preference is asked of the criterion's own information list."""

    def __init__(
        self,
        provider: AbstractProvider[Req, Candidate, str],
        reporter: BaseReporter[Req, Candidate, str],
    ) -> None:
        super().__init__(provider, reporter)
        self._checked: dict[int, Checked] = {}  # by the criterion's id: its last pin's answer
        self._prefer: Prefers | None = getattr(provider, "preference", None)

    def _get_preference(self, name: str) -> Any:
        # resolvelib wraps the state in two mappings per call, for each unsatisfied name of
        # every round; a provider that can take the criterion's own list is handed it
        if self._prefer is None:
            return super()._get_preference(name)
        state = self.state
        return self._prefer(name, state.criteria[name].information, state.backtrack_causes)

    def _is_current_pin_satisfying(self, name: str, criterion: Criterion[Req, Candidate]) -> bool:
        pin = self._states[-1].mapping.get(name)  # `state`, without its property call
        if pin is None:
            return False
        known = self._checked.get(id(criterion))
        if known is None or known[1] is not pin:
            satisfied = super()._is_current_pin_satisfying(name, criterion)
            known = self._checked[id(criterion)] = (criterion, pin, satisfied)
        return known[2]


class Search(Resolver[Req, Candidate, str]):
    """`resolvelib.Resolver` over `_Resolution`."""

    def resolve(  # type: ignore[override]
        self, requirements: Iterable[Req], max_rounds: int = 100
    ) -> Result[Req, Candidate, str]:
        state = _Resolution(self.provider, self.reporter).resolve(requirements, max_rounds)
        return _build_result(state)
