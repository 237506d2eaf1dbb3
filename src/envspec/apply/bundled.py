"""What a sync from a bundle (`envspec sync --bundle`) cannot install, refused before anything
changes (pure).

A bundle carries files, and such a sync runs uv offline, so nothing reaches another host: a git
source has no file to carry (uv would clone it), and an sdist must be built, which needs its
build requirements (setuptools, hatchling, …) from an index. A required phase that needs
either is refused with the package named; an optional phase is attempted like any optional
phase (offline, it fails, is reported, and the sync goes on).
"""

from __future__ import annotations

from envspec.apply.plan import Plan, Step
from envspec.errors import ApplyError


def refuse_unbundled(plan: Plan, bundle: str) -> None:
    """Raise when a required phase of `plan` installs what `bundle` cannot carry."""
    found = [
        (step, reason)
        for phase in plan.phases
        if not phase.phase.optional
        for step in phase.steps
        if (reason := _cannot(step)) is not None
    ]
    if not found:
        return
    step, reason = found[0]
    package = step.package
    more = f" (and {len(found) - 1} more: {', '.join(s.package.name for s, _ in found[1:])})"
    kind = "git" if package.vcs is not None else "sdist"
    hint = {
        "git": "sync without --bundle where its git host can be reached, or only up to an "
        "earlier phase (--phase); nothing was changed",
        "sdist": f'lock a wheel of it (add "{package.name}" to [resolution] no-build), or sync '
        "without --bundle; nothing was changed",
    }[kind]
    raise ApplyError(
        f"cannot install {package.name} {package.version} (phase {package.phase}) from a "
        f"bundle: {reason}" + (more if len(found) > 1 else ""),
        context=bundle,
        hint=hint,
    )


def _cannot(step: Step) -> str | None:
    package = step.package
    if package.vcs is not None:
        url = package.vcs.url if package.vcs.url.startswith("git+") else f"git+{package.vcs.url}"
        return f"it is a git source ({url}@{package.vcs.commit_id}), which a bundle cannot carry"
    artifact = package.artifact
    if artifact is not None and artifact.kind == "sdist":
        return (
            f"it is locked as an sdist ({artifact.filename}), which must be built, and a "
            "build needs its build requirements from an index"
        )
    return None
