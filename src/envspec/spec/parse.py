"""`envspec.toml` as a whole: reading it, the top-level keys, [environment], [targets.<name>]
and [indexes]. See the package docstring for the messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envspec import targets as known_targets
from envspec.compat import load_builtin_rules
from envspec.compat.parse import parse_rules
from envspec.errors import SpecError
from envspec.model import Index, RuleSet, Spec, TargetSettings, os_family
from envspec.secret import UnsetVariable, expand
from envspec.spec.options import checks, resolution
from envspec.spec.phases import phases
from envspec.spec.values import (
    NAME,
    NAME_HINT,
    VARIANT,
    VARIANT_HINT,
    article,
    target_list,
    url_problem,
)
from envspec.spec.variants import variants
from envspec.tomlread import Doc, Table, check_type, loads, type_name

PYPI = "https://pypi.org/simple"
_ROOT_KEYS = (
    "environment", "targets", "indexes", "phases", "resolution", "checks", "rules", "variants",
)  # fmt: skip
_PYTHON = re.compile(r"3\.\d{1,3}(?:\.\d{1,3})?")
_URL_SCHEMES = ("http://", "https://", "file://")


def load_spec(path: Path, environ: Mapping[str, str], *, empty_phases: bool = False) -> Spec:
    """Read and validate the spec at `path`; ``${VAR}`` references come from `environ` (the
    CLI's snapshot of the environment); `empty_phases` as for `parse_spec`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(
            "no spec file", context=str(path), hint="run 'envspec init' to write one"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SpecError(f"cannot read the spec: {reason}", context=str(path)) from exc
    return parse_spec(text, filename=str(path), environ=environ, empty_phases=empty_phases)


def parse_spec(
    text: str,
    *,
    environ: Mapping[str, str],
    filename: str = "envspec.toml",
    builtin: RuleSet | None = None,
    empty_phases: bool = False,
) -> Spec:
    """Validate and normalize a spec's text; `environ` expands ``${VAR}`` in index URLs;
    `builtin` is the built-in rule set (envspec's own when not given); `empty_phases` takes
    a phase without requirements (`envspec add` reads `init`'s starter spec)."""
    root = Doc(filename, SpecError).root(loads(text, where=filename, error=SpecError))
    root.check_keys(_ROOT_KEYS)
    name, python, targets, order = _environment(root)
    indexes = _indexes(root, environ)
    index_names = tuple(index.name for index in indexes)
    spec_phases = phases(root, targets, index_names, empty_ok=empty_phases)
    builtin = load_builtin_rules() if builtin is None else builtin
    own = parse_rules(root.tables("rules"), builtin=False, taken={r.id for r in builtin.rules})
    known = [r.id for r in (*builtin.rules, *own)]
    res = resolution(root.table("resolution"), known)
    in_force = tuple(r for r in (*builtin.rules, *own) if r.id not in res.ignore_rules)
    return Spec(
        name=name,
        python=python,
        targets=targets,
        indexes=indexes,
        phases=spec_phases,
        resolution=res,
        checks=checks(root.table("checks")),
        target_settings=_target_settings(root.table("targets")),
        rules=RuleSet(version=builtin.version, rules=in_force),
        variants=variants(root, order, targets, spec_phases, index_names),
    )


def _environment(root: Table) -> tuple[str, str, tuple[str, ...], list[str]]:
    table = root.table("environment")
    if table is None:
        root.fail(
            "missing required table [environment]",
            "add [environment] with name, python and targets",
        )
    table.check_keys(("name", "python", "targets", "variants"))
    name = table.required_string("name")
    if not NAME.fullmatch(name):
        table.fail(f"invalid environment name '{name}'", NAME_HINT, key="name")
    python = table.required_string("python")
    if not _PYTHON.fullmatch(python):
        hint = 'expected "3.<minor>" or "3.<minor>.<patch>", e.g. "3.11"'
        table.fail(f"invalid python version '{python}'", hint, key="python")
    order = table.strings("variants") or []
    for i, variant in enumerate(order):
        if not VARIANT.fullmatch(variant):
            path = f"{table.at('variants')}[{i}]"
            table.doc.fail(path, f"invalid variant name '{variant}'", VARIANT_HINT)
    return name, python, target_list(table, "targets", None), order


def _target_settings(table: Table | None) -> tuple[tuple[str, TargetSettings], ...]:
    if table is None:
        return ()
    out = []
    for name, value in table.items():
        path = table.at(name)
        known_targets.check_name(name, context=f"{table.doc.where}: {path}")
        sub = Table(check_type(value, dict, table.doc, path), path, table.doc)
        sub.check_keys(("glibc", "macos"))
        for key, _ in sub.items():  # each names one OS's floor: elsewhere it would be ignored
            if os_family(name) != _FAMILY_OF[key]:
                hint = f"'{key}' is set for {_FAMILY_OF[key]} targets only"
                sub.fail(f"'{key}' does not apply to {name}", hint, key=key)
        defaults = TargetSettings()
        glibc = _os_version(sub, "glibc", r"(2)\.(\d+)", '"2.<minor>", e.g. "2.28"')
        macos = _os_version(sub, "macos", r"(\d{2})\.(\d+)", '"<major>.<minor>", e.g. "14.0"')
        settings = TargetSettings(glibc=glibc or defaults.glibc, macos=macos or defaults.macos)
        out.append((name, settings))
    return tuple(sorted(out))


_FAMILY_OF = {"glibc": "linux", "macos": "macos"}  # the OS each target setting is for


def _os_version(table: Table, key: str, pattern: str, expected: str) -> tuple[int, int] | None:
    text = table.string(key)
    if text is None:
        return None
    found = re.fullmatch(pattern, text)
    if not found:
        table.fail(f"invalid {key} version '{text}'", f"expected {expected}", key=key)
    return int(found[1]), int(found[2])


def _indexes(root: Table, environ: Mapping[str, str]) -> tuple[Index, ...]:
    table = root.table("indexes")
    if table is None:
        return (Index(name="pypi", url=PYPI),)
    if not table.keys():
        table.fail("no indexes defined", f'add pypi = "{PYPI}" or remove [indexes]')
    out = [_index(table, name, value, environ) for name, value in table.items()]
    if all(index.explicit for index in out):
        hint = "mark one index not explicit: it serves every name no phase routes"
        table.fail("no default index: every index is explicit", hint)
    return tuple(out)


def _index(table: Table, name: str, value: Any, environ: Mapping[str, str]) -> Index:
    path = table.at(name)
    if not NAME.fullmatch(name):
        table.fail(f"invalid index name '{name}'", NAME_HINT, key=name)
    explicit = flat = False
    if isinstance(value, str):
        url = value
    elif isinstance(value, dict):
        sub = Table(value, path, table.doc)
        sub.check_keys(("url", "explicit", "flat"))
        url, path = sub.required_string("url"), sub.at("url")
        explicit, flat = sub.flag("explicit"), sub.flag("flat")
    else:
        table.fail(f"expected a string or a table, got {type_name(value)}", key=name)
    url = _expand(url, environ, table.doc, path)
    if not url:
        table.doc.fail(path, "index URL is empty")
    if not flat and not url.startswith(_URL_SCHEMES):
        hint = "for a local folder or page of files, set flat = true"
        table.doc.fail(path, "index URL must start with http://, https:// or file://", hint)
    problem = url_problem(url)
    if problem:  # the URL itself is not shown: it may hold credentials
        table.doc.fail(path, f"index URL has {article(problem)}")
    return Index(name=name, url=url, explicit=explicit, flat=flat)


def _expand(url: str, environ: Mapping[str, str], doc: Doc, path: str) -> str:
    """The one expansion of an index URL's ``${VAR}`` references (the finder takes the URL
    as it is from here)."""
    try:
        return expand(url, environ)
    except UnsetVariable as unset:
        hint = f"set {unset.name}, or remove ${{{unset.name}}} from the URL"
        doc.fail(path, f"undefined environment variable '{unset.name}'", hint)
