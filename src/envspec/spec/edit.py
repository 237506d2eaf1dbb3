"""`envspec add` and `envspec remove` as edits of `envspec.toml`'s text: requirements added
to a phase (or replaced where the spec already names the package) or removed, with every
comment, blank line and layout kept — tomlkit edits the document in place, as uv's `add`
edits pyproject.toml. Pure: text in, text out; the caller checks the result as a spec,
relocks, and only then writes it.

Where a requirement goes: to the phase that already requires the package (its requirement
under the same marker is replaced, as uv's `add` does, or it goes beside those under other
markers), else `--phase NAME`, else, with `--index NAME`, the first phase routed to that
index for every target (or a new phase named after the package, routed to it), else the last
phase; several requirements given with one `--index` that no phase is routed to go to one new
phase. A phase left without requirements by `remove` is removed with them.

Errors (`UsageError`, exit 2): ``invalid requirement 'numpy<<2': <packaging's reason>`` ·
``--phase: unknown phase 'trainig'`` (hint ``did you mean 'training'?``) · ``--index: unknown
index 'pytorch'`` · ``--index: phase 'app' takes its names from the default indexes, not
'pytorch-cu121'`` · ``--phase: 'numpy' is already required in another phase ('numpy<2' in
phase numpy)`` · ``package 'six' is not in the spec`` · ``package 'six' is not in phase
'numpy'`` (hint: where it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from envspec.errors import UsageError, did_you_mean, requirement_reason
from envspec.model import Phase, Spec
from envspec.secret import redact


@dataclass(frozen=True, kw_only=True, slots=True)
class Edit:
    """The spec's new text and what changed, one phrase each
    (``added 'rich>=13' to phase app``)."""

    text: str
    changes: tuple[str, ...]


def parse_requirement(text: str) -> Requirement:
    """A command-line requirement, or the error naming it."""
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise UsageError(
            f"invalid requirement '{redact(text)}': {requirement_reason(text, exc)}",
            hint="write a PEP 508 requirement, e.g. 'numpy<2' or 'name @ git+https://…'",
        ) from None


def add_requirements(
    spec: Spec, text: str, requirements: Sequence[str], *, phase: str | None, index: str | None
) -> Edit:
    """`text` with `requirements` added (see the module docstring for where)."""
    parsed = [(item.strip(), parse_requirement(item.strip())) for item in requirements]
    if phase is not None:
        _phase_named(spec, phase)
    if index is not None and index not in [i.name for i in spec.indexes]:
        names = [i.name for i in spec.indexes]
        hint = did_you_mean(index, names) or "defined indexes: " + ", ".join(names)
        raise UsageError(f"unknown index '{index}'", context="--index", hint=hint)
    doc = tomlkit.parse(text)
    tables: Any = doc["phases"]
    changes = []
    created: str | None = None  # the phase made for --index, for the requirements after
    for written, requirement in parsed:
        name = canonicalize_name(requirement.name)
        where = _requiring(tables, name)
        if where and (phase is None or phase in {n for n, _, _ in where}):
            changes += _replace(tables, where, phase, written, _marker(requirement))
            continue
        if where:
            held = ", ".join(f"'{old}' in phase {n}" for n, _, old in where)
            raise UsageError(
                f"'{name}' is already required in another phase ({held})",
                context="--phase",
                hint=f"remove it there first ('envspec remove {name}'), or leave out --phase",
            )
        target = created or _phase_for(spec, tables, phase, index, name)
        if index is not None and target not in {p.name for p in spec.phases}:
            created = target
        table = _table(tables, target)
        table["requirements"].append(written)
        changes.append(f"added '{written}' to phase {target}")
    written_text = tomlkit.dumps(doc)
    if created is not None:  # a new phase at the end of the file leaves no blank line after
        written_text = written_text.rstrip("\n") + "\n"
    return Edit(text=written_text, changes=tuple(changes))


def remove_requirements(spec: Spec, text: str, names: Sequence[str], *, phase: str | None) -> Edit:
    """`text` without the requirements on `names` (in `phase` only, when given)."""
    if phase is not None:
        _phase_named(spec, phase)
    doc = tomlkit.parse(text)
    tables: Any = doc["phases"]
    changes = []
    for given in names:
        name = canonicalize_name(given)
        where = [w for w in _requiring(tables, name) if phase is None or w[0] == phase]
        if not where:
            raise _not_there(spec, given, name, phase)
        for phase_name, position, old in sorted(where, key=lambda w: -w[1]):
            del _table(tables, phase_name)["requirements"][position]
            changes.append(f"removed '{old}' from phase {phase_name}")
    for position in reversed(range(len(tables))):
        if not list(tables[position]["requirements"]):
            changes.append(f"removed phase {tables[position]['name']} (no requirements left)")
            del tables[position]
    if not len(tables):
        raise UsageError(
            "removing them would leave the spec without phases",
            hint="a spec needs at least one [[phases]] table",
        )
    return Edit(text=tomlkit.dumps(doc), changes=tuple(changes))


def _phase_named(spec: Spec, name: str) -> Phase:
    for phase in spec.phases:
        if phase.name == name:
            return phase
    names = [p.name for p in spec.phases]
    hint = did_you_mean(name, names) or "phases: " + ", ".join(names)
    raise UsageError(f"unknown phase '{name}'", context="--phase", hint=hint)


def _requiring(tables: Any, name: NormalizedName) -> list[tuple[str, int, str]]:
    """(phase, position, text) of every requirement on `name` in the document."""
    found = []
    for table in tables:
        for position, item in enumerate(table.get("requirements", [])):
            try:
                if canonicalize_name(Requirement(str(item)).name) == name:
                    found.append((str(table["name"]), position, str(item)))
            except InvalidRequirement:  # the spec parsed, so this is never reached
                continue
    return found


def _replace(
    tables: Any, where: list[tuple[str, int, str]], phase: str | None, written: str, marker: str
) -> list[str]:
    """Put `written` in place of the requirement on its name under the same `marker` (in
    `phase`), as uv's `add` does; when every one has another marker (``numpy<2; sys_platform ==
    'win32'`` beside ``numpy>=2; sys_platform != 'win32'``), beside them: replacing one would
    drop the package where only its marker held."""
    held = [w for w in where if phase is None or w[0] == phase]
    same = [w for w in held if _marker(Requirement(w[2])) == marker]
    if not same:
        phase_name = held[0][0]
        last = max(position for name, position, _ in held if name == phase_name)
        _table(tables, phase_name)["requirements"].insert(last + 1, written)
        return [f"added '{written}' to phase {phase_name}"]
    phase_name, position, old = same[0]
    if old == written:
        return [f"'{written}' is already in phase {phase_name}"]
    _table(tables, phase_name)["requirements"][position] = written
    return [f"replaced '{old}' with '{written}' in phase {phase_name}"]


def _marker(requirement: Requirement) -> str:
    """The requirement's marker in packaging's normal form ("" for none)."""
    return str(requirement.marker) if requirement.marker is not None else ""


def _phase_for(
    spec: Spec, tables: Any, phase: str | None, index: str | None, name: NormalizedName
) -> str:
    """The phase a new requirement on `name` goes to; a new phase for an index none routes."""
    if phase is not None:
        chosen = _phase_named(spec, phase)
        routed = {i for _, i in chosen.routes}
        if index is not None and (routed != {index} or len(chosen.routes) < len(spec.targets)):
            now = ", ".join(sorted(routed)) if routed else "the default indexes"
            raise UsageError(
                f"phase '{phase}' takes its names from {now}, not '{index}'",
                context="--index",
                hint="leave out --phase to add it to a phase routed to that index (or a new one)",
            )
        return phase
    if index is None:
        return spec.phases[-1].name
    for candidate in spec.phases:
        if {i for _, i in candidate.routes} == {index} and len(candidate.routes) == len(
            spec.targets
        ):
            return candidate.name
    if name in {p.name for p in spec.phases}:
        raise UsageError(
            f"no phase is routed to index '{index}', and a phase named '{name}' exists",
            context="--index",
            hint="add an index to a phase by hand, or give --phase",
        )
    new = tomlkit.table()
    new["name"] = name
    new["index"] = index
    new["requirements"] = tomlkit.array()
    # one blank line before the new phase and one after it (the end of the file is trimmed)
    if not tables[-1].as_string().endswith("\n\n"):
        tables[-1].add(tomlkit.nl())
    new.add(tomlkit.nl())
    tables.append(new)
    return name


def _table(tables: Any, name: str) -> Any:
    return next(t for t in tables if str(t["name"]) == name)


def _not_there(spec: Spec, given: str, name: NormalizedName, phase: str | None) -> UsageError:
    everywhere = {canonicalize_name(r.name): p.name for p in spec.phases for r in p.requirements}
    if phase is None:
        hint = did_you_mean(name, everywhere) or "see the phases' requirements in envspec.toml"
        return UsageError(f"package '{given}' is not in the spec", hint=hint)
    if name in everywhere:
        where = sorted(
            p.name for p in spec.phases for r in p.requirements if canonicalize_name(r.name) == name
        )
        hint = f"it is in phase {', '.join(where)}: leave out --phase, or give that phase"
    else:
        here = [canonicalize_name(r.name) for r in _phase_named(spec, phase).requirements]
        hint = did_you_mean(name, here) or f"phase {phase} requires: " + ", ".join(here)
    return UsageError(f"package '{given}' is not in phase '{phase}'", hint=hint)
