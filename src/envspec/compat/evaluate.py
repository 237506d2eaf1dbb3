"""The rules against a set of installed (or locked) versions: what `envspec check` says of any
environment, including one envspec did not make, and what the committed locks must pass.

Pure: the versions by name, the environment's markers and its target name (when it is a known
one) in; a finding per broken rule out, worded for the person who has to fix it:
``torchao 0.14.1 with torch 2.4.0+cu121: torchao 0.14.1 supports torch 2.7.1–2.9.0
(pytorch/ao#2919)``. A rule's requirement on a package that is not there is broken too (as
if the package's metadata had declared it); a constraint on one is not (it bounds a package
only when something brings it in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from envspec.model import Rule, RuleSet


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    """One rule a set of versions breaks."""

    rule: Rule
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Evaluation:
    findings: tuple[Finding, ...]
    applied: tuple[Rule, ...]  # the rules with a case for one of the versions, in order


def evaluate(
    rules: RuleSet,
    versions: Mapping[NormalizedName, Version],
    environment: Mapping[str, str],
    target: str | None,
) -> Evaluation:
    """Every rule case that covers one of `versions` and holds in `environment`, checked."""
    findings: list[Finding] = []
    applied: list[Rule] = []
    for name, version in sorted(versions.items()):
        for rule in rules.about(name):
            cases = [c for c in rule.cases if c.covers(version) and c.holds(environment, target)]
            if cases and rule not in applied:
                applied.append(rule)
            for case in cases:
                for req in case.requires:
                    findings += _broken(rule, name, version, req, versions, environment)
                for req in case.constraints:
                    findings += _broken(
                        rule, name, version, req, versions, environment, required=False
                    )
    return Evaluation(findings=tuple(findings), applied=tuple(applied))


def _broken(  # noqa: PLR0917 - one rule's requirement and what it is checked against
    rule: Rule,
    name: NormalizedName,
    version: Version,
    req: Requirement,
    versions: Mapping[NormalizedName, Version],
    environment: Mapping[str, str],
    *,
    required: bool = True,
) -> list[Finding]:
    """The finding when `req`, which `rule` adds to `name` `version`, does not hold."""
    if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
        return []
    other = canonicalize_name(req.name)
    have = versions.get(other)
    if have is None:
        if not required:
            return []
        message = f"{name} {version} needs {shown(req)} ({rule.cite}), but {other} is not installed"
        return [Finding(rule=rule, message=message)]
    if req.specifier.contains(have, prereleases=True):
        return []
    message = f"{name} {version} with {other} {have}: {name} {version} supports {_range(req)}"
    return [Finding(rule=rule, message=f"{message} ({rule.cite})")]


_ORDER = (">=", ">", "~=", "==", "===", "!=", "<=", "<")


def shown(req: Requirement) -> str:
    """A requirement as people read bounds, lower ones first: `torch>=2.7.1,<=2.9.0`."""
    bounds = sorted(req.specifier, key=lambda s: (_ORDER.index(s.operator), s.version))
    text = canonicalize_name(req.name) + ",".join(str(s) for s in bounds)
    return f"{text}; {req.marker}" if req.marker else text


def _range(req: Requirement) -> str:
    """`torch 2.7.1–2.9.0` for an inclusive range, else the bounds, lower ones first."""
    by_operator = {s.operator: s.version for s in req.specifier}
    if len(req.specifier) == 2 and set(by_operator) == {">=", "<="}:
        return f"{canonicalize_name(req.name)} {by_operator['>=']}–{by_operator['<=']}"
    return shown(Requirement(str(req).split(";", 1)[0]))
