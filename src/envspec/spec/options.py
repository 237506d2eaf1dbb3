"""The [resolution] and [checks] tables of `envspec.toml`. See the package docstring for the
messages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from typing import cast

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName

from envspec.compat.parse import check_ignored
from envspec.errors import did_you_mean
from envspec.model import Checks, DependencyMetadata, Prereleases, Resolution
from envspec.secret import redact
from envspec.spec.values import name_list, package_name, read_version, requirement_list
from envspec.tomlread import Table, check_type, parse_datetime, type_name

_RESOLUTION_KEYS = (
    "constraints",
    "overrides",
    "prereleases",
    "exclude-newer",
    "no-build",
    "no-binary",
    "dependency-metadata",
    "ignore-rules",
)
_METADATA_KEYS = ("name", "version", "requires-dist", "requires-python", "provides-extra")
_PRERELEASES = ("allow", "disallow", "if-necessary")
_IMPORT = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?")


def resolution(table: Table | None, rule_ids: Collection[str]) -> Resolution:
    """`[resolution]`; `rule_ids` are the compatibility rules `ignore-rules` may name."""
    if table is None:
        return Resolution()
    table.check_keys(_RESOLUTION_KEYS)
    no_build = name_list(table, "no-build", allow_all=True)
    no_binary = name_list(table, "no-binary", allow_all=True)
    both = sorted(set(no_build) & set(no_binary))
    if both:  # a name listed wins over the other list's ":all:" (`Resolution.builds`)
        what = (
            "no-build and no-binary are both ':all:': no file"
            if both[0] == ":all:"
            else f"'{both[0]}' is in both no-build and no-binary: no file of it"
        )
        table.fail(f"{what} could be installed", "keep it in one of them", key="no-binary")
    return Resolution(
        constraints=bounds(table, "constraints", "constraint"),
        overrides=bounds(table, "overrides", "override"),
        prereleases=_prereleases(table),
        exclude_newer=_exclude_newer(table),
        no_build=no_build,
        no_binary=no_binary,
        dependency_metadata=_dependency_metadata(table),
        ignore_rules=check_ignored(table, "ignore-rules", rule_ids),
    )


def bounds(table: Table, key: str, what: str) -> tuple[Requirement, ...]:
    """Constraints or overrides: version bounds (markers allowed), no extras, no URLs."""
    reqs = requirement_list(table, key)
    texts = table.strings(key) or []
    for i, (req, text) in enumerate(zip(reqs, texts, strict=True)):
        path = f"{table.at(key)}[{i}]"
        if req.extras:
            hint = f"{what}s only bound versions; ask for extras in a phase's requirements"
            table.doc.fail(path, f"{what} '{redact(text)}' may not have extras", hint)
        if req.url:
            hint = "put 'name @ URL' in a phase's requirements"
            shown = redact(text)
            table.doc.fail(path, f"{what} '{shown}' may not be a direct reference", hint)
    return reqs


def _prereleases(table: Table) -> Prereleases:
    value = table.string("prereleases")
    if value is None:
        return "if-necessary"
    if value not in _PRERELEASES:
        hint = did_you_mean(value, _PRERELEASES) or "expected one of: " + ", ".join(_PRERELEASES)
        table.fail(f"invalid prereleases '{value}'", hint, key="prereleases")
    return cast(Prereleases, value)


def _exclude_newer(table: Table) -> dt.datetime | None:
    value = table.data.get("exclude-newer", "")
    if isinstance(value, str):
        if not value:
            return None
        parsed = parse_datetime(value)
        if parsed is None:
            hint = 'expected an RFC 3339 date-time or date, e.g. "2024-06-01T00:00:00Z"'
            table.fail(f"invalid exclude-newer '{value}'", hint, key="exclude-newer")
    elif isinstance(value, dt.date):  # TOML's own (offset) date-time or date
        parsed, value = value, value.isoformat()
    else:
        table.fail(f"expected a string, got {type_name(value)}", key="exclude-newer")
    if not isinstance(parsed, dt.datetime):
        return dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=dt.timezone.utc)
    if parsed.tzinfo is None:
        hint = f'add Z for UTC, e.g. "{value}Z"'
        table.fail(f"exclude-newer '{value}' has no time zone", hint, key="exclude-newer")
    return parsed.astimezone(dt.timezone.utc)


def _dependency_metadata(table: Table) -> tuple[DependencyMetadata, ...]:
    out: list[DependencyMetadata] = []
    for sub in table.tables("dependency-metadata"):
        sub.check_keys(_METADATA_KEYS)
        name = package_name(sub.doc, sub.at("name"), sub.required_string("name"))
        version = read_version(sub)
        if any(m.name == name and m.version == version for m in out):
            sub.fail(f"duplicate dependency-metadata for '{name}'", key="name")
        requires_python = sub.string("requires-python") or ""
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            sub.fail(f"invalid requires-python '{requires_python}'", key="requires-python")
        out.append(
            DependencyMetadata(
                name=name,
                version=version,
                requires_dist=requirement_list(sub, "requires-dist"),
                requires_python=requires_python,
                provides_extra=cast(tuple[NormalizedName, ...], name_list(sub, "provides-extra")),
            )
        )
    return tuple(out)


def checks(table: Table | None) -> Checks:
    if table is None:
        return Checks()
    table.check_keys(("imports", "versions"))
    imports = table.strings("imports") or []
    for i, text in enumerate(imports):
        if not _IMPORT.fullmatch(text):
            hint = 'expected "module" or "module:attribute", e.g. "transformers:AutoProcessor"'
            table.doc.fail(f"{table.at('imports')}[{i}]", f"invalid import check '{text}'", hint)
    versions = _versionchecks(table.table("versions"))
    return Checks(imports=tuple(imports), versions=versions)


def _versionchecks(table: Table | None) -> tuple[tuple[str, str], ...]:
    if table is None:
        return ()
    versions: dict[str, str] = {}
    for name, value in table.items():
        path = table.at(name)
        canonical = package_name(table.doc, path, name)
        if canonical in versions:
            table.doc.fail(path, f"duplicate package '{canonical}'")
        text = check_type(value, str, table.doc, path)
        try:
            versions[canonical] = str(SpecifierSet(text))
        except InvalidSpecifier:
            table.doc.fail(path, f"invalid version specifier '{text}'")
    return tuple(sorted(versions.items()))
