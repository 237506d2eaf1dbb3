"""Compatibility rules as TOML → `model.Rule` values, for the built-in `rules.toml` and a
spec's `[[rules]]` alike: one format, checked the same way, every error naming the file and
the table path (`rules[1].cases[0].requires[0]`), as the spec's own errors do.

A rule table has `id`, `package`, `source` (an http(s) URL), `reason`, an optional `note`, and
where it holds, `marker` and `targets` (optional); then either the keys of its one case
(`versions`, `requires`, `constraints`) or `cases`, an array of tables with those keys (each
may have its own `note`). Messages
(besides `tomlread`'s generic ones):

- ``invalid rule id 'Torch'`` (hint: lower-case letters, digits, '-' and '.') ·
  ``duplicate rule id 'x'`` · ``rule 'torchao-torch' is a built-in rule`` (hint: ignore it
  and give yours another id) · ``invalid package name 'a b'``
- ``source must be an http(s) URL`` · ``reason is empty``
- ``'versions' belongs in each of the rule's cases`` (likewise requires, constraints) ·
  ``a rule needs at least one case``
- ``invalid version specifier '<<2'`` · ``invalid marker 'x'`` · ``unknown target 'x'``
- ``invalid requirement 'x': <packaging's reason>`` · ``requirement 'x @ URL' may not be a
  direct reference`` · ``constraint 'x[y]' may not have extras`` · ``the rule's package
  'x' may not bound itself`` · ``the case adds nothing`` (hint: give requires or
  constraints)
- ``unknown rule 'torchao-torhc'`` (hint ``did you mean 'torchao-torch'?``), for
  `[resolution] ignore-rules`
- the built-in file: ``invalid version '1'`` (expected YYYY.MM.N)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidName, canonicalize_name

from envspec.errors import EnvspecError, SpecError, did_you_mean, requirement_reason
from envspec.model import Rule, RuleCase, RuleSet
from envspec.targets import check_name
from envspec.tomlread import Doc, Table, loads

_PER_CASE = ("versions", "requires", "constraints")
RULE_KEYS = ("id", "package", "source", "reason", "note", "cases", "marker", "targets", *_PER_CASE)
_ID = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")
_SET_VERSION = re.compile(r"\d{4}\.\d{1,2}\.\d+")


def parse_builtin(text: str, *, where: str) -> RuleSet:
    """The built-in rule set's file: a `version` and its `[[rules]]`."""
    root = Doc(where, SpecError).root(loads(text, where=where, error=SpecError))
    root.check_keys(("version", "rules"))
    version = root.required_string("version")
    if not _SET_VERSION.fullmatch(version):
        root.fail(f"invalid version '{version}'", "expected YYYY.MM.N", key="version")
    return RuleSet(version=version, rules=parse_rules(root.tables("rules"), builtin=True))


def parse_rules(
    tables: Sequence[Table], *, builtin: bool, taken: Collection[str] = ()
) -> tuple[Rule, ...]:
    """`[[rules]]` tables as rules; `taken` are ids another set already has (the built-in
    ones, for a project's rules)."""
    out: list[Rule] = []
    for table in tables:
        rule = _rule(table, builtin)
        if rule.id in taken:
            hint = "to replace it, add it to [resolution] ignore-rules and give yours another id"
            table.fail(f"rule '{rule.id}' is a built-in rule", hint, key="id")
        if any(r.id == rule.id for r in out):
            table.fail(f"duplicate rule id '{rule.id}'", key="id")
        out.append(rule)
    return tuple(out)


def check_ignored(table: Table, key: str, known: Collection[str]) -> tuple[str, ...]:
    """`[resolution] ignore-rules`: ids of rules that exist."""
    ids = table.strings(key) or []
    for i, rule_id in enumerate(ids):
        if rule_id not in known:
            hint = did_you_mean(rule_id, known) or "list the rules with 'envspec rules'"
            table.doc.fail(f"{table.at(key)}[{i}]", f"unknown rule '{rule_id}'", hint)
    return tuple(sorted(set(ids)))


def _rule(table: Table, builtin: bool) -> Rule:
    table.check_keys(RULE_KEYS)
    rule_id = table.required_string("id")
    if not _ID.fullmatch(rule_id):
        hint = "use lower-case letters, digits, '-' and '.', e.g. 'torchao-torch'"
        table.fail(f"invalid rule id '{rule_id}'", hint, key="id")
    text = table.required_string("package")
    try:
        package = canonicalize_name(text, validate=True)
    except InvalidName:
        table.fail(f"invalid package name '{text}'", key="package")
    source = table.required_string("source")
    if not source.startswith(("https://", "http://")) or len(source.split("/")) < 3:
        table.fail("source must be an http(s) URL", "where the fact is written down", key="source")
    reason = table.required_string("reason").strip()
    if not reason:
        table.fail("reason is empty", "say in one line what goes wrong without the rule")
    if "cases" in table:
        inline = next((k for k in _PER_CASE if k in table), None)
        if inline is not None:
            table.fail(f"'{inline}' belongs in each of the rule's cases", key=inline)
        marker, targets = _marker(table), _targets(table)
        cases = tuple(_case(sub, package, marker, targets) for sub in table.tables("cases"))
        if not cases:
            table.fail("a rule needs at least one case", key="cases")
    else:
        cases = (_case(table, package, _marker(table), _targets(table), whole=True),)
    return Rule(
        id=rule_id,
        package=package,
        cases=cases,
        source=source,
        reason=reason,
        note=table.string("note") or "",
        builtin=builtin,
    )


def _case(
    table: Table,
    package: str,
    marker: Marker | None,
    targets: tuple[str, ...] | None,
    *,
    whole: bool = False,
) -> RuleCase:
    """One case; `marker` and `targets` are the rule's own (a case of several may not repeat
    them); `whole`: the rule table itself is its one case."""
    if not whole:
        table.check_keys((*_PER_CASE, "note"))
    text = table.string("versions") or ""
    try:
        versions = SpecifierSet(text)
    except InvalidSpecifier:
        table.fail(f"invalid version specifier '{text}'", key="versions")
    requires = _requirements(table, "requires", package, constraint=False)
    constraints = _requirements(table, "constraints", package, constraint=True)
    if not requires and not constraints:
        table.fail("the case adds nothing", "give requires or constraints")
    return RuleCase(
        versions=versions,
        marker=marker,
        targets=targets,
        requires=requires,
        constraints=constraints,
        note="" if whole else table.string("note") or "",
    )


def _marker(table: Table) -> Marker | None:
    text = table.string("marker")
    if text is None:
        return None
    try:
        return Marker(text)
    except (InvalidMarker, RecursionError):
        table.fail(f"invalid marker '{text}'", key="marker")


def _targets(table: Table) -> tuple[str, ...] | None:
    names = table.strings("targets")
    if names is None:
        return None
    for i, name in enumerate(names):
        try:
            check_name(name, context=f"{table.doc.where}: {table.at('targets')}[{i}]")
        except EnvspecError as exc:
            raise SpecError(exc.message, context=exc.context, hint=exc.hint) from exc
    return tuple(sorted(set(names)))


def _requirements(
    table: Table, key: str, package: str, *, constraint: bool
) -> tuple[Requirement, ...]:
    out = []
    for i, text in enumerate(table.strings(key) or []):
        path = f"{table.at(key)}[{i}]"
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            table.doc.fail(path, f"invalid requirement '{text}': {requirement_reason(text, exc)}")
        what = "constraint" if constraint else "requirement"
        if req.url:
            table.doc.fail(path, f"{what} '{text}' may not be a direct reference")
        if constraint and req.extras:
            table.doc.fail(path, f"constraint '{text}' may not have extras")
        req.name = canonicalize_name(req.name)
        if req.name == package:
            table.doc.fail(path, f"the rule's package '{package}' may not bound itself")
        req.extras = {canonicalize_name(e) for e in req.extras}
        out.append(req)
    return tuple(out)
