"""`Lock` → PEP 751 TOML text, laid out for review: see the package docstring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Item
from tomlkit.items import Table as TomlTable

from envspec.errors import LockFileError
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase
from envspec.secret import redact

LOCK_VERSION = "1.0"
CREATED_BY = "envspec"
_ONE_LINE = 88  # an array longer than this when written on one line gets one item per line


def dump_lock(lock: Lock) -> str:
    """The lock as PEP 751 TOML: deterministic, sorted, without timestamps or credentials."""
    doc = tomlkit.document()
    doc["lock-version"] = LOCK_VERSION
    if lock.environments:
        doc["environments"] = list(lock.environments)
    if lock.requires_python:
        doc["requires-python"] = lock.requires_python
    doc["created-by"] = CREATED_BY
    packages = sorted(lock.packages, key=lambda p: (p.name, p.version))
    if packages:
        doc["packages"] = AoT([_package_table(lock, p) for p in packages])
    else:
        doc["packages"] = tomlkit.array()
    envspec = tomlkit.table()
    envspec["target"] = lock.target
    if lock.variant:  # none: no keys, so a spec without variants keeps its locks' bytes
        envspec["variant"] = lock.variant
        if lock.needs.gpu:
            envspec["needs"] = _inline(lock.needs.as_data())
    envspec["phases"] = _lines([_phase_entry(phase) for phase in lock.phases])
    if lock.rules:  # none: no table, so a lock no rule is about keeps its bytes
        envspec["rules"] = _rules_table(lock)
    envspec["inputs"] = _table(lock.inputs, "tool.envspec.inputs")
    doc["tool"] = _super(envspec=envspec)
    return tomlkit.dumps(doc)


def _package_table(lock: Lock, package: LockedPackage) -> TomlTable:
    table = tomlkit.table()
    table["name"] = package.name
    table["version"] = str(package.version)
    if package.index:
        table["index"] = redact(package.index)
    where = f"lock for {lock.target}"
    if package.vcs is not None and package.artifact is None:
        vcs = tomlkit.table()
        vcs["type"] = "git"
        vcs["url"] = redact(package.vcs.url)
        if package.vcs.requested_revision is not None:
            vcs["requested-revision"] = package.vcs.requested_revision
        vcs["commit-id"] = package.vcs.commit_id
        table["vcs"] = vcs
    elif package.artifact is not None and package.vcs is None:
        file = _file_entry(package.artifact, where)
        if package.artifact.kind == "wheel":
            table["wheels"] = _lines([file], always=True)
        else:
            table["sdist"] = _block(file)
    else:
        problem = (
            "both an artifact and a git source" if package.vcs else "no artifact or git source"
        )
        raise LockFileError(
            f"cannot lock '{package.name}' {package.version}: {problem}", context=where
        )
    envspec = tomlkit.table()
    envspec["phase"] = package.phase
    envspec["required-by"] = sorted(package.required_by)
    table["tool"] = _super(envspec=envspec)
    return table


def _file_entry(artifact: Artifact, where: str) -> InlineTable:
    if not artifact.sha256:
        raise LockFileError(
            f"cannot lock '{artifact.filename}' without a sha256 hash",
            context=where,
            hint="the resolver must hash files whose index gives no hash",
        )
    entry = tomlkit.inline_table()
    entry["name"] = artifact.filename
    entry["url"] = redact(artifact.url)
    if artifact.size is not None:
        entry["size"] = artifact.size
    if artifact.upload_time is not None:  # UTC, as `Artifact` keeps it
        entry["upload-time"] = artifact.upload_time
    hashes = tomlkit.inline_table()
    hashes["sha256"] = artifact.sha256
    entry["hashes"] = hashes
    return entry


def _phase_entry(phase: LockedPhase) -> InlineTable:
    entry = tomlkit.inline_table()
    entry["name"] = phase.name
    if phase.index is not None:
        entry["index"] = phase.index
    if phase.optional:
        entry["optional"] = True
    if phase.skipped is not None:
        entry["skipped"] = phase.skipped
    return entry


def _inline(mapping: Mapping[str, str]) -> InlineTable:
    entry = tomlkit.inline_table()
    entry.update(mapping)
    return entry


def _rules_table(lock: Lock) -> TomlTable:
    """The compatibility rules about the lock's packages, with the built-in set's version."""
    table = tomlkit.table()
    table["version"] = lock.rules_version
    entries = []
    for rule in lock.rules:
        entry = tomlkit.inline_table()
        entry.update({"id": rule.id, "sha256": rule.sha256, "source": rule.source})
        entries.append(entry)
    table["applied"] = _lines(entries, always=True)
    return table


def _super(**tables: TomlTable) -> TomlTable:
    # a super table writes no [tool] header of its own, only [tool.envspec]
    table = tomlkit.table(is_super_table=True)
    for key, value in tables.items():
        table[key] = value
    return table


def _block(entry: InlineTable) -> TomlTable:
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = value
    return table


def _lines(items: list[Any], *, always: bool = False) -> Array:
    array = tomlkit.array()
    array.extend(items)
    if always or len(array.as_string()) > _ONE_LINE:
        array.multiline(True)
    return array


def _table(mapping: Mapping[str, Any], path: str) -> TomlTable:
    """A nested mapping as sub-tables, keys sorted; tables after plain values, as TOML needs."""
    table = tomlkit.table()
    nested: list[tuple[str, TomlTable | AoT]] = []
    for key in sorted(mapping):
        value = mapping[key]
        if isinstance(value, Mapping):
            nested.append((key, _table(value, f"{path}.{key}")))
        elif _is_tables(value):
            nested.append((key, AoT([_table(v, f"{path}.{key}") for v in value])))
        else:
            table[key] = _value(value, f"{path}.{key}")
    for key, item in nested:
        table[key] = item
    return table


def _is_tables(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def _value(value: Any, path: str) -> Item | str | int | float | bool:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return _lines([_value(v, f"{path}[{i}]") for i, v in enumerate(value)])
    if isinstance(value, Mapping):
        entry = tomlkit.inline_table()
        for key in sorted(value):
            entry[key] = _value(value[key], f"{path}.{key}")
        return entry
    raise LockFileError(f"cannot write {type(value).__name__} to a lock", context=path)
