"""Where each target's lock stands against the spec: fresh, stale or missing.

Reads the locks and compares their recorded inputs with the spec's, and the rules about
their packages with the rules in force (`envspec.inputs`); no resolver and no network, so an
unchanged relock or `lock --check` costs next to nothing. A lock made stale by the rules says
which (`reason`: ``rule torchao-torch changed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envspec.inputs import applied_rules, lock_inputs, rule_changes
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
    reason: str = ""  # why a stale lock is stale, when the rules made it so


def lock_status(
    spec: Spec, project: Path, targets: Sequence[str], *, memo: Path | None = None
) -> list[TargetStatus]:
    """Compare each target's lock on disk with the spec; `memo`: the checked-lock memo's
    folder (`envspec.lockfile.memo`), so an unchanged lock is not read in full again."""
    out = []
    for name in targets:
        path = lock_path(project, name)
        target = make_target(name, spec.python, spec.settings_for(name))
        if not path.exists():
            out.append(TargetStatus(target=name, path=path, state="missing", previous=None))
            continue
        previous = load_lock(path, memo=memo)
        changes = rule_changes(
            previous.rules, applied_rules(spec.rules, target, previous.packages)
        )
        fresh = previous.inputs == lock_inputs(spec, target) and not changes
        state: State = "fresh" if fresh else "stale"
        out.append(
            TargetStatus(
                target=name, path=path, state=state, previous=previous, reason=", ".join(changes)
            )
        )
    return out
