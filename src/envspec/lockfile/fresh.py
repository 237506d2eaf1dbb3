"""The fresh-locks memo: a check that found every lock fresh is not made again for the same
spec, locks and code.

An unchanged relock and `lock --check` ask one question, whether each lock is fresh, and the
answer is a function of the spec's bytes, the ``${VAR}``s it names, the locks' bytes and the
code that compares them (`status`). Comparing is cheap; importing what compares (the model,
`packaging`, the spec parser: ~100 ms) was most of the command. When a check finds every lock
it was asked about fresh and logs no warning, the memo records the digests of what it read; a
later check whose inputs have the same digests gets the same answer from the memo, without
those imports. Anything else (a changed byte of the spec or of a lock, a lock gone, a variable
set differently, other code, `--upgrade`) runs the full check, which reports what it always
did: the memo only skips a check whose answer it already knows.

What was read is taken as a `Snapshot` before the check and again before the memo is written;
the memo is written only when both agree, so a file that changed while the check read it is
never recorded as fresh.

Layout: ``<cache>/v1/fresh/<sha256 of the question>.json``. The question is the spec's absolute
path, the project folder as given, the targets and the variant asked for; the entry holds
``{"version", "code", "spec", "variables", "locks": [[target, variant, path, sha256]]}``.
``code`` is `memo.code_stamp` (the envspec and packaging installs, each file's path, size and
modification time, and Python's version); ``variables`` holds digests, not values: they may be
secrets.
A memo that cannot be read is a miss; one that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envspec.lockfile.memo import code_stamp
from envspec.secret import variables

FORMAT = 1
SPEC_FILE = "envspec.toml"

log = logging.getLogger("envspec")


@dataclass(frozen=True, kw_only=True, slots=True)
class Question:
    """What a check is asked: the locks of `targets` (every spec target when empty) and
    `variant` (every variant when None) in the project at `project`."""

    project: Path
    targets: tuple[str, ...]
    variant: str | None

    @property
    def spec_path(self) -> Path:
        return self.project / SPEC_FILE

    @property
    def key(self) -> str:
        text = json.dumps(
            [os.path.abspath(self.spec_path), str(self.project), self.targets, self.variant]
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class FreshLock:
    """A lock the memo says is fresh."""

    target: str
    variant: str | None
    path: Path

    @property
    def label(self) -> str:
        """The target, and its variant when it has one (as `TargetStatus.label`)."""
        return f"{self.target}.{self.variant}" if self.variant else self.target


@dataclass(frozen=True, kw_only=True, slots=True)
class Snapshot:
    """The digests of what a check reads: the spec, its variables, the project's locks."""

    spec: str
    variables: tuple[tuple[str, str | None], ...]  # name → sha256 of its value; None: unset
    locks: Mapping[str, str]  # a lock's path → sha256 of its bytes


def load_snapshot(question: Question, environ: Mapping[str, str]) -> Snapshot | None:
    """The digests of the spec and of every ``locks/pylock.*.toml``; None when the spec cannot
    be read (the full check reports it)."""
    try:
        data = question.spec_path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    folder = question.project / "locks"
    locks = {}
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    for name in names:
        if name.startswith("pylock.") and name.endswith(".toml"):
            path = folder / name
            try:
                locks[str(path)] = _sha256(path.read_bytes())
            except OSError:
                continue
    found = tuple(
        (name, _sha256(environ[name].encode()) if name in environ else None)
        for name in variables(text)
    )
    return Snapshot(spec=_sha256(data), variables=found, locks=locks)


def load_fresh(folder: Path, question: Question, snapshot: Snapshot) -> list[FreshLock] | None:
    """The locks a previous check found fresh for the same question, spec, variables, locks
    and code; None when the memo has no such answer."""
    code = code_stamp()
    entry = folder / f"{question.key}.json"
    try:
        memo = json.loads(entry.read_bytes())
        if (
            not code
            or memo["version"] != FORMAT
            or memo["code"] != code
            or memo["spec"] != snapshot.spec
            or [tuple(pair) for pair in memo["variables"]] != list(snapshot.variables)
        ):
            return None
        found = []
        for target, variant, path, digest in memo["locks"]:
            if snapshot.locks.get(path) != digest:
                return None
            found.append(FreshLock(target=target, variant=variant, path=Path(path)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.debug("%s: fresh-locks memo ignored: %s", entry, exc)
        return None
    return found or None


def dump_fresh(
    folder: Path,
    question: Question,
    environ: Mapping[str, str],
    before: Snapshot,
    fresh: Sequence[FreshLock],
) -> None:
    """Record that every lock in `fresh` was found fresh by a check that read what `before`
    describes, unless the files changed since (a snapshot taken now differs)."""
    code = code_stamp()
    after = load_snapshot(question, environ)
    if not code or not fresh or after is None or after.spec != before.spec:
        return
    if after.variables != before.variables:
        return
    locks = []
    for lock in fresh:
        digest = before.locks.get(str(lock.path))
        if digest is None or after.locks.get(str(lock.path)) != digest:
            return
        locks.append([lock.target, lock.variant, str(lock.path), digest])
    memo = {
        "version": FORMAT,
        "code": code,
        "spec": before.spec,
        "variables": [list(pair) for pair in before.variables],
        "locks": locks,
    }
    from envspec.atomic import write_atomic  # here: a hit needs no tempfile, no shutil

    try:
        write_atomic(folder / f"{question.key}.json", json.dumps(memo).encode())
    except OSError as exc:
        log.debug("%s: fresh-locks memo not written: %s", folder, exc)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
