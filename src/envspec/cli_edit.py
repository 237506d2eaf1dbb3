"""`envspec add` and `envspec remove`: edit `envspec.toml` (`spec.edit`, comments and layout
kept), check the result as a spec, relock every target keeping the other pins (`cli_lock.relock`,
through `commands.lock`), and only once every target has resolved write the spec, then the
locks: a failed relock leaves `envspec.toml` and `locks/` as they were. `--sync` then installs
through the `sync` command itself (`cli_env.cmd_sync`, with its defaults).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from envspec import cli_env
from envspec.atomic import write_atomic
from envspec.cli_lock import project_spec, relock
from envspec.errors import EXIT_OK, UsageError, WriteError
from envspec.output import Out
from envspec.spec import load_spec, parse_spec
from envspec.spec.edit import Edit, add_requirements, remove_requirements

Environ = Mapping[str, str]


def add_parsers(sub: Any, common: Callable[[str], argparse.ArgumentParser]) -> None:
    add = sub.add_parser(
        "add", parents=[common("add")], help="add requirements to envspec.toml and relock"
    )
    add.add_argument("requirements", nargs="*", metavar="REQ", help="PEP 508 requirements")
    add.add_argument(
        "-r",
        "--requirements",
        dest="files",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="add the requirements of this requirements file too (repeatable; its lines only: "
        "its index and build options are refused)",
    )
    add.add_argument(
        "--phase",
        metavar="NAME",
        help="the phase to add to (default: the phase that already requires the package, "
        "else one routed to --index, else the last phase)",
    )
    add.add_argument(
        "--index",
        metavar="NAME",
        help="take the packages from this spec index: a phase routed to it, or a new one "
        "(default: the phase's routing)",
    )
    remove = sub.add_parser(
        "remove", parents=[common("remove")], help="remove packages from envspec.toml and relock"
    )
    remove.add_argument("names", nargs="+", metavar="NAME", help="the packages to remove")
    remove.add_argument(
        "--phase", metavar="NAME", help="remove only from this phase (default: every phase)"
    )
    for parser in (add, remove):
        parser.add_argument(
            "--sync", action="store_true", help="then install the new locks, as 'envspec sync'"
        )
        parser.add_argument(
            "--python",
            type=Path,
            default=None,
            metavar="PATH",
            help="with --sync: the interpreter or environment folder (default: as 'envspec sync')",
        )


EDIT_WAIT = 60.0  # seconds an add or remove waits for another one on the same spec


@contextlib.contextmanager
def _editing(args: argparse.Namespace) -> Iterator[None]:
    """One add or remove at a time per spec, from reading it to writing it and its locks."""
    from envspec.apply.journal import edit_lock
    from envspec.index.cache import default_root

    with edit_lock(args.project, args.cache_dir or default_root(), EDIT_WAIT):
        yield


def cmd_add(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    if not args.requirements and not args.files:
        raise UsageError("nothing to add", hint="name requirements, or -r FILE")
    with _editing(args):
        return _add(args, out, environ)


def _add(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    from envspec.review.reqfile import load_requirements, requirement_lines

    spec = load_spec(args.project / "envspec.toml", environ, empty_phases=True)
    urls = [index.location.secret for index in spec.indexes]
    requirements = list(args.requirements)
    for path in args.files:
        loaded = load_requirements(path, environ, empty_hint="")
        requirements += requirement_lines(loaded, urls, environ)
    text = _spec_text(args.project)
    edit = add_requirements(spec, text, requirements, phase=args.phase, index=args.index)
    return _apply(args, out, text, edit, environ)


def cmd_remove(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    with _editing(args):
        return _remove(args, out, environ)


def _remove(args: argparse.Namespace, out: Out, environ: Environ) -> int:
    spec = project_spec(args, environ)
    text = _spec_text(args.project)
    edit = remove_requirements(spec, text, args.names, phase=args.phase)
    return _apply(args, out, text, edit, environ)


def _apply(args: argparse.Namespace, out: Out, before: str, edit: Edit, environ: Environ) -> int:
    """Relock for `edit` of the spec's text `before`; write the spec, then the locks. When a
    lock cannot be written (or an interrupt comes between), the spec gets `before` back."""
    from envspec.lockfile.status import lock_status

    path = args.project / "envspec.toml"
    spec = parse_spec(edit.text, filename=str(path), environ=environ)
    statuses = lock_status(spec, args.project, list(spec.targets))
    todo = [s for s in statuses if s.state != "fresh"]
    written = []

    def write_spec() -> None:
        _write_spec(path, edit.text)
        written.append(path)
        for change in edit.changes:
            out.say(f"envspec.toml: {change}")
        out.event("edited", path=str(path), command=args.command, changes=list(edit.changes))

    if todo:
        try:
            relock(args, out, spec, statuses, todo, environ=environ, before_write=write_spec)
        except BaseException:
            if written:
                with contextlib.suppress(WriteError):  # the first error is the one told
                    _write_spec(path, before)
            raise
    else:  # nothing changed that a lock records ("already in phase ...")
        write_spec()
    if args.sync:
        return cli_env.cmd_sync(_sync_args(args), out, environ)
    return EXIT_OK


def _write_spec(path: Path, text: str) -> None:
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise WriteError(f"cannot write the spec: {exc.strerror}", context=str(path)) from exc


def _spec_text(project: Path) -> str:
    # the spec was just loaded from this file: reading it again can only fail in a race
    return (project / "envspec.toml").read_text(encoding="utf-8")


def _sync_args(args: argparse.Namespace) -> argparse.Namespace:
    """`envspec sync`'s arguments at their defaults, with this command's global options."""
    parser = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers(dest="command")
    cli_env.add_parsers(sub, lambda _name: argparse.ArgumentParser(add_help=False))
    synced = parser.parse_args(["sync"])
    for name in ("project", "verbose", "quiet", "json", "offline", "cache_dir", "python"):
        setattr(synced, name, getattr(args, name))
    return synced


COMMANDS: dict[str, Callable[[argparse.Namespace, Out, Environ], int]] = {
    "add": cmd_add,
    "remove": cmd_remove,
}
