"""Derive unsloth's `[[resolution.dependency-metadata]]` block for envspec.toml from its real
`pyproject.toml` at the pinned commit.

GitHub cannot be reached from the machines that made locks/, so envspec cannot read unsloth's
metadata from the git checkout; the commit's `pyproject.toml` is recorded byte for byte in
`../shared/fixtures/pytorch-cu121/unsloth/` (see COMMIT.md there). Its dependencies and extras
are static and only the version is dynamic (a literal in `unsloth/_version.py`, recorded in
COMMIT.md), so the metadata follows from the file without a build, as setuptools writes it:
`dependencies` as they are, and each extra's requirements with `extra == '<name>'` added to
their marker.

Only the extras asked for are written, with the extras they pull in through `unsloth[...]`
(`colab-new` pulls `triton`): the other ~170 extras change nothing in a lock, and writing them
would put ~1,000 lines into envspec.toml and into every lock's recorded inputs.

    python tools/unsloth_metadata.py [--extra colab-new] [--pyproject PATH] [--commit-md PATH]

prints the block; tests/test_seed_locks.py checks that envspec.toml holds exactly what this
derives.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO.parent / "shared" / "fixtures" / "pytorch-cu121" / "unsloth"
NAME = "unsloth"


def commit_and_version(commit_md: Path) -> tuple[str, str]:
    """The commit id and version COMMIT.md records."""
    text = commit_md.read_text("utf-8")
    commit = re.search(r"commit: ([0-9a-f]{40})", text)
    version = re.search(r"version at that commit: ([0-9][^\s(]*)", text)
    if commit is None or version is None:
        raise SystemExit(f"{commit_md}: no commit or version line")
    return commit[1], version[1]


def _with_extra(requirement: str, extra: str) -> str:
    req = Requirement(requirement)
    marker = f"({req.marker}) and extra == '{extra}'" if req.marker else f"extra == '{extra}'"
    req.marker = None
    return str(Requirement(f"{req}; {marker}"))


def _closure(extras: dict[str, list[str]], wanted: Sequence[str]) -> list[str]:
    """`wanted` plus every extra they reach through `unsloth[...]` requirements."""
    seen: list[str] = []
    todo = [str(canonicalize_name(e)) for e in wanted]
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in extras:
            raise SystemExit(f"unsloth has no extra '{extra}'")
        seen.append(extra)
        for line in extras[extra]:
            req = Requirement(line)
            if canonicalize_name(req.name) == NAME:
                todo.extend(str(canonicalize_name(e)) for e in sorted(req.extras))
    return seen


def derive(pyproject: Path, version: str, wanted: Sequence[str]) -> dict[str, Any]:
    """The dependency-metadata table for `wanted` extras of the project in `pyproject`."""
    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    if project["name"] != NAME or project.get("dynamic") != ["version"]:
        raise SystemExit(f"{pyproject}: expected unsloth with only its version dynamic")
    extras = {
        str(canonicalize_name(k)): list(v) for k, v in project["optional-dependencies"].items()
    }
    chosen = _closure(extras, wanted)
    requires = [str(Requirement(line)) for line in project.get("dependencies", [])]
    for extra in chosen:
        requires += [_with_extra(line, extra) for line in extras[extra]]
    return {
        "name": NAME,
        "version": version,
        "requires-python": project.get("requires-python", ""),
        "provides-extra": chosen,
        "requires-dist": requires,
    }


def _toml_string(text: str) -> str:
    """A literal string where it can be one: requirement markers are full of double quotes."""
    return f"'{text}'" if "'" not in text and "\n" not in text else json.dumps(text)


def render(table: dict[str, Any], commit: str) -> str:
    lines = [
        f"# unsloth at commit {commit}, its metadata derived from that",
        "# commit's pyproject.toml by tools/unsloth_metadata.py (do not edit by hand).",
        "[[resolution.dependency-metadata]]",
    ]
    for key in ("name", "version", "requires-python"):
        lines.append(f"{key} = {_toml_string(table[key])}")
    lines.append(f"provides-extra = [{', '.join(map(_toml_string, table['provides-extra']))}]")
    lines.append("requires-dist = [")
    lines += [f"    {_toml_string(line)}," for line in table["requires-dist"]]
    lines.append("]")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", action="append", default=[], help="default: colab-new")
    parser.add_argument("--pyproject", type=Path, default=RECORDED / "pyproject.toml")
    parser.add_argument("--commit-md", type=Path, default=RECORDED / "COMMIT.md")
    args = parser.parse_args(argv)
    commit, version = commit_and_version(args.commit_md)
    table = derive(args.pyproject, version, args.extra or ["colab-new"])
    sys.stdout.write(render(table, commit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
