"""The inputs a lock depends on: the normalized part of a spec that one target's resolution
reads. A lock records them; when the spec's inputs for a target differ, the lock is stale.

Kept apart from resolution so that checking freshness (`lock --check`, `sync --locked`, an
unchanged relock) imports nothing of the resolver or the network.
"""

from __future__ import annotations

from typing import Any

from packaging.requirements import Requirement

from envspec.model import Phase, Spec, Target, utc_text
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
