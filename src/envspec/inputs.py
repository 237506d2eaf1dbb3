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

import json
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

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


def relevant_inputs(inputs: Mapping[str, Any], target: str) -> dict[str, Any]:
    """`inputs` (recorded or current) as far as `target`'s resolution reads them: the macOS
    release matters to macOS targets only, the glibc level to Linux targets only. A lock
    records both; comparing this part alone keeps a Linux lock fresh when the macOS default
    moves (13.0 → 14.0)."""
    settings = inputs.get("target")
    if not isinstance(settings, Mapping):
        return dict(inputs)
    unread = {"macos"} if not target.startswith("macos-") else set()
    unread |= {"glibc"} if not target.startswith("linux-") else set()
    return {**inputs, "target": {k: v for k, v in settings.items() if k not in unread}}


def input_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """How a target's inputs changed since a lock recorded them, one phrase each, in the
    spec's words: ``phase app: transformers>=4.40 → transformers<5,>=4.40``, ``phase extra
    added``, ``python 3.11 → 3.12``, ``resolution.constraints: added numpy<2``."""
    changes: list[str] = []
    if recorded.get("python") != current.get("python"):
        changes.append(f"python {_text(recorded.get('python'))} → {_text(current.get('python'))}")
    old_target, new_target = _table(recorded.get("target")), _table(current.get("target"))
    for key in sorted(old_target.keys() | new_target.keys()):
        if old_target.get(key) != new_target.get(key):
            was, now = _text(old_target.get(key)), _text(new_target.get(key))
            changes.append(f"target {key} {was} → {now}")
    changes += _named_changes("index", recorded.get("indexes"), current.get("indexes"))
    changes += _phase_changes(_rows(recorded.get("phases")), _rows(current.get("phases")))
    old_res, new_res = _table(recorded.get("resolution")), _table(current.get("resolution"))
    for key in sorted(old_res.keys() | new_res.keys()):
        before, after = old_res.get(key), new_res.get(key)
        if before == after:
            continue
        if key == "dependency-metadata":
            found = _named_changes(f"resolution.{key}:", before, after)
            changes += found or [f"resolution.{key} changed"]
        elif isinstance(before, list) or isinstance(after, list):
            changes += _list_changes(f"resolution.{key}", before, after)
        else:
            changes.append(f"resolution.{key} {_text(before)} → {_text(after)}")
    known = {"python", "target", "indexes", "phases", "resolution"}
    for key in sorted((recorded.keys() | current.keys()) - known):
        if recorded.get(key) != current.get(key):
            changes.append(f"{key} changed")
    if not changes and dict(recorded) != dict(current):
        changes.append("the spec's inputs changed")
    return changes


def _named_changes(what: str, before: Any, after: Any) -> list[str]:
    """Changes of a list of tables with a `name` each: added, removed, changed, reordered."""
    old = {e.get("name"): e for e in _rows(before)}
    new = {e.get("name"): e for e in _rows(after)}
    out = [f"{what} {name} added" for name in new if name not in old]
    out += [f"{what} {name} removed" for name in old if name not in new]
    out += [f"{what} {name} changed" for name in new if name in old and old[name] != new[name]]
    if not out and list(old) != list(new):
        out.append(f"{what}es reordered" if what == "index" else f"{what} order changed")
    return out


def _text(value: Any) -> str:
    """A recorded or current input as a change shows it: text as it is, anything else (what a
    hand edit of the lock left: `python = 3.11`) with its type, so the two sides never read
    alike ("python 3.11 → 3.11")."""
    if value is None or value == "":
        return "(none)"
    if isinstance(value, str):
        return value
    kind = {bool: "true/false", int: "a number", float: "a number"}.get(type(value), "not text")
    return f"{json.dumps(value)} ({kind})"


def _table(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _rows(value: Any) -> list[dict[str, Any]]:
    """The tables of a recorded list (a hand-edited lock may hold anything there)."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def _phase_changes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    old = {str(p.get("name") or "(no name)"): p for p in before}
    new = {str(p.get("name") or "(no name)"): p for p in after}
    out = [f"phase {name} added" for name in new if name not in old]
    out += [f"phase {name} removed" for name in old if name not in new]
    for name, phase in new.items():
        was = old.get(name)
        if was is None or was == phase:
            continue
        out += _list_changes(
            f"phase {name}", was.get("requirements", []), phase.get("requirements", []),
            "requirements",
        )  # fmt: skip
        if was.get("index") != phase.get("index"):
            before_index = was.get("index") or "(default)"
            out.append(f"phase {name}: index {before_index} → {phase.get('index') or '(default)'}")
        if was.get("optional", False) != phase.get("optional", False):
            out.append(f"phase {name}: {'now' if phase.get('optional') else 'no longer'} optional")
    if not out and list(old) != list(new):
        out.append("phases reordered")
    return out


def _list_changes(where: str, before: Any, after: Any, what: str = "") -> list[str]:
    """Requirement lists compared by name where they parse (`a<2 → a>=2`), else as text; a
    recorded value that is not a list (a hand edit: `requirements = "six"`) is said so."""
    if not isinstance(before, list) and before is not None:
        return [f"{where}: {what + ' ' if what else ''}recorded as {_text(before)}, not a list"]
    before, after = before or [], after if isinstance(after, list) else []
    removed = [str(x) for x in before if x not in after]
    added = [str(x) for x in after if x not in before]
    out = []
    for text in list(added):
        name = _name(text)
        was = next((r for r in removed if name is not None and _name(r) == name), None)
        if was is not None:
            out.append(f"{where}: {was} → {text}")
            removed.remove(was)
            added.remove(text)
    out += [f"{where}: added {text}" for text in added]
    out += [f"{where}: removed {text}" for text in removed]
    return out


def _name(text: str) -> str | None:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


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
