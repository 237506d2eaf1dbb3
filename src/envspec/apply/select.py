"""Which lock applies to an environment: the target whose platform markers the interpreter
has, then, when the spec locks that target per accelerator variant, the variant
(`select_variant` reads the machine through `apply.machine` and the recorded variant;
`choose_variant`, pure: the first in order of preference whose needs the machine meets, or
the one `--variant` names); `for_environment` then checks that the lock's `environments` and
`requires-python` hold for it and leaves out the packages whose `marker` does not.

Only the one matching lock file is read, so a sync with nothing to do parses one file. The
variant a sync installed is recorded in the environment's state (`<env>/.envspec/variant.json`,
`write_installed_variant`), so that `check` compares the environment with that variant's lock
and says when the machine no longer meets its needs; a snapshot keeps the record
(`load_variant_record`) and a rollback puts it back (`restore_variant_record`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import (
    InvalidMarker,
    Marker,
    UndefinedComparison,
    UndefinedEnvironmentName,
)
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envspec.apply.environment import Environment, require_state_dir
from envspec.apply.machine import detect_machine
from envspec.atomic import write_atomic
from envspec.compat.cuda import judge
from envspec.errors import ApplyError, StaleLockError, UsageError, did_you_mean
from envspec.lockfile import load_lock, lock_path
from envspec.lockfile.conditions import cut
from envspec.model import Lock, Machine, Spec, os_family
from envspec.targets import KNOWN

VARIANT_FILE = "variant.json"  # in the environment's state folder

log = logging.getLogger("envspec")


@dataclass(frozen=True, kw_only=True, slots=True)
class Choice:
    """The variant chosen for a target on this machine, and why."""

    target: str
    variant: str
    reason: str  # what the machine has (and lacks, when `fits` is false)
    fits: bool  # the machine meets its needs (false only when named)
    requested: bool  # named by --variant
    machine: Machine  # what the choice was made on
    skipped: tuple[tuple[str, str], ...] = ()  # preferred variants passed over, and why
    installed: bool = False  # the one the last sync installed (`check`)

    def data(self) -> dict[str, Any]:
        """The `variant` JSON event's fields (README.md, "JSON events")."""
        machine = self.machine
        capability = machine.compute_capability
        return {
            "target": self.target,
            "variant": self.variant,
            "reason": self.reason,
            "fits": self.fits,
            "requested": self.requested,
            "installed": self.installed,
            "machine": {
                "driver": machine.driver_shown or None,
                "compute_capability": str(capability) if capability else None,
                "source": machine.source,
            },
            "skipped": [{"variant": name, "reason": why} for name, why in self.skipped],
        }


def select_variant(
    spec: Spec,
    env: Environment,
    environ: Mapping[str, str],
    requested: str | None = None,
    *,
    installed: bool = False,
) -> Choice | None:
    """The variant of `env`'s target to use (None: its target has none): `requested`, else
    with `installed` (for `check`) the one the last sync installed, else the first the
    machine meets. The machine (`machine.detect_machine`, in `environ`) is looked at only
    when the target has variants."""
    target = target_of(env)
    if target is None or not spec.variants_for(target):
        if requested is not None and target is not None:
            choose_variant(spec, target, Machine(), requested)  # says why it cannot be
        return None
    recorded = None
    if installed and requested is None:
        recorded = load_installed_variant(env)
        if recorded not in {v.name for v in spec.variants_for(target)}:
            recorded = None
    choice = choose_variant(spec, target, detect_machine(environ), requested or recorded)
    assert choice is not None  # the target has variants
    if recorded is None:
        return choice
    return dataclasses.replace(choice, requested=False, installed=True)


def choose_variant(
    spec: Spec, target: str, machine: Machine, requested: str | None = None
) -> Choice | None:
    """The variant whose lock `target` installs on `machine` (None: the target has none)."""
    variants = spec.variants_for(target)
    names = [v.name for v in variants]
    family = os_family(target)
    if requested is not None:
        if requested not in names:
            known = [v.name for v in spec.variants]
            hint = did_you_mean(requested, names or known) or (
                f"variants of {target}: {', '.join(names)}"
                if names
                else f"{target} is locked without variants"
            )
            what = "in the spec" if requested not in known else f"locked for {target}"
            raise UsageError(f"variant '{requested}' is not {what}", context="--variant", hint=hint)
        verdict = judge(requested, spec.variant(requested).needs_for(target), machine, family)
        return Choice(
            target=target, variant=requested, reason=verdict.reason, fits=verdict.ok,
            requested=True, machine=machine,
        )  # fmt: skip
    skipped: list[tuple[str, str]] = []
    for variant in variants:
        verdict = judge(variant.name, variant.needs_for(target), machine, family)
        if verdict.ok:
            return Choice(
                target=target, variant=variant.name, reason=verdict.reason, fits=True,
                requested=False, machine=machine, skipped=tuple(skipped),
            )  # fmt: skip
        skipped.append((variant.name, verdict.reason))
    if not variants:
        return None
    reasons = "; ".join(reason for _, reason in skipped)
    raise ApplyError(
        f"no variant of {target} fits this machine: {reasons}",
        hint=f"install one anyway with --variant NAME ({', '.join(names)})",
    )


def load_installed_variant(env: Environment) -> str | None:
    """The variant the last sync installed into `env` (None: none recorded)."""
    try:
        data = json.loads((env.state_dir / VARIANT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = data.get("variant") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def write_installed_variant(env: Environment, choice: Choice | None) -> None:
    """Record the variant a sync installed (None: forget it: a sync of a lock without
    variant, or a rollback to a snapshot that does not say)."""
    path = require_state_dir(env) / VARIANT_FILE
    if choice is None:
        path.unlink(missing_ok=True)
        return
    data = {"target": choice.target, "variant": choice.variant}
    try:
        write_atomic(path, json.dumps(data, sort_keys=True).encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise ApplyError(f"cannot write {path}: {exc.strerror}", context=str(env.root)) from exc


def load_variant_record(env: Environment) -> str | None:
    """The environment's variant record as it is on disk (None: there is none), for a
    snapshot to keep."""
    path = env.state_dir / VARIANT_FILE
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ApplyError(f"cannot read {path}: {exc.strerror}", context=str(env.root)) from exc
    except UnicodeDecodeError as exc:
        raise ApplyError(f"cannot read {path}: not UTF-8", context=str(env.root)) from exc


def restore_variant_record(env: Environment, record: str | None) -> None:
    """Put back a variant record a snapshot kept (None: remove the record)."""
    path = require_state_dir(env) / VARIANT_FILE
    try:
        if record is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, record.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise ApplyError(f"cannot write {path}: {exc.strerror}", context=str(env.root)) from exc


def target_of(env: Environment) -> str | None:
    """The known target name of the environment's platform, if any."""
    markers = env.marker_environment()
    for name, (sys_platform, _system, _os, machine) in KNOWN.items():
        if markers["sys_platform"] == sys_platform and markers["platform_machine"] == machine:
            return name
    return None


def select_lock(
    project: Path, env: Environment, targets: Sequence[str], variant: str | None = None
) -> tuple[Path, Lock]:
    """The lock for `env` in `project`'s `locks/` (its `variant`'s, when given; `targets`: the
    spec's, for the hint when it is missing); see the module docstring."""
    target = target_of(env)
    markers = env.marker_environment()
    what = (f"{target}, variant {variant}" if variant else target) or (
        f"sys_platform '{markers['sys_platform']}', "
        f"platform_machine '{markers['platform_machine']}'"
    )
    path = require_lock(project, target, targets, what=what, variants=(variant,))
    return path, load_lock(path)


def require_lock(
    project: Path,
    target: str | None,
    targets: Sequence[str],
    *,
    what: str = "",
    variants: Sequence[str | None] = (None,),
) -> Path:
    """The path of `target`'s lock (the first of its `variants`' that exists), which must
    exist: else an error naming the locks that do, and what to do (add the target to the
    spec, or lock it)."""
    found_path = next(
        (p for v in variants if target and (p := lock_path(project, target, v)).exists()), None
    )
    if found_path is not None:
        return found_path
    found = sorted(p.name for p in (project / "locks").glob("pylock.*.toml"))
    todo = "run 'envspec lock'"
    if target is not None and target not in targets:
        todo = f"add '{target}' to [environment] targets, then {todo}"
    elif target is not None:
        todo = f"{todo} to write it"
    hint = (
        f"locks that exist: {', '.join(found)}; {todo}"
        if found
        else (f"no locks exist yet; {todo}")
    )
    raise StaleLockError(
        f"no lock for this environment's platform ({what or target or 'not a known target'})",
        context=str(project / "locks"),
        hint=hint,
    )


def _check_fits(lock: Lock, path: Path, env: Environment) -> None:
    """PEP 751's `environments` (one of them must hold) and `requires-python`, for `env`."""
    markers = env.marker_environment()
    if lock.environments and not any(_holds(text, markers) for text in lock.environments):
        shown = "' or '".join(lock.environments)
        raise StaleLockError(
            f"the lock is for environments '{shown}', which this environment is not",
            context=str(path),
            hint="run 'envspec lock' to rewrite it for its target",
        )
    _check_python(lock.requires_python, "the lock", path, env)


def for_environment(lock: Lock, path: Path, env: Environment) -> Lock:
    """The packages of `lock` (read from `path`) that `env` installs, by PEP 751, once the lock
    is the one to install (a stale one relocked first: its conditions may be the edit that
    made it stale): one of its `environments` must hold and its `requires-python` must admit
    the environment's Python; a package whose `marker` does not hold is left out, with a
    warning (envspec writes no package markers, a lock being for one target: one was added by
    hand or by another tool); one whose `requires-python` excludes the environment's Python
    is an error, as for the whole lock."""
    _check_fits(lock, path, env)
    markers = env.marker_environment()
    kept = []
    for package in lock.packages:
        if package.marker is not None and not _holds(package.marker, markers):
            log.warning(
                '%s: %s %s is left out: its marker "%s" does not hold for this environment',
                path,
                package.name,
                package.version,
                cut(package.marker),
            )
            continue
        _check_python(package.requires_python, f"{package.name} {package.version}", path, env)
        kept.append(package)
    if len(kept) == len(lock.packages):
        return lock
    return dataclasses.replace(lock, packages=tuple(kept))


def _holds(text: str, markers: Mapping[str, str]) -> bool:
    """Whether a lock's marker holds for an environment: as a lock file's marker (no extras,
    no dependency groups asked for), with `extra` empty as uv takes it (`extra == 'foo'` is
    false), and false when this environment's values cannot be compared as it asks (a
    version operator on a `platform_release` that is no version)."""
    try:
        return Marker(text).evaluate({**markers, "extra": ""}, "lock_file")
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


def _check_python(requires: str | None, what: str, path: Path, env: Environment) -> None:
    if not requires:
        return
    try:
        fits = SpecifierSet(requires).contains(env.python_version, prereleases=True)
    except InvalidSpecifier:
        fits = False
    if not fits:
        raise UsageError(
            f"{what} is for Python {requires}, the environment has Python {env.python_version}",
            context=str(path),
            hint="pass --python with a matching interpreter, "
            "or change [environment] python and run 'envspec lock'",
        )
