"""Git sources: a requested revision turned into a commit, and a checkout of that commit.

`git ls-remote` answers which commit a branch, a tag or HEAD names without fetching anything;
a full 40-hex commit id needs no question at all. A checkout is a shallow fetch of exactly
that commit into a fresh repository, moved into place under its commit id only once complete,
so a cache folder named by a commit always holds that commit (concurrent lockers may both
fetch; the second rename loses harmlessly). The `.git` folder is kept: version plugins such
as setuptools-scm read it while building.

The git binary is the user's (we need its transports, credential helpers and ssh
configuration), run through `envspec.proc` with prompts disabled and messages in English, so
a failure reads the same everywhere and a missing password fails instead of waiting.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.atomic import place_folder
from envspec.errors import MetadataError

if TYPE_CHECKING:
    from envspec import proc

FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
TIMEOUT = 300.0
REF_HINT = "use a branch, a tag or a full 40-character commit id"


def git_environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C"})
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    return env


def _reason(finished: proc.Finished) -> str:
    """The first `fatal:`/`error:` line git wrote (its own words), else its last line."""
    for line in finished.lines():
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return finished.tail(1) or f"exit code {finished.returncode}"


def resolve_commit(url: str, ref: str | None, *, shown: str, environ: Mapping[str, str]) -> str:
    """The commit `ref` (a branch or tag; None for the default branch) names in the
    repository at `url`. `shown` is the URL as errors show it (no credentials); `environ` the
    environment git runs in (prompts are turned off in it)."""
    if ref is not None and FULL_SHA.fullmatch(ref):
        return ref.lower()
    from envspec import proc  # the process door, imported when git runs (a lock may not)

    patterns = [ref, f"{ref}^{{}}"] if ref else ["HEAD"]
    try:
        argv = ["git", "ls-remote", "--", url, *patterns]
        found = proc.check(argv, env=git_environment(environ), timeout=TIMEOUT)
    except proc.ProcessFailed as failed:
        raise MetadataError(
            f"{shown}: cannot read the repository: {_reason(failed.finished)}",
            hint="check the URL and that you have access to it",
        ) from None
    refs = _parse_refs(found.stdout)
    wanted = (
        ["HEAD"]
        if ref is None
        else [f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref]
    )
    for name in wanted:  # tags before branches, as `git rev-parse` resolves a short name
        if name in refs:
            return refs[name]
    if ref is None:
        raise MetadataError(f"{shown}: the repository has no default branch", hint=REF_HINT)
    raise MetadataError(f"{shown}: no branch or tag '{ref}' in the repository", hint=REF_HINT)


def _parse_refs(output: str) -> Mapping[str, str]:
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        if FULL_SHA.fullmatch(sha) and name:
            refs[name.strip()] = sha.lower()
    return refs


def checkout(url: str, commit: str, dest: Path, *, shown: str, environ: Mapping[str, str]) -> Path:
    """The tree of `commit` from `url` at `dest` (reused when already there)."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{commit[:12]}-"))
    try:
        _fetch(url, commit, tmp, shown=shown, env=git_environment(environ))
        place_folder(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _fetch(url: str, commit: str, repo: Path, *, shown: str, env: Mapping[str, str]) -> None:
    from envspec import proc

    def git(*args: str) -> proc.Finished:
        return proc.run(["git", "-C", str(repo), *args], env=env, timeout=TIMEOUT)

    _ok(git("init", "-q"), f"{shown}: git init failed")
    fetched = git("fetch", "-q", "--depth", "1", "--", url, commit)
    if not fetched.ok:
        # Servers that refuse to send an unadvertised commit: take every ref, then look.
        whole = git("fetch", "-q", "--", url, "+refs/*:refs/envspec/*")
        _ok(whole, f"{shown}: cannot read the repository")
    if not git("cat-file", "-e", f"{commit}^{{commit}}").ok:
        raise MetadataError(f"{shown}: commit {commit} is not in the repository", hint=REF_HINT)
    checked_out = git("-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit)
    _ok(checked_out, f"{shown}: git checkout failed")


def _ok(finished: proc.Finished, what: str) -> None:
    if not finished.ok:
        raise MetadataError(f"{what}: {_reason(finished)}")
