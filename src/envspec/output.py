"""What every command's output is written through, and the few words it shares, kept apart
from `render` (apply's reporter, which imports apply's events) so that `lock` and the review
commands import no apply code: the `Out` protocol (the CLI's `_Output`), plurals, sizes, paths
relative to the project, option help naming the valid targets, and the type of a timeout
option (`seconds`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from envspec.targets import KNOWN


class Out(Protocol):
    json_mode: bool
    quiet: bool
    width: int | None  # where long lines wrap; None: not on a terminal, no wrapping

    def say(self, text: str) -> None: ...
    def failed(self, text: str) -> None: ...  # `say`, also under -q: a failure not raised
    def result(self, text: str) -> None: ...
    def event(self, kind: str, **data: Any) -> None: ...


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def size_text(count: int) -> str:
    """A byte count for people: `512 B`, `14.2 kB`, `2.5 GB` (powers of 1000, as rich's)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def rel(path: Path, base: Path) -> str:
    """`path` relative to `base` (the project) where it is inside it, for messages."""
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def target_help(what: str) -> str:
    """An option's help naming the valid targets."""
    return f"{what}; one of {', '.join(KNOWN)}"


def seconds(*, allow_zero: bool) -> Callable[[str], float]:
    """A timeout option's value: a finite number of seconds, above 0 (or 0 too, for waiting
    not at all). `nan` and `inf` were taken and failed deep inside, with a traceback."""
    least = "0 or more" if allow_zero else "more than 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds ({least})")
        return value

    return parse
