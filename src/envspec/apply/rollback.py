"""Rollback: make an environment hold exactly a snapshot's set again.

Restoring is one `uv pip sync` of the snapshot's freeze (URL lines carrying their recorded
hashes): packages not in it are removed, versions and sources put back. The files envspec
installed registry lines from are fetched into the artifact store first (and verified), and
each such line is pinned to its stored file (`snapshot.restore_text`). It is tried with
`--offline` first — with `--no-index` too when every registry line has its stored file — so
the store and whatever uv has cached are used without asking any server; only when something
is missing does it go to the network. uv downloads and unpacks every artifact before it
removes or installs anything, so a restore whose artifact cannot be had fails with the
environment untouched (checked, and said, after every failure).

A restore also repairs: broken distributions (see `installed`) are installed afresh
(`--reinstall-package`) or, when the snapshot does not hold them, removed; their `.dist-info`
folders without RECORD, which uv cannot remove, are deleted first. So a rollback after a
killed sync leaves no empty or duplicate `.dist-info` behind, even where the freeze already
matches.

The REQUESTED markers and the variant record come back as the snapshot has them. Every
distribution whose version is to change is reinstalled (`--reinstall-package`): uv takes an
installed ``2.0+cu121`` as meeting the freeze's ``torch==2.0`` and would keep the GPU build.

`rollback` snapshots the environment first, so a rollback can itself be rolled back, and
keeps a journal while it restores, so a rollback that is killed is named by the next command
(and `envspec rollback` finishes it).
"""

from __future__ import annotations

import dataclasses
import re

from packaging.utils import canonicalize_name

from envspec.apply import uv
from envspec.apply.environment import Environment, require_state_dir, require_writable
from envspec.apply.events import Reporter, RollbackFailed, RolledBack, SnapshotTaken
from envspec.apply.installed import discard_dist_info, load_installed
from envspec.apply.journal import (
    Journal,
    environment_lock,
    load_journal,
    remove_journal,
    write_journal,
)
from envspec.apply.requested import restore_requested
from envspec.apply.select import restore_variant_record
from envspec.apply.snapshot import (
    Snapshot,
    changes,
    delete_snapshot,
    load_snapshot,
    restore_files,
    restore_text,
    snapshot_ids,
    snapshots_dir,
    take_snapshot,
    write_provenance,
    write_requirements,
)
from envspec.apply.store import Files, fetch
from envspec.errors import ApplyError

_LINE_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==\s*(\S+)|@)")


class RestoreFailed(ApplyError):
    """uv could not restore a snapshot; `tail` is what it said."""

    def __init__(self, message: str, *, context: str = "", hint: str = "", tail: str = "") -> None:
        super().__init__(message, context=context, hint=hint)
        self.tail = tail


def restore(
    env: Environment, snapshot: Snapshot, options: uv.UvOptions, files: Files, reporter: Reporter
) -> list[str]:
    """Make `env` hold exactly `snapshot`'s distributions, repairing broken ones; what
    changed (see `changes`)."""
    installed = load_installed(env)
    before: dict[str, str] = {d.name: d.version for d in installed}
    wanted, complete = restore_files(snapshot)
    with files.store.reading():
        try:
            stored = fetch(files, wanted, reporter) if wanted else {}
        except ApplyError as exc:
            raise RestoreFailed(
                f"cannot restore snapshot {snapshot.id}: {exc.message}",
                context=str(env.root),
                hint="nothing was changed",
            ) from exc
        broken = [d for d in installed if d.problem]
        discard_dist_info(env, [path for d in broken for path in d.discard])
        # and every version to change: uv takes an installed 2.0+cu121 as meeting `torch==2.0`
        versions = snapshot.versions()
        moved = [n for n, v in before.items() if versions.get(n, v) != v]
        # and every source to change at the same version (an index build where a URL's was,
        # or the other way): uv takes the installed one as meeting the line either way
        sources = snapshot.sources()
        switched = [
            d.name
            for d in installed
            if sources.get(d.name, d.url is not None) != (d.url is not None)
        ]
        reinstall = list(dict.fromkeys([*(d.name for d in broken), *moved, *switched]))
        text = one_line_per_name(restore_text(snapshot, stored), snapshot.versions())
        path = write_requirements(env.state_dir, f"restore-{snapshot.id}.txt", text)
        offline = dataclasses.replace(options, offline=True)
        no_index = complete and bool(wanted)
        ran = uv.pip_sync(env.python, path, offline, no_index=no_index, reinstall=reinstall)
        if not ran.ok and not options.offline:
            ran = uv.pip_sync(env.python, path, options, reinstall=reinstall)
        path.unlink(missing_ok=True)
    after: dict[str, str] = {d.name: d.version for d in load_installed(env)}
    if not ran.ok:
        untouched = "nothing was changed" if after == before else "the environment was changed"
        reason = _first_error(uv.tail(ran))
        raise RestoreFailed(
            f"cannot restore snapshot {snapshot.id}: {reason}",
            context=str(env.root),
            hint=f"{untouched}; uv's output is above",
            tail=uv.tail(ran),
        )
    write_provenance(env.state_dir, dict(snapshot.provenance))
    if snapshot.requested is not None:  # uv marked everything it installed
        restore_requested(env.site_packages, snapshot.requested)
    restore_variant_record(env, snapshot.variant)
    return changes(before, after)


def one_line_per_name(text: str, versions: dict[str, str]) -> str:
    """`text` (a snapshot's freeze) with one line per distribution: the freeze of a broken
    environment lists each copy of a name, the snapshot's `versions` the sound one. Of
    several lines, the one pinning that version is kept, else a URL line (a copy emptied by
    a killed uninstall keeps no `direct_url.json`), else the first."""
    lines = text.splitlines()
    by_name: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        found = _LINE_NAME.match(line)
        if found:
            by_name.setdefault(canonicalize_name(found[1]), []).append(i)
    dropped: set[int] = set()
    for name, indexes in by_name.items():
        if len(indexes) > 1:
            keep = _best_line(lines, indexes, versions.get(name))
            dropped |= set(indexes) - {keep}
    return "".join(line + "\n" for i, line in enumerate(lines) if i not in dropped)


def _best_line(lines: list[str], indexes: list[int], version: str | None) -> int:
    for i in indexes:
        found = _LINE_NAME.match(lines[i])
        if found and found[3] == version:
            return i
    urls = [i for i in indexes if " @ " in lines[i]]
    return urls[0] if urls else indexes[0]


def _first_error(tail: str) -> str:
    for line in tail.splitlines():
        if line.startswith("error:"):
            return line[len("error:") :].strip()
    return tail.splitlines()[-1] if tail else "uv failed"


def choose(env: Environment, snapshot_id: str | None) -> Snapshot:
    """The snapshot a rollback goes to: the one named, else the one before an interrupted
    sync (or the one an interrupted rollback was restoring), else the newest."""
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
    files: Files,
    lock_timeout: float,
    reporter: Reporter,
) -> Snapshot | None:
    """Restore a snapshot under the environment's lock; None when nothing had to change."""
    state = require_state_dir(env)
    with environment_lock(state, lock_timeout):
        target = choose(env, snapshot_id)
        before = take_snapshot(env, f"rollback {target.id}", options)
        sound = not any(d.problem for d in load_installed(env))
        marked = target.requested is None or before.requested == target.requested
        if before.freeze == target.freeze and sound and marked and before.variant == target.variant:
            delete_snapshot(state, before.id)
            remove_journal(state)
            reporter.rolled_back(RolledBack(snapshot=target.id, changes=()))
            return None
        try:
            require_writable(env)
        except ApplyError:
            delete_snapshot(state, before.id)
            raise
        interrupted = load_journal(state)
        journal = Journal(command=f"rollback {target.id}", snapshot=target.id, phases=())
        write_journal(state, journal)
        try:
            changed = restore(env, target, options, files, reporter)
        except RestoreFailed as exc:
            delete_snapshot(state, before.id)  # the state it holds is still the current one
            if interrupted is None:
                remove_journal(state)
            else:  # what was unfinished before still is
                write_journal(state, interrupted)
            failed = RollbackFailed(snapshot=target.id, error=exc.message, tail=exc.tail)
            reporter.rollback_failed(failed)
            raise
        remove_journal(state)
        if interrupted is not None and interrupted.is_rollback:
            # finishing a rollback that was killed: its own snapshot, taken before it began,
            # is what rolling this one back must restore, not the half-restored `before`
            delete_snapshot(state, before.id)
        else:
            taken = SnapshotTaken(
                id=before.id, packages=len(before.packages), command=before.command
            )
            reporter.snapshot_taken(taken)
    reporter.rolled_back(RolledBack(snapshot=target.id, changes=tuple(changed)))
    return target
