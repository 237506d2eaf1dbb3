"""`envspec cache prune`: arguments, output and exit codes; the work is `apply.prune`.

Kept apart from `cli.py` and `cli_env.py` (the lock and the environment commands); `cli`
calls `add_parsers` and includes `COMMANDS`, whose commands take the CLI's environment
snapshot like every other (pruning needs nothing of it: the store is under `--cache-dir`, else
the user cache folder `platformdirs` names).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from envspec.apply.prune import prune
from envspec.apply.store import store_at
from envspec.errors import EXIT_OK, UsageError
from envspec.output import Out, plural, size_text

DEFAULT_DAYS = 30.0
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?)b?", re.IGNORECASE)
_SIZE_HINT = "give bytes, or a number with a unit: 500M, 10G, 2GiB"


def add_parsers(sub: Any, common: Callable[[str], argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cache",
        parents=[common("cache")],
        help="prune the artifact store (files syncs downloaded)",
    )
    p.add_argument("action", choices=["prune"], help="what to do with the cache")
    p.add_argument(
        "--max-size",
        default=None,
        metavar="SIZE",
        help="then remove the least recently used files until the store fits (e.g. 10G; "
        "default: no limit)",
    )
    p.add_argument(
        "--older-than",
        default=None,
        metavar="DAYS",
        help=f"remove files no sync used for DAYS days (default {DEFAULT_DAYS:g})",
    )


def parse_size(text: str) -> int:
    """`10G` → 10_000_000_000, `2GiB` → 2 * 1024**3, `512` → 512."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"'{text}' is not a size", context="--max-size", hint=_SIZE_HINT)
    power = " kmgt".index(match[2].lower() or " ")
    return int(float(match[1]) * (1024 if match[3] else 1000) ** power)


def parse_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:  # also refuses nan
        raise UsageError(
            f"'{text}' is not a number of days", context="--older-than", hint="give e.g. 30 or 0.5"
        )
    return days


def cmd_cache(args: argparse.Namespace, out: Out, environ: Mapping[str, str]) -> int:
    max_size = parse_size(args.max_size) if args.max_size is not None else None
    days = parse_days(args.older_than) if args.older_than is not None else DEFAULT_DAYS
    store = store_at(Path(args.cache_dir) if args.cache_dir is not None else None)
    done = prune(store, older_than=days * 86400, max_size=max_size, now=time.time())
    partial = f" and {plural(done.partial, 'partial download')}" if done.partial else ""
    out.say(
        f"Removed {plural(done.removed, 'file')} ({size_text(done.freed)}){partial} from "
        f"{store.root}; kept {plural(done.kept, 'file')} ({size_text(done.kept_bytes)})."
    )
    out.event(
        "cache_pruned",
        path=str(store.root),
        removed=done.removed,
        freed=done.freed,
        partial=done.partial,
        kept=done.kept,
        kept_bytes=done.kept_bytes,
    )
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, Out, Mapping[str, str]], int]] = {
    "cache": cmd_cache
}
