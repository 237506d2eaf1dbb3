"""`envspec rules [NAME]`: the compatibility rules a project is under, with their sources —
the built-in ones (and which of them `[resolution] ignore-rules` turns off) and the project's
own `[[rules]]` — and, for each, the targets whose committed lock records it. With NAME, only
the rules about that package or adding a requirement or constraint on it.

Pure: the built-in set, the spec (None outside a project) and the locks in; a `Listing` out,
rendered as text (`render_text`) or as one JSON object per rule (`to_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from envspec.compat.evaluate import shown
from envspec.errors import did_you_mean
from envspec.model import Lock, Rule, RuleCase, RuleSet, Spec


@dataclass(frozen=True, kw_only=True, slots=True)
class Listed:
    rule: Rule
    ignored: bool  # a built-in rule `[resolution] ignore-rules` turns off
    locks: tuple[str, ...]  # the targets whose lock records it, as it is now
    older: tuple[str, ...] = ()  # the targets whose lock records an older version of it


@dataclass(frozen=True, kw_only=True, slots=True)
class Listing:
    version: str  # the built-in set's
    name: str | None  # the package asked about
    rules: tuple[Listed, ...]
    close: str  # a "did you mean" when a name matched no rule


def list_rules(
    builtin: RuleSet, spec: Spec | None, locks: Mapping[str, Lock], name: str | None
) -> Listing:
    """The rules in force (and the ignored built-in ones), about `name` when given."""
    ignored = set(spec.resolution.ignore_rules) if spec else set()
    in_force = spec.rules.rules if spec else builtin.rules
    order = [*builtin.rules, *(r for r in in_force if not r.builtin)]
    wanted = canonicalize_name(name) if name else None
    listed = tuple(
        Listed(
            rule=rule,
            ignored=rule.id in ignored,
            locks=_recording(rule, locks, same=True),
            older=_recording(rule, locks, same=False),
        )
        for rule in order
        if wanted is None or rule.mentions(wanted)
    )
    close = ""
    if wanted is not None and not listed:
        mentioned = {n for r in order for n in _names(r)}
        close = did_you_mean(wanted, sorted(mentioned))
    return Listing(version=builtin.version, name=name, rules=listed, close=close)


def _recording(rule: Rule, locks: Mapping[str, Lock], *, same: bool) -> tuple[str, ...]:
    """The targets whose lock records `rule` as it is now (`same`), or an older version of it
    (another digest: `lock --check` calls those stale; they were listed as recording it)."""
    digest = rule.digest()
    return tuple(
        sorted(
            target
            for target, lock in locks.items()
            for applied in lock.rules
            if applied.id == rule.id and (applied.sha256 == digest) == same
        )
    )


def _names(rule: Rule) -> set[str]:
    added = {canonicalize_name(r.name) for c in rule.cases for r in (*c.requires, *c.constraints)}
    return {rule.package, *added}


def render_text(listing: Listing) -> str:
    own = sum(1 for item in listing.rules if not item.rule.builtin)
    lines = [
        f"envspec's built-in rules {listing.version}"
        + (f"; {own} project rule{'s' * (own != 1)}" if own else "")
    ]
    if listing.name and not listing.rules:
        lines.append(f"no compatibility rule is about {listing.name}")
        lines += [f"hint: {listing.close}"] if listing.close else []
    for item in listing.rules:
        rule = item.rule
        origin = "built-in" if rule.builtin else "project"
        state = ", ignored by [resolution] ignore-rules" if item.ignored else ""
        lines.append(f"{rule.id} ({origin}{state}): {rule.package}")
        lines += [f"  {_case_text(case)}" for case in rule.cases]
        lines.append(f"  why: {rule.reason}")
        lines += [f"  note: {rule.note}"] if rule.note else []
        lines.append(f"  source: {rule.source}")
        if item.locks:
            lines.append(f"  in locks: {', '.join(item.locks)}")
        if item.older:
            lines.append(f"  an older version in locks: {', '.join(item.older)} (relock them)")
    return "\n".join(lines) + "\n"


def _case_text(case: RuleCase) -> str:
    where = [f"on {', '.join(case.targets)}"] if case.targets is not None else []
    where += [f"where {case.marker}"] if case.marker else []
    adds = [f"requires {shown(r)}" for r in case.requires]
    adds += [f"constraint {shown(r)}" for r in case.constraints]
    head = " ".join([str(case.versions) or "every version", *where])
    return f"{head}: {'; '.join(adds)}" + (f" ({case.note})" if case.note else "")


def to_json(item: Listed) -> dict[str, Any]:
    """The `rule` event's fields for one rule."""
    rule = item.rule
    return {
        "id": rule.id,
        "package": rule.package,
        "builtin": rule.builtin,
        "ignored": item.ignored,
        "source": rule.source,
        "cite": rule.cite,
        "reason": rule.reason,
        "note": rule.note,
        "cases": [{**c.as_data(), "note": c.note} for c in rule.cases],
        "locks": list(item.locks),
        "older-locks": list(item.older),
    }
