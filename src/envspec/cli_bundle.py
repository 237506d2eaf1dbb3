"""`envspec bundle DIR` and `envspec bundle DIR --check`: arguments, output and exit codes; the
work is `commands.bundle`. Kept apart from `cli.py`, which calls `add_parsers` and includes
`COMMANDS`; like the lock and review commands, each takes the environment snapshot
`cli.main` took (credentials, mirrors, the spec's `${VAR}`s).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from envspec.apply.journal import bundle_lock
from envspec.apply.store import Downloader, Files, store_at
from envspec.commands.bundle import check_bundle, load_sources, write_bundle
from envspec.errors import EXIT_OK, ApplyError, UsageError
from envspec.lockfile.status import choose_units
from envspec.output import Out, plural, seconds, size_text, target_help
from envspec.render import CliReporter
from envspec.spec import load_spec
from envspec.targets import choose_targets


def add_parsers(sub: Any, common: Callable[[str], argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bundle",
        parents=[common("bundle")],
        help="write a static index of the locked files, to install from without the indexes",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the bundle's folder")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        help=target_help("only this target's lock (repeatable; default: every spec target)"),
    )
    p.add_argument(
        "--phase", action="append", default=[], metavar="NAME", help="only this phase's files"
    )
    p.add_argument(
        "--check", action="store_true", help="verify every file; exit 1 naming what is wrong"
    )
    p.add_argument(
        "--variant", default=None, metavar="NAME", help="only this accelerator variant's locks"
    )
    p.add_argument(
        "--lock-timeout",
        type=seconds(allow_zero=True),
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another envspec bundle writing DIR (default: 60)",
    )


def cmd_bundle(args: argparse.Namespace, out: Out, environ: Mapping[str, str]) -> int:
    if args.check:
        return _check(args, out)
    spec = load_spec(args.project / "envspec.toml", environ)
    units = choose_units(spec, choose_targets(spec.targets, args.target), args.variant)
    sources = load_sources(args.project, units)

    def downloader() -> Downloader:
        from envspec.index.download import LockedFiles  # HTTP code: only when downloading

        return LockedFiles(spec.indexes, environ)

    cache = Path(args.cache_dir) if args.cache_dir is not None else None
    files = Files(store=store_at(cache), downloader=downloader, offline=args.offline)
    with bundle_lock(args.dir, files.store.root.parent, args.lock_timeout):
        made = write_bundle(args.dir, sources, args.phase, files, CliReporter(out))
    manifest = made.manifest
    targets = [lock.target for lock in manifest.locks]
    out.say(
        f"Bundled {plural(len(manifest.files), 'file')} ({size_text(made.size)}) for "
        f"{', '.join(targets)} in {args.dir}: {made.added} added "
        f"({size_text(made.added_bytes)}), {made.removed} removed"
    )
    for left in manifest.left_out:
        out.say(f"  not bundled: {left.name} {left.version} ({left.lock}): {left.reason}")
    out.event(
        "bundle",
        path=str(args.dir),
        targets=targets,
        files=len(manifest.files),
        bytes=made.size,
        added=made.added,
        added_bytes=made.added_bytes,
        removed=made.removed,
        left_out=[
            {"name": o.name, "version": o.version, "lock": o.lock} for o in manifest.left_out
        ],
    )
    return EXIT_OK


def _check(args: argparse.Namespace, out: Out) -> int:
    if args.target or args.phase or args.variant:
        raise UsageError(
            "--check verifies the whole bundle: it takes no --target, --phase or --variant",
            context="--check",
        )
    checked = check_bundle(args.dir)
    files = checked.manifest.files
    size = sum(f.size for f in files)
    out.event(
        "bundle_checked",
        path=str(args.dir),
        files=len(files),
        bytes=size,
        ok=not checked.problems,
        problems=list(checked.problems),
    )
    if checked.problems:
        for problem in checked.problems:
            out.say(f"  {problem}")
        count = len(checked.problems)
        raise ApplyError(
            f"{plural(count, 'problem')} in the bundle: {checked.problems[0]}"
            + (f" and {count - 1} more (above)" if count > 1 else ""),
            context=str(args.dir),
            hint="run 'envspec bundle DIR' in the project again: it copies what is wrong",
        )
    out.say(f"Bundle {args.dir}: {plural(len(files), 'file')} ({size_text(size)}), all as recorded")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Any, Mapping[str, str]], int]] = {
    "bundle": cmd_bundle,
}
