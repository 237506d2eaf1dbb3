"""The [[phases]] tables of `envspec.toml`: names, requirements, index routing, targets.
See the package docstring for the messages.
"""

from __future__ import annotations

from envspec.errors import did_you_mean
from envspec.model import Phase
from envspec.spec.values import (
    NAME,
    NAME_HINT,
    check_target,
    combine,
    requirement_list,
    target_list,
)
from envspec.tomlread import Doc, Table, check_type, type_name

_PHASE_KEYS = ("name", "requirements", "index", "targets", "optional", "no-build-isolation")


def phases(
    root: Table, targets: tuple[str, ...], indexes: tuple[str, ...], *, empty_ok: bool = False
) -> tuple[Phase, ...]:
    """The spec's phases; `empty_ok` takes a phase without requirements (the one `envspec
    init` writes), for `envspec add` to fill in."""
    if isinstance(root.data.get("phases"), dict):
        hint = "write each phase as [[phases]], with two brackets"
        root.fail("expected an array of tables, got table", hint, key="phases")
    tables = root.tables("phases")
    if not tables:
        root.fail("no phases defined", "add a [[phases]] table with a name and requirements")
    first: dict[str, str] = {}
    out = []
    for table in tables:
        phase = _phase(table, targets, indexes, empty_ok=empty_ok)
        if phase.name in first:
            hint = f"first defined at {first[phase.name]}"
            table.fail(f"duplicate phase name '{phase.name}'", hint, key="name")
        first[phase.name] = table.path
        out.append(phase)
    return tuple(out)


def _phase(
    table: Table, targets: tuple[str, ...], indexes: tuple[str, ...], *, empty_ok: bool
) -> Phase:
    table.check_keys(_PHASE_KEYS)
    name = table.required_string("name")
    if not NAME.fullmatch(name):
        table.fail(f"invalid phase name '{name}'", NAME_HINT, key="name")
    requirements = requirement_list(table, "requirements", required=True)
    if not requirements and not empty_ok:
        hint = f"add some with 'envspec add REQ --phase {name}', or remove the phase"
        table.fail("phase has no requirements", hint, key="requirements")
    requirements = combine(requirements, table, "requirements")
    return Phase(
        name=name,
        requirements=requirements,
        routes=_routes(table, targets, indexes),
        targets=target_list(table, "targets", targets) if "targets" in table else None,
        optional=table.flag("optional"),
        no_build_isolation=table.flag("no-build-isolation"),
    )


def _routes(
    table: Table, targets: tuple[str, ...], indexes: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """`index = "name"` (for every target) or `index = {target = "name"}` as one routing
    per target, sorted by target."""
    value = table.data.get("index")
    if value is None:
        return ()
    if isinstance(value, str):
        index = index_name(table.doc, table.at("index"), value, indexes)
        return tuple(sorted((target, index) for target in targets))
    if not isinstance(value, dict):
        table.fail(f"expected a string or a table, got {type_name(value)}", key="index")
    sub = Table(value, table.at("index"), table.doc)
    routes = []
    for target, name in sub.items():
        path = sub.at(target)
        check_target(sub.doc, path, target, targets)
        routes.append(
            (target, index_name(sub.doc, path, check_type(name, str, sub.doc, path), indexes))
        )
    return tuple(sorted(routes))


def index_name(doc: Doc, path: str, name: str, indexes: tuple[str, ...]) -> str:
    if name not in indexes:
        hint = did_you_mean(name, indexes) or "defined indexes: " + ", ".join(indexes)
        doc.fail(path, f"unknown index '{name}'", hint)
    return name
