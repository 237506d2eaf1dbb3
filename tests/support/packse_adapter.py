"""packse adapter: one scenario → a one-phase `envspec.toml` → `envspec lock` → `name==version`
lines on stdout, the `--output lines` format of packse's run_scenarios.py.

run_scenarios.py calls this script once per scenario (see tests/test_conformance.py for the
command template). A scenario's resolver options map onto the spec:

- the target Python → `[environment] python`;
- `--platform x86_64-manylinux2014` → target linux-x86_64 with glibc 2.17; no platform →
  linux-x86_64 (never the host: the verdict must not depend on the machine);
- `--universal` → every known target, locked together; the resolution is the union of the
  locks and the scenario is unsatisfiable when any target is (`envspec lock` fails then);
- `--required-env MARKER` → accepted and checked: every target is locked and must resolve, so an
  environment uv is asked to require is covered by the targets it matches;
- `--prerelease allow`, `--no-binary NAME`, `--no-build NAME` → `[resolution]`;
- a name given twice under the same marker is combined into one requirement, as the spec asks.

Indexes: the packse index first, then its build backends (`vendor/`, what uv gets as
`--find-links`) as a flat index. packse's sdists carry static metadata, so no build runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tomlkit
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envspec.cli import main as envspec_main
from envspec.lockfile import load_lock
from envspec.targets import KNOWN, make_target

PLATFORMS = {"x86_64-manylinux2014": ("linux-x86_64", "2.17")}
# packse's install scenarios resolve for the interpreter at hand, which in uv's CI is Linux
# x86_64; a fixed target keeps the verdict independent of the machine running the test.
DEFAULT_TARGET = "linux-x86_64"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--index", required=True)
    p.add_argument("--find-links", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--reqfile", type=Path, required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--universal", action="store_true")
    p.add_argument("--platform")
    p.add_argument("--prerelease", choices=("allow",))
    p.add_argument("--no-binary", action="append", default=[])
    p.add_argument("--no-build", action="append", default=[])
    p.add_argument("--required-env", action="append", default=[])
    return p.parse_args(argv)


def targets_for(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The targets to lock and their `[targets.<name>]` settings."""
    if args.universal:
        return list(KNOWN), {}
    if args.platform:
        if args.platform not in PLATFORMS:
            raise SystemExit(f"packse adapter: no target for platform {args.platform!r}")
        name, glibc = PLATFORMS[args.platform]
        return [name], {name: {"glibc": glibc}}
    return [DEFAULT_TARGET], {}


def check_required(environments: list[str], targets: list[str], python: str) -> None:
    """Every environment uv must cover is matched by at least one locked target."""
    for text in environments:
        marker = Marker(text)
        if not any(make_target(t, python).evaluate(marker) for t in targets):
            raise SystemExit(f"packse adapter: no target covers required environment {text!r}")


def combined(lines: list[str]) -> list[str]:
    """The spec refuses one name twice under the same marker ("combine them"), so do that:
    `a>=1` and `a<2` become `a<2,>=1`. Under different markers a name may repeat."""
    merged: dict[tuple[str, str], Requirement] = {}
    for line in lines:
        req = Requirement(line)
        key = (canonicalize_name(req.name), str(req.marker or ""))
        if key in merged:
            first = merged[key]
            first.extras |= req.extras
            first.specifier &= req.specifier
        else:
            merged[key] = req
    return [str(r) for r in merged.values()]


def write_spec(
    args: argparse.Namespace, targets: list[str], settings: dict[str, dict[str, str]]
) -> None:
    requirements = combined([r for r in args.reqfile.read_text().splitlines() if r.strip()])
    doc = tomlkit.document()
    doc["environment"] = {"name": "packse", "python": args.python, "targets": targets}
    doc["indexes"] = {
        "packse": args.index,
        "vendor": {"url": args.find_links, "flat": True},
    }
    if settings:
        doc["targets"] = settings
    doc["phases"] = [{"name": "scenario", "requirements": requirements}]
    resolution: dict[str, object] = {}
    if args.prerelease:
        resolution["prereleases"] = args.prerelease
    if args.no_binary:
        resolution["no-binary"] = args.no_binary
    if args.no_build:
        resolution["no-build"] = args.no_build
    if resolution:
        doc["resolution"] = resolution
    (args.workdir / "envspec.toml").write_text(tomlkit.dumps(doc))


def union_of_locks(locks: Path) -> list[str]:
    """`name==version` for every package of every target's lock."""
    pins: set[str] = set()
    for path in sorted(locks.glob("pylock.*.toml")):
        pins.update(f"{p.name}=={p.version}" for p in load_lock(path).packages)
    return sorted(pins)


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    targets, settings = targets_for(args)
    check_required(args.required_env, targets, args.python)
    write_spec(args, targets, settings)
    code = envspec_main(
        ["lock", "--project", str(args.workdir), "--cache-dir", str(args.cache_dir), "-q"]
    )
    if code == 0:
        print("\n".join(union_of_locks(args.workdir / "locks")))
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
