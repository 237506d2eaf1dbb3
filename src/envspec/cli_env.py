"""The commands that touch an environment: `sync`, `check`, `rollback`, `history`.

Arguments and exit codes only; the work is in `envspec.apply`, the output in `envspec.render`
(its `CliReporter` receives apply's events and writes each to `--json`, or to stderr as human
lines). Kept apart from `cli.py` so that module stays about the lock and review commands;
`cli.build_parser` calls `add_parsers` and `cli.COMMANDS` includes `COMMANDS`. Every command
takes the CLI's snapshot of the environment variables and passes it down: nothing in apply
reads `os.environ`. The JSON events are listed in README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.apply import uv
from envspec.apply.check import run_checks
from envspec.apply.environment import (
    STATE_DIR,
    Environment,
    Location,
    ensure_environment,
    locate,
    open_environment,
    planned_environment,
    refuse_system,
    remove_environment,
)
from envspec.apply.installed import load_installed
from envspec.apply.journal import (
    creation_lock,
    environment_lock,
    interrupted,
    interrupted_message,
    load_journal,
    stopped_message,
)
from envspec.apply.rollback import rollback
from envspec.apply.select import (
    Choice,
    for_environment,
    load_installed_variant,
    require_lock,
    select_lock,
    select_variant,
    target_of,
    write_installed_variant,
)
from envspec.apply.snapshot import changes, load_snapshot, snapshot_ids
from envspec.apply.store import Downloader, Files, store_at
from envspec.apply.sync import SyncOutcome, SyncSettings, sync
from envspec.compat import load_builtin_rules
from envspec.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EnvspecError,
    Interrupted,
    StaleLockError,
    UsageError,
)
from envspec.interrupt import Terminated
from envspec.lock_view import lock_fields
from envspec.model import Checks, Index, Lock, Spec
from envspec.output import Out, plural, rel, seconds
from envspec.render import CliReporter, Done, history_line
from envspec.secret import SecretURL
from envspec.spec import load_spec
from envspec.targets import host_target

if TYPE_CHECKING:
    from envspec.lockfile.status import TargetStatus

Environ = Mapping[str, str]
_SYSTEM = "allow an interpreter that is not a virtual environment (uv's --system)"


def add_parsers(sub: Any, common: Callable[[str], argparse.ArgumentParser]) -> None:
    """Add the environment commands to the `envspec` subparsers; `common(name)` is the
    parent parser of the global options for command `name`."""
    env = argparse.ArgumentParser(add_help=False)
    env.add_argument(
        "--python",
        type=Path,
        default=None,
        metavar="PATH",
        help="target interpreter or environment folder (default: $VIRTUAL_ENV, else the "
        "project's .venv)",
    )
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument(
        "--lock-timeout",
        type=seconds(allow_zero=True),
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another envspec command on the environment (default: 60)",
    )
    bundles = argparse.ArgumentParser(add_help=False)
    bundles.add_argument(
        "--bundle",
        default=None,
        metavar="PATH|URL",
        help="take every file from this bundle ('envspec bundle') and contact no other host",
    )
    probes = argparse.ArgumentParser(add_help=False)
    probes.add_argument(
        "--import-timeout",
        type=seconds(allow_zero=False),
        default=120.0,
        metavar="SECONDS",
        help="how long each [checks] import may take (default: 120)",
    )
    p = sub.add_parser(
        "sync",
        parents=[common("sync"), env, waits, probes, bundles],
        help="install the lock into the environment, phase by phase",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    stale = p.add_mutually_exclusive_group()
    stale.add_argument(
        "--locked", action="store_true", help="refuse a stale lock (exit 3) instead of relocking"
    )
    stale.add_argument(
        "--frozen", action="store_true", help="install the lock as it is, without checking it"
    )
    extra = p.add_mutually_exclusive_group()
    extra.add_argument(
        "--exact", action="store_true", help="remove what the lock does not name (the default)"
    )
    extra.add_argument("--inexact", action="store_true", help="keep what the lock does not name")
    p.add_argument(
        "--phase", default=None, metavar="NAME", help="sync up to this phase (default: all)"
    )
    p.add_argument("--no-checks", action="store_true", help="skip the checks afterwards")
    p.add_argument("--system", action="store_true", help=_SYSTEM)
    p.add_argument(
        "--variant", default=None, metavar="NAME",
        help="install this accelerator variant's lock, whatever the machine has",
    )  # fmt: skip
    sub.add_parser(
        "check",
        parents=[common("check"), env, waits, probes],
        help="drift, dependency, version, compatibility-rule and import checks",
    )
    p = sub.add_parser(
        "rollback",
        parents=[common("rollback"), env, waits, bundles],
        help="restore the snapshot taken before the last change",
    )
    p.add_argument(
        "id",
        nargs="?",
        default=None,
        help="snapshot id (see 'envspec history'; default: the one taken before the last change)",
    )
    p.add_argument("--system", action="store_true", help=_SYSTEM)
    sub.add_parser(
        "history", parents=[common("history"), env], help="list the environment's snapshots"
    )


# -- commands ------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    spec = load_spec(args.project / "envspec.toml", environ)
    options = _uv_options(args, spec, environ)
    location = locate(args.project, args.python, environ)
    refuse_system(location, args.system)
    if not location.present():
        if args.dry_run:  # the plan for the environment a sync would create, created not
            planned = planned_environment(location, spec.python, options)
            out.event("environment_created", root=str(location.root), python=spec.python,
                      dry_run=True)  # fmt: skip
            out.say(f"Would create {location.root} (Python {spec.python})")
            return _sync(args, out, spec, options, location, planned=planned)
        if location.creatable:  # the project's .venv, made here: this machine's lock first
            host = host_target()
            variants = [v.name for v in spec.variants_for(host)] if host else []
            require_lock(args.project, host, spec.targets, variants=variants or [None])
    with contextlib.ExitStack() as creating:
        if location.creatable and not location.present():
            # held until this sync is done: a second first sync waits, then has nothing to do
            creating.enter_context(
                creation_lock(location.root, _cache_root(args), args.lock_timeout)
            )
        created = ensure_environment(location, spec.python, options)
        if created:
            out.event("environment_created", root=str(location.root), python=spec.python)
            out.say(f"Created {location.root} (Python {spec.python})")
        try:
            return _sync(args, out, spec, options, location)
        except Interrupted:
            raise  # its journal and the rollback offer stay, as for any interrupted sync
        except EnvspecError:
            if created:  # a failed first sync leaves no environment behind
                remove_environment(location)
                out.say(f"Removed {location.root}: the sync that created it failed")
            raise


def _sync(
    args: argparse.Namespace,
    out: Out,
    spec: Spec,
    options: uv.UvOptions,
    location: Location,
    *,
    planned: Environment | None = None,
) -> int:
    environ = options.environ
    env, path, lock, choice = _open(
        args, out, location, environ, spec=spec, requested=args.variant, planned=planned
    )
    if not args.frozen:
        lock = _current_lock(args, out, spec, (path, lock), environ)
    lock = for_environment(lock, path, env)
    settings = SyncSettings(
        phase=args.phase,
        exact=not args.inexact,
        dry_run=args.dry_run,
        no_build_isolation={p.name for p in spec.phases if p.no_build_isolation},
        lock_timeout=args.lock_timeout,
        command=_command_line(args),
    )
    reporter = CliReporter(out)
    checked: list[bool] = []

    def check(outcome: SyncOutcome) -> None:  # under the environment's lock
        checked.append(
            not outcome.changed
            or args.no_checks
            or run_checks(
                env,
                lock,
                spec.checks,
                rules=spec.rules,
                phase=args.phase,
                import_timeout=args.import_timeout,
                environ=environ,
                reporter=reporter,
            )
        )

    with _reported(env, "sync"):
        files = _files(args, spec, environ)
        outcome = sync(env, lock, settings, options, files=files, reporter=reporter, after=check)
    if not args.dry_run and load_installed_variant(env) != (choice and choice.variant):
        write_installed_variant(env, choice)
    code = EXIT_OK if all(checked) else EXIT_FAILED
    done = Done(
        command="sync",
        exit_code=code,
        changed=outcome.changed,
        failed_optional=outcome.failed_optional,
        dry_run=args.dry_run,
    )
    reporter.done(done)
    return code


def _current_lock(
    args: argparse.Namespace, out: Out, spec: Spec, found: tuple[Path, Lock], environ: Environ
) -> Lock:
    """The lock to install, as `uv sync` takes it: a fresh one as it is; a stale one refused
    with `--locked` or `--bundle` (relocking asks the indexes), else relocked first (the
    other pins kept; in memory for `--dry-run`)."""
    from envspec.lockfile.status import status_of

    path, lock = found
    status = status_of(spec, lock.target, path, lock, lock.variant)
    if status.state == "fresh":
        return lock
    if lock.target not in spec.targets:
        hint = f"add '{lock.target}' to [environment] targets, or sync with --frozen"
    elif args.bundle is not None:  # relocking would ask the indexes: a bundle is all there is
        hint = "a sync from a bundle cannot relock: run 'envspec lock' where the indexes can "
        hint += "be reached, or sync with --frozen to install the lock as it is"
    elif args.locked:
        hint = "run 'envspec lock' and commit locks/, or sync without --locked"
    else:
        out.say(f"The lock for {lock.label} is out of date ({status.reason}): relocking it")
        return _relock(args, out, spec, status, environ)
    raise StaleLockError(
        f"the lock for {lock.label} is out of date with envspec.toml: {status.reason}",
        context=str(path),
        hint=hint,
    )


def _relock(
    args: argparse.Namespace, out: Out, spec: Spec, status: TargetStatus, environ: Environ
) -> Lock:
    from envspec.commands.lock import run_lock  # the resolver: only for a stale lock
    from envspec.index import FinderSettings

    settings = FinderSettings(cache_dir=args.cache_dir, offline=args.offline)
    run = run_lock(
        spec, [status], [status], environ=environ, settings=settings,
        write=not args.dry_run,
    )  # fmt: skip
    [result] = run.results
    state = "resolved" if args.dry_run else "written" if result.written else "unchanged"
    where = rel(result.path, args.project)
    done = {"resolved": "not written (dry run)", "written": f"wrote {where}"}.get(
        state, f"unchanged {where}"
    )
    out.say(f"{result.lock.label}: {plural(len(result.lock.packages), 'package')}, {done}")
    out.event(
        "lock",
        target=result.target,
        state=state,
        path=str(result.path),
        **lock_fields(result.lock),
    )
    return result.lock


def cmd_check(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    location = locate(args.project, args.python, environ)
    with _settled(location, args.lock_timeout) as held:
        return _check(args, out, location, environ, held=held)


@contextlib.contextmanager
def _settled(location: Location, timeout: float) -> Iterator[bool]:
    """Hold the environment's lock while `check` reads it, waiting for a sync or rollback
    that is changing it: a check in between reported half-installed packages as broken
    imports. An environment envspec never locked (no lock file), or one `check` may not
    write to, is read as it is: a check writes nothing. Yields whether it holds the lock."""
    lock = location.root / STATE_DIR / "lock"
    if not os.access(lock, os.W_OK):
        yield False
        return
    with environment_lock(lock.parent, timeout):
        yield True


def _check(
    args: argparse.Namespace, out: Out, location: Location, environ: Environ, *, held: bool
) -> int:
    """`check` (`held`: it holds the environment's lock, so a journal on disk is a killed
    command's, not a running one's)."""
    if not (args.project / "envspec.toml").exists():  # any environment: the rules still apply
        env, lock, spec = _outside_project(args, out, location, environ, held=held), None, None
        choice = None
    else:
        from envspec.lockfile.status import status_of

        spec = load_spec(args.project / "envspec.toml", environ)
        env, path, lock, choice = _open(
            args, out, location, environ, spec=spec, installed=True, held=held
        )
        status = status_of(spec, lock.target, path, lock, lock.variant)
        if status.state == "fresh":  # a stale one fails the lock check, its conditions too
            lock = for_environment(lock, path, env)
    reporter = CliReporter(out)
    ok = run_checks(
        env,
        lock,
        spec.checks if spec else Checks(),
        rules=spec.rules if spec else load_builtin_rules(),
        status=status if spec else None,
        machine=choice.machine if choice is not None else None,
        import_timeout=args.import_timeout,
        environ=environ,
        reporter=reporter,
    )
    code = EXIT_OK if ok else EXIT_FAILED
    reporter.done(Done(command="check", exit_code=code, changed=False))
    return code


def cmd_rollback(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    env = _environment(args, out, environ, system=args.system)
    spec = _spec_if_valid(args.project, environ)
    options = _uv_options(args, spec, environ)
    reporter = CliReporter(out, rollback_is_the_command=True)
    with _reported(env, "rollback"):
        restored = rollback(
            env,
            args.id,
            options=options,
            files=_files(args, spec, environ),
            lock_timeout=args.lock_timeout,
            reporter=reporter,
        )
    reporter.done(Done(command="rollback", exit_code=EXIT_OK, changed=restored is not None))
    return EXIT_OK


def cmd_history(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    env = _environment(args, out, environ)
    ids = snapshot_ids(env.state_dir)
    current: dict[str, str] = {d.name: d.version for d in load_installed(env)}
    states: list[Mapping[str, str] | None] = []
    entries: list[dict[str, Any]] = []
    for snapshot_id in ids:
        try:
            snap = load_snapshot(env.state_dir, snapshot_id)
        except EnvspecError as exc:
            entries.append({"id": snapshot_id, "damaged": True, "error": str(exc)})
            states.append(None)
            continue
        entries.append(
            {
                "id": snap.id,
                "created": snap.created,
                "command": snap.command,
                "packages": len(snap.packages),
                "damaged": False,
            }
        )
        states.append(snap.versions())
    states.append(current)
    for i, entry in enumerate(entries):
        before, after = states[i], states[i + 1]
        if before is not None and after is not None:
            entry["changes"] = changes(before, after)
        out.event("history", **entry)
        out.result(history_line(entry))
    if not entries:
        out.say(f"No snapshots in {env.state_dir / 'snapshots'} yet.")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Out, Environ], int]] = {
    "sync": cmd_sync,
    "check": cmd_check,
    "rollback": cmd_rollback,
    "history": cmd_history,
}


# -- helpers -------------------------------------------------------------------------------


def _environment(
    args: argparse.Namespace, out: Out, environ: Environ, *, system: bool | None = None
) -> Environment:
    """The environment of `history` (read only), or of `rollback` (`system`: `--system`)."""
    location = locate(args.project, args.python, environ)
    if system is not None:
        refuse_system(location, system)
    env = open_environment(location, environ, _cache_root(args), system=bool(system))
    _warn_interrupted(env, out)
    return env


def _open(
    args: argparse.Namespace,
    out: Out,
    location: Location,
    environ: Environ,
    *,
    spec: Spec,
    requested: str | None = None,
    installed: bool = False,
    planned: Environment | None = None,
    held: bool = False,
) -> tuple[Environment, Path, Lock, Choice | None]:
    """The environment of `sync` or `check` (`planned`: the one a dry run would create), its
    accelerator variant (`requested`, or for `check`, `installed`: the one the last sync
    installed) and its lock (nothing written for a dry run)."""
    system = getattr(args, "system", False)
    write = not getattr(args, "dry_run", False)
    env = planned or open_environment(
        location, environ, _cache_root(args), system=system, write=write
    )
    _warn_interrupted(env, out, held=held)
    choice = _choose(out, env, spec, environ, requested, installed=installed)
    path, lock = select_lock(args.project, env, spec.targets, choice.variant if choice else None)
    out.event(
        "environment",
        root=str(env.root),
        python=str(env.python),
        python_version=env.python_version,
        target=lock.target,
        lock=str(path),
    )
    out.say(f"Environment {env.root} (Python {env.python_version}), lock {rel(path, args.project)}")
    return env, path, lock, choice


def _choose(
    out: Out,
    env: Environment,
    spec: Spec,
    environ: Environ,
    requested: str | None,
    *,
    installed: bool,
) -> Choice | None:
    """The variant to use (`select.select_variant`), reported as a `variant` event and lines."""
    choice = select_variant(spec, env, environ, requested, installed=installed)
    if choice is None:
        return None
    out.event("variant", **choice.data())
    for name, reason in choice.skipped:
        out.say(f"Variant {name} passed over: {reason}")
    if choice.fits or choice.installed:
        which = " (installed by the last sync)" if choice.installed else ""
        out.say(f"Variant {choice.variant}{which}: {choice.reason}")
    else:
        out.say(
            f"warning: --variant {choice.variant}: this machine does not meet its needs: "
            f"{choice.reason}"
        )
    return choice


def _outside_project(
    args: argparse.Namespace, out: Out, location: Location, environ: Environ, *, held: bool
) -> Environment:
    """An environment `check` reads without a project: no spec, no lock."""
    env = open_environment(location, environ, _cache_root(args))
    _warn_interrupted(env, out, held=held)
    out.event(
        "environment",
        root=str(env.root),
        python=str(env.python),
        python_version=env.python_version,
        target=target_of(env),
        lock=None,
    )
    out.say(
        f"Environment {env.root} (Python {env.python_version}); no envspec.toml in "
        f"{args.project}: checked against envspec's built-in compatibility rules only"
    )
    return env


def _warn_interrupted(env: Environment, out: Out, *, held: bool = False) -> None:
    journal = interrupted(env.state_dir, held=held)
    if journal is None:
        return
    message, hint = interrupted_message(journal)
    out.event(
        "interrupted",
        command=journal.command,
        phase=journal.stopped_in,
        snapshot=journal.snapshot,
        message=message,
        hint=hint,
    )
    out.say(f"warning: {message}\nhint: {hint}")


@contextlib.contextmanager
def _reported(env: Environment, command: str) -> Iterator[None]:
    """A command stopped by SIGINT or SIGTERM, reported with what the journal says: in an
    installer (`Interrupted`), or in envspec itself once its journal is written (between two
    phases: the generic "interrupted" said nothing of the changes made, nor of rollback)."""
    try:
        yield
    except Interrupted as exc:
        message, hint = stopped_message(load_journal(env.state_dir), command, exc.signal_name)
        raise Interrupted(
            message, signal_number=exc.signal_number, context=str(env.root), hint=hint
        ) from exc
    except KeyboardInterrupt as exc:
        journal = load_journal(env.state_dir)
        if journal is None:  # before anything changed: the CLI's own report says so
            raise
        number = exc.signal_number if isinstance(exc, Terminated) else signal.SIGINT
        message, hint = stopped_message(journal, command, signal.Signals(number).name)
        raise Interrupted(message, signal_number=number, context=str(env.root), hint=hint) from exc


def _uv_options(args: argparse.Namespace, spec: Spec | None, environ: Environ) -> uv.UvOptions:
    """uv's options; from a bundle, uv runs offline (every file it installs is in the store)
    with the bundle as its only index."""
    bundle = _bundle(args)
    if bundle is not None:
        from envspec.index.bundle import bundle_index

        indexes: tuple[Index, ...] = (bundle_index(bundle),)
    else:
        indexes = spec.indexes if spec else ()
    return uv.UvOptions(
        environ=environ,
        cache_dir=args.cache_dir / "uv" if args.cache_dir else None,
        offline=args.offline or bundle is not None,
        indexes=indexes,
    )


def _files(args: argparse.Namespace, spec: Spec | None, environ: Environ) -> Files:
    """The artifact store, and a downloader for the spec's indexes (and their mirrors), or
    for the bundle; a bundle's folder is read under --offline too."""
    indexes = spec.indexes if spec else ()
    bundle = _bundle(args)

    def downloader() -> Downloader:
        # HTTP code: imported only when downloading
        from envspec.index.bundle import BundleFiles
        from envspec.index.download import LockedFiles

        if bundle is not None:
            return BundleFiles(bundle, environ)
        return LockedFiles(indexes, environ)

    return Files(
        store=store_at(_cache_root(args)),
        downloader=downloader,
        offline=args.offline and bundle is None,
        bundle=bundle.public if bundle else None,
    )


def _bundle(args: argparse.Namespace) -> SecretURL | None:
    """`--bundle` as the bundle's root URL; with --offline, only a folder."""
    if args.bundle is None:
        return None
    from envspec.index.bundle import bundle_location, is_local

    location = bundle_location(args.bundle)
    if args.offline and not is_local(location):
        raise UsageError(
            f"--offline cannot reach the bundle at {location.public}",
            context="--bundle",
            hint="give the bundle's folder, or leave out --offline",
        )
    return location


def _cache_root(args: argparse.Namespace) -> Path:
    if args.cache_dir is not None:
        return Path(args.cache_dir)
    import platformdirs

    return Path(platformdirs.user_cache_dir("envspec"))


def _spec_if_valid(project: Path, environ: Environ) -> Spec | None:
    """Rollback must work even when the spec is missing or broken: it only lends indexes."""
    try:
        return load_spec(project / "envspec.toml", environ)
    except EnvspecError:
        return None


def _command_line(args: argparse.Namespace) -> str:
    words = ["sync"]
    words += ["--inexact"] if args.inexact else []
    words += ["--phase", args.phase] if args.phase else []
    return " ".join(words)
