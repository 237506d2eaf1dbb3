"""`envspec sync`: bring an environment to its lock, phase by phase, as one transaction.

Order (DESIGN.md §7): plan (nothing to do → return before any process starts, unless an
interrupted sync's journal is left to clear); take the environment's lock and plan again
(another sync may have done the work while we waited); fetch every file of every phase into
the artifact store and verify it (`store.fetch`: a network or hash failure raises here, with
nothing changed and no snapshot taken); check that the environment's folders take new files
(`require_writable`); snapshot; write the journal; repair (delete what uv
cannot handle of broken distributions, uninstall the broken ones the lock does not name);
with `exact` (the default), remove what the lock does not name (first, so a package that
moved to another distribution is not deleted after it was installed); install each phase with
`uv pip install --no-deps` from the stored files (`plan.install_calls`: registry installs for
index packages, every artifact under `--require-hashes`, git sources apart since they have no
hash, broken ones with `--reinstall-package`), keep REQUESTED on the spec's own requirements
only (`requested`), record provenance and mark the phase done in the journal. A required
phase that fails restores the snapshot and raises; so does any other error after the first
change (a state file that cannot be written); an optional one is reported and the sync goes
on. A journal that cannot be written right after the snapshot takes that snapshot away
again: nothing changed, and retries would push out the real ones. The journal is removed
only when the sync ends one way or the other, so a kill leaves it behind; the sync that
finishes an interrupted one keeps its snapshot (`_before`). The store is held shared from
the fetch to the last install, so `envspec cache prune` cannot take a file away in between.
From a bundle (`files.bundle`), what a bundle cannot carry is refused right after planning
(`bundled`), and URL packages are installed from their stored files too, so uv (run
offline) fetches nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from envspec import proc
from envspec.apply import uv
from envspec.apply.bundled import refuse_unbundled
from envspec.apply.environment import Environment, require_state_dir, require_writable
from envspec.apply.events import (
    PhaseFailed,
    PhaseFinished,
    PhaseStarted,
    Planned,
    Removed,
    Reporter,
    RollbackFailed,
    RolledBack,
    SnapshotTaken,
)
from envspec.apply.installed import discard_dist_info, load_installed
from envspec.apply.journal import (
    Journal,
    environment_lock,
    load_journal,
    remove_journal,
    write_journal,
)
from envspec.apply.plan import (
    InstallCall,
    PhasePlan,
    Plan,
    install_calls,
    make_plan,
)
from envspec.apply.requested import write_requested
from envspec.apply.rollback import RestoreFailed, restore
from envspec.apply.snapshot import (
    Snapshot,
    delete_snapshot,
    load_provenance,
    load_snapshot,
    provenance_of,
    take_snapshot,
    write_provenance,
    write_requirements,
)
from envspec.apply.store import Files, Wanted, fetch, wanted_of
from envspec.errors import ApplyError, EnvspecError, Interrupted
from envspec.model import Lock


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncSettings:
    """What the user asked of this sync."""

    phase: str | None = None
    exact: bool = True
    dry_run: bool = False
    no_build_isolation: Collection[str] = ()
    lock_timeout: float = 60.0
    command: str = "sync"


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncOutcome:
    plan: Plan
    snapshot: int | None = None
    failed_optional: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.snapshot is not None


def plan_for(env: Environment, lock: Lock, settings: SyncSettings) -> Plan:
    return make_plan(
        lock,
        load_installed(env),
        phase=settings.phase,
        exact=settings.exact,
        keep=env.keep,
        no_build_isolation=settings.no_build_isolation,
    )


def sync(
    env: Environment,
    lock: Lock,
    settings: SyncSettings,
    options: uv.UvOptions,
    *,
    files: Files,
    reporter: Reporter,
    after: Callable[[SyncOutcome], None] | None = None,
) -> SyncOutcome:
    """Apply `lock` to `env`; see the module docstring. `after` (the checks) runs once the
    lock is applied, still under the environment's lock: a rollback or sync waiting for it
    would otherwise change the environment while the checks import from it."""
    plan = plan_for(env, lock, settings)
    reporter.planned(Planned(plan=plan, dry_run=settings.dry_run))
    if files.bundle is not None:
        refuse_unbundled(plan, files.bundle)
    # an interrupted sync whose work turns out done leaves a journal to clear
    finishing = plan.empty and settings.phase is None and load_journal(env.state_dir) is not None
    if settings.dry_run or (plan.empty and not finishing):
        return SyncOutcome(plan=plan)
    state = require_state_dir(env)
    with environment_lock(state, settings.lock_timeout):
        was_empty, plan = plan.empty, plan_for(env, lock, settings)
        if plan.empty:
            if settings.phase is None:
                remove_journal(state)
            if not was_empty:
                reporter.planned(Planned(plan=plan, dry_run=False))
            return SyncOutcome(plan=plan)
        with files.store.reading():
            stored = fetch(files, _wanted(plan), reporter)
            require_writable(env)
            snapshot, taken = _before(env, settings.command, options, reporter)
            journal = Journal(
                command=settings.command,
                snapshot=snapshot.id,
                phases=tuple(p.phase.name for p in plan.phases),
            )
            try:
                write_journal(state, journal)
            except EnvspecError:  # nothing changed: a snapshot of it would push out real ones
                if taken:
                    delete_snapshot(state, snapshot.id)
                raise
            run = _Transaction(
                env=env,
                snapshot=snapshot,
                options=options,
                files=files,
                stored=stored,
                reporter=reporter,
            )
            failed = run.apply(plan, journal)
            remove_journal(state)
        outcome = SyncOutcome(plan=plan, snapshot=snapshot.id, failed_optional=failed)
        if after is not None:
            after(outcome)
    return outcome


def _before(
    env: Environment, command: str, options: uv.UvOptions, reporter: Reporter
) -> tuple[Snapshot, bool]:
    """The snapshot this sync restores on failure and a rollback goes back to, and whether it
    was taken now. A sync that finishes an interrupted one keeps that one's snapshot, taken
    before anything changed: a new one would hold the half-changed environment, and
    `envspec rollback` would then restore the half-changed mix."""
    journal = load_journal(env.state_dir)
    if journal is not None and not journal.is_rollback and journal.snapshot is not None:
        with contextlib.suppress(EnvspecError):  # gone or damaged: take one now
            return load_snapshot(env.state_dir, journal.snapshot), False
    snapshot = take_snapshot(env, command, options)
    taken = SnapshotTaken(id=snapshot.id, packages=len(snapshot.packages), command=command)
    reporter.snapshot_taken(taken)
    return snapshot, True


def _wanted(plan: Plan) -> list[Wanted]:
    """The files the plan installs (git sources are fetched by uv)."""
    found = (wanted_of(step.package) for phase in plan.phases for step in phase.steps)
    return [w for w in found if w is not None]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Transaction:
    """One sync after its snapshot: installs phases, restores the snapshot on failure."""

    env: Environment
    snapshot: Snapshot
    options: uv.UvOptions
    files: Files
    stored: Mapping[str, Path]  # sha256 → the verified file in the store
    reporter: Reporter

    def apply(self, plan: Plan, journal: Journal) -> tuple[str, ...]:
        """Repairs, removals, then every phase; the names of optional phases that failed. A
        required step that fails restores the snapshot (`fail`); so does any other error on
        the way (a state file or uv's requirements file that cannot be written), which left
        the environment half-changed."""
        try:
            return self._apply(plan, journal)
        except _Failed:
            raise
        except Interrupted:
            raise  # its journal and the rollback offer stay
        except EnvspecError as exc:
            self.abort(exc)

    def _apply(self, plan: Plan, journal: Journal) -> tuple[str, ...]:
        if plan.discard or plan.repair:
            self.repair(plan)
        if plan.remove:
            self.remove(plan)
        failed = []
        for phase_plan in plan.phases:
            if not phase_plan.steps:
                continue
            journal = journal.begin(phase_plan.phase.name)
            write_journal(self.env.state_dir, journal)
            if not self.install(phase_plan):
                failed.append(phase_plan.phase.name)
            journal = journal.finish(phase_plan.phase.name)
            write_journal(self.env.state_dir, journal)
        return tuple(failed)

    def repair(self, plan: Plan) -> None:
        """Delete what uv cannot remove, then uninstall what is left of broken unlocked ones."""
        discard_dist_info(self.env, plan.discard)
        broken = {d.name for d in plan.repair}
        left = [d.name for d in load_installed(self.env) if d.name in broken]
        if left:
            ran = uv.pip_uninstall(self.env.python, left, self.options)
            if not ran.ok:
                self.fail("repair", ran)

    def remove(self, plan: Plan) -> None:
        names = [d.name for d in plan.remove]
        ran = uv.pip_uninstall(self.env.python, names, self.options)
        if not ran.ok:
            self.fail("remove", ran)
        self.reporter.removed(Removed(packages=plan.remove, seconds=round(ran.seconds, 3)))
        provenance = load_provenance(self.env.state_dir)
        kept = {k: v for k, v in provenance.items() if k not in names}
        write_provenance(self.env.state_dir, kept)

    def install(self, phase_plan: PhasePlan) -> bool:
        """Install one phase; False when an optional phase failed (a required one raises)."""
        env, name, steps = self.env, phase_plan.phase.name, phase_plan.steps
        packages = tuple(f"{s.package.name}=={s.package.version}" for s in steps)
        self.reporter.phase_started(PhaseStarted(phase=name, packages=packages))
        start = time.perf_counter()
        for call in install_calls(steps, self.stored, local=self.files.bundle is not None):
            ran = self.run_call(call, phase_plan)
            if not ran.ok:
                break
        write_requested(env.site_packages, [s.package for s in steps])
        if not ran.ok:
            if not phase_plan.phase.optional:
                self.fail(name, ran)
            failed = PhaseFailed(phase=name, optional=True, error=uv.tail(ran))
            self.reporter.phase_failed(failed)
            return False
        provenance = load_provenance(env.state_dir)
        provenance.update({s.package.name: provenance_of(s.package) for s in steps})
        write_provenance(env.state_dir, provenance)
        seconds = round(time.perf_counter() - start, 3)
        finished = PhaseFinished(phase=name, installed=len(steps), seconds=seconds)
        self.reporter.phase_finished(finished)
        return True

    def run_call(self, call: InstallCall, phase_plan: PhasePlan) -> proc.Finished:
        name = "pylock.toml" if call.pylock else "requirements.txt"  # uv knows PEP 751 by name
        path = write_requirements(self.env.state_dir, name, call.text)
        ran = uv.pip_install(
            self.env.python,
            path,
            self.options,
            require_hashes=call.require_hashes,
            no_build_isolation=phase_plan.no_build_isolation,
            reinstall=call.reinstall,
            no_cache=call.fresh,
        )
        path.unlink(missing_ok=True)
        return ran

    def fail(self, phase: str, ran: proc.Finished) -> NoReturn:
        """Restore the pre-sync snapshot after a required step failed, then raise."""
        self.reporter.phase_failed(PhaseFailed(phase=phase, optional=False, error=uv.tail(ran)))
        what = {"remove": "removing packages", "repair": "removing broken distributions"}.get(
            phase, f"required phase '{phase}'"
        )
        self._restore(f"{what} failed", str(self.env.root), "uv's error is shown above")

    def abort(self, exc: EnvspecError) -> NoReturn:
        """Restore the pre-sync snapshot after `exc` stopped the sync midway, then raise."""
        self._restore(exc.message, exc.context, "fix the cause, then sync again", cause=exc)

    def _restore(
        self, what: str, context: str, hint: str, *, cause: EnvspecError | None = None
    ) -> NoReturn:
        """Restore the snapshot, then raise `what` happened and how the restore went. Both
        errors are `_Failed`, which `apply` raises as they are: one restore, one message."""
        snapshot = self.snapshot
        try:
            changed = restore(self.env, snapshot, self.options, self.files, self.reporter)
        except EnvspecError as exc:  # RestoreFailed, or a state file it could not write
            tail = exc.tail if isinstance(exc, RestoreFailed) else ""
            failed = RollbackFailed(snapshot=snapshot.id, error=exc.message, tail=tail)
            self.reporter.rollback_failed(failed)
            raise _Failed(
                f"{what}, and restoring snapshot {snapshot.id} failed too",
                context=context,
                hint=f"fix the cause, then run 'envspec rollback {snapshot.id}'",
            ) from exc
        with contextlib.suppress(EnvspecError):  # the state folder may be the cause
            remove_journal(self.env.state_dir)
        self.reporter.rolled_back(RolledBack(snapshot=snapshot.id, changes=tuple(changed)))
        raise _Failed(
            f"{what}; the environment was restored to snapshot {snapshot.id}",
            context=context,
            hint=hint,
        ) from cause


class _Failed(ApplyError):
    """The sync failed and the snapshot was restored (or the restore failed too): raised
    as it is."""
