"""A project folder for tests of the commands that read locks: write a spec, lock it through
the real CLI against indexes on 127.0.0.1, commit it to a real git repository."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from envspec.cli import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def spec_text(
    indexes: Mapping[str, str | Mapping[str, object]],
    phases: Sequence[Mapping[str, object]],
    targets: Sequence[str] = ("linux-x86_64", "windows-x86_64"),
) -> str:
    """A spec's TOML from plain values (index name → URL or table; phase tables)."""
    lines = [
        "[environment]",
        'name = "t"',
        'python = "3.11"',
        "targets = [" + ", ".join(f'"{t}"' for t in targets) + "]",
        "",
        "[indexes]",
    ]
    for name, value in indexes.items():
        lines.append(f"{name} = {_toml(value)}")
    for phase in phases:
        lines += ["", "[[phases]]"]
        lines += [f"{key} = {_toml(value)}" for key, value in phase.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    raise TypeError(value)


def lock(project: Path, *args: str) -> int:
    return main(["lock", "--project", str(project), "--cache-dir", str(project / ".cache"), *args])


def git(project: Path, *args: str) -> str:
    import os

    done = subprocess.run(
        ["git", *args],
        cwd=project,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def commit_all(project: Path, message: str = "change") -> str:
    """Commit everything in `project` (a repository is made on first use); the commit id."""
    if not (project / ".git").exists():
        git(project, "init", "-q", "-b", "main")
        (project / ".gitignore").write_text(".cache/\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "--allow-empty", "-m", message)
    return git(project, "rev-parse", "HEAD").strip()
