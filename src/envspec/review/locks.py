"""Finding and loading the locks a review command works on: a project's ``locks/`` folder, a
folder or a single lock file given on the command line, or the texts git gave for a revision.

Locks are keyed by the target recorded in them (``[tool.envspec] target``), and its variant
when it has one (``linux-x86_64.cu121``, `Lock.label`), not by file name, so a renamed file
still compares with its target.

Errors: ``no lock files`` (`StaleLockError`, exit 3) for an empty or absent folder where locks
were expected; ``no such lock file or folder`` (`UsageError`, exit 2) for a path that does not
exist; ``two locks for target 'x': a.toml and b.toml`` (`LockFileError`, exit 2); and every
error of `lockfile.parse_lock`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envspec.errors import LockFileError, StaleLockError, UsageError, did_you_mean
from envspec.lockfile import load_lock, lock_path, parse_lock
from envspec.model import Lock
from envspec.review.gitrev import lock_texts_at
from envspec.targets import KNOWN

PATTERN = "pylock.*.toml"


def locks_dir(project: Path) -> Path:
    return lock_path(project, "x").parent


def load_lock_folder(folder: Path, *, required: bool = False) -> dict[str, Lock]:
    """Every ``pylock.*.toml`` in `folder` by target; none (or no folder) is `{}` unless
    `required`."""
    files = sorted(folder.glob(PATTERN)) if folder.is_dir() else []
    if required and not files:
        raise StaleLockError(
            "no lock files", context=str(folder), hint="run 'envspec lock' to write them"
        )
    return _by_target({str(path): load_lock(path) for path in files})


def load_lock_path(path: Path) -> dict[str, Lock]:
    """The locks at a path given by the user: one lock file, or a folder of them."""
    if path.is_dir():
        return load_lock_folder(path, required=True)
    if path.is_file():
        return _by_target({str(path): load_lock(path)})
    raise UsageError(
        "no such lock file or folder", context=str(path), hint="give a lock file or a folder"
    )


def parse_lock_texts(texts: Mapping[str, str], *, where: str) -> dict[str, Lock]:
    """Locks from texts keyed by file name (as git shows them); `where` prefixes their paths."""
    return _by_target(
        {
            f"{where}/{name}": parse_lock(text, path=f"{where}/{name}")
            for name, text in texts.items()
        }
    )


def load_target_lock(project: Path, target: str, variant: str | None = None) -> tuple[Path, Lock]:
    """The project's lock for `target` (and `variant`) and its path; a missing lock, or a
    file holding another target's (or variant's) lock, is a `StaleLockError`, as `lock
    --check` has it: export and why read another target's pins from it without a word."""
    path = lock_path(project, target, variant)
    lock = load_lock(path)
    if (lock.target, lock.variant) != (target, variant):
        raise StaleLockError(
            f"the file holds the lock of {lock.label}",
            context=str(path),
            hint="run 'envspec lock' to write this target's lock",
        )
    return path, lock


def _by_target(locks: Mapping[str, Lock]) -> dict[str, Lock]:
    out: dict[str, Lock] = {}
    seen: dict[str, str] = {}
    for where, lock in sorted(locks.items()):
        if lock.label in out:
            raise LockFileError(
                f"two locks for target '{lock.label}': {seen[lock.label]} and {where}",
                hint="keep one lock file per target",
            )
        out[lock.label] = lock
        seen[lock.label] = where
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Side:
    """One side of a diff: its locks and how to name it."""

    label: str
    locks: Mapping[str, Lock]


def diff_sides(
    project: Path,
    old: str | None,
    new: str | None,
    targets: Sequence[str] = (),
    *,
    environ: Mapping[str, str],
    variant: str | None = None,
) -> tuple[Side, Side]:
    """The two sides `envspec diff [OLD [NEW]]` compares (`environ`: git's environment).

    No argument: the project's locks at ``HEAD`` against its ``locks/`` folder. One: OLD is a
    lock file or folder when that path exists, else a git revision. Two: two paths. When
    `targets` are given (or a side is one lock file) only those targets are compared; with
    `variant`, only that accelerator variant's locks.
    """
    if new is not None:
        assert old is not None
        before = Side(label=old, locks=load_lock_path(Path(old)))
        after = Side(label=new, locks=load_lock_path(Path(new)))
    else:
        folder = locks_dir(project)
        after = Side(label="working tree", locks=load_lock_folder(folder))
        if old is not None and Path(old).exists():
            before = Side(label=old, locks=load_lock_path(Path(old)))
        else:
            rev = old or "HEAD"
            commit, texts = lock_texts_at(project, rev, environ)
            before = Side(
                label=f"{rev} ({commit[:10]})", locks=parse_lock_texts(texts, where=f"{rev}:locks")
            )
        if not before.locks and not after.locks:
            raise StaleLockError(
                "no lock files", context=str(folder), hint="run 'envspec lock' to write them"
            )
    every = [*before.locks.values(), *after.locks.values()]
    _check_targets(targets, {lock.target for lock in every})
    if variant is not None:
        _check_variant(variant, {lock.variant for lock in every if lock.variant})
        before = Side(label=before.label, locks=_of_variant(before.locks, variant))
        after = Side(label=after.label, locks=_of_variant(after.locks, variant))
    wanted = set(targets) or _single_file_targets(old, new, before, after)
    if wanted:
        before = Side(label=before.label, locks=_only(before.locks, wanted))
        after = Side(label=after.label, locks=_only(after.locks, wanted))
    return before, after


def _check_variant(wanted: str, present: set[str]) -> None:
    if wanted not in present:
        hint = did_you_mean(wanted, sorted(present)) or (
            "variants in the locks: " + ", ".join(sorted(present))
            if present
            else "no lock is a variant's"
        )
        raise UsageError(f"unknown variant '{wanted}'", context="--variant", hint=hint)


def _of_variant(locks: Mapping[str, Lock], variant: str) -> dict[str, Lock]:
    return {key: lock for key, lock in locks.items() if lock.variant == variant}


def _check_targets(wanted: Sequence[str], present: set[str]) -> None:
    for name in wanted:
        if name not in present:
            locked = "targets in the locks: " + ", ".join(sorted(present))
            if name in KNOWN:  # a real target neither side has a lock of
                raise UsageError(
                    f"no lock of target '{name}' on either side", context="--target", hint=locked
                )
            hint = did_you_mean(name, sorted(present)) or locked
            raise UsageError(f"unknown target '{name}'", context="--target", hint=hint)


def _single_file_targets(old: str | None, new: str | None, *sides: Side) -> set[str]:
    wanted: set[str] = set()
    for arg, side in zip((old, new), sides, strict=True):
        if arg is not None and Path(arg).is_file():
            wanted |= {lock.target for lock in side.locks.values()}
    return wanted


def _only(locks: Mapping[str, Lock], targets: set[str]) -> dict[str, Lock]:
    return {key: lock for key, lock in locks.items() if lock.target in targets}
