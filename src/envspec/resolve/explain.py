"""ResolutionImpossible → a sentence a person can act on.

resolvelib reports the requirements that could not be satisfied together, each with the
candidate that asked for it. Each requirement here carries its origin (phase, constraint or
requiring package), so the explanation names who required what and from which phase:
``numpy<2 (phase numpy) conflicts with numpy>=2.0 required by unsloth-zoo 2026.1 (phase unsloth)``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from packaging.utils import NormalizedName
from resolvelib.structs import RequirementInformation

from envspec.model import Target
from envspec.resolve.values import PYTHON, Candidate, Req

Causes = Collection[RequirementInformation[Req, Candidate]]


def explain(
    causes: Causes,
    constraints: Mapping[NormalizedName, Sequence[Req]],
    target: Target,
    missing: Collection[str] = (),
    *,
    culprit: Callable[[Req], Req | None] | None = None,
    fixed: Mapping[NormalizedName, Sequence[Req]] | None = None,
) -> str:
    """One line: for each name in conflict, who required what. `culprit` finds the bottom of
    a dead end the pruner proved (see prune.py), told against `fixed`, the spec's bounds."""
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
        said = [f"{r.text} {r.origin.describe()}" for r in reqs]
        said += [f"constraint {c.text}" for c in constraints.get(NormalizedName(name), ())]
        if len(said) == 1 and name in missing:
            parts.append(f"{said[0]} is not on any index")
        elif len(said) == 1 and (dead := culprit and culprit(reqs[0])):
            parts.append(_dead_end(dead, reqs[0], fixed or {}, target))
        elif len(said) == 1:
            parts.append(f"no version of {name} for {target.name} matches {said[0]}")
        else:
            parts.append(" conflicts with ".join(said))
    return "; ".join(parts)


def _dead_end(
    dead: Req, root: Req, fixed: Mapping[NormalizedName, Sequence[Req]], target: Target
) -> str:
    """The spec's own bound on a name against the dependency `root` led to that breaks it."""
    if dead.key == PYTHON:
        return _python(dead, target)
    where = f"phase {root.origin.phase}" if root.origin.phase else "the spec"
    bounds = fixed.get(dead.name, ())
    said = [f"{r.text} {r.origin.describe()}" for r in bounds if r.origin.parent is None]
    said.append(f"{dead.text} required by {dead.origin.parent} ({where})")
    said += [f"constraint {r.text}" for r in bounds if r.origin.parent is not None]
    if len(said) == 1:  # nothing in the spec bounds it: no file fits the target at all
        return f"no version of {dead.name} for {target.name} matches {said[0]}"
    return " conflicts with ".join(said)


def _python(req: Req, target: Target) -> str:
    who = req.origin.parent or "the spec"
    python = target.python_full_version
    return f"{who} requires {req.text}, but target {target.name} has Python {python}"


def phases_in_conflict(causes: Causes) -> set[str]:
    """The phases whose requirements took part in a conflict."""
    return {c.requirement.origin.phase for c in causes if c.requirement.origin.phase}
