"""Values of `envspec.toml` checked with `packaging` or the target table: requirements, package
names, versions, target lists; each failure names its path. Shared by `phases` and `options`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec import targets as known_targets
from envspec.errors import requirement_reason
from envspec.secret import redact
from envspec.tomlread import Doc, Table

NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
NAME_HINT = "use letters, digits, '-', '_' and '.'"
# a variant names its lock file, pylock.<target>-<variant>.toml, where PEP 751 allows no '.'
VARIANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
VARIANT_HINT = "use letters, digits, '-' and '_' (no '.': PEP 751 allows none in a lock's name)"


def requirement(doc: Doc, path: str, text: str) -> Requirement:
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        reason = requirement_reason(text, exc)
        doc.fail(path, f"invalid requirement '{redact(text)}': {reason}")
    if req.url:
        problem = url_problem(req.url)
        if problem:  # the URL is not shown: mangled, a secret may sit where no userinfo is seen
            doc.fail(path, f"invalid requirement: its URL has {article(problem)}")
    for spec in req.specifier:
        if spec.operator != "===" and not _readable(spec.version.removesuffix(".*")):
            shown = spec.version[:24] + "…"
            doc.fail(path, f"invalid requirement: version '{shown}' has a number past 4300 digits")
    req.name = canonicalize_name(req.name)
    req.extras = {canonicalize_name(extra) for extra in req.extras}
    return req


def _readable(version: str) -> bool:
    """Whether `version` parses: the specifier took it, but a release number past `int()`'s
    4,300 digits raised ValueError (not InvalidVersion) in the resolver, a traceback."""
    try:
        Version(version)
    except InvalidVersion:
        return True  # the specifier's own grammar admitted it: not this check's concern
    except ValueError:
        return False
    return True


def url_problem(url: str) -> str:
    """What makes `url` unusable (an unclosed IPv6 bracket, a port that is not one), or ""."""
    try:
        urlsplit(url).port  # noqa: B018 (the property validates the port)
    except ValueError as exc:
        text = str(exc)
        if "IPv6" in text:
            return "unclosed '[' in the host"
        return "the port is not a number from 0 to 65535"
    return ""


def article(problem: str) -> str:
    return problem.replace("the port is", "a port that is").replace("unclosed", "an unclosed")


def combine(reqs: tuple[Requirement, ...], table: Table, key: str) -> tuple[Requirement, ...]:
    """Requirements on one name under one marker combined into one, as pip and uv do: extras
    united, specifiers intersected. A name may also repeat under different markers
    (`a>=2; sys_platform == 'linux'` beside `a<2; sys_platform == 'darwin'`), kept apart. Two
    different direct references for one name cannot both hold: that is an error."""
    first: dict[tuple[str, str], int] = {}
    out: list[Requirement] = []
    for i, req in enumerate(reqs):
        group = (req.name, str(req.marker or ""))
        if group not in first:
            first[group] = len(out)
            out.append(req)
            continue
        kept = out[first[group]]
        if req.url and kept.url and req.url != kept.url:
            where = f"{table.at(key)}[{i}]"
            hint = "a name comes from one source; keep one of them"
            table.doc.fail(where, f"two direct references for '{req.name}'", hint)
        merged = Requirement(str(kept))
        merged.extras = kept.extras | req.extras
        merged.url = kept.url or req.url
        merged.specifier = kept.specifier & req.specifier
        if merged.url and merged.specifier:
            out.append(req)  # `name @ URL` has no room for a specifier: the resolver checks both
            continue
        out[first[group]] = merged
    return tuple(out)


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
