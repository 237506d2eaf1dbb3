"""Where each target's lock stands against the spec: fresh, stale or missing.

Reads the locks and compares their recorded inputs with the spec's, and the rules about
their packages with the rules in force (`envspec.inputs`); no resolver and no network, so an
unchanged relock or `lock --check` costs next to nothing. A stale lock says what made it so
(`reason`: ``phase app: transformers>=4.40 → transformers<5,>=4.40``, ``rule torchao-torch
changed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envspec.inputs import (
    applied_rules,
    input_changes,
    lock_inputs,
    relevant_inputs,
    rule_changes,
)
from envspec.lockfile import load_lock, lock_path
from envspec.model import Lock, Spec
from envspec.targets import make_target

State = Literal["fresh", "stale", "missing"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetStatus:
    """Where one target's lock stands against the spec."""

    target: str
    path: Path
    state: State
    previous: Lock | None
    reason: str = ""  # what made a stale lock stale: the spec's changes, then the rules'


def lock_status(
    spec: Spec, project: Path, targets: Sequence[str], *, memo: Path | None = None
) -> list[TargetStatus]:
    """Compare each target's lock on disk with the spec; `memo`: the checked-lock memo's
    folder (`envspec.lockfile.memo`), so an unchanged lock is not read in full again."""
    out = []
    for name in targets:
        path = lock_path(project, name)
        if not path.exists():
            out.append(TargetStatus(target=name, path=path, state="missing", previous=None))
            continue
        out.append(status_of(spec, name, path, load_lock(path, memo=memo)))
    return out


def status_of(spec: Spec, name: str, path: Path, previous: Lock) -> TargetStatus:
    """Where `previous`, target `name`'s lock read from `path`, stands against the spec: a
    target the spec no longer has is stale, and says so."""
    if name not in spec.targets:
        reason = f"{name} is not in [environment] targets"
        return TargetStatus(target=name, path=path, state="stale", previous=previous, reason=reason)
    target = make_target(name, spec.python, spec.settings_for(name))
    inputs = relevant_inputs(lock_inputs(spec, target), name)
    recorded = relevant_inputs(previous.inputs, name)
    changes = input_changes(recorded, inputs) if recorded != inputs else []
    changes += rule_changes(previous.rules, applied_rules(spec.rules, target, previous.packages))
    state: State = "stale" if changes else "fresh"
    return TargetStatus(
        target=name, path=path, state=state, previous=previous, reason=", ".join(changes)
    )
