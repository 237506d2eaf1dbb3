"""Derive unsloth's `[[resolution.dependency-metadata]]` block from one of its real
`pyproject.toml` files, or compare a recorded `pyproject.toml` with a release's METADATA.

GitHub cannot be reached from the machines that made locks/, so envspec cannot read unsloth's
metadata from a git checkout; `../shared/fixtures/pytorch-cu121/unsloth/` records its
`pyproject.toml` at three commits (see COMMIT.md there). Their dependencies and extras are
static and only the version is dynamic, so the metadata follows from the file without a
build, as setuptools writes it: `dependencies` as they are, and each extra's requirements with
`extra == '<name>'` added to their marker.

The flagship envspec.toml no longer takes unsloth from git (README.md, "The flagship example",
says why): it takes a PyPI release, whose wheel's own METADATA envspec reads. `--compare`
shows why the recorded `pyproject.2dc3930a53.toml` could not stand for release 2025.3.19: the
release's METADATA (recorded in `../metadata/`) says more than that file does.

Only the extras asked for are written, with the extras they pull in through `unsloth[...]`
(`colab-new` pulls `triton`): the other ~170 extras change nothing in a lock.

    python tools/unsloth_metadata.py [--extra colab-new] [--pyproject PATH] [--commit-md PATH]
    python tools/unsloth_metadata.py --pyproject PATH --version V --compare METADATA

prints the block, or the requirements only one side has (exit 1 when there are any).
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
    return str(Requirement(f"{req} ; {marker}"))  # the space ends a URL before its marker


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


def metadata_requirements(text: str) -> list[str]:
    """The Requires-Dist lines of a core metadata file, normalized by `packaging`."""
    lines = re.findall(r"(?m)^Requires-Dist: (.+)$", text)
    return [str(Requirement(line)) for line in lines]


def compare(table: dict[str, Any], metadata: str) -> tuple[list[str], list[str]]:
    """The requirements only the METADATA has, and those only the derived table has."""
    release = metadata_requirements(metadata)
    derived = table["requires-dist"]
    return [r for r in release if r not in derived], [r for r in derived if r not in release]


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
    parser.add_argument("--version", help="the version (default: COMMIT.md's)")
    parser.add_argument("--compare", type=Path, metavar="METADATA", help="a release's METADATA")
    args = parser.parse_args(argv)
    commit, version = commit_and_version(args.commit_md)
    if args.compare is None:
        table = derive(args.pyproject, args.version or version, args.extra or ["colab-new"])
        sys.stdout.write(render(table, commit))
        return 0
    project = tomllib.loads(args.pyproject.read_text("utf-8"))["project"]
    table = derive(args.pyproject, args.version or version, list(project["optional-dependencies"]))
    release, derived = compare(table, args.compare.read_text("utf-8"))
    sys.stdout.writelines(f"only in {args.compare.name}: {r}\n" for r in release)
    sys.stdout.writelines(f"only in {args.pyproject.name}: {r}\n" for r in derived)
    return 1 if release or derived else 0


if __name__ == "__main__":
    raise SystemExit(main())
