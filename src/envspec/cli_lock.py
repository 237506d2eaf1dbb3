"""`envspec lock` on the command line, and the relock `add` and `remove` share with it:
arguments, exit codes and what the user sees; the work is `commands.lock`. `cli` adds the
parser (`add_parsers`) and includes `COMMANDS`; `cli_edit` calls `relock`.

What the user sees while locking (a live line per target, the summary) is `lock_view`'s.
Also the helpers every project command shares: the spec (`project_spec`) and the targets
asked for (`spec_targets`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from envspec.errors import EXIT_OK, StaleLockError, UsageError
from envspec.lock_view import LockView, variant_field
from envspec.output import Out, rel, target_help
from envspec.targets import choose_targets, os_floor

if TYPE_CHECKING:
    from envspec.lockfile.fresh import FreshLock
    from envspec.lockfile.status import TargetStatus
    from envspec.model import Spec

Environ = Mapping[str, str]

log = logging.getLogger("envspec")


def add_parsers(sub: Any, common: Callable[[str], argparse.ArgumentParser]) -> None:
    lock = sub.add_parser(
        "lock", parents=[common("lock")], help="resolve every target, write locks/"
    )
    lock.add_argument(
        "--target",
        action="append",
        default=[],
        help=target_help("lock only this target (repeatable; default: every spec target)"),
    )
    lock.add_argument("--upgrade", action="store_true", help="ignore every existing pin")
    lock.add_argument(
        "--upgrade-package",
        action="append",
        default=[],
        metavar="NAME",
        help="ignore the existing pin of NAME (repeatable)",
    )
    lock.add_argument(
        "--check", action="store_true", help="exit 3 if a lock is stale or missing; write nothing"
    )
    lock.add_argument("--refresh", action="store_true", help="revalidate every cached index page")
    add_variant(lock, "lock only this accelerator variant (default: every variant)")


def add_variant(parser: argparse.ArgumentParser, text: str) -> None:
    """`--variant NAME`, for the commands that work on a target's locks."""
    parser.add_argument("--variant", default=None, metavar="NAME", help=text)


def project_spec(args: argparse.Namespace, environ: Environ) -> Spec:
    from envspec.spec import load_spec

    return load_spec(args.project / "envspec.toml", environ)


def spec_targets(spec: Spec, wanted: Sequence[str]) -> list[str]:
    """The `--target`s asked for (checked against the spec), else every spec target."""
    return choose_targets(spec.targets, wanted)


def _check_package_name(value: str) -> None:
    """An `--upgrade-package` value is a project name: a requirement (`six==1.15.0`, which uv
    takes as a bound) would lift no pin (its canonical form names no package) and be ignored
    without a word."""
    from envspec.spec.values import NAME  # here: an unchanged relock imports no spec code

    if NAME.fullmatch(value):
        return
    word = re.split(r"[\s\[<>=!~;@(]", value.strip(), maxsplit=1)[0]
    hint = f"envspec lock --upgrade-package {word}" if NAME.fullmatch(word) else ""
    if hint and re.search(r"[<>=!~]", value):
        hint += f"; for a version bound, write it in envspec.toml (envspec add '{value.strip()}')"
    raise UsageError(f"'{value}' is not a package name", context="--upgrade-package", hint=hint)


def cmd_lock(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    from envspec.lockfile import fresh
    from envspec.lockfile.memo import memo_folder

    if args.check and (args.upgrade or args.upgrade_package):
        flag = "--upgrade" if args.upgrade else "--upgrade-package"
        raise UsageError(
            f"argument {flag}: not allowed with argument --check",
            hint="--check compares the locks with the spec and resolves nothing: "
            f"relock with 'envspec lock {flag}{'' if args.upgrade else ' NAME'}'",
        )
    for value in args.upgrade_package:
        _check_package_name(value)
    # --refresh with --check revalidates nothing: a check reads no index
    forced = not args.check and (args.upgrade or args.upgrade_package or args.refresh)
    question = fresh.Question(
        project=args.project, targets=tuple(args.target), variant=args.variant
    )
    folder = memo_folder(args.cache_dir, "fresh")
    snapshot = None if forced else fresh.load_snapshot(question, environ)
    known = fresh.load_fresh(folder, question, snapshot) if snapshot else None
    if known is not None:
        log.debug("every lock is fresh: the same spec, locks and code were checked before")
        _report_fresh(args, out, known, count=len(known))
        return EXIT_OK
    with _warnings() as warned:
        spec, statuses = _lock_status(args, environ)
    todo = [s for s in statuses if forced or s.state != "fresh"]
    if snapshot is not None and not todo and not warned:
        locks = [fresh.FreshLock(target=s.target, variant=s.variant, path=s.path) for s in statuses]
        fresh.dump_fresh(folder, question, environ, snapshot, locks)
    if args.check and todo:
        names = ", ".join(
            f"{s.label} ({s.state}{': ' + s.reason if s.reason else ''})" for s in todo
        )
        raise StaleLockError(
            f"locks out of date: {names}", hint="run 'envspec lock' and commit locks/"
        )
    _report_fresh(args, out, [s for s in statuses if s not in todo], count=len(statuses))
    if todo:
        relock(
            args,
            out,
            spec,
            statuses,
            todo,
            environ=environ,
            upgrade=args.upgrade,
            upgrade_packages=args.upgrade_package,
        )
    return EXIT_OK


def _lock_status(args: argparse.Namespace, environ: Environ) -> tuple[Spec, list[TargetStatus]]:
    """The spec, and where each lock `lock` was asked about stands against it."""
    from envspec.lockfile.memo import memo_folder
    from envspec.lockfile.status import check_variant, choose_units, lock_status

    spec = project_spec(args, environ)
    targets, variant = spec_targets(spec, args.target), check_variant(spec, args.variant)
    if variant is not None:
        choose_units(spec, targets, variant)  # the variant is locked for one of them
    return spec, lock_status(spec, args.project, targets, variant, memo=memo_folder(args.cache_dir))


def _report_fresh(
    args: argparse.Namespace, out: Out, fresh: Sequence[FreshLock | TargetStatus], count: int
) -> None:
    """What `lock` says of the fresh locks among `count`: with --check (every lock fresh),
    that they all are, else one line per fresh lock; and one event per fresh lock."""
    if args.check:
        out.say("The lock is up to date." if count == 1 else f"All {count} locks are up to date.")
    for status in fresh:
        if not args.check:
            out.say(f"{status.label}: up to date ({rel(status.path, args.project)})")
        out.event(
            "lock",
            target=status.target,
            state="fresh",
            path=str(status.path),
            **variant_field(status.variant),
        )


@contextlib.contextmanager
def _warnings() -> Iterator[list[logging.LogRecord]]:
    """The warnings the `envspec` logger emits within the block, caught under -q too (its
    handlers still show only what they would have shown)."""
    caught: list[logging.LogRecord] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    level, shown = log.level, [(h, h.level) for h in log.handlers]
    for handler, was in shown:
        handler.setLevel(max(was, log.getEffectiveLevel()))
    catch = _Catch(logging.WARNING)
    log.addHandler(catch)
    log.setLevel(min(log.getEffectiveLevel(), logging.WARNING))
    try:
        yield caught
    finally:
        log.removeHandler(catch)
        log.setLevel(level)
        for handler, was in shown:
            handler.setLevel(was)


def relock(
    args: argparse.Namespace,
    out: Out,
    spec: Spec,
    statuses: list[TargetStatus],
    todo: list[TargetStatus],
    *,
    environ: Environ,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    before_write: Callable[[], None] | None = None,
) -> None:
    """Resolve the targets `todo` names and write their locks (`before_write` first), with
    the user's view of it (`LockView`)."""
    # Imported here: a fresh relock, `lock --check` and `sync` need neither resolver nor network.
    from envspec.commands.lock import run_lock
    from envspec.index import FinderSettings

    refresh = getattr(args, "refresh", False)
    settings = FinderSettings(cache_dir=args.cache_dir, offline=args.offline, refresh=refresh)
    view = LockView(out, [s.label for s in todo], tty=sys.stderr.isatty())
    try:
        run = run_lock(
            spec,
            statuses,
            todo,
            environ=environ,
            settings=settings,
            upgrade=upgrade,
            upgrade_packages=upgrade_packages,
            before_write=before_write,
            progress=view,
        )
    finally:
        view.stop()
    stats = run.stats
    out.event("stats", **dataclasses.asdict(stats))
    log.info(
        "fetched %d requests, %.1f MB, %d metadata files",
        stats.requests,
        stats.bytes_downloaded / 1e6,
        stats.metadata_fetched,
    )
    floors = {r.lock.label: os_floor(r.target, spec.settings_for(r.target)) for r in run.results}
    view.summary(run.results, run.divergences, args.project, floors)


COMMANDS: dict[str, Callable[[argparse.Namespace, Out, Environ], int]] = {"lock": cmd_lock}
