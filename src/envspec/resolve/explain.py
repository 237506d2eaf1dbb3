"""ResolutionImpossible → a sentence a person can act on.

resolvelib reports the requirements that could not be satisfied together, each with the
candidate that asked for it. Each requirement here carries its origin (phase, constraint or
requiring package), so the explanation names who required what and from which phase:
``numpy<2 (phase numpy) conflicts with numpy>=2.0 required by unsloth-zoo 2026.1 (phase unsloth)``.

"conflicts with" is said only of requirements no listed version satisfies together (PEP 440's
pre-release rule included). Otherwise the explanation says what did stand in the way: no
version matching at all on the index the name was looked up on (and why that index: its
phase's routing, or the first index that has the name), no file of a matching version fitting
the target (`fit.no_fit_reason`: the cause and the fix), a yanked or pre-release version, a
candidate rejected for unreadable metadata, or a dead end the pruner proved.

A requirement a compatibility rule added says so, with the rule's id and source, and a dead
end at the bottom of which is a rule is told from the requirement that led there: ``torchao>=0.13
(phase rest) needs torch>=2.6.0 by rule torchao-torch (pytorch/ao#2919), which conflicts with
torch==2.4.0 (phase torch)`` — the loosest of what the rule asks of every version admitted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version
from resolvelib.structs import RequirementInformation

from envspec.model import Target, Yank
from envspec.resolve.files import FileChoice
from envspec.resolve.fit import no_fit_reason
from envspec.resolve.prune import DEPTH
from envspec.resolve.values import CONSTRAINT, PYTHON, UNUSABLE, Candidate, Origin, Req

Causes = Collection[RequirementInformation[Req, Candidate]]
Dooming = Callable[[Req], "list[Req] | None"]
_LOWER, _UPPER = (">=", ">", "==", "~="), ("<=", "<", "==")


def explain(
    causes: Causes,
    constraints: Mapping[NormalizedName, Sequence[Req]],
    target: Target,
    missing: Collection[str] = (),
    *,
    culprit: Callable[[Req], Req | None] | None = None,
    fixed: Mapping[NormalizedName, Sequence[Req]] | None = None,
    files: FileChoice | None = None,
    dooming: Dooming | None = None,
) -> str:
    """One line: for each name in conflict, who required what, and what really stood in the
    way. `culprit` finds the bottom of a dead end the pruner proved (see prune.py), told
    against `fixed`, the spec's bounds, and `dooming` what led each version there; `files`
    says what the index lists for a name."""
    by_name: dict[str, list[Req]] = {}
    for cause in causes:
        reqs = by_name.setdefault(cause.requirement.name, [])
        if cause.requirement not in reqs:
            reqs.append(cause.requirement)
    parts: list[str] = []
    for name, reqs in by_name.items():
        if name == PYTHON:
            parts.extend(_python(req, target) for req in reqs)
            continue
        if name == UNUSABLE:
            parts.extend(_unusable(req) for req in reqs)
            continue
        bounds = [*reqs, *constraints.get(NormalizedName(name), ())]
        said = [_said(r) for r in bounds]
        if len(said) == 1 and name in missing:
            parts.append(f"{said[0]} is not on any index")
        elif len(said) == 1 and (dead := culprit and culprit(reqs[0])):
            parts.append(_dead_end(dead, reqs[0], fixed or {}, target, files, dooming=dooming))
        elif files is not None:
            parts.append(
                _unmet(
                    NormalizedName(name),
                    bounds,
                    files,
                    target,
                    culprit=culprit,
                    fixed=fixed,
                    dooming=dooming,
                )
            )
        elif len(said) == 1:
            parts.append(f"no version of {name} for {target.name} matches {said[0]}")
        else:
            parts.append(" conflicts with ".join(said))
    return "; ".join(parts)


def _said(req: Req) -> str:
    if req.origin.parent == CONSTRAINT:
        return f"constraint {req.text}"
    if req.constraint:  # a rule's: it bounds the name for its parent
        where = f"phase {req.origin.phase}" if req.origin.phase else "the spec"
        return f"constraint {req.text} of {req.origin.parent} ({where}){_by_rule(req)}"
    return f"{req.text} {req.origin.describe()}{_by_rule(req)}{_by_override(req)}"


def _by_override(req: Req) -> str:
    replaces = req.origin.replaces
    return f" by [resolution] overrides, in place of {replaces}" if replaces else ""


def _clauses(bounds: Sequence[Req]) -> list[str]:
    """What `bounds` say, one clause each, except that the same requirement of several
    versions of one package (a rule's ``packaging<22`` on every attrs release resolvelib
    tried) is one clause naming the versions' span, not one per version."""
    groups: dict[tuple[object, ...], list[Req]] = {}
    for req in bounds:
        parent = (req.origin.parent or "").partition(" ")
        key = (req.text, parent[0], req.origin.phase, req.origin.rule, req.constraint)
        groups.setdefault(key if parent[2] else (id(req),), []).append(req)
    return [_said(reqs[0]) if len(reqs) == 1 else _said_of_many(reqs) for reqs in groups.values()]


def _said_of_many(reqs: Sequence[Req]) -> str:
    first = reqs[0]
    name = str(first.origin.parent).partition(" ")[0]
    versions = sorted({str(r.origin.parent).partition(" ")[2] for r in reqs}, key=_version)
    where = f"phase {first.origin.phase}" if first.origin.phase else "the spec"
    span = f"{name} {versions[-1]} down to {versions[0]} ({len(versions)} versions, {where})"
    if first.constraint:
        return f"constraint {first.text} of {span}{_by_rule(first)}"
    return f"{first.text} required by {span}{_by_rule(first)}"


def _version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:  # a parent named by a git commit: ordered first
        return Version("0")


def _by_rule(req: Req) -> str:
    return f" by rule {req.origin.rule} ({req.origin.cite})" if req.origin.rule else ""


def _unmet(
    name: NormalizedName,
    bounds: Sequence[Req],
    files: FileChoice,
    target: Target,
    *,
    culprit: Callable[[Req], Req | None] | None,
    fixed: Mapping[NormalizedName, Sequence[Req]] | None,
    dooming: Dooming | None = None,
) -> str:
    """Requirements on one name nothing met: a real conflict only when no version the index
    lists satisfies them all; else what kept each such version out."""
    said, clauses = [_said(r) for r in bounds], _clauses(bounds)
    if any(r.url for r in bounds):  # a direct reference's one version missed another's bound
        return " conflicts with ".join(clauses)
    listed = files.listed(name)
    probes = set(listed) | {v for r in bounds for v in _named_versions(r)}
    if len(bounds) > 1 and not any(
        all(r.specifier.contains(v, prereleases=True) for r in bounds) for v in probes
    ):  # no version at all could meet them: a conflict whatever the index lists
        return " conflicts with ".join(clauses)
    for text, req in zip(said, bounds, strict=True):
        if not any(req.specifier.contains(v, prereleases=True) for v in listed):
            return f"no version of {name} matches {text} on {target.name}: {_where(name, files)}"
    # PEP 440's own pre-release rule (`c<=3` takes no 2.0b1) counts as a conflict here; under
    # prereleases = "disallow" a pre-release is kept out by the policy, and said so below.
    disallow = files.settings.prereleases == "disallow"
    together = sorted(
        (
            v
            for v in listed
            if all(r.specifier.contains(v, prereleases=True) for r in bounds)
            and (
                disallow
                or not v.is_prerelease
                or files.takes_prereleases(name, [r.specifier for r in bounds])
            )
        ),
        reverse=True,
    )
    if not together:
        return " conflicts with ".join(clauses)
    specifiers = [r.specifier for r in bounds]
    user = [r.specifier for r in bounds if r.origin.parent in (None, CONSTRAINT)]
    if files.versions(name, specifiers, set(), user):
        dead = next((d for r in bounds if culprit and (d := culprit(r))), None)
        if dead is not None:
            return _dead_end(dead, bounds[0], fixed or {}, target, files, dooming=dooming)
        return (
            f"{' and '.join(clauses)}: every version of {name} they admit on {target.name} "
            "was ruled out by the other requirements"
        )
    fitting = files.best_files(name)
    best = next((v for v in together if v not in fitting), None)
    if best is not None and not any(v in fitting for v in together):
        reason = no_fit_reason(name, best, listed[best], target, files.settings)
        said_all = " and ".join(clauses)
        return f"{said_all}: {reason or f'no file of {name} {best} fits {target.name}'}"
    version = next(v for v in together if v in fitting)
    if fitting[version].yanked is Yank.YANKED:
        reason = f"{name} {version} is yanked (only the spec's own exact pin takes a yanked file)"
    else:
        reason = (
            f'{name} {version} is a pre-release, and prereleases = "{files.settings.prereleases}"'
        )
    return f"{' and '.join(clauses)}: {reason}"


def _named_versions(req: Req) -> list[Version]:
    out = []
    for spec in req.specifier:
        try:
            out.append(Version(spec.version.removesuffix(".*")))
        except InvalidVersion:
            continue
    return out


def _where(name: NormalizedName, files: FileChoice) -> str:
    """Which index a name was looked up on, and why there."""
    index = files.used_indexes.get(name)
    if index is None:
        return f"no index has {name}"
    has = f"index {index.name} ({index.location.public})"
    if name in files.routes:
        return f"its phase's index routes it to {has}, and it is looked up nowhere else"
    return f"it comes from {has}, the first index that has {name}"


def _unusable(req: Req) -> str:
    return f"{req.origin.parent} was rejected: {req.text}"


def _dead_end(
    dead: Req,
    root: Req,
    fixed: Mapping[NormalizedName, Sequence[Req]],
    target: Target,
    files: FileChoice | None,
    *,
    dooming: Dooming | None = None,
) -> str:
    """The spec's own bound on a name against the dependency `root` led to that breaks it."""
    if dead.origin.rule and dooming is not None:
        told = _rule_dead_end(root, fixed, files, dooming)
        if told:
            return told
    if dead.key == PYTHON:
        return _python(dead, target)
    if dead.key == UNUSABLE:
        return f"{_said(root)} leads only to {dead.origin.parent}, which was rejected: {dead.text}"
    where = f"phase {root.origin.phase}" if root.origin.phase else "the spec"
    bounds = fixed.get(dead.name, ())
    if files is not None:  # the spec's own bounds and the dependency's: what kept them apart
        mine = [r for r in bounds if r.origin.parent is None]
        theirs = [r for r in bounds if r.origin.parent is not None]
        shown = dataclasses.replace(
            dead,
            origin=Origin(
                phase=root.origin.phase, parent=dead.origin.parent, replaces=dead.origin.replaces
            ),
        )
        return _unmet(dead.name, [*mine, shown, *theirs], files, target, culprit=None, fixed=fixed)
    said = [f"{r.text} {r.origin.describe()}" for r in bounds if r.origin.parent is None]
    said.append(
        f"{dead.text} required by {dead.origin.parent} ({where}){_by_rule(dead)}"
        + _by_override(dead)
    )
    said += [f"constraint {r.text}" for r in bounds if r.origin.parent is not None]
    if len(said) == 1:
        return f"no version of {dead.name} for {target.name} matches {said[0]}"
    return " conflicts with ".join(said)


def _rule_dead_end(
    root: Req,
    fixed: Mapping[NormalizedName, Sequence[Req]],
    files: FileChoice | None,
    dooming: Dooming,
) -> str:
    """`root` leads (through the newest version at each step) to versions that all need what
    one rule adds, which no version meets together with the spec's own bounds: said from
    `root`, with the loosest of the rule's requirements; "" when the dead end is not that."""
    hops: list[Req] = []
    req = root
    while True:
        via = dooming(req)
        if not via or len(hops) > DEPTH:
            return ""
        if all(v.origin.rule and dooming(v) == [] for v in via):
            break
        req = via[0]
        hops.append(req)
    named = {(v.origin.rule, v.name) for v in via}
    bounds = [r for r in fixed.get(via[0].name, ()) if r.origin.parent in (None, CONSTRAINT)]
    bounds = [r for r in bounds if r.specifier]
    needs = _loosest(via)
    if len(named) != 1 or not bounds or needs is None:
        return ""
    probes = set(files.listed(via[0].name)) if files is not None else set()
    probes |= {v for r in (*via, *bounds) for v in _named_versions(r)}
    if any(
        needs.contains(v, prereleases=True)
        and all(b.specifier.contains(v, prereleases=True) for b in bounds)
        for v in probes
    ):
        return ""  # not a conflict of versions: the generic explanation says what it is
    steps = "".join(f" needs {hop.text}, which" for hop in hops)
    rule = f"by rule {via[0].origin.rule} ({via[0].origin.cite})"
    against = " and ".join(_said(b) for b in bounds)
    return f"{_said(root)}{steps} needs {via[0].name}{needs} {rule}, which conflicts with {against}"


def _loosest(reqs: Sequence[Req]) -> SpecifierSet | None:
    """What every one of `reqs` asks at least: the lowest of their lower bounds (or else the
    highest of their upper bounds); None when they share no such bound."""
    for operators, pick, widened in ((_LOWER, min, ">="), (_UPPER, max, "<=")):
        ends = [_end(req, operators, pick) for req in reqs]
        if all(ends):
            version, operator = pick(e for e in ends if e)
            return SpecifierSet(f"{operator if operator in ('>', '<') else widened}{version}")
    return None


def _end(
    req: Req, operators: tuple[str, ...], pick: Callable[..., tuple[Version, str]]
) -> tuple[Version, str] | None:
    """`req`'s own lowest (`min`) or highest (`max`) bound among `operators`."""
    ends = [
        (Version(s.version), s.operator)
        for s in req.specifier
        if s.operator in operators and "*" not in s.version
    ]
    return pick(ends) if ends else None


def _python(req: Req, target: Target) -> str:
    who = req.origin.parent or "the spec"
    python = target.python_full_version
    return f"{who} requires {req.text}, but target {target.name} has Python {python}"


def phases_in_conflict(causes: Causes) -> set[str]:
    """The phases whose requirements took part in a conflict."""
    return {c.requirement.origin.phase for c in causes if c.requirement.origin.phase}
