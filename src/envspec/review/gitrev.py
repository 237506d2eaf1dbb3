"""Lock files as they were at a git revision, read with ``git`` (read-only).

`envspec diff REV` compares the working tree's locks with those committed at REV. git's object
store has no stable library interface in the standard library (and pulling in a git library
for two read-only commands is not worth it), so this module runs the ``git`` binary, through
`envspec.proc` like every process envspec starts. It never writes to the repository:
``rev-parse``, ``ls-tree`` and ``show`` only.

Errors (`UsageError`, exit 2), with the project folder as context:
``not a git repository`` · ``unknown revision 'nope'`` · ``the repository has no commits yet:
there is no revision 'HEAD' to compare with`` · ``git is not installed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from envspec import proc
from envspec.errors import EnvspecError, UsageError

LOCKS = "locks"
_TIMEOUT = 60


def _git(cwd: Path, environ: Mapping[str, str], *args: str) -> proc.Finished:
    """Run one read-only git command in `cwd`, in `environ` (the CLI's snapshot)."""
    try:
        return proc.run(
            ["git", *args],
            cwd=cwd,
            timeout=_TIMEOUT,
            # No pager, and messages in one language whatever the user's locale.
            env={**environ, "GIT_PAGER": "cat", "LC_ALL": "C"},
        )
    except proc.CannotStart as exc:
        raise UsageError(
            "git is not installed", context=str(cwd), hint="install git, or compare lock folders"
        ) from exc
    except proc.TimedOut as exc:
        raise exc.with_context(str(cwd)) from exc


def resolve_revision(project: Path, rev: str, environ: Mapping[str, str]) -> str:
    """The commit id `rev` names in the repository holding `project`."""
    if not project.is_dir():
        raise UsageError("not a git repository", context=str(project))
    inside = _git(project, environ, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise UsageError(
            "not a git repository",
            context=str(project),
            hint="compare two lock folders or files instead: envspec diff OLD NEW",
        )
    found = _commit(project, environ, rev)
    if found.returncode != 0 and _commit(project, environ, "HEAD").returncode != 0:
        raise UsageError(  # an unborn HEAD: `git init` and nothing committed
            f"the repository has no commits yet: there is no revision '{rev}' to compare with",
            context=str(project),
            hint="commit locks/ first, or compare two lock folders or files: envspec diff OLD NEW",
        )
    if found.returncode != 0:
        raise UsageError(
            f"unknown revision '{rev}'",
            context=str(project),
            hint="give a commit, branch or tag, e.g. HEAD~1 or main",
        )
    return found.stdout.strip()


def _commit(project: Path, environ: Mapping[str, str], rev: str) -> proc.Finished:
    verify = ("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    return _git(project, environ, *verify)


def lock_texts_at(
    project: Path, rev: str, environ: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The commit `rev` names, and the text of each ``locks/pylock.*.toml`` of `project` at it
    by file name. A revision without a ``locks/`` folder has no locks (every target is then
    added)."""
    commit = resolve_revision(project, rev, environ)
    listed = _git(project, environ, "ls-tree", "--name-only", commit, f"{LOCKS}/")
    if listed.returncode != 0:
        raise EnvspecError(f"git ls-tree failed: {_tail(listed)}", context=str(project))
    out: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        name = line.rsplit("/", 1)[-1]
        if not (name.startswith("pylock.") and name.endswith(".toml")):
            continue
        shown = _git(project, environ, "show", f"{commit}:./{LOCKS}/{name}")
        if shown.returncode != 0:
            raise EnvspecError(f"git show failed: {_tail(shown)}", context=str(project))
        out[name] = shown.stdout
    return commit, out


def _tail(finished: proc.Finished) -> str:
    return finished.tail(1) or "no output"
