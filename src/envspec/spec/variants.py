"""The accelerator variants of `envspec.toml`: `[environment] variants` (the order of
preference) and one `[variants.<name>]` table each. See the package docstring for the
messages.

A variant changes what is resolved — `index` routes a phase's own names to another index,
`requirements` adds requirements to a phase, `constraints` bound any package — and says what
it needs of a machine: `cuda-driver` (one specifier, or one per OS family: `linux`,
`windows`) and `compute-capability`; none of them: it runs anywhere (a CPU build). `targets`
limits it to some of the spec's targets (default: all).
"""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envspec.errors import did_you_mean
from envspec.model import OS_FAMILIES, Phase, Variant, os_family
from envspec.spec.options import bounds
from envspec.spec.phases import index_name
from envspec.spec.values import VARIANT, VARIANT_HINT, requirement_list, target_list
from envspec.tomlread import Table, check_type, type_name

_VARIANT_KEYS = (
    "targets",
    "cuda-driver",
    "compute-capability",
    "index",
    "requirements",
    "constraints",
)


def variants(
    root: Table,
    order: list[str],
    targets: tuple[str, ...],
    phases: tuple[Phase, ...],
    indexes: tuple[str, ...],
) -> tuple[Variant, ...]:
    """The variants in `order` (`[environment] variants`, checked here), each from its table."""
    tables = root.table("variants")
    defined = tables.keys() if tables is not None else []
    environment = root.table("environment")
    assert environment is not None  # `_environment` failed otherwise
    for i, name in enumerate(order):
        path = f"{environment.at('variants')}[{i}]"
        if name in order[:i]:
            environment.doc.fail(path, f"duplicate variant '{name}'")
        if name not in defined:
            hint = did_you_mean(name, defined) or f"add a [variants.{name}] table"
            environment.doc.fail(path, f"unknown variant '{name}'", hint)
    out = []
    for name in defined:
        assert tables is not None
        if not VARIANT.fullmatch(name):
            tables.fail(f"invalid variant name '{name}'", VARIANT_HINT, key=name)
        if name not in order:
            hint = "add it to [environment] variants, in its place in the order of preference"
            tables.fail(f"variant '{name}' is not in environment.variants", hint, key=name)
        sub = Table(check_type(tables.data[name], dict, tables.doc, tables.at(name)),
                    tables.at(name), tables.doc)  # fmt: skip
        out.append(_variant(sub, name, targets, phases, indexes))
    return tuple(sorted(out, key=lambda v: order.index(v.name)))


def _variant(
    table: Table,
    name: str,
    targets: tuple[str, ...],
    phases: tuple[Phase, ...],
    indexes: tuple[str, ...],
) -> Variant:
    table.check_keys(_VARIANT_KEYS)
    applies = target_list(table, "targets", targets) if "targets" in table else targets
    phase_names = tuple(p.name for p in phases)
    return Variant(
        name=name,
        targets=applies,
        routes=tuple(sorted(_by_phase(table, "index", phase_names, indexes).items())),
        requirements=_requirements(table, phase_names),
        constraints=bounds(table, "constraints", "constraint"),
        cuda_driver=_cuda_driver(table, applies),
        compute_capability=_specifier(table, "compute-capability"),
    )


def _by_phase(
    table: Table, key: str, phase_names: tuple[str, ...], indexes: tuple[str, ...]
) -> dict[str, str]:
    sub = table.table(key)
    if sub is None:
        return {}
    out = {}
    for phase, value in sub.items():
        path = sub.at(phase)
        _check_phase(sub, phase, phase_names)
        out[phase] = index_name(sub.doc, path, check_type(value, str, sub.doc, path), indexes)
    return out


def _requirements(
    table: Table, phase_names: tuple[str, ...]
) -> tuple[tuple[str, tuple[Requirement, ...]], ...]:
    sub = table.table("requirements")
    if sub is None:
        return ()
    for phase in sub.data:
        _check_phase(sub, phase, phase_names)
    return tuple(sorted((phase, requirement_list(sub, phase)) for phase in sub.data))


def _check_phase(table: Table, phase: str, phase_names: tuple[str, ...]) -> None:
    if phase not in phase_names:
        hint = did_you_mean(phase, phase_names) or "phases: " + ", ".join(phase_names)
        table.fail(f"unknown phase '{phase}'", hint, key=phase)


def _cuda_driver(table: Table, applies: tuple[str, ...]) -> tuple[tuple[str, SpecifierSet], ...]:
    value = table.data.get("cuda-driver")
    families = tuple(dict.fromkeys(os_family(t) for t in applies if os_family(t) != "macos"))
    if value is None:
        return ()
    if isinstance(value, str):
        spec = _specifier(table, "cuda-driver")
        assert spec is not None
        return tuple(sorted((family, spec) for family in families))
    if not isinstance(value, dict):
        table.fail(f"expected a string or a table, got {type_name(value)}", key="cuda-driver")
    sub = Table(value, table.at("cuda-driver"), table.doc)
    sub.check_keys([f for f in OS_FAMILIES if f != "macos"])
    for family in families:
        if family not in sub:
            target = next(t for t in applies if os_family(t) == family)
            hint = f'add {family} = ">=..." (the {family} driver this build needs)'
            sub.fail(f"no {family} driver given for target {target}", hint)
    found = ((family, _specifier(sub, family)) for family in sub.data)
    return tuple(sorted((family, spec) for family, spec in found if spec is not None))


def _specifier(table: Table, key: str) -> SpecifierSet | None:
    text = table.string(key)
    if text is None:
        return None
    what = "cuda-driver" if table.path.endswith("cuda-driver") else key
    example = ">=8.0" if what == "compute-capability" else ">=525.60.13"
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        spec = SpecifierSet()
    if not spec:
        hint = f'expected a version specifier, e.g. "{example}"'
        table.fail(f"invalid {what} '{text}'", hint, key=key)
    return spec
