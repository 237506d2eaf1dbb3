"""Frozen value types shared by every layer: indexes, phases, accelerator variants, the spec,
targets, artifacts, distribution metadata, compatibility rules and locked packages. (Over 400
lines: they are one vocabulary, and the spec and the lock hold most of them.)

Values are normalized when built (names canonicalized, requirement strings re-rendered by
`packaging`), so two values that mean the same compare equal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from envspec.secret import SecretURL

Prereleases = Literal["allow", "disallow", "if-necessary"]
ArtifactKind = Literal["wheel", "sdist"]
SPEC_ROOT = "<spec>"


@dataclass(frozen=True, kw_only=True, slots=True)
class Index:
    """A named package index (PEP 503/691) or a flat find-links location. `url`, the URL as
    the spec gives it, is input only: it may carry credentials, so the index holds it as
    `location` (a `SecretURL`, shown only in its public form; `.secret` is read by the edges
    that send the credentials); an index's (not a flat location's) ends in `/`."""

    name: str
    url: InitVar[str]
    explicit: bool = False
    flat: bool = False
    location: SecretURL = field(init=False)

    def __post_init__(self, url: str) -> None:
        if not self.flat and not url.endswith("/"):
            url += "/"
        object.__setattr__(self, "location", SecretURL(url))


@dataclass(frozen=True, kw_only=True, slots=True)
class Phase:
    """One ordered install step of the spec. `routes` names, per target, the index this
    phase's own requirement names come from (a target it does not name: default routing)."""

    name: str
    requirements: tuple[Requirement, ...]
    routes: tuple[tuple[str, str], ...] = ()
    targets: tuple[str, ...] | None = None
    optional: bool = False
    no_build_isolation: bool = False

    def applies_to(self, target: str) -> bool:
        return self.targets is None or target in self.targets

    def index_for(self, target: str) -> str | None:
        """The index this phase's own requirement names are routed to on `target`."""
        for name, index in self.routes:
            if name == target:
                return index
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class DependencyMetadata:
    """Metadata declared in the spec in place of a distribution's own."""

    name: NormalizedName
    version: Version | None
    requires_dist: tuple[Requirement, ...] = ()
    requires_python: str = ""
    provides_extra: tuple[NormalizedName, ...] = ()

    def as_metadata(self, version: Version) -> DistMetadata:
        """The declared metadata standing for the distribution's own at `version`."""
        return DistMetadata(
            name=self.name,
            version=version,
            requires_dist=self.requires_dist,
            requires_python=self.requires_python,
            provides_extra=self.provides_extra,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleCase:
    """One range of a rule's package versions and what the rule adds to them there:
    `requires` as if the package's metadata had declared them, `constraints` bounding another
    package only when something else brings it in. `marker` and `targets` limit where it
    holds."""

    versions: SpecifierSet
    marker: Marker | None = None
    targets: tuple[str, ...] | None = None
    requires: tuple[Requirement, ...] = ()
    constraints: tuple[Requirement, ...] = ()
    note: str = ""

    def covers(self, version: Version) -> bool:
        return self.versions.contains(version, prereleases=True)

    def holds(self, environment: Mapping[str, str], target: str | None) -> bool:
        """Whether the case applies in a marker environment (of target `target`, if known)."""
        if self.targets is not None and target not in self.targets:
            return False
        return self.marker is None or self.marker.evaluate({**environment, "extra": ""})

    def as_data(self) -> dict[str, Any]:
        """What the case says, normalized (for digests, listings and JSON)."""
        return {
            "versions": str(self.versions),
            "marker": str(self.marker) if self.marker else "",
            "targets": list(self.targets) if self.targets is not None else [],
            "requires": [str(r) for r in self.requires],
            "constraints": [str(r) for r in self.constraints],
        }


_GITHUB = re.compile(
    r"https://github\.com/([^/]+/[^/#]+)(?:/(issues|pull)/(\d+)|/blob/[^/]+/(\S+))?"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """A sourced compatibility fact about one package, built in or the project's own."""

    id: str
    package: NormalizedName
    cases: tuple[RuleCase, ...]
    source: str  # an http(s) URL
    reason: str
    note: str = ""  # where the facts are uncertain
    builtin: bool = True

    @property
    def cite(self) -> str:
        """The source, short: `pytorch/ao#2919`, `woct0rdho/triton-windows README`, or the URL."""
        found = _GITHUB.fullmatch(self.source)
        if found is None:
            return self.source
        repo, _kind, number, path = found.groups()
        if number:
            return f"{repo}#{number}"
        return f"{repo} {path.rsplit('/', 1)[-1].split('.')[0]}" if path else repo

    def digest(self) -> str:
        """A digest of what the rule makes resolution do (not its wording)."""
        data = {"package": self.package, "cases": [c.as_data() for c in self.cases]}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def mentions(self, name: NormalizedName) -> bool:
        """About `name`, or adding a requirement or constraint on it."""
        added = (r for c in self.cases for r in (*c.requires, *c.constraints))
        return self.package == name or any(canonicalize_name(r.name) == name for r in added)


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleSet:
    """The compatibility rules in force: `version` is the built-in set's."""

    version: str = ""
    rules: tuple[Rule, ...] = ()

    def about(self, name: NormalizedName) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.package == name)


@dataclass(frozen=True, kw_only=True, slots=True)
class AppliedRule:
    """A rule as a lock records it: the rules about a lock's packages are part of its inputs."""

    id: str
    sha256: str  # `Rule.digest`
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetSettings:
    """Per-target knobs from `[targets.<name>]`."""

    glibc: tuple[int, int] = (2, 28)
    # torch >= 2.12 and bitsandbytes >= 0.49 ship macOS 14 wheels only, and macOS 13 is past
    # Apple's support window: 13.0 would lock them years back (bitsandbytes 0.42.0)
    macos: tuple[int, int] = (14, 0)


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """The `[resolution]` table."""

    constraints: tuple[Requirement, ...] = ()
    overrides: tuple[Requirement, ...] = ()
    prereleases: Prereleases = "if-necessary"
    exclude_newer: dt.datetime | None = None  # aware, UTC
    no_build: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    dependency_metadata: tuple[DependencyMetadata, ...] = ()
    ignore_rules: tuple[str, ...] = ()  # ids of compatibility rules turned off

    def builds(self, name: str) -> bool:
        """Whether `name`'s sdists may be used (built), by pip's rule: a list that names it
        wins over the other's ``:all:`` (``no-build = [":all:"]``, ``no-binary = ["six"]``:
        six from source, everything else from wheels)."""
        if name in self.no_build or name in self.no_binary:
            return name not in self.no_build
        return ":all:" not in self.no_build

    def takes_wheels(self, name: str) -> bool:
        """Whether `name`'s wheels may be used, by the same rule as `builds`."""
        if name in self.no_build or name in self.no_binary:
            return name not in self.no_binary
        return ":all:" not in self.no_binary

    def too_new(self, artifact: Artifact) -> bool:
        """Uploaded after `exclude-newer` (a file without an upload time never is)."""
        cutoff, uploaded = self.exclude_newer, artifact.upload_time
        return cutoff is not None and uploaded is not None and uploaded > cutoff


@dataclass(frozen=True, kw_only=True, slots=True)
class Checks:
    """The `[checks]` table."""

    imports: tuple[str, ...] = ()
    versions: tuple[tuple[str, str], ...] = ()


OS_FAMILIES = ("linux", "windows", "macos")  # a target's OS, as `cuda-driver` tables name it


def pylock_name(label: str) -> str:
    """The file name of the lock `label` names (its target, and ``.<variant>`` when it has
    one): ``pylock.<target>.toml`` or ``pylock.<target>-<variant>.toml``, as PEP 751 wants it
    (no dot in the name: uv refuses ``pylock.linux-x86_64.cpu.toml``; a variant name has none)."""
    return f"pylock.{label.replace('.', '-')}.toml"


def os_family(target: str) -> str:
    """The OS family of a target name (`linux-x86_64` → `linux`)."""
    return target.split("-", 1)[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class Needs:
    """What a variant needs of a machine on one target: nothing (CPU), or an NVIDIA driver in
    `cuda_driver` and optionally a GPU whose compute capability is in `compute_capability`."""

    cuda_driver: SpecifierSet | None = None
    compute_capability: SpecifierSet | None = None

    @property
    def gpu(self) -> bool:
        return self.cuda_driver is not None or self.compute_capability is not None

    def as_data(self) -> dict[str, str]:
        """The needs as a lock records them (`[tool.envspec.needs]`; empty: needs nothing)."""
        found = {}
        if self.cuda_driver is not None:
            found["cuda-driver"] = str(self.cuda_driver)
        if self.compute_capability is not None:
            found["compute-capability"] = str(self.compute_capability)
        return found


@dataclass(frozen=True, kw_only=True, slots=True)
class Variant:
    """One `[variants.<name>]` table: an accelerator build of the environment. `routes` sends a
    phase's own names to an index, `requirements` adds to a phase, `constraints` bound any
    package; `cuda_driver` holds one specifier per OS family (`linux`, `windows`); `targets`
    are the spec's targets it applies to, in spec order."""

    name: str
    targets: tuple[str, ...]
    routes: tuple[tuple[str, str], ...] = ()  # (phase, index), sorted by phase
    requirements: tuple[tuple[str, tuple[Requirement, ...]], ...] = ()  # (phase, extra)
    constraints: tuple[Requirement, ...] = ()
    cuda_driver: tuple[tuple[str, SpecifierSet], ...] = ()
    compute_capability: SpecifierSet | None = None

    def needs_for(self, target: str) -> Needs:
        drivers = dict(self.cuda_driver)
        return Needs(
            cuda_driver=drivers.get(os_family(target)),
            compute_capability=self.compute_capability,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Machine:
    """What this machine offers a variant (read by `apply.machine`, the one edge that looks):
    the NVIDIA driver's version and GPU 0's compute capability, each None when not found,
    and where they were read from (`ENVSPEC_CUDA_DRIVER_VERSION`, `/proc/driver/nvidia/version`,
    `nvidia-smi`, ...)."""

    driver: Version | None = None
    compute_capability: Version | None = None
    source: str = ""
    driver_text: str = ""  # the driver's version as the machine writes it (`470.82.01`)

    @property
    def driver_shown(self) -> str:
        return self.driver_text or (str(self.driver) if self.driver else "")


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
    rules: RuleSet = field(default_factory=RuleSet)  # in force: built-in, ignored, project
    variants: tuple[Variant, ...] = ()  # in order of preference (`[environment] variants`)

    def variants_for(self, target: str) -> tuple[Variant, ...]:
        """The variants locked for `target`, in order of preference (none: a plain lock)."""
        return tuple(v for v in self.variants if target in v.targets)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)

    def for_variant(self, variant: Variant | None) -> Spec:
        """The spec one variant's locks are resolved from: its routes replace the phases' own
        on its targets, its requirements join the phases', its constraints the resolution's."""
        if variant is None:
            return self
        phases = tuple(_variant_phase(phase, variant) for phase in self.phases)
        resolution = dataclasses.replace(
            self.resolution, constraints=self.resolution.constraints + variant.constraints
        )
        return dataclasses.replace(self, phases=phases, resolution=resolution, variants=())

    def index(self, name: str) -> Index:
        for index in self.indexes:
            if index.name == name:
                return index
        raise KeyError(name)

    def settings_for(self, target: str) -> TargetSettings:
        return dict(self.target_settings).get(target, TargetSettings())


def _variant_phase(phase: Phase, variant: Variant) -> Phase:
    index = dict(variant.routes).get(phase.name)
    routes = phase.routes
    if index is not None:
        routes = tuple(sorted({**dict(routes), **dict.fromkeys(variant.targets, index)}.items()))
    extra = dict(variant.requirements).get(phase.name, ())
    return dataclasses.replace(phase, requirements=phase.requirements + extra, routes=routes)


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A platform to lock for: a full marker environment plus wheel tags, best first.
    `markers` is read-only and built once (`targets.make_target`): every marker evaluation of
    a resolution reads it."""

    name: str
    markers: Mapping[str, str] = field(hash=False)  # compared; hashed by name and tags
    tags: tuple[Tag, ...]
    _plain: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "markers", MappingProxyType(dict(self.markers)))
        # A plain dict, never handed out: `Marker.evaluate` copies it faster than a proxy.
        object.__setattr__(self, "_plain", {**self.markers, "extra": ""})

    @property
    def python_version(self) -> str:
        return self.markers["python_version"]

    @property
    def python_full_version(self) -> str:
        return self.markers["python_full_version"]

    def environment(self, extra: str = "") -> dict[str, str]:
        """The marker environment to evaluate a marker in, for `extra` (none: "")."""
        return {**self.markers, "extra": extra}

    def evaluate(self, marker: Marker | None, extras: frozenset[str] = frozenset()) -> bool:
        """Whether `marker` holds on this target for any of `extras` (or none)."""
        if marker is None:
            return True
        if not extras:
            return marker.evaluate(self._plain)
        return any(marker.evaluate(self.environment(extra)) for extra in extras)

    def lock_requires_python(self) -> str:
        """The `requires-python` of this target's locks."""
        return f"=={self.python_version}.*"

    def environment_marker(self) -> str:
        """The one marker of this target's locks' `environments`."""
        return (
            f"sys_platform == '{self.markers['sys_platform']}' and "
            f"platform_machine == '{self.markers['platform_machine']}'"
        )


class Yank(enum.Enum):
    """PEP 592: whether the index withdrew a file (only the spec's exact pin takes one)."""

    LIVE = "live"
    YANKED = "yanked"


class CoreMetadata(enum.Enum):
    """PEP 658/714: whether the index serves a file's core metadata beside it."""

    ABSENT = "absent"
    SERVED = "served"  # at `<url>.metadata`; `Artifact.metadata_sha256` when the index says


@dataclass(frozen=True, kw_only=True, slots=True)
class Artifact:
    """One file of a distribution as an index lists it."""

    filename: str
    url: str
    kind: ArtifactKind
    sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    yanked: Yank = Yank.LIVE
    yanked_reason: str = ""  # the index's words, when it gives any
    upload_time: dt.datetime | None = None  # aware, UTC (PEP 700)
    metadata: CoreMetadata = CoreMetadata.ABSENT
    metadata_sha256: str | None = None

    def __post_init__(self) -> None:
        moment = self.upload_time
        if moment is not None and moment.tzinfo is not dt.timezone.utc:
            object.__setattr__(self, "upload_time", as_utc(moment))

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
    # When it installs, as written in the lock (PEP 751 `marker`, `requires-python`): envspec
    # writes neither, a lock being for one target; a lock edited by hand or by another tool may
    marker: str | None = None
    requires_python: str | None = None
    index: str | None = None
    artifact: Artifact | None = None
    vcs: VcsSource | None = None
    phase: str = ""
    required_by: tuple[str, ...] = ()
    # (parent, the requirement it declares on this package: `huggingface-hub<1.0,>=0.34`),
    # by parent, for the parents that are packages (the spec's own are in the lock's inputs)
    required_as: tuple[tuple[str, str], ...] = ()


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
    rules: tuple[AppliedRule, ...] = ()  # the rules about its packages, by id
    rules_version: str = ""  # the built-in rule set's version when it was made
    variant: str | None = None  # the accelerator variant it was resolved for
    needs: Needs = field(default_factory=Needs)  # what that variant needs of a machine

    @property
    def label(self) -> str:
        """How messages name the lock: its target, and its variant when it has one."""
        return f"{self.target}.{self.variant}" if self.variant else self.target

    def package(self, name: str) -> LockedPackage | None:
        wanted = canonicalize_name(name)
        for package in self.packages:
            if package.name == wanted:
                return package
        return None

    def inputs_key(self) -> str:
        return json.dumps(self.inputs, sort_keys=True, separators=(",", ":"))


def as_utc(moment: dt.datetime) -> dt.datetime:
    """`moment` in UTC; a naive one is taken to be UTC already (as PEP 700 times are)."""
    return moment.replace(tzinfo=moment.tzinfo or dt.timezone.utc).astimezone(dt.timezone.utc)


def utc_text(moment: dt.datetime) -> str:
    """A date-time as RFC 3339 text in UTC, ending in ``Z``."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")
