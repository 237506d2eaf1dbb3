"""Values of `envspec.toml` checked with `packaging` or the target table: requirements, package
names, versions, target lists; each failure names its path. Shared by `phases` and `options`.
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec import targets as known_targets
from envspec.tomlread import Doc, Table

NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
NAME_HINT = "use letters, digits, '-', '_' and '.'"


def requirement(doc: Doc, path: str, text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).split("\n", 1)[0]
        reason = reason[:1].lower() + reason[1:]
        doc.fail(path, f"invalid requirement '{text}': {reason}")
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(extra) for extra in req.extras}
    return req


def requirement_list(table: Table, key: str, *, required: bool = False) -> tuple[Requirement, ...]:
    texts = table.strings(key, required=required) or []
    return tuple(
        requirement(table.doc, f"{table.at(key)}[{i}]", text) for i, text in enumerate(texts)
    )


def package_name(doc: Doc, path: str, text: str) -> NormalizedName:
    try:
        return canonicalize_name(text, validate=True)
    except InvalidName:
        doc.fail(path, f"invalid package name '{text}'")


def name_list(table: Table, key: str, *, allow_all: bool = False) -> tuple[str, ...]:
    texts = table.strings(key) or []
    if allow_all and ":all:" in texts:
        return (":all:",)
    names = {package_name(table.doc, f"{table.at(key)}[{i}]", t) for i, t in enumerate(texts)}
    return tuple(sorted(names))


def target_list(table: Table, key: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
    """Known, distinct target names; a subset of `allowed` when given (in its order)."""
    names = table.strings(key, required=allowed is None) or []
    if not names:
        hint = "known targets: " + ", ".join(allowed or known_targets.KNOWN)
        table.fail("expected at least one target", hint, key=key)
    for i, name in enumerate(names):
        path = f"{table.at(key)}[{i}]"
        check_target(table.doc, path, name, allowed)
        if name in names[:i]:
            table.doc.fail(path, f"duplicate target '{name}'")
    return tuple(t for t in allowed if t in names) if allowed is not None else tuple(names)


def check_target(doc: Doc, path: str, name: str, allowed: tuple[str, ...] | None) -> None:
    known_targets.check_name(name, context=f"{doc.where}: {path}")
    if allowed is not None and name not in allowed:
        hint = "add it to environment.targets"
        doc.fail(path, f"target '{name}' is not in environment.targets", hint)


def read_version(table: Table) -> Version | None:
    text = table.string("version")
    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        table.fail(f"invalid version '{text}'", key="version")
