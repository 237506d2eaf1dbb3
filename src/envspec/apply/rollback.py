"""Rollback: make an environment hold exactly a snapshot's set again.

Restoring is one `uv pip sync` of the snapshot's freeze (URL lines carrying their recorded
hashes): packages not in it are removed, versions and sources put back. It is tried with
`--offline` first, so whatever uv has cached is used without asking any server; only when
something is missing from the cache does it go to the network. uv downloads and unpacks every
artifact before it removes or installs anything, so a restore whose artifact cannot be had
fails with the environment untouched (checked, and said, after every failure).

`rollback` snapshots the environment first, so a rollback can itself be rolled back.
"""

from __future__ import annotations

import dataclasses

from envspec.apply import uv
from envspec.apply.environment import Environment, load_installed, require_state_dir
from envspec.apply.events import Emit
from envspec.apply.journal import environment_lock, load_journal, remove_journal
from envspec.apply.snapshot import (
    Snapshot,
    changes,
    delete_snapshot,
    load_snapshot,
    restore_text,
    snapshot_ids,
    snapshots_dir,
    take_snapshot,
    write_provenance,
    write_requirements,
)
from envspec.errors import ApplyError


class RestoreFailed(ApplyError):
    """uv could not restore a snapshot; `tail` is what it said."""

    def __init__(self, message: str, *, context: str = "", hint: str = "", tail: str = "") -> None:
        super().__init__(message, context=context, hint=hint)
        self.tail = tail


def restore(env: Environment, snapshot: Snapshot, options: uv.UvOptions) -> list[str]:
    """Make `env` hold exactly `snapshot`'s distributions; what changed (see `changes`)."""
    before: dict[str, str] = {d.name: d.version for d in load_installed(env)}
    path = write_requirements(env.state_dir, f"restore-{snapshot.id}.txt", restore_text(snapshot))
    ran = uv.pip_sync(env.python, path, dataclasses.replace(options, offline=True))
    if not ran.ok and not options.offline:
        ran = uv.pip_sync(env.python, path, options)
    path.unlink(missing_ok=True)
    after: dict[str, str] = {d.name: d.version for d in load_installed(env)}
    if not ran.ok:
        untouched = "nothing was changed" if after == before else "the environment was changed"
        reason = _first_error(ran.tail())
        raise RestoreFailed(
            f"cannot restore snapshot {snapshot.id}: {reason}",
            context=str(env.root),
            hint=f"{untouched}; uv's output is above",
            tail=ran.tail(),
        )
    write_provenance(env.state_dir, dict(snapshot.provenance))
    return changes(before, after)


def _first_error(tail: str) -> str:
    for line in tail.splitlines():
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    return tail.splitlines()[-1] if tail else "uv failed"


def choose(env: Environment, snapshot_id: str | None) -> Snapshot:
    """The snapshot a rollback goes to: the one named, else the one before an interrupted
    sync, else the newest."""
    state = env.state_dir
    if snapshot_id is not None:
        return load_snapshot(state, snapshot_id)
    journal = load_journal(state)
    if journal is not None and journal.snapshot is not None:
        return load_snapshot(state, journal.snapshot)
    ids = snapshot_ids(state)
    if not ids:
        raise ApplyError(
            "no snapshot to roll back to",
            context=str(snapshots_dir(state)),
            hint="envspec takes one before each change it makes; none was made here yet",
        )
    return load_snapshot(state, ids[-1])


def rollback(
    env: Environment,
    snapshot_id: str | None,
    *,
    options: uv.UvOptions,
    lock_timeout: float,
    emit: Emit,
) -> Snapshot | None:
    """Restore a snapshot under the environment's lock; None when nothing had to change."""
    state = require_state_dir(env)
    with environment_lock(state, lock_timeout):
        target = choose(env, snapshot_id)
        before = take_snapshot(env, f"rollback {target.id}", options)
        if before.freeze == target.freeze:
            delete_snapshot(state, before.id)
            remove_journal(state)
            emit("rollback", snapshot=target.id, ok=True, changes=[])
            return None
        try:
            changed = restore(env, target, options)
        except RestoreFailed as exc:
            delete_snapshot(state, before.id)  # the state it holds is still the current one
            emit("rollback", snapshot=target.id, ok=False, error=exc.message, tail=exc.tail)
            raise
        remove_journal(state)
        emit("snapshot", id=before.id, packages=len(before.packages), command=before.command)
    emit("rollback", snapshot=target.id, ok=True, changes=changed)
    return target
