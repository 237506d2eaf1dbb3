"""The resolvelib search with its pin checks remembered (`envspec.resolve.search`): it finds
what resolvelib's own `Resolver` finds, on a problem that backtracks, while asking the
provider a fraction of the questions; and the method it replaces is still resolvelib's."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from resolvelib import AbstractProvider, BaseReporter, Resolver
from resolvelib.resolvers import ResolutionImpossible
from resolvelib.resolvers.resolution import Resolution

from envspec.resolve.search import Search

# name → version → its dependencies. Decided in name order: api 2.0 brings core>=2 and core
# 2.0 is pinned before driver, the only one, brings core<2. resolvelib backjumps to api 1.0.
INDEX: dict[str, dict[str, list[tuple[str, str]]]] = {
    "app": {"1.0": [("api", ">=1"), ("base", ">=1"), ("log", "")]},
    "api": {"2.0": [("core", ">=2"), ("log", ">=2")], "1.0": [("core", ">=1"), ("log", ">=1")]},
    "base": {"1.0": [("driver", ""), ("log", "<3")]},
    "core": {"2.0": [("log", "")], "1.0": [("log", "")]},
    "driver": {"1.0": [("core", "<2"), ("log", ">=1")]},
    "log": {"3.0": [], "2.0": [], "1.0": []},
}


@dataclass(frozen=True)
class Req:
    name: str
    specifier: SpecifierSet


@dataclass(frozen=True)
class Cand:
    name: str
    version: Version


class Toy(AbstractProvider[Req, Cand, str]):
    """An in-memory provider that counts the pin checks resolvelib makes."""

    def __init__(self, index: Mapping[str, Mapping[str, list[tuple[str, str]]]]) -> None:
        self.index = index
        self.checks = 0
        self._cands: dict[tuple[str, str], Cand] = {}

    def identify(self, requirement_or_candidate: Req | Cand) -> str:
        return requirement_or_candidate.name

    def get_preference(self, identifier: str, *args: Any, **kwargs: Any) -> Any:
        return identifier

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Cand]],
    ) -> Sequence[Cand]:
        wanted = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        out = []
        for text in sorted(self.index[identifier], key=Version, reverse=True):
            version = Version(text)
            if version not in bad and all(version in r.specifier for r in wanted):
                out.append(self._cands.setdefault((identifier, text), Cand(identifier, version)))
        return out

    def is_satisfied_by(self, requirement: Req, candidate: Cand) -> bool:
        self.checks += 1
        return candidate.version in requirement.specifier

    def get_dependencies(self, candidate: Cand) -> Iterable[Req]:
        deps = self.index[candidate.name][str(candidate.version)]
        return [Req(name, SpecifierSet(spec)) for name, spec in deps]


class Conflicts(BaseReporter[Req, Cand, str]):
    def __init__(self) -> None:
        self.count = 0

    def resolving_conflicts(self, causes: Any) -> None:
        self.count += 1


def _pins(result: Any) -> dict[str, str]:
    return {name: str(c.version) for name, c in result.mapping.items()}


def _edges(result: Any) -> set[tuple[str | None, str]]:
    graph = result.graph
    return {(parent, child) for parent in graph for child in graph.iter_children(parent)}


def test_same_solution_as_resolvelib_with_fewer_pin_checks() -> None:
    plain, remembered = Toy(INDEX), Toy(INDEX)
    roots = [Req("app", SpecifierSet())]
    heard = Conflicts()
    expected = Resolver(plain, BaseReporter()).resolve(roots, max_rounds=200)
    found = Search(remembered, heard).resolve(roots, max_rounds=200)
    assert heard.count == 1  # the backjump
    assert _pins(found) == _pins(expected) == {
        "app": "1.0",
        "api": "1.0",
        "base": "1.0",
        "core": "1.0",
        "driver": "1.0",
        "log": "2.0",
    }
    assert _edges(found) == _edges(expected)
    assert remembered.checks < plain.checks / 2, (remembered.checks, plain.checks)


def test_no_solution_is_reported_as_resolvelib_reports_it() -> None:
    index = {**INDEX, "app": {"1.0": [("api", ">=2"), ("base", ">=1")]}}
    roots = [Req("app", SpecifierSet())]
    with pytest.raises(ResolutionImpossible) as plain:
        Resolver(Toy(index), BaseReporter()).resolve(roots, max_rounds=200)
    with pytest.raises(ResolutionImpossible) as remembered:
        Search(Toy(index), BaseReporter()).resolve(roots, max_rounds=200)
    assert [(c.requirement, c.parent) for c in remembered.value.causes] == [
        (c.requirement, c.parent) for c in plain.value.causes
    ]


class Prefers(Toy):
    """A provider that also takes a criterion's own information list (`preference`), and
    notes which list each call was handed."""

    def __init__(self, index: Mapping[str, Mapping[str, list[tuple[str, str]]]]) -> None:
        super().__init__(index)
        self.calls = 0
        self.lists: dict[int, list[Any]] = {}  # held, so that no id is reused

    def get_preference(self, identifier: str, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the search asks `preference`")

    def preference(self, identifier: str, information: Any, causes: Any) -> Any:
        assert isinstance(information, list)
        self.calls += 1
        self.lists[id(information)] = information
        return identifier


def test_a_provider_that_takes_the_criterions_list_is_handed_it() -> None:
    roots = [Req("app", SpecifierSet())]
    expected = Resolver(Toy(INDEX), BaseReporter()).resolve(roots, max_rounds=200)
    provider = Prefers(INDEX)
    found = Search(provider, BaseReporter()).resolve(roots, max_rounds=200)
    assert _pins(found) == _pins(expected)
    assert _edges(found) == _edges(expected)
    # asked, and handed the criteria's own lists: the same list again while it is unchanged
    assert 0 < len(provider.lists) < provider.calls, (len(provider.lists), provider.calls)


def test_the_replaced_methods_are_resolvelibs() -> None:
    # the search overrides private methods: a resolvelib that renames them must fail here
    base = inspect.signature(Resolution._is_current_pin_satisfying)
    assert list(base.parameters) == ["self", "name", "criterion"]
    assert list(inspect.signature(Resolution._get_preference).parameters) == ["self", "name"]
