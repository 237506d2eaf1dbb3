"""Where each target's lock stands against the spec: fresh, stale or missing.

Reads the locks and compares their recorded inputs with the spec's, and the rules about
their packages with the rules in force (`envspec.inputs`); no resolver and no network, so an
unchanged relock or `lock --check` costs next to nothing. A lock made stale by the rules says
which (`reason`: ``rule torchao-torch changed``); so does a variant whose needs changed.

A target with accelerator variants has one lock per variant (`Spec.variants_for`), each
compared with the spec that variant resolves (`Spec.for_variant`); a target without has one
plain lock, as a spec without variants has everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envspec.errors import UsageError, did_you_mean
from envspec.inputs import applied_rules, lock_inputs, rule_changes
from envspec.lockfile import load_lock, lock_path
from envspec.model import Lock, Needs, Spec, Variant
from envspec.targets import make_target

State = Literal["fresh", "stale", "missing"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetStatus:
    """Where one target's lock stands against the spec."""

    target: str
    path: Path
    state: State
    previous: Lock | None
    reason: str = ""  # why a stale lock is stale, when the rules made it so
    variant: str | None = None

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
    spec: Spec, project: Path, targets: Sequence[str], variant: str | None = None
) -> list[TargetStatus]:
    """Compare each target's lock (each of its variants' locks) on disk with the spec."""
    return [_status(spec, project, name, v) for name, v in lock_units(spec, targets, variant)]


def _status(spec: Spec, project: Path, name: str, variant: Variant | None) -> TargetStatus:
    label = variant.name if variant else None
    path = lock_path(project, name, label)
    target = make_target(name, spec.python, spec.settings_for(name))
    if not path.exists():
        return TargetStatus(target=name, path=path, state="missing", previous=None, variant=label)
    previous = load_lock(path)
    changes = rule_changes(previous.rules, applied_rules(spec.rules, target, previous.packages))
    needs = variant.needs_for(name) if variant else Needs()
    if previous.variant != label:
        changes.insert(0, f"recorded for variant {previous.variant}" if previous.variant else (
            "recorded without a variant"))  # fmt: skip
    elif previous.needs != needs:
        changes.insert(0, "variant needs changed")
    fresh = previous.inputs == lock_inputs(spec.for_variant(variant), target) and not changes
    state: State = "fresh" if fresh else "stale"
    return TargetStatus(
        target=name,
        path=path,
        state=state,
        previous=previous,
        reason=", ".join(changes),
        variant=label,
    )
