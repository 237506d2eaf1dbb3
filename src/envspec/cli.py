"""The command line: arguments, rendering and exit codes (DESIGN.md §2).

Only this module prints and exits. Human output goes to stderr; `--json` writes one JSON
event per line on stdout. argparse (stdlib) is enough for a handful of subcommands.

The review commands' modules are imported by their commands only: an environment command
or a fresh relock has no use for them (about 30 ms of imports).

`main` reads the environment once, as a snapshot every command is given and passes down (the
spec's `${VAR}`s, credentials, mirrors, build, git and uv environments, `$VIRTUAL_ENV`,
`NO_COLOR`): nothing below reads `os.environ`. Every command, here or in `cli_env`,
`cli_bundle` and `cli_cache` (imported only for their commands, see `LIGHT`), is one
function `(args, out, environ) -> exit code` in a `COMMANDS` table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec import __version__
from envspec.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EnvspecError,
    StaleLockError,
    UsageError,
)
from envspec.model import Spec
from envspec.secret import redact
from envspec.spec import load_spec
from envspec.targets import check_name, choose_targets, os_floor

if TYPE_CHECKING:
    from envspec.commands.lock import Locked
    from envspec.lockfile.status import TargetStatus

Environ = Mapping[str, str]

# The environment, cache and bundle commands' modules (apply, rich) are imported only when the
# command line may be one of theirs: an unchanged relock or `lock --check` imports neither the
# resolver, nor the review code, nor `envspec.apply`.
LIGHT = frozenset({"lock", "diff", "export", "why", "rules", "init"})

log = logging.getLogger("envspec")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit with its own code and format
        raise UsageError(message, hint=f"see '{self.prog} --help'")


class _Output:
    """Human lines to stderr, JSON events to stdout when asked."""

    def __init__(self, *, json_mode: bool, quiet: bool) -> None:
        self.json_mode = json_mode
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            print(text, file=sys.stderr)

    def event(self, kind: str, **data: Any) -> None:
        if self.json_mode:
            print(json.dumps({"event": kind, **data}, sort_keys=True), flush=True)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; of the lock and review commands only when `command`,
    the command line's first word, is one of those (see `LIGHT`)."""
    common = _Parser(add_help=False)
    common.add_argument("--project", type=Path, default=Path("."), help="folder of envspec.toml")
    common.add_argument("-v", "--verbose", action="count", default=0)
    common.add_argument("-q", "--quiet", action="store_true")
    common.add_argument("--json", action="store_true", help="JSON events on stdout")
    common.add_argument("--offline", action="store_true", help="use only the cache")
    common.add_argument("--cache-dir", type=Path, default=None)
    parser = _Parser(
        prog="envspec",
        description="Declared, locked, reviewable and reversible Python environments.",
    )
    parser.add_argument("--version", action="version", version=f"envspec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    lock = sub.add_parser("lock", parents=[common], help="resolve every target, write locks/")
    lock.add_argument("--target", action="append", default=[], help="lock only this target")
    lock.add_argument("--upgrade", action="store_true", help="ignore existing pins")
    lock.add_argument("--upgrade-package", action="append", default=[], metavar="NAME")
    lock.add_argument("--check", action="store_true", help="exit 3 if a lock is stale")
    lock.add_argument("--refresh", action="store_true", help="revalidate cached index pages")
    _add_variant(lock, "lock only this accelerator variant")
    _add_review_parsers(sub, common)
    if command not in LIGHT:
        for module in _heavy():
            module.add_parsers(sub, common)
    return parser


def _add_variant(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--variant", default=None, metavar="NAME", help=text)


def _add_review_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    diff = sub.add_parser("diff", parents=[common], help="what changed in the locks")
    diff.add_argument("old", nargs="?", metavar="REV|OLD", help="git revision (HEAD) or path")
    diff.add_argument("new", nargs="?", metavar="NEW", help="lock file or folder to compare to")
    diff.add_argument("--target", action="append", default=[], help="compare only this target")
    diff.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    diff.add_argument("--exit-code", action="store_true", help="exit 1 when there are changes")
    _add_variant(diff, "compare only this accelerator variant's locks")
    export = sub.add_parser("export", parents=[common], help="a lock as requirements.txt")
    export.add_argument("--target", help="the target's lock (needed when the spec has several)")
    export.add_argument("--phase", help="export only this phase")
    export.add_argument("-o", "--output", type=Path, help="write to this file, not stdout")
    _add_variant(export, "the accelerator variant's lock (needed when the target has several)")
    why = sub.add_parser("why", parents=[common], help="why a package is in the lock")
    why.add_argument("name", help="the package")
    why.add_argument("--target", action="append", default=[], help="only this target")
    _add_variant(why, "only this accelerator variant's locks")
    rules = sub.add_parser(
        "rules", parents=[common], help="the compatibility rules in force, with their sources"
    )
    rules.add_argument("name", nargs="?", help="only the rules about this package")
    _add_variant(rules, "which locks record each rule: only this variant's")
    init = sub.add_parser("init", parents=[common], help="write a starter envspec.toml")
    init.add_argument(
        "--from", dest="sources", action="append", default=[], type=Path, metavar="FILE",
        help="a requirements file; each becomes a phase (repeatable, in order)",
    )
    init.add_argument("--name", help="environment name (default: the folder's name)")
    init.add_argument("--python-version", default="3.11", help="Python version to lock for")
    init.add_argument("--target", action="append", default=[], help="a target (repeatable)")


def _spec(args: argparse.Namespace, environ: Environ) -> Spec:
    return load_spec(args.project / "envspec.toml", environ)


def _targets(spec: Spec, wanted: Sequence[str]) -> list[str]:
    return choose_targets(spec.targets, wanted)


def cmd_lock(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.lockfile.status import check_variant, choose_units, lock_status

    spec = _spec(args, environ)
    targets, variant = _targets(spec, args.target), check_variant(spec, args.variant)
    if variant is not None:
        choose_units(spec, targets, variant)  # the variant is locked for one of them
    statuses = lock_status(spec, args.project, targets, variant)
    forced = args.upgrade or args.upgrade_package or args.refresh
    todo = [s for s in statuses if forced or s.state != "fresh"]
    if args.check:
        if todo:
            names = ", ".join(
                f"{s.label} ({s.state}{': ' + s.reason if s.reason else ''})" for s in todo
            )
            raise StaleLockError(
                f"locks out of date: {names}", hint="run 'envspec lock' and commit locks/"
            )
        out.say(f"All {len(statuses)} locks are up to date.")
        return EXIT_OK
    for status in statuses:
        if status not in todo:
            out.say(f"{status.label}: up to date ({_rel(status.path, args.project)})")
            out.event(
                "lock",
                target=status.target,
                state="fresh",
                path=str(status.path),
                **_variant_field(status.variant),
            )
    return _lock_stale(args, out, spec, statuses, todo, environ=environ) if todo else EXIT_OK


def _lock_stale(
    args: argparse.Namespace,
    out: _Output,
    spec: Spec,
    statuses: list[TargetStatus],
    todo: list[TargetStatus],
    *,
    environ: Environ,
) -> int:
    # Imported here: a fresh relock, `lock --check` and `sync` need neither resolver nor network.
    from envspec.commands.lock import run_lock
    from envspec.index import FinderSettings

    settings = FinderSettings(cache_dir=args.cache_dir, offline=args.offline, refresh=args.refresh)
    run = run_lock(
        spec,
        statuses,
        todo,
        environ=environ,
        settings=settings,
        upgrade=args.upgrade,
        upgrade_packages=args.upgrade_package,
    )
    stats = run.stats
    out.event("stats", **dataclasses.asdict(stats))
    log.info(
        "fetched %d requests, %.1f MB, %d metadata files",
        stats.requests,
        stats.bytes_downloaded / 1e6,
        stats.metadata_fetched,
    )
    _report_locks(args, out, spec, run.results)
    return EXIT_OK


def _report_locks(
    args: argparse.Namespace, out: _Output, spec: Spec, results: Sequence[Locked]
) -> None:
    for result in results:
        skipped = [p for p in result.lock.phases if p.skipped]
        verb = "wrote" if result.written else "unchanged"
        floor = os_floor(result.target, spec.settings_for(result.target))
        out.say(
            f"{result.lock.label}: {len(result.lock.packages)} packages, {verb} "
            f"{_rel(result.path, args.project)}" + (f" (for {floor})" if floor else "")
        )
        for phase in skipped:
            out.say(f"  optional phase '{phase.name}' skipped: {phase.skipped}")
        out.event(
            "lock",
            target=result.target,
            state="written" if result.written else "unchanged",
            path=str(result.path),
            packages=len(result.lock.packages),
            skipped=[p.name for p in skipped],
            rules=[r.id for r in result.lock.rules],
            **_variant_field(result.lock.variant),
        )


def _variant_field(variant: str | None) -> dict[str, str]:
    """A `lock` event's `variant`, present only for a variant's lock (a spec without
    variants gives the same events as before there were any)."""
    return {"variant": variant} if variant else {}


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def cmd_diff(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.review import diff as review_diff
    from envspec.review.diff_format import render_markdown, render_text
    from envspec.review.locks import diff_sides

    before, after = diff_sides(
        args.project, args.old, args.new, args.target, environ=environ, variant=args.variant
    )
    diff = review_diff.diff_locks(
        before.locks, after.locks, old_label=before.label, new_label=after.label
    )
    if args.json:
        out.event("diff", **review_diff.to_json(diff))
    elif not args.quiet:
        if args.format == "json":
            text = json.dumps(review_diff.to_json(diff), indent=2, sort_keys=True) + "\n"
        elif args.format == "markdown":
            text = render_markdown(diff)
        else:
            text = render_text(diff, color=sys.stdout.isatty() and "NO_COLOR" not in environ)
        sys.stdout.write(text)
    return EXIT_FAILED if args.exit_code and diff.has_changes else EXIT_OK


def cmd_export(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.lockfile.status import choose_units
    from envspec.review.export import export_requirements, write_requirements
    from envspec.review.locks import load_target_lock

    spec = _spec(args, environ)
    targets = _targets(spec, [args.target] if args.target else [])
    if len(targets) > 1:
        hint = "targets: " + ", ".join(targets)
        raise UsageError("the spec has several targets: choose one", context="--target", hint=hint)
    units = choose_units(spec, targets, args.variant)
    if len(units) > 1:
        hint = "variants: " + ", ".join(v for _, v in units if v)
        raise UsageError(
            f"target {targets[0]} has several variants: choose one", context="--variant", hint=hint
        )
    path, lock = load_target_lock(args.project, *units[0])
    text = export_requirements(lock, phase=args.phase, source=_rel(path, args.project))
    if args.output is None:
        if args.json:
            out.event("export", target=lock.target, phase=args.phase, path=None, text=text)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    write_requirements(args.output, text)
    out.say(f"wrote {args.output} ({lock.target}{f', phase {args.phase}' if args.phase else ''})")
    out.event("export", target=lock.target, phase=args.phase, path=str(args.output))
    return EXIT_OK


def cmd_why(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.lockfile.status import choose_units
    from envspec.review import why as review_why
    from envspec.review.locks import load_target_lock, locks_dir

    spec = _spec(args, environ)
    found = [
        load_target_lock(args.project, *unit)
        for unit in choose_units(spec, _targets(spec, args.target), args.variant)
    ]
    where = found[0][0] if len(found) == 1 else locks_dir(args.project)
    locks = {lock.label: lock for _, lock in found}
    report = review_why.why(locks, args.name, where=_rel(where, args.project))
    out.say(review_why.render_text(report).rstrip("\n"))
    out.event("why", **review_why.to_json(report))
    return EXIT_OK


def cmd_rules(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.compat import load_builtin_rules
    from envspec.lockfile import load_lock, lock_path
    from envspec.lockfile.status import choose_units
    from envspec.review import rules as review_rules

    path = args.project / "envspec.toml"
    spec = _spec(args, environ) if path.exists() else None
    locks = {}
    for target, variant in choose_units(spec, spec.targets, args.variant) if spec else ():
        if lock_path(args.project, target, variant).exists():
            lock = load_lock(lock_path(args.project, target, variant))
            locks[lock.label] = lock
    listing = review_rules.list_rules(load_builtin_rules(), spec, locks, args.name)
    out.say(review_rules.render_text(listing).rstrip("\n"))
    for item in listing.rules:
        out.event("rule", **review_rules.to_json(item))
    return EXIT_OK


def cmd_init(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.review.init import (
        DEFAULT_TARGETS,
        default_name,
        phase_count,
        spec_from_requirements,
        starter_spec,
        write_spec,
    )
    from envspec.review.reqfile import load_requirements

    for target in args.target:
        check_name(target, context="--target")
    targets = tuple(dict.fromkeys(args.target)) or DEFAULT_TARGETS
    name = args.name or default_name(args.project)
    files = [load_requirements(path) for path in args.sources]
    if files:
        text = spec_from_requirements(files, name, python=args.python_version, targets=targets)
    else:
        text = starter_spec(name, python=args.python_version, targets=targets)
    path = args.project / "envspec.toml"
    write_spec(path, text)
    count = phase_count(text)
    out.say(f"wrote {path}" + (f" with {count} phase{'s' * (count != 1)}" if files else ""))
    out.event("init", path=str(path), phases=count)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, _Output, Environ], int]] = {
    "lock": cmd_lock,
    "diff": cmd_diff,
    "export": cmd_export,
    "why": cmd_why,
    "rules": cmd_rules,
    "init": cmd_init,
}


def _heavy() -> tuple[Any, ...]:
    from envspec import cli_bundle, cli_cache, cli_env

    return (cli_env, cli_bundle, cli_cache)


def _command(name: str) -> Callable[[argparse.Namespace, _Output, Environ], int]:
    if name in COMMANDS:
        return COMMANDS[name]
    found: Callable[[argparse.Namespace, _Output, Environ], int] = {
        key: value for module in _heavy() for key, value in module.COMMANDS.items()
    }[name]
    return found


class _RedactingFormatter(logging.Formatter):
    """Every log line without a URL's credentials, whatever a module quoted in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose > 1 else (
        logging.INFO if verbose else logging.WARNING
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (DESIGN.md §2)."""
    environ = dict(os.environ)  # the snapshot (see the module docstring)
    out = _Output(json_mode=False, quiet=False)
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        first = words[0] if words and not words[0].startswith("-") else None
        args = build_parser(first).parse_args(words)
        out = _Output(json_mode=args.json, quiet=args.quiet)
        _configure_logging(args.verbose, args.quiet)
        return _command(args.command)(args, out, environ)
    except EnvspecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        out.event("error", message=str(exc), hint=exc.hint, exit_code=exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130

