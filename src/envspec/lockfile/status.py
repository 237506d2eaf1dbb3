"""Where each target's lock stands against the spec: fresh, stale or missing.

Reads the locks and compares their recorded inputs with the spec's, and the rules about
their packages with the rules in force (`envspec.inputs`); no resolver and no network, so an
unchanged relock or `lock --check` costs next to nothing. A stale lock says what made it so
(`reason`: ``phase app: transformers>=4.40 → transformers<5,>=4.40``, ``rule torchao-torch
changed``, ``variant needs changed``).

A target with accelerator variants has one lock per variant (`Spec.variants_for`), each
compared with the spec that variant resolves (`Spec.for_variant`) and with the needs it
records; a target without has one plain lock, as a spec without variants has everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envspec.errors import UsageError, did_you_mean
from envspec.inputs import (
    applied_rules,
    input_changes,
    lock_inputs,
    relevant_inputs,
    rule_changes,
)
from envspec.lockfile import legacy_lock_path, load_lock, lock_path
from envspec.lockfile.conditions import cut
from envspec.model import Lock, Needs, Spec, Target, Variant
from envspec.targets import make_target

State = Literal["fresh", "stale", "missing"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetStatus:
    """Where one target's lock (one of its variants' locks) stands against the spec."""

    target: str
    path: Path
    state: State
    previous: Lock | None
    reason: str = ""  # what made a stale lock stale: the spec's changes, then the rules'
    variant: str | None = None
    legacy: Path | None = None  # the lock's file under its old name, removed once relocked

    @property
    def label(self) -> str:
        """The target, and its variant when it has one (as `Lock.label`)."""
        return f"{self.target}.{self.variant}" if self.variant else self.target


def lock_units(
    spec: Spec, targets: Sequence[str], variant: str | None = None
) -> list[tuple[str, Variant | None]]:
    """Every (target, variant) the spec locks among `targets`: a target's variants in order of
    preference, or the target alone when it has none; with `variant`, only that variant's."""
    units: list[tuple[str, Variant | None]] = []
    for name in targets:
        found = spec.variants_for(name)
        if variant is not None:
            units += [(name, v) for v in found if v.name == variant]
        else:
            units += [(name, v) for v in found] or [(name, None)]
    return units


def check_variant(spec: Spec, name: str | None) -> str | None:
    """`--variant NAME`, checked against the spec's variants."""
    names = [v.name for v in spec.variants]
    if name is not None and name not in names:
        hint = did_you_mean(name, names) or (
            "spec variants: " + ", ".join(names) if names else "the spec has no [variants]"
        )
        raise UsageError(f"variant '{name}' is not in the spec", context="--variant", hint=hint)
    return name


def choose_units(
    spec: Spec, targets: Sequence[str], variant: str | None
) -> list[tuple[str, str | None]]:
    """The (target, variant name) locks a command works on, `--variant` checked; a target
    without a lock of the variant asked for is left out (none at all: an error)."""
    units = lock_units(spec, targets, check_variant(spec, variant))
    if not units:
        hint = f"'{variant}' is locked for: " + ", ".join(spec.variant(str(variant)).targets)
        raise UsageError(
            f"variant '{variant}' is not locked for {', '.join(targets)}",
            context="--variant",
            hint=hint,
        )
    return [(target, v.name if v else None) for target, v in units]


def lock_status(
    spec: Spec,
    project: Path,
    targets: Sequence[str],
    variant: str | None = None,
    *,
    memo: Path | None = None,
) -> list[TargetStatus]:
    """Compare each target's lock (each of its variants' locks) on disk with the spec; `memo`:
    the checked-lock memo's folder (`envspec.lockfile.memo`), so an unchanged lock is not read
    in full again."""
    out = []
    for name, unit in lock_units(spec, targets, variant):
        label = unit.name if unit else None
        path = lock_path(project, name, label)
        if not path.exists():
            out.append(_legacy(project, name, path, label, memo) or TargetStatus(
                target=name, path=path, state="missing", previous=None, variant=label
            ))  # fmt: skip
            continue
        out.append(status_of(spec, name, path, load_lock(path, memo=memo), label))
    return out


def _legacy(
    project: Path, target: str, path: Path, variant: str | None, memo: Path | None
) -> TargetStatus | None:
    """A variant's lock still under its old name (`legacy_lock_path`): stale, its pins kept."""
    legacy = legacy_lock_path(project, target, variant) if variant else None
    if legacy is None or not legacy.exists():
        return None
    reason = f"named {legacy.name}, which PEP 751 does not allow (a '.' in its name)"
    return TargetStatus(
        target=target,
        path=path,
        state="stale",
        previous=load_lock(legacy, memo=memo),
        reason=f"{reason}: relocking writes {path.name}",
        variant=variant,
        legacy=legacy,
    )


def status_of(
    spec: Spec, name: str, path: Path, previous: Lock, variant: str | None = None
) -> TargetStatus:
    """Where `previous`, target `name`'s lock (of `variant`) read from `path`, stands against
    the spec: a target or variant the spec no longer has is stale, and says so."""
    reason = ""
    if name not in spec.targets:
        reason = f"{name} is not in [environment] targets"
    elif variant is not None and variant not in {v.name for v in spec.variants_for(name)}:
        reason = f"variant {variant} of {name} is not in the spec"
    elif previous.target != name:  # a lock copied or renamed from another target's
        reason = f"recorded for target {previous.target}"
    if reason:
        return TargetStatus(
            target=name, path=path, state="stale", previous=previous, reason=reason,
            variant=variant,
        )  # fmt: skip
    unit = spec.variant(variant) if variant is not None else None
    target = make_target(name, spec.python, spec.settings_for(name))
    inputs = relevant_inputs(lock_inputs(spec.for_variant(unit), target), name)
    recorded = relevant_inputs(previous.inputs, name)
    changes = _variant_changes(previous, unit, name) + _edits(previous, target)
    if recorded != inputs:  # the spec changed: that says why (its phases among it)
        changes += input_changes(recorded, inputs)
    else:  # the spec is as recorded: the phases table must be what it gave
        changes += _phase_edits(previous, spec.for_variant(unit), name)
    changes += rule_changes(previous.rules, applied_rules(spec.rules, target, previous.packages))
    state: State = "stale" if changes else "fresh"
    return TargetStatus(
        target=name,
        path=path,
        state=state,
        previous=previous,
        reason=", ".join(changes),
        variant=variant,
    )


def _edits(previous: Lock, target: Target) -> list[str]:
    """What the lock says that `envspec lock` would not have written for `target` (edited by
    hand or by another tool): which environments and Python it is for, and any package's own
    `marker` or `requires-python` (envspec writes none: a lock is for one target)."""
    out = []
    if previous.environments != (target.environment_marker(),):
        shown = ", ".join(f'"{cut(text)}"' for text in previous.environments) or "none"
        out.append(f"environments {shown} are not {target.name}'s")
    if previous.requires_python != target.lock_requires_python():
        shown = f"'{cut(previous.requires_python)}'" if previous.requires_python else "none"
        out.append(f"requires-python {shown} is not the spec's ('{target.lock_requires_python()}')")
    for package in previous.packages:
        for key, text in (("marker", package.marker), ("requires-python", package.requires_python)):
            if text is not None:
                out.append(
                    f'{package.name} has a {key} ("{cut(text)}"), which envspec does not write'
                )
    return out


def _phase_edits(previous: Lock, spec: Spec, target: str) -> list[str]:
    """How the phases the lock records (`[tool.envspec] phases`) differ from the spec's for
    `target`: their order and names, each one's index and `optional`, and a phase skipped
    that the spec does not make optional. The spec's phases are in the lock's inputs, but
    not this table: edited, sync installed phases twice, out of order, or not at all."""
    wanted = [p for p in spec.phases if p.applies_to(target)]
    names = [p.name for p in previous.phases]
    if names != [p.name for p in wanted]:
        return [f"phases recorded as {', '.join(names) or 'none'}, not the spec's"]
    out = []
    for locked, phase in zip(previous.phases, wanted, strict=True):
        if locked.index != phase.index_for(target):
            out.append(f"phase {locked.name} recorded with index {locked.index or 'none'}")
        if locked.optional != phase.optional:
            out.append(
                f"phase {locked.name} recorded as {'' if locked.optional else 'not '}optional"
            )
        elif locked.skipped is not None and not phase.optional:
            out.append(f"phase {locked.name} recorded as skipped, but it is required")
    return out


def _variant_changes(previous: Lock, variant: Variant | None, target: str) -> list[str]:
    """How the lock's recorded variant and needs differ from what the spec says now."""
    name = variant.name if variant else None
    if previous.variant != name:
        if previous.variant:
            return [f"recorded for variant {previous.variant}"]
        return ["recorded without a variant"]
    if previous.needs != (variant.needs_for(target) if variant else Needs()):
        return ["variant needs changed"]
    return []
