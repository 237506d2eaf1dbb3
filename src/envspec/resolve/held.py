"""Why `lock --upgrade-package NAME` left NAME where it was: the requirements (and who
declares each) that exclude its newest release for the target, from the finished
resolution's criteria and the spec's constraints, said in `Origin.describe`'s words:

``linux-x86_64: --upgrade-package numpy left numpy at 1.26.4 (newest 2.1.0): held by
numpy<2 (phase numpy), numpy<1.27 required by app 1.0 (phase app)``

When no requirement excludes the newest release directly, the newer releases' own
requirements are what conflict with the rest (or they have no file for the target), and the
message says so and points at `envspec why`.
"""

from __future__ import annotations

from collections.abc import Collection

from packaging.utils import canonicalize_name
from packaging.version import Version
from resolvelib.resolvers import Result

from envspec.model import Lock, Target, Yank
from envspec.resolve.provider import Provider
from envspec.resolve.values import CONSTRAINT, Candidate, Req


def held_messages(
    provider: Provider,
    result: Result[Req, Candidate, str],
    lifted: Collection[str],
    previous: Lock | None,
    target: Target,
) -> list[str]:
    """One message per name in `lifted` that the resolution kept at its previous pin."""
    out = []
    for given in sorted(lifted):
        name = canonicalize_name(given)
        old = previous.package(name) if previous else None
        new = result.mapping.get(name)
        if old is None or new is None or new.absent or new.version != old.version:
            continue
        newest = _newest(provider, name, new.version)
        head = f"{target.name}: --upgrade-package {name} left {name} at {new.version}"
        if newest is None:
            out.append(f"{head}: it is the newest release with a file for this target")
            continue
        holders = _holders(provider, result, name, newest)
        if holders:
            out.append(f"{head} (newest {newest}): held by {', '.join(holders)}")
        else:
            out.append(
                f"{head} (newest {newest}): no requirement excludes {newest}; its own "
                f"requirements conflict with the rest: see 'envspec why {name} --target "
                f"{target.name}'"
            )
    return out


def _newest(provider: Provider, name: str, current: Version) -> Version | None:
    best = provider.files.best_files(canonicalize_name(name))
    newer = [
        v
        for v, artifact in best.items()
        if v > current
        and artifact.yanked is Yank.LIVE
        and (current.is_prerelease or not v.is_prerelease)
    ]
    return max(newer) if newer else None


def _holders(
    provider: Provider, result: Result[Req, Candidate, str], name: str, newest: Version
) -> list[str]:
    found: dict[str, None] = {}
    reqs = [info.requirement for info in result.criteria[name].information]
    reqs += provider.rules.constraints.get(canonicalize_name(name), ())
    for req in reqs:
        if not req.specifier.contains(newest, prereleases=True):
            rule = f" by rule {req.origin.rule}" if req.origin.rule else ""
            who = f"({CONSTRAINT})" if req.origin.parent == CONSTRAINT else req.origin.describe()
            found[f"{req.text} {who}{rule}"] = None
    return list(found)
