"""The command line: arguments, rendering and exit codes (DESIGN.md §2).

Only the CLI modules print and exit. A command's result goes to stdout, logs and progress to
stderr; `--json` writes one JSON event per line on stdout, usage errors included. argparse
(stdlib) is enough for a handful of subcommands: the global options are on the top parser and,
without defaults, on each command's, so they work before or after it (`USES` says which a
command shows in its help); `envspec.toml` is looked for from the current folder up. A closed
pipe ends the command quietly (exit 141).

The review commands' modules are imported by their commands only: an environment command
or a fresh relock has no use for them (about 30 ms of imports).

`main` reads the environment once, as a snapshot every command is given and passes down (the
spec's `${VAR}`s, credentials, mirrors, build, git and uv environments, `$VIRTUAL_ENV`,
`NO_COLOR`, `COLUMNS`): nothing below reads `os.environ`. Every command, here or in `cli_lock`,
`cli_edit`, `cli_env`, `cli_bundle` and `cli_cache` (the last four imported only for their
commands, see `LIGHT`), is one function `(args, out, environ) -> exit code` in a `COMMANDS`
table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from envspec import __version__, cli_lock
from envspec.cli_lock import add_variant, project_spec, spec_targets
from envspec.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EnvspecError,
    Interrupted,
    UsageError,
)
from envspec.interrupt import Terminated, raise_terminated
from envspec.output import rel, target_help
from envspec.secret import redact
from envspec.targets import KNOWN, check_name, host_target

if TYPE_CHECKING:
    from envspec.model import Spec

Environ = Mapping[str, str]

CACHE_DIR_ENV = "ENVSPEC_CACHE_DIR"  # `--cache-dir` when the option is not given
# The add/remove, environment, cache and bundle commands' modules (apply, tomlkit, rich) are
# imported only when the command line may be one of theirs: an unchanged relock or `lock
# --check` imports neither the resolver, nor the review code, nor `envspec.apply`.
LIGHT = frozenset({"lock", "diff", "export", "why", "rules", "init"})

log = logging.getLogger("envspec")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit with its own code and format
        raise UsageError(message, hint=f"see '{self.prog} --help'")


class _Output:
    """Logs and progress to stderr; a command's result (`result`) to stdout; with --json,
    only JSON events, on stdout. `width` is the terminal's, for wrapping long lines."""

    def __init__(self, *, json_mode: bool, quiet: bool, width: int | None = None) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.width = width
        self.gone: list[TextIO] = []  # streams whose reader went away (`envspec add | head -1`)

    def say(self, text: str) -> None:
        if not self.quiet and not self.json_mode:
            self._print(text, sys.stderr)

    def failed(self, text: str) -> None:
        """A line of a failure the command reports without raising (a check that failed): on
        stderr also under -q, whose promise is "errors only" (not with --json, whose events
        carry it)."""
        if not self.json_mode:
            self._print(text, sys.stderr)

    def result(self, text: str) -> None:
        """The command's primary result: on stdout, also under -q (not with --json, whose
        events carry it)."""
        if not self.json_mode:
            self._print(text, sys.stdout)

    def event(self, kind: str, **data: Any) -> None:
        if self.json_mode:
            self._print(json.dumps({"event": kind, **data}, sort_keys=True), sys.stdout)

    def _print(self, text: str, stream: TextIO) -> None:
        # A reader that went away does not stop the command: it ends what it began (a spec
        # written and its locks not, were it stopped at the line between) and exits 141.
        if stream in self.gone:
            return
        try:
            print(text, file=stream, flush=stream is sys.stdout)
        except BrokenPipeError:
            self.gone.append(stream)
            _silence(stream)


def _absolute(value: str) -> Path:
    """A folder option made absolute against the current folder, as uv makes its own: uv is
    handed files under the cache from other folders (a PEP 751 file in the environment names
    the stored wheels), where a relative path would name files that are not there."""
    return Path(value).absolute()


# The global options: every command accepts them, before or after its name (as uv's), and
# shows in its --help the ones it uses (`USES`); the rest are accepted and ignored.
_GLOBALS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--project",),
        {
            "type": Path,
            "metavar": "DIR",
            "help": "the folder of envspec.toml (default: the nearest folder, from the current "
            "one up, that has one)",
        },
    ),
    (
        ("-v", "--verbose"),
        {
            "action": "count",
            "help": "more log lines on stderr; -vv for debugging (default: warnings and errors)",
        },
    ),
    (
        ("-q", "--quiet"),
        {"action": "store_true", "help": "errors only on stderr (default: off)"},
    ),
    (
        ("--json",),
        {"action": "store_true", "help": "one JSON event per line on stdout (default: off)"},
    ),
    (
        ("--offline",),
        {
            "action": "store_true",
            "help": "use only what is cached; never the network (default: off)",
        },
    ),
    (
        ("--cache-dir",),
        {
            "type": _absolute,
            "metavar": "DIR",
            "help": "envspec's cache, and uv's under it (default: $ENVSPEC_CACHE_DIR, else the "
            "user cache folder, ~/.cache/envspec on Linux)",
        },
    ),
)
_DEFAULTS = {"project": None, "verbose": 0, "quiet": False, "json": False, "offline": False}
_DEFAULTS["cache_dir"] = None
_ALL = frozenset(_DEFAULTS)
_READ = frozenset({"project", "verbose", "quiet", "json"})
_ENV = _READ | {"cache_dir"}
# Which global options each command uses (the others are hidden from its --help).
USES: dict[str, frozenset[str]] = {
    "lock": _ALL,
    "add": _ALL,
    "remove": _ALL,
    "sync": _ALL,
    "rollback": _ALL,
    "bundle": _ALL,
    "check": _ENV,
    "history": _ENV,
    "diff": _READ,
    "export": _READ,
    "why": _READ,
    "rules": _READ,
    "init": _READ,
    "cache": frozenset({"verbose", "quiet", "json", "cache_dir"}),
}
# Commands that look for envspec.toml from the current folder up (init writes one here).
_DISCOVERS = frozenset(USES) - {"init", "cache"}


def _add_globals(parser: argparse.ArgumentParser, uses: frozenset[str] | None) -> None:
    """The global options on `parser`: with their defaults on the top parser (`uses` None);
    on a command's, without defaults, so a value given before the command is kept."""
    for flags, given in _GLOBALS:
        options = dict(given)
        dest = flags[-1].lstrip("-").replace("-", "_")
        if uses is None:
            options["default"] = _DEFAULTS[dest]
        else:
            options["default"] = argparse.SUPPRESS
            if dest not in uses:
                options["help"] = argparse.SUPPRESS
        parser.add_argument(*flags, **options)


def _common(command: str) -> argparse.ArgumentParser:
    """The parent parser of `command`'s global options."""
    parent = _Parser(add_help=False)
    _add_globals(parent, USES[command])
    return parent


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; of the lock and review commands only when `command`,
    the command line's command word, is one of those (see `LIGHT`), of `lock` alone for
    `lock`, and of those and the commands of `command`'s own module for the others (see
    `HEAVY`)."""
    parser = _Parser(
        prog="envspec",
        description="Declared, locked, reviewable and reversible Python environments.",
        epilog=f"targets: {', '.join(KNOWN)}. Run 'envspec COMMAND --help' for a command's "
        "options.",
    )
    parser.add_argument("--version", action="version", version=f"envspec {__version__}")
    _add_globals(parser, None)
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )
    cli_lock.add_parsers(sub, _common)
    if command != "lock":  # the command run most (a fresh relock, `lock --check`): its own only
        _add_review_parsers(sub)
    if command not in LIGHT:
        for module in _heavy(command):
            module.add_parsers(sub, _common)
    return parser


def _add_review_parsers(sub: Any) -> None:
    diff = sub.add_parser("diff", parents=[_common("diff")], help="what changed in the locks")
    diff.add_argument(
        "old",
        nargs="?",
        metavar="REV|OLD",
        help="a git revision, or a lock file or folder (default: HEAD)",
    )
    diff.add_argument(
        "new",
        nargs="?",
        metavar="NEW",
        help="the lock file or folder to compare to (default: locks/ in the working tree)",
    )
    diff.add_argument(
        "--target",
        action="append",
        default=[],
        help=target_help("compare only this target (repeatable; default: all)"),
    )
    diff.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="text, markdown (a PR comment) or json (default: text)",
    )
    diff.add_argument("--exit-code", action="store_true", help="exit 1 when something changed")
    add_variant(diff, "compare only this accelerator variant's locks (default: all)")
    export = sub.add_parser(
        "export", parents=[_common("export")], help="a lock as requirements.txt"
    )
    export.add_argument(
        "--target",
        help=target_help("the target's lock (default: the only one, else this machine's)"),
    )
    export.add_argument("--phase", metavar="NAME", help="only this phase (default: all)")
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE (default: stdout)"
    )
    add_variant(export, "the accelerator variant's lock (default: the target's only one)")
    why = sub.add_parser("why", parents=[_common("why")], help="why a package is in the lock")
    why.add_argument("name", help="the package")
    why.add_argument(
        "--target",
        action="append",
        default=[],
        help=target_help("only this target (repeatable; default: every spec target)"),
    )
    add_variant(why, "only this accelerator variant's locks (default: all)")
    rules = sub.add_parser(
        "rules",
        parents=[_common("rules")],
        help="the compatibility rules in force, with their sources",
    )
    rules.add_argument("name", nargs="?", help="only the rules about this package (default: all)")
    add_variant(rules, "which locks record each rule: only this variant's (default: all)")
    init = sub.add_parser("init", parents=[_common("init")], help="write a starter envspec.toml")
    init.add_argument(
        "--from",
        dest="sources",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a requirements file; each becomes a phase (repeatable, in order)",
    )
    init.add_argument("--name", help="environment name (default: the folder's name)")
    init.add_argument(
        "--python-version",
        default="3.11",
        metavar="X.Y",
        help="Python version to lock for (default: 3.11)",
    )
    init.add_argument(
        "--target",
        action="append",
        default=[],
        help=target_help(
            "a target (repeatable; default: linux-x86_64, windows-x86_64, macos-arm64)"
        ),
    )


def cmd_diff(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.review import diff as review_diff
    from envspec.review.diff_format import render_markdown, render_text, to_json
    from envspec.review.locks import diff_sides

    before, after = diff_sides(
        args.project, args.old, args.new, args.target, environ=environ, variant=args.variant
    )
    diff = review_diff.diff_locks(
        before.locks, after.locks, old_label=before.label, new_label=after.label
    )
    if args.json:
        out.event("diff", **to_json(diff))
    elif not args.quiet:
        if args.format == "json":
            text = json.dumps(to_json(diff), indent=2, sort_keys=True) + "\n"
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

    spec = project_spec(args, environ)
    target = _export_target(spec, args.target, host_target())
    units = choose_units(spec, [target], args.variant)
    if len(units) > 1:
        hint = "variants: " + ", ".join(v for _, v in units if v)
        raise UsageError(
            f"target {target} has several variants: choose one", context="--variant", hint=hint
        )
    path, lock = load_target_lock(args.project, *units[0])
    phase = next((p for p in spec.phases if p.name == args.phase), None)
    if phase is not None and not phase.applies_to(lock.target):  # it said "unknown phase"
        raise UsageError(
            f"phase '{phase.name}' is not on {lock.target}",
            context="--phase",
            hint=f"it is on {', '.join(phase.targets or ())}; pass --target with one of them",
        )
    text = export_requirements(lock, phase=args.phase, source=rel(path, args.project))
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


def _export_target(spec: Spec, wanted: str | None, host: str | None) -> str:
    """`--target`, else the spec's only target, else this machine's when the spec locks it
    (as `sync` picks the lock of the interpreter it runs on)."""
    targets = spec_targets(spec, [wanted] if wanted else [])
    if len(targets) == 1:
        return targets[0]
    if host in targets:
        return host
    hint = "targets: " + ", ".join(targets)
    where = f" (this machine is {host})" if host else ""
    raise UsageError(
        f"the spec has several targets, none of them this machine's{where}: choose one",
        context="--target",
        hint=hint,
    )


def cmd_why(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.lockfile.status import choose_units
    from envspec.review import why as review_why
    from envspec.review.locks import load_target_lock, locks_dir

    spec = project_spec(args, environ)
    found = [
        load_target_lock(args.project, *unit)
        for unit in choose_units(spec, spec_targets(spec, args.target), args.variant)
    ]
    where = found[0][0] if len(found) == 1 else locks_dir(args.project)
    locks = {lock.label: lock for _, lock in found}
    report = review_why.why(locks, args.name, where=rel(where, args.project))
    out.result(review_why.render_text(report).rstrip("\n"))
    out.event("why", **review_why.to_json(report))
    return EXIT_OK


def cmd_rules(args: argparse.Namespace, out: _Output, environ: Environ) -> int:
    from envspec.compat import load_builtin_rules
    from envspec.lockfile import load_lock, lock_path
    from envspec.lockfile.status import choose_units
    from envspec.review import rules as review_rules

    path = args.project / "envspec.toml"
    spec = project_spec(args, environ) if path.exists() else None
    locks = {}
    for target, variant in choose_units(spec, spec.targets, args.variant) if spec else ():
        if lock_path(args.project, target, variant).exists():
            lock = load_lock(lock_path(args.project, target, variant))
            locks[lock.label] = lock
    listing = review_rules.list_rules(load_builtin_rules(), spec, locks, args.name)
    out.result(review_rules.render_text(listing).rstrip("\n"))
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
    files = [load_requirements(path, environ) for path in args.sources]
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
    "diff": cmd_diff,
    "export": cmd_export,
    "why": cmd_why,
    "rules": cmd_rules,
    "init": cmd_init,
    **cli_lock.COMMANDS,
}


# Which module of `_heavy` has which command, so that a command line imports only its own: a
# `sync` with nothing to do spent a fifth of its instructions importing the others (tomlkit,
# the bundle commands, packaging.metadata and email). tests/test_cli_surface.py checks it
# against the modules' own COMMANDS.
HEAVY = {
    "add": "cli_edit",
    "remove": "cli_edit",
    "sync": "cli_env",
    "check": "cli_env",
    "history": "cli_env",
    "rollback": "cli_env",
    "bundle": "cli_bundle",
    "cache": "cli_cache",
}


def _heavy(command: str | None) -> tuple[Any, ...]:
    """The modules of the commands not in `LIGHT`: only `command`'s when it is one of them
    (imported by name: `cli` is the top layer, so no edge it adds can break the layers)."""
    names = [HEAVY[command]] if command in HEAVY else list(dict.fromkeys(HEAVY.values()))
    return tuple(importlib.import_module(f"envspec.{name}") for name in names)


def _command(name: str) -> Callable[[argparse.Namespace, _Output, Environ], int]:
    if name in COMMANDS:
        return COMMANDS[name]
    found: Callable[[argparse.Namespace, _Output, Environ], int] = {
        key: value for module in _heavy(name) for key, value in module.COMMANDS.items()
    }[name]
    return found


def _command_word(words: Sequence[str]) -> str | None:
    """The command in a command line whose global options may come first (`--project DIR`,
    `--cache-dir DIR` take a value); None when there is none."""
    taking = {"--project", "--cache-dir"}
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--":
            return None
        elif word in taking:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


class _RedactingFormatter(logging.Formatter):
    """Every log line without a URL's credentials, whatever a module quoted in it."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.ERROR
        if quiet
        else logging.DEBUG
        if verbose > 1
        else (logging.INFO if verbose else logging.WARNING)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (DESIGN.md §2). A closed stdout or stderr (`envspec
    why x | head -1`) gets no more output, and the command ends what it began (`_Output`), then
    exits quietly with 141, the code of a process SIGPIPE ended, as a C tool piped into `head`
    (and like 130/143 for SIGINT/SIGTERM)."""
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, not at exit, where a closed pipe could only be ignored noisily
        return code
    except BrokenPipeError:
        _silence_output()
        return EXIT_PIPE


EXIT_PIPE = 128 + 13  # SIGPIPE


def run() -> int:
    """The `envspec` script's and `python -m envspec`'s entry: `main` with the cyclic garbage
    collector off, then the heap frozen for the process's end. A lock keeps nearly every object
    it makes until it ends: the collections over them found little garbage and cost ~0.15 s of
    a 2.5 s offline seed-stack lock (timed by `gc.callbacks`), most of it one pass over the
    whole heap as each target's resolution ends; without them the peak memory of that lock,
    online and offline, is the same (76 and 108 MiB). The collections the interpreter runs
    while it shuts down took ~0.4 s more; frozen objects are not collected, only freed. Not in
    `main`, which tests call in-process again and again (the library keeps the collector on
    and only collects less often while it resolves, see `resolve.collect`)."""
    gc.disable()
    code = main()
    # the command is over: a SIGTERM now ends the process as by default, not with a
    # traceback from `entry`'s handler
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()
    if code in _INTERRUPTED:
        # Stopped by a signal, reported, and unwound: a download or prefetch thread stalled
        # on a read is not joined at exit (it would be until its timeout); uv stops at once too.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


_INTERRUPTED = frozenset({128 + signal.SIGINT, 128 + signal.SIGTERM})


def _silence_output() -> None:
    """Point stdout and stderr at the null device: whatever is still buffered for a reader
    that has gone is dropped, not reported by Python at exit."""
    for stream in (sys.stdout, sys.stderr):
        _silence(stream)


def _silence(stream: TextIO) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    # a replaced stream (pytest's capture) has no descriptor
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _main(argv: list[str]) -> int:
    environ = dict(os.environ)  # the snapshot (see the module docstring)
    words = argv[: argv.index("--")] if "--" in argv else argv
    out = _Output(json_mode="--json" in words, quiet=False)  # usage errors as events too
    try:
        args = build_parser(_command_word(words)).parse_args(argv)
        if args.project is None:
            args.project = _find_project(_cwd()) if args.command in _DISCOVERS else Path(".")
        if args.cache_dir is None and environ.get(CACHE_DIR_ENV):  # as uv's UV_CACHE_DIR
            args.cache_dir = _absolute(environ[CACHE_DIR_ENV])
        out = _Output(json_mode=args.json, quiet=args.quiet, width=_width(environ))
        _configure_logging(args.verbose, args.quiet)
        with _terminated_as_interrupt():
            code = _command(args.command)(args, out, environ)
        return EXIT_PIPE if out.gone else code
    except KeyboardInterrupt as exc:  # not stopped in an installer (that is `Interrupted`)
        number = exc.signal_number if isinstance(exc, Terminated) else signal.SIGINT
        name = signal.Signals(number).name
        return _report(out, Interrupted(f"interrupted by {name}", signal_number=number))
    except EnvspecError as exc:
        return _report(out, exc)


def _report(out: _Output, exc: EnvspecError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr)
    out.event("error", message=str(exc), hint=exc.hint, exit_code=exc.exit_code)
    return exc.exit_code


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises `Terminated` (from the main thread only, where a
    handler can be set; the previous handler is put back after, for tests that call `main`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cwd() -> Path:
    try:
        return Path.cwd()
    except FileNotFoundError as exc:  # a folder removed under the shell that is in it
        raise UsageError(
            "the current folder no longer exists",
            hint="cd into the project, or pass --project DIR",
        ) from exc


def _find_project(start: Path) -> Path:
    """The nearest folder from `start` up that holds envspec.toml, as uv finds its project
    (relative to `start`, so messages name `../envspec.toml`); `start` itself when none does,
    whose missing spec the command then reports."""
    for folder in (start, *start.parents):
        if (folder / "envspec.toml").is_file():
            return Path(os.path.relpath(folder, start))
    return Path(".")


def _width(environ: Environ) -> int | None:
    """Where long lines wrap: $COLUMNS, else the terminal's width; None off a terminal
    (a file or a pipe gets whole lines, for grep)."""
    with contextlib.suppress(ValueError):
        return max(int(environ.get("COLUMNS", "")), 20)
    for stream in (sys.stderr, sys.stdout):
        with contextlib.suppress(OSError, ValueError):
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns
    return None
