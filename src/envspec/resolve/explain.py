"""ResolutionImpossible → a sentence a person can act on.

resolvelib reports the requirements that could not be satisfied together, each with the
candidate that asked for it. Each requirement here carries its origin (phase, constraint or
requiring package), so the explanation names who required what and from which phase:
``numpy<2 (phase numpy) conflicts with numpy>=2.0 required by unsloth-zoo 2026.1 (phase unsloth)``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

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
) -> str:
    """One line: for each name in conflict, who required what."""
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
        elif len(said) == 1:
            parts.append(f"no version of {name} for {target.name} matches {said[0]}")
        else:
            parts.append(" conflicts with ".join(said))
    return "; ".join(parts)


def _python(req: Req, target: Target) -> str:
    who = req.origin.parent or "the spec"
    python = target.python_full_version
    return f"{who} requires {req.text}, but target {target.name} has Python {python}"


def phases_in_conflict(causes: Causes) -> set[str]:
    """The phases whose requirements took part in a conflict."""
    return {c.requirement.origin.phase for c in causes if c.requirement.origin.phase}
