"""The pruner: its verdicts, and its metadata read-ahead while resolvelib and the look-ahead
walk versions.

A dead end is looked for as deep below a version as the look-ahead goes from wherever the
version is asked about: a version first met deep below another, and viable as far as that
look went, is looked at again when resolvelib asks about it itself.

After a backjump resolvelib asks for a name's candidates again and walks a new list that
starts at the next version down; the read-ahead counts the versions walked per name over
every list, so a long backtrack fetches ahead instead of one version per round trip. The
look-ahead reads ahead down a dependency's versions too, past those known doomed, and below
the end of a requirement a backtrack widens one version at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from envspec.model import Artifact
from envspec.resolve.prune import Pruner
from envspec.resolve.values import Candidate, Origin, Req, to_req

NAME = NormalizedName("unsloth")


def _artifact(name: str, version: int) -> Artifact:
    return Artifact(
        filename=f"{name}-{version}.0-py3-none-any.whl", url=f"https://x/{version}", kind="wheel"
    )


def _make(name: NormalizedName, version: Version, artifact: Artifact) -> Candidate:
    return Candidate(key=name, name=name, version=version, artifact=artifact)


def _candidate(version: int) -> Candidate:
    return _make(NAME, Version(f"{version}.0"), _artifact(NAME, version))


def _req(text: str) -> Req:
    return to_req(Requirement(text), Origin(phase="main", parent=None))


def _fetched(artifacts: Iterable[Artifact]) -> list[str]:
    """`name-version` of each file read ahead."""
    return ["-".join(a.filename.split("-")[:2]) for a in artifacts]


def _pruner(fetched: list[str]) -> Pruner:
    def prefetch(artifacts: Iterable[Artifact]) -> None:
        fetched.extend(a.filename.split("-")[1] for a in artifacts)

    def no_deps(candidate: Candidate) -> list[Req]:
        return []

    return Pruner(
        python=Version("3.11"),
        dependencies=no_deps,
        versions=lambda name, specifiers: [],
        make=lambda name, version, artifact: _candidate(int(version.major)),
        prefetch=prefetch,
    )


def _logged(
    dependencies: Callable[[Candidate], list[Req]],
    versions: Callable[[NormalizedName, Any], list[tuple[Version, Artifact]]],
    events: list[str],
) -> Pruner:
    """A pruner over `dependencies` and `versions` whose read-ahead is logged in `events`."""

    def prefetch(artifacts: Iterable[Artifact]) -> None:
        events.extend(f"fetch {what}" for what in _fetched(artifacts))

    return Pruner(
        python=Version("3.11"),
        dependencies=dependencies,
        versions=versions,
        make=_make,
        prefetch=prefetch,
    )


def test_a_backtrack_walk_reads_ahead_across_lists() -> None:
    fetched: list[str] = []
    pruner = _pruner(fetched)
    versions = [_candidate(v) for v in range(40, 0, -1)]
    for start in range(12):  # twelve backjumps: each list starts one version lower
        walk = pruner.alive(versions[start:])()
        assert next(walk).version == Version(f"{40 - start}.0")
    asked = {Version(v) for v in fetched}
    # by the twelfth list, versions well below it were asked for ahead of need
    assert Version("24.0") in asked
    assert all(Version(f"{v}.0") in asked for v in range(29, 41))


def test_a_repeated_look_at_the_first_candidate_reads_no_further() -> None:
    fetched: list[str] = []
    pruner = _pruner(fetched)
    versions = [_candidate(v) for v in range(40, 0, -1)]
    for _ in range(12):  # resolvelib's truth tests walk the same list's head again and again
        assert next(pruner.alive(versions)()).version == Version("40.0")
    assert fetched == ["40.0"]  # asked once, not once per look


def test_the_look_ahead_reads_ahead_down_a_dependency_s_versions() -> None:
    # a 1.0 needs b; of b's 20 versions only the oldest can be met (the rest need c>=99, which
    # has none): the look-ahead walks b from 20 down, fetching ahead as it goes
    events: list[str] = []

    def dependencies(candidate: Candidate) -> list[Req]:
        events.append(f"deps {candidate.name}-{candidate.version}")
        if candidate.name == "a":
            return [_req("b")]
        if candidate.name == "b" and candidate.version != Version("1.0"):
            return [_req("c>=99")]
        return []

    def versions(name: NormalizedName, specifiers: object) -> list[tuple[Version, Artifact]]:
        found = range(20, 0, -1) if name == "b" else ()
        return [(Version(f"{v}.0"), _artifact(name, v)) for v in found]

    pruner = _logged(dependencies, versions, events)
    a = _make(NormalizedName("a"), Version("1.0"), _artifact("a", 1))
    assert not pruner.doomed(a)
    # by the time b 12.0's dependencies are read, the next eight versions are under way
    before = events[: events.index("deps b-12.0")]
    assert all(f"fetch b-{v}.0" in before for v in range(4, 13))
    assert "deps b-1.0" in events


def test_a_widening_requirement_reads_the_version_it_newly_admits() -> None:
    # a k needs b>=k; every b but 1.0 is doomed (needs c>=99): checking a 20, 19, ... in turn,
    # the look-ahead asks for the b each newly admits, not the newest (known doomed already),
    # and the ones below it, which the next a will admit
    events: list[str] = []

    def dependencies(candidate: Candidate) -> list[Req]:
        events.append(f"deps {candidate.name}-{candidate.version}")
        if candidate.name == "a":
            return [_req(f"b>={candidate.version}")]
        return [_req("c>=99")] if candidate.version != Version("1.0") else []

    def versions(name: NormalizedName, specifiers: Any) -> list[tuple[Version, Artifact]]:
        found = [
            v
            for v in range(20, 0, -1)
            if name == "b" and all(Version(f"{v}.0") in spec for spec in specifiers)
        ]
        return [(Version(f"{v}.0"), _artifact(name, v)) for v in found]

    pruner = _logged(dependencies, versions, events)
    for k in range(20, 16, -1):
        events.clear()
        assert pruner.doomed(_make(NormalizedName("a"), Version(f"{k}.0"), _artifact("a", k)))
        assert events[:2] == [f"deps a-{k}.0", f"fetch b-{k}.0"]
        if k < 20:  # all newer known doomed: the next ones it will admit are read too
            assert events[2:4] == [f"fetch b-{k - 1}.0", f"fetch b-{k - 2}.0"]


def test_a_list_growing_at_its_end_reads_below_it() -> None:
    # resolvelib's own list of b grows by its lowest version as a backtrack widens b's
    # requirement; every b but 1.0 is doomed: reaching the new last one, the ones below it
    # (the next lists' new ends) are read ahead too
    fetched: list[str] = []

    def prefetch(artifacts: Iterable[Artifact]) -> None:
        fetched.extend(a.filename.split("-")[1] for a in artifacts)

    def dependencies(candidate: Candidate) -> list[Req]:
        return [] if candidate.version == Version("1.0") else [_req("c>=99")]

    every = [(Version(f"{v}.0"), _candidate(v).artifact) for v in range(20, 0, -1)]
    pruner = Pruner(
        python=Version("3.11"),
        dependencies=dependencies,
        versions=lambda name, specifiers: list(every) if name == NAME else [],
        make=lambda name, version, artifact: _candidate(int(version.major)),
        prefetch=prefetch,
    )
    versions = [_candidate(v) for v in range(20, 0, -1)]
    assert list(pruner.alive(versions[:1])()) == []
    fetched.clear()
    assert list(pruner.alive(versions[:2])()) == []
    assert fetched[-2:] == ["18.0", "17.0"]


def _chain(links: dict[str, list[str]], fixed: dict[str, str]) -> Pruner:
    """A pruner over one version (1.0) of each name, `links` naming each one's dependencies
    and `fixed` the spec's own requirements (a name no version of which meets them has none)."""
    spec = {NormalizedName(n): [_req(f"{n}{s}")] for n, s in fixed.items()}

    def dependencies(candidate: Candidate) -> list[Req]:
        return [_req(d) for d in links.get(candidate.name, [])]

    def versions(name: NormalizedName, specifiers: Any) -> list[tuple[Version, Artifact]]:
        version = Version("1.0")
        if all(s.contains(version) for s in specifiers):
            return [(version, _artifact(name, 1))]
        return []

    return Pruner(
        python=Version("3.11"), dependencies=dependencies, versions=versions, make=_make, fixed=spec
    )


def test_a_version_met_deep_below_another_is_looked_at_again_from_its_own_depth() -> None:
    # unsloth -> unsloth-zoo -> mlx-vlm -> opencv-python -> numpy>=2, under the spec's numpy<2:
    # the dead end is four levels below unsloth (past the look-ahead) and three below the zoo
    pruner = _chain(
        {
            "unsloth": ["unsloth-zoo"],
            "unsloth-zoo": ["mlx-vlm"],
            "mlx-vlm": ["opencv-python"],
            "opencv-python": ["numpy>=2"],
        },
        fixed={"numpy": "<2"},
    )
    one = Version("1.0")
    assert not pruner.doomed(_make(NAME, one, _artifact(NAME, 1)))
    zoo = NormalizedName("unsloth-zoo")
    assert pruner.doomed(_make(zoo, one, _artifact(zoo, 1)))
    assert str(pruner.culprit(_req("unsloth-zoo"))) == "numpy>=2"


def test_the_look_ahead_goes_three_levels_deep_from_where_it_is_asked() -> None:
    # e needs numpy>=2, which the spec's numpy<2 leaves without a version: c finds it three
    # levels down; b and a do not look that far, and are not skipped
    pruner = _chain(
        {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["e"], "e": ["numpy>=2"]},
        fixed={"numpy": "<2"},
    )
    one = Version("1.0")
    for name, doomed in (("a", False), ("b", False), ("c", True)):
        assert pruner.doomed(_make(NormalizedName(name), one, _artifact(name, 1))) is doomed, name


def test_with_nothing_to_fetch_the_walks_compute_no_version_ahead_of_need() -> None:
    # offline the finder fetches nothing: a walk then computes the versions it is read as far
    # as, not the read-ahead's (each one a file ranked, a candidate made)
    def walked(prefetch: Callable[[Iterable[Artifact]], None] | None) -> list[int]:
        made: list[int] = []

        def versions() -> Iterable[Candidate]:
            for v in range(40, 0, -1):
                made.append(v)
                yield _candidate(v)

        pruner = Pruner(
            python=Version("3.11"),
            dependencies=lambda candidate: [],
            versions=lambda name, specifiers: [],
            make=lambda name, version, artifact: _candidate(int(version.major)),
            prefetch=prefetch,
        )
        walk = pruner.alive(versions())()
        assert [next(walk).version, next(walk).version] == [Version("40.0"), Version("39.0")]
        return made

    assert walked(None) == [40, 39]
    assert walked(lambda artifacts: None) == [40, 39, 38]  # the next one read ahead
