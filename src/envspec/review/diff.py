"""What a change does to the locks: per target, packages added, removed, upgraded, downgraded
or changed at the same version; major-version bumps; index, URL, hash and git changes (how a
supply-chain swap shows up); phases whose membership changed; and, across targets, packages
locked at different versions on different targets; and the compatibility rules each
target's lock records (`[tool.envspec.rules]`) added, removed or changed (a rule's text or its
source), which change what a lock was made under though no pin moves.

Pure: two mappings target → `Lock` in, a `LockDiff` out; its renderings (text, Markdown and
the plain data of ``--format json``) live in `review.diff_format`.

Which source changes are *flagged* (loud): the index a package comes from; its git URL or
commit; its file's host when the version moved; and, at the same version, the file's URL or
hash, or a switch between an index file and a git source. A different file name at the same
version (another wheel tag chosen) is reported but not flagged.

Conditions (`ConditionChange`): when a package installs (its own ``marker`` and
``requires-python``) and what a lock is for (its ``environments`` and ``requires-python``).
envspec writes the lock's from the target and no package's, so a change is an edit that a
relock would undo, or another tool's lock: shown as ``CONDITION CHANGED`` and counted apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from packaging.version import Version

from envspec.model import Lock, LockedPackage

ChangeKind = Literal["added", "removed", "upgraded", "downgraded", "changed"]
TargetStatus = Literal["added", "removed", "changed", "unchanged"]
SourceField = Literal["index", "source", "git-url", "commit", "host", "url", "hash", "file"]
ConditionField = Literal["marker", "requires-python", "environments"]
UNFLAGGED: frozenset[str] = frozenset({"file"})


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceChange:
    """Where a package comes from, before and after."""

    field: SourceField
    old: str
    new: str

    @property
    def flagged(self) -> bool:
        return self.field not in UNFLAGGED


@dataclass(frozen=True, kw_only=True, slots=True)
class ConditionChange:
    """When a package, or a whole lock, installs, before and after (None: no condition): a
    package's ``marker`` or ``requires-python``, a lock's ``environments`` or
    ``requires-python``. envspec writes no package conditions, so any change is shown."""

    field: ConditionField
    old: str | None  # None: no condition on that side
    new: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class PackageChange:
    """One package of one target that is not the same in both locks."""

    name: str
    kind: ChangeKind
    old: str | None
    new: str | None
    major: bool = False
    sources: tuple[SourceChange, ...] = ()
    conditions: tuple[ConditionChange, ...] = ()
    phase: str = ""

    @property
    def flagged(self) -> bool:
        return any(change.flagged for change in self.sources)


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseChange:
    """A phase whose members (or existence, or skipped state) changed."""

    name: str
    status: TargetStatus
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped_old: str | None = None
    skipped_new: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleChange:
    """A compatibility rule a target's lock records that is new, gone, or says something else
    (its digest, or where it comes from)."""

    id: str
    status: TargetStatus
    source: str  # the new side's (the old side's for a removed rule)
    old_source: str | None = None  # when the source changed


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetDiff:
    target: str
    status: TargetStatus
    packages: tuple[PackageChange, ...] = ()
    phases: tuple[PhaseChange, ...] = ()
    rules: tuple[RuleChange, ...] = ()
    conditions: tuple[ConditionChange, ...] = ()  # the lock's environments, requires-python

    @property
    def has_changes(self) -> bool:
        return self.status != "unchanged"

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for p in self.packages if p.kind == kind)


@dataclass(frozen=True, kw_only=True, slots=True)
class Divergence:
    """A package locked at different versions on different targets (of the new side)."""

    name: str
    versions: tuple[tuple[str, str], ...]  # (target, version), in target order
    introduced: bool  # the old side's versions of it did not diverge


@dataclass(frozen=True, kw_only=True, slots=True)
class LockDiff:
    old_label: str
    new_label: str
    targets: tuple[TargetDiff, ...]
    divergences: tuple[Divergence, ...]

    @property
    def has_changes(self) -> bool:
        return any(t.has_changes for t in self.targets)

    def summary(self) -> dict[str, int]:
        out = {k: 0 for k in ("added", "removed", "upgraded", "downgraded", "changed")}
        for target in self.targets:
            for package in target.packages:
                out[package.kind] += 1
        out["major"] = sum(p.major for t in self.targets for p in t.packages)
        out["flagged"] = sum(p.flagged for t in self.targets for p in t.packages)
        out["conditions"] = sum(
            len(t.conditions) + sum(len(p.conditions) for p in t.packages) for t in self.targets
        )
        out["targets-changed"] = sum(t.has_changes for t in self.targets)
        out["diverging"] = len(self.divergences)
        return out


def diff_locks(
    old: Mapping[str, Lock],
    new: Mapping[str, Lock],
    *,
    old_label: str = "old",
    new_label: str = "new",
) -> LockDiff:
    """Compare two sets of locks keyed by target."""
    names = sorted(set(old) | set(new))
    return LockDiff(
        old_label=old_label,
        new_label=new_label,
        targets=tuple(diff_target(t, old.get(t), new.get(t)) for t in names),
        divergences=divergences(old, new),
    )


def diff_target(target: str, old: Lock | None, new: Lock | None) -> TargetDiff:
    """Compare one target's locks; a missing side means the target was added or removed."""
    before = {p.name: p for p in old.packages} if old else {}
    after = {p.name: p for p in new.packages} if new else {}
    changes = []
    for name in sorted(set(before) | set(after)):
        change = package_change(before.get(name), after.get(name))
        if change is not None:
            changes.append(change)
    phases = phase_changes(old, new)
    rules = rule_changes(old, new) if old and new else ()
    conditions = lock_conditions(old, new) if old and new else ()
    status: TargetStatus
    if old is None:
        status = "added"
    elif new is None:
        status = "removed"
    else:
        status = "changed" if changes or phases or rules or conditions else "unchanged"
    return TargetDiff(
        target=target,
        status=status,
        packages=tuple(changes),
        phases=phases,
        rules=rules,
        conditions=conditions,
    )


def lock_conditions(old: Lock, new: Lock) -> tuple[ConditionChange, ...]:
    """How the environments and Python the two locks are for differ."""
    out = []
    if old.environments != new.environments:
        out.append(
            ConditionChange(
                field="environments",
                old=" or ".join(old.environments) or None,
                new=" or ".join(new.environments) or None,
            )
        )
    if old.requires_python != new.requires_python:
        out.append(
            ConditionChange(
                field="requires-python",
                old=old.requires_python or None,
                new=new.requires_python or None,
            )
        )
    return tuple(out)


def package_conditions(
    old: LockedPackage | None, new: LockedPackage
) -> tuple[ConditionChange, ...]:
    """How the two pins' own `marker` and `requires-python` differ (`old` None: a package
    new to the lock, whose conditions are all new)."""
    sides: tuple[tuple[ConditionField, str | None, str | None], ...] = (
        ("marker", old.marker if old else None, new.marker),
        ("requires-python", old.requires_python if old else None, new.requires_python),
    )
    return tuple(
        ConditionChange(field=field, old=before, new=after)
        for field, before, after in sides
        if before != after
    )


def package_change(old: LockedPackage | None, new: LockedPackage | None) -> PackageChange | None:
    """How one package changed, or None when it is the same in both locks."""
    if old is None and new is None:
        return None
    if old is None or new is None:
        only = new or old
        assert only is not None
        kind: ChangeKind = "added" if new else "removed"
        version = str(only.version)
        return PackageChange(
            name=only.name,
            kind=kind,
            old=None if new else version,
            new=version if new else None,
            # an added package's own conditions are new (a removed one's go with it)
            conditions=package_conditions(None, new) if new else (),
            phase=only.phase,
        )
    sources = source_changes(old, new)
    conditions = package_conditions(old, new)
    if old.version == new.version and not sources and not conditions:
        return None
    if new.version > old.version:
        kind = "upgraded"
    elif new.version < old.version:
        kind = "downgraded"
    else:
        kind = "changed"
    return PackageChange(
        name=new.name,
        kind=kind,
        old=str(old.version),
        new=str(new.version),
        major=_major(old.version) != _major(new.version),
        sources=sources,
        conditions=conditions,
        phase=new.phase,
    )


def _major(version: Version) -> int:
    return version.release[0] if version.release else 0


def source_changes(old: LockedPackage, new: LockedPackage) -> tuple[SourceChange, ...]:
    """Every way the two pins' origins differ (see the module docstring for which are loud)."""
    out: list[SourceChange] = []
    if (old.index or "") != (new.index or ""):
        out.append(SourceChange(field="index", old=old.index or "-", new=new.index or "-"))
    if (old.vcs is None) != (new.vcs is None):
        out.append(SourceChange(field="source", old=_origin(old), new=_origin(new)))
    elif old.vcs is not None and new.vcs is not None:
        if old.vcs.url != new.vcs.url:
            out.append(SourceChange(field="git-url", old=old.vcs.url, new=new.vcs.url))
        if old.vcs.commit_id != new.vcs.commit_id:
            out.append(SourceChange(field="commit", old=old.vcs.commit_id, new=new.vcs.commit_id))
    elif old.artifact is not None and new.artifact is not None:
        out.extend(_file_changes(old, new))
    return tuple(out)


def _file_changes(old: LockedPackage, new: LockedPackage) -> list[SourceChange]:
    a, b = old.artifact, new.artifact
    assert a is not None and b is not None
    if old.version != new.version:
        host_a, host_b = _host(a.url), _host(b.url)
        return [SourceChange(field="host", old=host_a, new=host_b)] if host_a != host_b else []
    if a.filename != b.filename:
        return [SourceChange(field="file", old=a.filename, new=b.filename)]
    out = []
    if a.url != b.url:
        out.append(SourceChange(field="url", old=a.url, new=b.url))
    if (a.sha256 or "") != (b.sha256 or ""):
        out.append(SourceChange(field="hash", old=a.sha256 or "-", new=b.sha256 or "-"))
    return out


def _origin(package: LockedPackage) -> str:
    if package.vcs is not None:
        return f"git {package.vcs.url}@{package.vcs.commit_id}"
    return package.artifact.url if package.artifact else "-"


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def phase_changes(old: Lock | None, new: Lock | None) -> tuple[PhaseChange, ...]:
    """Phases whose member packages, presence or skipped state differ."""
    before, after = _members(old), _members(new)
    skipped_old = {p.name: p.skipped for p in old.phases} if old else {}
    skipped_new = {p.name: p.skipped for p in new.phases} if new else {}
    order = [p.name for p in new.phases] if new else []
    order += [p.name for p in old.phases if p.name not in order] if old else []
    out = []
    for name in order:
        status: TargetStatus = (
            "added"
            if name not in skipped_old
            else "removed"
            if name not in skipped_new
            else "changed"
        )
        added = tuple(sorted(after.get(name, set()) - before.get(name, set())))
        removed = tuple(sorted(before.get(name, set()) - after.get(name, set())))
        skip_a, skip_b = skipped_old.get(name), skipped_new.get(name)
        if status == "changed" and not added and not removed and skip_a == skip_b:
            continue
        out.append(
            PhaseChange(
                name=name,
                status=status,
                added=added,
                removed=removed,
                skipped_old=skip_a,
                skipped_new=skip_b,
            )
        )
    return tuple(out)


def rule_changes(old: Lock, new: Lock) -> tuple[RuleChange, ...]:
    """The rules recorded by one lock and not the other, or by both but not alike, by id."""
    before, after = {r.id: r for r in old.rules}, {r.id: r for r in new.rules}
    out = []
    for rule_id in sorted(before.keys() | after.keys()):
        a, b = before.get(rule_id), after.get(rule_id)
        if b is None:
            assert a is not None
            out.append(RuleChange(id=rule_id, status="removed", source=a.source))
        elif a is None:
            out.append(RuleChange(id=rule_id, status="added", source=b.source))
        elif a != b:
            moved = a.source if a.source != b.source else None
            out.append(RuleChange(id=rule_id, status="changed", source=b.source, old_source=moved))
    return tuple(out)


def _members(lock: Lock | None) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for package in lock.packages if lock else ():
        out.setdefault(package.phase, set()).add(package.name)
    return out


def divergences(old: Mapping[str, Lock], new: Mapping[str, Lock]) -> tuple[Divergence, ...]:
    """Packages of the new locks pinned at more than one version across targets."""
    before, after = _versions(old), _versions(new)
    out = []
    for name in sorted(after):
        versions = after[name]
        if len(set(versions.values())) < 2:
            continue
        previous = before.get(name, {})
        out.append(
            Divergence(
                name=name,
                versions=tuple(sorted(versions.items())),
                introduced=len(set(previous.values())) < 2,
            )
        )
    return tuple(out)


def _versions(locks: Mapping[str, Lock]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for target, lock in locks.items():
        for package in lock.packages:
            out.setdefault(package.name, {})[target] = str(package.version)
    return out
