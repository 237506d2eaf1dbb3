"""`envspec check`: a pre-flight of an environment against its lock, the spec's `[checks]` and
the compatibility rules.

Eight kinds, each result a `CheckResult`, reported as it is known in this order (the
variant first, then drift, then the lock's freshness, the import probes last, each as it
finishes):
- variant: for an environment synced from an accelerator variant's lock, whether this machine
  still meets that variant's needs (`compat.cuda.judge`, on what `apply.machine` finds);
- drift: each locked package installed at its locked version (and commit); packages of
  optional phases that are absent are warnings, as are packages the lock does not name;
- lock: whether the lock is fresh against `envspec.toml` (`lockfile.status`), naming what
  changed in the spec when it is not;
- installed: each distribution whose metadata is broken (unreadable or missing METADATA, no
  RECORD, several copies of one name) is a failure, named; nothing is said when all are sound;
- dependencies: every installed distribution's requirements hold, evaluated under the
  environment's own marker environment, extras followed;
- version: the spec's `versions = { numpy = "<2" }` rules;
- rules: the compatibility rules in force (`compat.evaluate`) against the installed versions,
  in any environment: without a project (no `envspec.toml`) the built-in rules alone, and
  only the checks that need no lock (installed, dependencies, rules);
- import: each `module` or `module:attr` imported in a fresh interpreter with a timeout, up to
  four at a time, started before the other checks run; warnings raised or printed during the
  import are reported.

It lives in `apply` rather than `review` because it reads a live environment and starts
processes (import probes, through `apply.uv`). All but the import probes are pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec.apply import uv
from envspec.apply.environment import Environment
from envspec.apply.events import Checked, Reporter
from envspec.apply.installed import load_installed
from envspec.apply.plan import Installed, phases_upto, same_source
from envspec.apply.select import target_of
from envspec.compat.cuda import judge
from envspec.compat.evaluate import evaluate
from envspec.lockfile.status import TargetStatus
from envspec.model import Checks, Lock, LockedPackage, Machine, RuleSet, os_family
from envspec.secret import redact

Kind = Literal[
    "variant", "lock", "installed", "drift", "dependencies", "version", "import", "rules"
]
_PROBE_WORKERS = 4


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    kind: Kind
    subject: str
    ok: bool
    message: str
    warnings: tuple[str, ...] = ()


def broken(installed: Iterable[Installed]) -> list[CheckResult]:
    """A failure per broken distribution (see `installed.load_installed`)."""
    return [
        CheckResult(
            kind="installed",
            subject=d.name,
            ok=False,
            message=f"{d.name} is broken: {d.problem}; 'envspec sync' or 'envspec rollback' "
            "repairs it",
        )
        for d in installed
        if d.problem
    ]


def drift(
    lock: Lock, installed: Iterable[Installed], phase: str | None = None
) -> list[CheckResult]:
    """The environment against the lock (up to `phase` when given)."""
    have = {d.name: d for d in installed}
    phases = {p.name: p for p in phases_upto(lock, phase) if not p.skipped}
    results, warnings, matched = [], [], 0
    for package in lock.packages:
        if package.phase not in phases:
            continue
        dist = have.get(package.name)
        problem = _drift_problem(package, dist)
        if problem is None:
            matched += 1
        elif phases[package.phase].optional and dist is None:
            warnings.append(f"{problem} (optional phase {package.phase})")
        else:
            results.append(
                CheckResult(
                    kind="drift",
                    subject=package.name,
                    ok=False,
                    message=f"{problem} (phase {package.phase})",
                )
            )
    named = {p.name for p in lock.packages}
    extra = [f"{d.name} {d.version}" for n, d in sorted(have.items()) if n not in named]
    if extra:
        warnings.append("not in the lock: " + ", ".join(extra))
    summary = f"{_count(matched, 'package')} {'matches' if matched == 1 else 'match'} the lock"
    return [
        CheckResult(
            kind="drift", subject="lock", ok=not results, message=summary, warnings=tuple(warnings)
        ),
        *results,
    ]


def _drift_problem(package: LockedPackage, dist: Installed | None) -> str | None:
    name, version = package.name, str(package.version)
    if dist is None:
        return f"{name} {version} is not installed"
    if _parse(dist.version) != package.version:
        return f"{name} is {dist.version}, the lock says {version}"
    if package.vcs is not None and dist.commit != package.vcs.commit_id:
        return (
            f"{name} is at commit {dist.commit or 'unknown'}, the lock says {package.vcs.commit_id}"
        )
    if not same_source(package, dist):  # the plan reinstalls it: check says so first
        if package.index:
            return f"{name} {version} is installed from {redact(str(dist.url))}, not its index"
        url = redact(package.artifact.url) if package.artifact else "a URL"
        return f"{name} {version} is installed from an index, the lock says {url}"
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _parse(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def dependencies(installed: Sequence[Installed], markers: Mapping[str, str]) -> list[CheckResult]:
    """Each installed distribution's requirements, under the environment's markers."""
    have = {d.name: d for d in installed}
    wanted = _requested_extras(installed, markers)
    results = []
    for dist in installed:
        for req in _active(dist, wanted.get(dist.name, set()), markers):
            problem = _unmet(req, have.get(canonicalize_name(req.name)))
            if problem:
                shown = str(req).split(";")[0].strip()
                results.append(
                    CheckResult(
                        kind="dependencies",
                        subject=dist.name,
                        ok=False,
                        message=f"{dist.name} {dist.version} requires {shown}, but {problem}",
                    )
                )
    summary = f"the requirements of {_count(len(installed), 'distribution')} hold"
    if results:
        summary = _count(len(results), "unmet requirement")
    return [
        CheckResult(kind="dependencies", subject="environment", ok=not results, message=summary),
        *results,
    ]


def _requested_extras(
    installed: Sequence[Installed], markers: Mapping[str, str]
) -> dict[str, set[str]]:
    """Which extras of each distribution something installed asks for (to a fixed point)."""
    wanted: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for dist in installed:
            for req in _active(dist, wanted.get(dist.name, set()), markers):
                target = wanted.setdefault(canonicalize_name(req.name), set())
                new = {canonicalize_name(e) for e in req.extras} - target
                if new:
                    target |= new
                    changed = True
    return wanted


def _active(dist: Installed, extras: set[str], markers: Mapping[str, str]) -> list[Requirement]:
    out = []
    for text in dist.requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue  # a distribution's own broken metadata is not ours to judge here
        if req.marker is None or any(
            req.marker.evaluate({**markers, "extra": extra}) for extra in ("", *sorted(extras))
        ):
            out.append(req)
    return out


def _unmet(req: Requirement, dist: Installed | None) -> str | None:
    if dist is None:
        return f"{canonicalize_name(req.name)} is not installed"
    if req.specifier and not req.specifier.contains(dist.version, prereleases=True):
        return f"{dist.name} {dist.version} is installed"
    return None


def version_rules(
    rules: Iterable[tuple[str, str]], installed: Iterable[Installed]
) -> list[CheckResult]:
    """The spec's `[checks] versions` rules."""
    have = {d.name: d for d in installed}
    results = []
    for name, spec in rules:
        dist = have.get(canonicalize_name(name))
        if dist is None:
            ok, message = False, f"{name} is not installed (rule {name}{spec})"
        elif SpecifierSet(spec).contains(dist.version, prereleases=True):
            ok, message = True, f"{name} {dist.version} satisfies {name}{spec}"
        else:
            ok, message = False, f"{name} {dist.version} does not satisfy {name}{spec}"
        results.append(CheckResult(kind="version", subject=name, ok=ok, message=message))
    return results


def rule_checks(
    rules: RuleSet, installed: Iterable[Installed], markers: Mapping[str, str], target: str | None
) -> list[CheckResult]:
    """The compatibility rules against the installed versions (see `compat.evaluate`)."""
    versions = {d.name: v for d in installed if (v := _parse(d.version)) is not None}
    found = evaluate(rules, versions, markers, target)
    results = [
        CheckResult(kind="rules", subject=f.rule.id, ok=False, message=f.message)
        for f in found.findings
    ]
    if results:
        summary = f"{_count(len(results), 'compatibility rule')} broken"
    elif found.applied:
        held = "holds" if len(found.applied) == 1 else "hold"
        summary = f"{_count(len(found.applied), 'compatibility rule')} {held}"
    else:
        summary = "no compatibility rule is about an installed distribution"
    return [
        CheckResult(kind="rules", subject="environment", ok=not results, message=summary),
        *results,
    ]


def variant_fit(lock: Lock, machine: Machine) -> list[CheckResult]:
    """Whether the machine still meets the needs of the lock's variant (as the lock records
    them): a driver removed or downgraded since the sync, a GPU swapped."""
    if lock.variant is None:
        return []
    verdict = judge(lock.variant, lock.needs, machine, os_family(lock.target))
    if verdict.ok:
        message = f"variant {lock.variant} fits this machine: {verdict.reason}"
    else:
        message = (
            f"installed variant {lock.variant} no longer fits this machine: {verdict.reason}; "
            "'envspec sync' installs the variant that does"
        )
    return [CheckResult(kind="variant", subject=lock.variant, ok=verdict.ok, message=message)]


def freshness(status: TargetStatus) -> CheckResult:
    """The lock against the spec it was made from."""
    where = f"the lock for {status.target}"
    if status.state == "fresh":
        message = f"{where} is up to date with envspec.toml"
    else:
        reason = f": {status.reason}" if status.reason else ""
        message = (
            f"{where} is out of date with envspec.toml{reason} ('envspec sync' relocks it "
            "first, 'envspec lock' relocks it)"
        )
    ok = status.state == "fresh"
    return CheckResult(kind="lock", subject=status.target, ok=ok, message=message)


def _probe(env: Environment, check: str, timeout: float, environ: Mapping[str, str]) -> CheckResult:
    probe = uv.probe_import(env.python, check, timeout, environ)
    if probe.error is None:
        message = f"import {check} ok ({probe.seconds:.2f}s)"
    else:
        message = f"import {check} failed: {probe.error}"
    return CheckResult(
        kind="import",
        subject=check,
        ok=probe.error is None,
        message=message,
        warnings=probe.warnings,
    )


def _finished(futures: Sequence[Future[CheckResult]]) -> Iterator[CheckResult]:
    for future in as_completed(futures):
        yield future.result()


def run_checks(
    env: Environment,
    lock: Lock | None,
    checks: Checks,
    *,
    rules: RuleSet,
    phase: str | None = None,
    status: TargetStatus | None = None,
    import_timeout: float = 120.0,
    environ: Mapping[str, str],
    reporter: Reporter,
    machine: Machine | None = None,
) -> bool:
    """Every check; each result is reported as a `Checked` event as soon as it is known (the
    import probes, started first, as each finishes). True when all passed.

    With `phase` (a partial sync) only drift up to it and dependencies are checked: the
    spec's rules, imports and the compatibility rules may need later phases. Without a
    `lock` (an environment outside any project) there is no drift to check; `status`, the
    lock's freshness, is checked after drift when given; with `machine`, a variant's lock is
    checked against it first."""
    imports = checks.imports if phase is None else ()
    workers = max(1, min(_PROBE_WORKERS, len(imports)))
    ok = True
    with ThreadPoolExecutor(max_workers=workers) as pool:
        probes = [pool.submit(_probe, env, check, import_timeout, environ) for check in imports]
        found = _results(env, lock, checks, rules=rules, phase=phase, status=status)
        if lock is not None and machine is not None:
            found = itertools.chain(variant_fit(lock, machine), found)
        for result in itertools.chain(found, _finished(probes)):
            ok = ok and result.ok
            reporter.checked(
                Checked(
                    check=result.kind,
                    subject=result.subject,
                    ok=result.ok,
                    message=result.message,
                    warnings=result.warnings,
                )
            )
    return ok


def _results(
    env: Environment,
    lock: Lock | None,
    checks: Checks,
    *,
    rules: RuleSet,
    phase: str | None,
    status: TargetStatus | None,
) -> Iterator[CheckResult]:
    """The checks but the import probes, in the order they are reported, each computed when
    it is asked for."""
    installed = load_installed(env, requires=True)
    if lock is not None:
        yield from drift(lock, installed, phase)
    if status is not None:
        yield freshness(status)
    yield from broken(installed)
    yield from dependencies(installed, env.marker_environment())
    if phase is None:
        yield from version_rules(checks.versions, installed)
        yield from rule_checks(rules, installed, env.marker_environment(), target_of(env))
