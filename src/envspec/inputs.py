"""The inputs a lock depends on: the normalized part of a spec that one target's resolution
reads, and the compatibility rules about the lock's packages. A lock records both; when the
spec's inputs for a target differ, or a rule about one of its packages was added, changed or
removed, the lock is stale. A rule about a package the lock does not hold leaves it fresh:
rules only narrow what a package may be combined with, so a lock without the package cannot
break one (and the built-in set's version is recorded, not compared, for the same reason).

Kept apart from resolution so that checking freshness (`lock --check`, `sync --locked`, an
unchanged relock) imports nothing of the resolver or the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packaging.requirements import Requirement

from envspec.model import AppliedRule, LockedPackage, Phase, RuleSet, Spec, Target, utc_text
from envspec.secret import redact


def lock_inputs(spec: Spec, target: Target) -> dict[str, Any]:
    """The normalized inputs a lock for `target` depends on; a change makes the lock stale."""
    res = spec.resolution
    settings = spec.settings_for(target.name)
    phases = [p for p in spec.phases if p.applies_to(target.name)]
    return {
        "python": spec.python,
        "target": {
            "glibc": ".".join(map(str, settings.glibc)),
            "macos": ".".join(map(str, settings.macos)),
        },
        "indexes": [
            {
                "name": i.name,
                "url": i.location.public,
                "explicit": i.explicit,
                "flat": i.flat,
            }
            for i in spec.indexes
        ],
        "phases": [_phase_inputs(p, target.name) for p in phases],
        "resolution": {
            "constraints": [str(r) for r in res.constraints],
            "overrides": [str(r) for r in res.overrides],
            "prereleases": res.prereleases,
            "exclude-newer": utc_text(res.exclude_newer) if res.exclude_newer else "",
            "no-build": list(res.no_build),
            "no-binary": list(res.no_binary),
            "dependency-metadata": [
                {
                    "name": d.name,
                    "version": str(d.version) if d.version else "",
                    "requires-dist": [str(r) for r in d.requires_dist],
                    "requires-python": d.requires_python,
                    "provides-extra": list(d.provides_extra),
                }
                for d in res.dependency_metadata
            ],
        },
    }


def _phase_inputs(phase: Phase, target: str) -> dict[str, Any]:
    requirements = [_public_text(r) for r in phase.requirements]
    out: dict[str, Any] = {"name": phase.name, "requirements": requirements}
    index = phase.index_for(target)
    if index:
        out["index"] = index
    if phase.optional:
        out["optional"] = True
    return out


def _public_text(requirement: Requirement) -> str:
    """A requirement as a lock records it: a direct reference's credentials left out."""
    text = str(requirement)
    return text.replace(requirement.url, redact(requirement.url)) if requirement.url else text


def applied_rules(
    rules: RuleSet, target: Target, packages: Iterable[LockedPackage]
) -> tuple[AppliedRule, ...]:
    """The rules in force about a lock's packages on `target` (a case holding there), by id.
    A rule about a locked package counts whichever version it covers: it may be why the lock
    holds that version and not a newer one."""
    names = {p.name for p in packages}
    environment = target.environment()
    return tuple(
        AppliedRule(id=rule.id, sha256=rule.digest(), source=rule.source)
        for rule in sorted(rules.rules, key=lambda r: r.id)
        if rule.package in names and any(c.holds(environment, target.name) for c in rule.cases)
    )


def rule_changes(recorded: Iterable[AppliedRule], current: Iterable[AppliedRule]) -> list[str]:
    """How the rules about a lock's packages changed since it was made, one phrase each."""
    before = {r.id: r.sha256 for r in recorded}
    now = {r.id: r.sha256 for r in current}
    changes = []
    for rule_id in sorted(before.keys() | now.keys()):
        if rule_id not in before:
            changes.append(f"rule {rule_id} now applies")
        elif rule_id not in now:
            changes.append(f"rule {rule_id} no longer applies")
        elif before[rule_id] != now[rule_id]:
            changes.append(f"rule {rule_id} changed")
    return changes
