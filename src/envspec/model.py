"""Frozen value types shared by every layer: indexes, phases, the spec, targets, artifacts,
distribution metadata and locked packages.

Values are normalized when built (names canonicalized, requirement strings re-rendered by
`packaging`), so two values that mean the same compare equal.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

Prereleases = Literal["allow", "disallow", "if-necessary"]
ArtifactKind = Literal["wheel", "sdist"]
SPEC_ROOT = "<spec>"


@dataclass(frozen=True, kw_only=True, slots=True)
class Index:
    """A named package index (PEP 503/691) or a flat find-links location."""

    name: str
    url: str
    explicit: bool = False
    flat: bool = False

    def __post_init__(self) -> None:
        if not self.flat and not self.url.endswith("/"):
            object.__setattr__(self, "url", self.url + "/")


@dataclass(frozen=True, kw_only=True, slots=True)
class Phase:
    """One ordered install step of the spec."""

    name: str
    requirements: tuple[Requirement, ...]
    index: str | None = None
    index_by_target: tuple[tuple[str, str], ...] = ()
    targets: tuple[str, ...] | None = None
    optional: bool = False
    no_build_isolation: bool = False

    def applies_to(self, target: str) -> bool:
        return self.targets is None or target in self.targets

    def index_for(self, target: str) -> str | None:
        """The index this phase's own requirement names are routed to on `target`."""
        if self.index_by_target:
            return dict(self.index_by_target).get(target)
        return self.index


@dataclass(frozen=True, kw_only=True, slots=True)
class DependencyMetadata:
    """Metadata declared in the spec in place of a distribution's own."""

    name: NormalizedName
    version: Version | None
    requires_dist: tuple[Requirement, ...] = ()
    requires_python: str = ""
    provides_extra: tuple[NormalizedName, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetSettings:
    """Per-target knobs from `[targets.<name>]`."""

    glibc: tuple[int, int] = (2, 28)
    macos: tuple[int, int] = (13, 0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """The `[resolution]` table."""

    constraints: tuple[Requirement, ...] = ()
    overrides: tuple[Requirement, ...] = ()
    prereleases: Prereleases = "if-necessary"
    exclude_newer: str = ""
    no_build: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    dependency_metadata: tuple[DependencyMetadata, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Checks:
    """The `[checks]` table."""

    imports: tuple[str, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Spec:
    """A validated `envspec.toml`."""

    name: str
    python: str
    targets: tuple[str, ...]
    indexes: tuple[Index, ...]
    phases: tuple[Phase, ...]
    resolution: Resolution = field(default_factory=Resolution)
    checks: Checks = field(default_factory=Checks)
    target_settings: tuple[tuple[str, TargetSettings], ...] = ()

    def index(self, name: str) -> Index:
        for index in self.indexes:
            if index.name == name:
                return index
        raise KeyError(name)

    def settings_for(self, target: str) -> TargetSettings:
        return dict(self.target_settings).get(target, TargetSettings())


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A platform to lock for: a full marker environment plus wheel tags, best first."""

    name: str
    markers: tuple[tuple[str, str], ...]
    tags: tuple[Tag, ...]

    @property
    def python_version(self) -> str:
        return dict(self.markers)["python_version"]

    @property
    def python_full_version(self) -> str:
        return dict(self.markers)["python_full_version"]

    def environment(self, extra: str = "") -> dict[str, str]:
        env = dict(self.markers)
        env["extra"] = extra
        return env

    def evaluate(self, marker: Marker | None, extras: frozenset[str] = frozenset()) -> bool:
        """Whether `marker` holds on this target for any of `extras` (or none)."""
        if marker is None:
            return True
        return any(marker.evaluate(self.environment(extra)) for extra in extras or {""})

    def environment_marker(self) -> str:
        env = dict(self.markers)
        return (
            f"sys_platform == '{env['sys_platform']}' and "
            f"platform_machine == '{env['platform_machine']}'"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Artifact:
    """One file of a distribution as an index lists it."""

    filename: str
    url: str
    kind: ArtifactKind
    sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    yanked: str | None = None  # the reason ("" when none given); None when not yanked
    upload_time: str | None = None
    metadata: str | None = None  # PEP 658/714: "sha256=<hex>", "true", or None when absent

    def with_(self, **changes: Any) -> Artifact:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True, slots=True)
class DistMetadata:
    """What resolution needs of a distribution's core metadata."""

    name: NormalizedName
    version: Version
    requires_dist: tuple[Requirement, ...] = ()
    requires_python: str = ""
    provides_extra: tuple[NormalizedName, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class VcsSource:
    """A git source pinned to a commit."""

    url: str
    requested_revision: str | None
    commit_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LockedPackage:
    """One pinned distribution of a lock."""

    name: NormalizedName
    version: Version
    index: str | None = None
    artifact: Artifact | None = None
    vcs: VcsSource | None = None
    phase: str = ""
    required_by: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class LockedPhase:
    """A phase as recorded in a lock."""

    name: str
    index: str | None = None
    optional: bool = False
    skipped: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Lock:
    """The resolution of one spec for one target."""

    target: str
    requires_python: str
    environments: tuple[str, ...]
    packages: tuple[LockedPackage, ...]
    phases: tuple[LockedPhase, ...]
    inputs: Mapping[str, Any]

    def package(self, name: str) -> LockedPackage | None:
        wanted = canonicalize_name(name)
        for package in self.packages:
            if package.name == wanted:
                return package
        return None

    def inputs_key(self) -> str:
        return json.dumps(self.inputs, sort_keys=True, separators=(",", ":"))


def strip_credentials(url: str) -> str:
    """`url` without any user or password, for locks, logs and messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def public_url(url: str) -> str:
    """`url` as locks and messages show it: without credentials, except ssh's user name
    (`git@`), which names an account rather than holding a secret."""
    parts = urlsplit(url.removeprefix("git+"))
    if parts.scheme.endswith("ssh") and parts.password is None:
        return url
    return strip_credentials(url)
