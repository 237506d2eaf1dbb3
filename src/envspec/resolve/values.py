"""What resolvelib juggles: requirements (with where they came from) and candidates.

A requirement may be a direct reference (`url`); a candidate made from one carries that URL
and, for git, the commit it was pinned to (`vcs`) instead of an index file.

Identifiers are a canonical name, `name[extra,...]` for a name with extras (whose candidate
depends on the plain name pinned to the same version, as pip does), and `<python>` for the
target interpreter, so a `Requires-Python` takes part in backtracking like any requirement;
`<unusable>` is what a candidate with unreadable metadata depends on (never satisfied).

A compatibility rule's constraint (`Req.constraint`) bounds a name without requiring it: a
name that only constraints ask for has one candidate, `absent(name)`, which satisfies
constraints and nothing else (see `resolve.rules` for why that is sound in resolvelib).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from envspec.model import Artifact, Index, VcsSource

PYTHON = "<python>"
# The requirement a candidate whose metadata cannot be read depends on: nothing satisfies it,
# so resolvelib rejects that candidate and goes on (as uv does), and the pruner skips it.
UNUSABLE = "<unusable>"
PSEUDO = frozenset({PYTHON, UNUSABLE})
CONSTRAINT = "[resolution] constraints"  # the `parent` of a constraint's origin


@dataclass(frozen=True, kw_only=True, slots=True)
class Origin:
    """Who asked for a requirement: a phase of the spec, a constraint, or a package."""

    phase: str | None
    parent: str | None = None  # "name version" of the requiring package; None from the spec
    rule: str | None = None  # the compatibility rule that added it to the parent's metadata
    cite: str = ""  # that rule's source, short (`pytorch/ao#2919`)
    replaces: str = ""  # what the parent (or phase) declared, where an override stands for it

    def describe(self) -> str:
        where = f"phase {self.phase}" if self.phase else "the spec"
        return f"required by {self.parent} ({where})" if self.parent else f"({where})"


@dataclass(frozen=True, kw_only=True, slots=True)
class Req:
    """A requirement as the resolver sees it."""

    key: str
    name: NormalizedName
    extras: frozenset[NormalizedName]
    specifier: SpecifierSet
    origin: Origin
    text: str
    url: str | None = None  # a direct reference (`name @ URL`)
    constraint: bool = False  # bounds the name only when something else requires it

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, kw_only=True, slots=True, eq=False)
class Candidate:
    """One version of a name (with the extras of its identifier) and the file chosen for it."""

    key: str
    name: NormalizedName
    version: Version
    extras: frozenset[NormalizedName] = frozenset()
    artifact: Artifact | None = None
    index: Index | None = None
    url: str | None = None  # the direct reference this candidate was made from
    vcs: VcsSource | None = None  # a git direct reference's pinned commit
    absent: bool = False  # the name not installed at all: only constraints ask for it

    def __repr__(self) -> str:
        return f"{self.key} (absent)" if self.absent else f"{self.key} {self.version}"


def absent(name: NormalizedName) -> Candidate:
    """The candidate that stands for `name` not being installed (its version means nothing)."""
    return Candidate(key=name, name=name, version=Version("0"), absent=True)


def make_key(name: NormalizedName, extras: Iterable[str]) -> str:
    extras = sorted(set(extras))
    return f"{name}[{','.join(extras)}]" if extras else name


# What `to_req` derives from a requirement, per requirement object (the entry holds the
# object, so its id is never reused): metadata hands out one object per distinct line, and
# every candidate of a release series repeats most of its lines.
_DERIVED: dict[int, tuple[Requirement, str, NormalizedName, frozenset[NormalizedName], str]] = {}


def to_req(requirement: Requirement, origin: Origin, *, constraint: bool = False) -> Req:
    derived = _DERIVED.get(id(requirement))
    if derived is None or derived[0] is not requirement:
        name = canonicalize_name(requirement.name)
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        text = str(requirement).split(";", 1)[0].strip()
        derived = _DERIVED[id(requirement)] = (
            requirement,
            make_key(name, extras),
            name,
            extras,
            text,
        )
    _, key, name, extras, text = derived
    return Req(
        key=key,
        name=name,
        extras=extras,
        specifier=requirement.specifier,
        origin=origin,
        text=text,
        url=requirement.url,
        constraint=constraint,
    )


def pin(candidate: Candidate, origin: Origin) -> Req:
    return Req(
        key=candidate.name,
        name=candidate.name,
        extras=frozenset(),
        specifier=SpecifierSet(f"=={candidate.version}"),
        origin=origin,
        text=f"{candidate.name}=={candidate.version}",
        url=candidate.url,  # a direct reference's extras pin the same source
    )


def python_req(requires_python: str, origin: Origin) -> Req:
    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier:
        specifier = SpecifierSet()
    return Req(
        key=PYTHON,
        name=NormalizedName(PYTHON),
        extras=frozenset(),
        specifier=specifier,
        origin=origin,
        text=f"Python{specifier}",
    )


def unusable_req(reason: str, origin: Origin) -> Req:
    """The unsatisfiable requirement standing for a candidate's unreadable metadata."""
    return Req(
        key=UNUSABLE,
        name=NormalizedName(UNUSABLE),
        extras=frozenset(),
        specifier=SpecifierSet(),
        origin=origin,
        text=reason,
    )
