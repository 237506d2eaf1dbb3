"""Core metadata from a source tree's static `[project]` table (PEP 621), when the table holds
everything resolution reads — name, version, dependencies, optional-dependencies and
requires-python, none of them `dynamic`. Otherwise the caller runs a PEP 517 build.

`packaging.metadata` rather than pyproject-metadata: envspec already parses every other
METADATA with `packaging`, which validates exactly the fields resolution reads (names,
versions, PEP 508 requirements, specifiers) and, since packaging 26, renders METADATA
(`Metadata.as_rfc822`), so static and built metadata are cached and parsed as the same bytes.
pyproject-metadata validates the whole table (readme files, license forms, authors) and would
turn an oddity in a field we never read into a failed lock, for one more dependency. The
mapping we own is small: optional dependencies become `Requires-Dist` lines guarded by
`extra == "<name>"` (PEP 685 normalized), as every backend writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.metadata import InvalidMetadata, Metadata, RawMetadata
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envspec.errors import MetadataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

READ = ("version", "dependencies", "optional-dependencies", "requires-python")


def load_static_metadata(source: Path, shown: str) -> bytes | None:
    """METADATA bytes from `source`'s pyproject.toml when its `[project]` table is static
    enough for resolution; None when a build must say (no file, no table, dynamic fields)."""
    try:
        data = tomllib.loads((source / "pyproject.toml").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # the build reports an unreadable file in the backend's own words
    project = data.get("project")
    if not isinstance(project, dict):
        return None
    dynamic = project.get("dynamic", [])
    if not isinstance(dynamic, list) or set(dynamic) & set(READ):
        return None
    if not isinstance(project.get("name"), str) or not isinstance(project.get("version"), str):
        return None
    raw = _raw(project, shown)
    try:
        return Metadata.from_raw(raw, validate=False).as_rfc822().as_bytes()
    except InvalidMetadata as exc:
        raise MetadataError(f"{shown}: pyproject.toml [project]: {exc}") from None


def _raw(project: dict[str, Any], shown: str) -> RawMetadata:
    raw: RawMetadata = {
        "metadata_version": "2.3",
        "name": project["name"],
        "version": project["version"],
    }
    requires = _strings(project.get("dependencies", []), "dependencies", shown)
    extras = project.get("optional-dependencies", {})
    if not isinstance(extras, dict):
        raise MetadataError(f"{shown}: pyproject.toml: optional-dependencies must be a table")
    provided: list[str] = []
    for extra, lines in sorted(extras.items()):
        name = canonicalize_name(extra)
        provided.append(name)
        for line in _strings(lines, f"optional-dependencies.{extra}", shown):
            requires.append(_with_extra(line, name, shown))
    raw["requires_dist"] = requires
    if provided:
        raw["provides_extra"] = provided
    python = project.get("requires-python")
    if python is not None:
        if not isinstance(python, str):
            raise MetadataError(f"{shown}: pyproject.toml: requires-python must be a string")
        raw["requires_python"] = python
    return raw


def _strings(value: Any, key: str, shown: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"{shown}: pyproject.toml: {key} must be a list of strings")
    return list(value)


def _with_extra(line: str, extra: str, shown: str) -> str:
    try:
        requirement = Requirement(line)
    except InvalidRequirement as exc:
        raise MetadataError(
            f"{shown}: pyproject.toml: invalid requirement '{line}' in extra {extra}"
        ) from exc
    guard = f'extra == "{extra}"'
    marker = f"({requirement.marker}) and {guard}" if requirement.marker else guard
    requirement.marker = Marker(marker)
    return str(requirement)
