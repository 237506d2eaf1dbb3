"""Where each target's lock stands against the spec: fresh, stale or missing.

Reads the locks and compares their recorded inputs with the spec's (`envspec.inputs`);
no resolver and no network, so an unchanged relock or `lock --check` costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envspec.inputs import lock_inputs
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


def lock_status(spec: Spec, project: Path, targets: Sequence[str]) -> list[TargetStatus]:
    """Compare each target's lock on disk with the spec."""
    out = []
    for name in targets:
        path = lock_path(project, name)
        target = make_target(name, spec.python, spec.settings_for(name))
        if not path.exists():
            out.append(TargetStatus(target=name, path=path, state="missing", previous=None))
            continue
        previous = load_lock(path)
        fresh = previous.inputs == lock_inputs(spec, target)
        state: State = "fresh" if fresh else "stale"
        out.append(TargetStatus(target=name, path=path, state=state, previous=previous))
    return out
