"""Targets: a named platform becomes a complete marker environment and an ordered tag list.

Nothing here reads the host except `host_target()`. Tag lists come from `packaging.tags`
called with every parameter given (it only inspects the host for parameters left out);
manylinux lists are built here because `packaging` derives them from the running glibc.

`packaging.tags` and the model are imported when a target is first made: the names
(`KNOWN`, `check_name`, `choose_targets`) are all a fresh relock's command line needs, and those
imports are half of its time (see `lockfile.memo`'s fresh-locks memo).
"""

from __future__ import annotations

import functools
import itertools
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envspec.errors import SpecError, UsageError, did_you_mean

if TYPE_CHECKING:
    from packaging.tags import Tag

    from envspec.model import Target, TargetSettings

# name: (sys_platform, platform_system, os_name, platform_machine)
KNOWN: dict[str, tuple[str, str, str, str]] = {
    "linux-x86_64": ("linux", "Linux", "posix", "x86_64"),
    "linux-aarch64": ("linux", "Linux", "posix", "aarch64"),
    "windows-x86_64": ("win32", "Windows", "nt", "AMD64"),
    "macos-arm64": ("darwin", "Darwin", "posix", "arm64"),
    "macos-x86_64": ("darwin", "Darwin", "posix", "x86_64"),
}

_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def check_name(name: str, context: str) -> None:
    """Refuse a target name envspec does not know."""
    if name not in KNOWN:
        hint = did_you_mean(name, KNOWN) or "known targets: " + ", ".join(KNOWN)
        raise SpecError(f"unknown target '{name}'", context=context, hint=hint)


def choose_targets(spec_targets: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The targets a command's `--target` options name (each once, in order), all of the
    spec's when none; a name the spec lacks is a usage error."""
    for name in wanted:
        if name not in spec_targets:
            hint = did_you_mean(name, spec_targets) or "spec targets: " + ", ".join(spec_targets)
            raise UsageError(f"target '{name}' is not in the spec", context="--target", hint=hint)
    return list(dict.fromkeys(wanted)) or list(spec_targets)


def python_versions(python: str) -> tuple[str, str]:
    """`python_version` and `python_full_version` for a spec's `python` ("3.11" → 3.11.0)."""
    parts = python.split(".")
    short = ".".join(parts[:2])
    full = ".".join([*parts, "0", "0"][:3]) if len(parts) < 3 else python
    return short, full


@functools.lru_cache(maxsize=32)  # a lock makes each target four times; its tags cost ~1 ms
def make_target(name: str, python: str, settings: TargetSettings | None = None) -> Target:
    """The `Target` for a known name at a Python version."""
    from envspec.model import Target, TargetSettings

    settings = settings or TargetSettings()
    sys_platform, system, os_name, machine = KNOWN[name]
    short, full = python_versions(python)
    markers = {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": full,
        "python_version": short,
        "sys_platform": sys_platform,
    }
    return Target(
        name=name,
        markers=dict(sorted(markers.items())),
        tags=tuple(_tags(name, short, settings)),
    )


def os_floor(name: str, settings: TargetSettings) -> str:
    """The oldest OS release a target's lock is made for, where the target has one to state:
    ``macOS 14.0`` (the default: torch >= 2.12 and bitsandbytes >= 0.49 ship macOS 14 wheels
    only), else ``""``."""
    if name.startswith("macos-"):
        return "macOS " + ".".join(map(str, settings.macos))
    return ""


def _platforms(name: str, settings: TargetSettings) -> list[str]:
    arch = name.split("-", 1)[1]
    if name.startswith("linux-"):
        return [*_manylinux(arch, settings.glibc), f"linux_{arch}"]
    if name.startswith("windows-"):
        return ["win_amd64"]
    mac_arch = "arm64" if arch == "arm64" else "x86_64"
    from packaging import tags as ptags

    return list(ptags.mac_platforms(settings.macos, mac_arch))


def _manylinux(arch: str, glibc: tuple[int, int]) -> list[str]:
    lowest = 17 if arch == "aarch64" else 5
    out: list[str] = []
    for minor in range(glibc[1], lowest - 1, -1):
        out.append(f"manylinux_{glibc[0]}_{minor}_{arch}")
        legacy = _LEGACY_MANYLINUX.get((glibc[0], minor))
        if legacy and (arch == "x86_64" or legacy == "manylinux2014"):
            out.append(f"{legacy}_{arch}")
    return out


def _tags(name: str, short: str, settings: TargetSettings) -> list[Tag]:
    from packaging import tags as ptags

    major, minor = (int(x) for x in short.split("."))
    platforms = _platforms(name, settings)
    abi = f"cp{major}{minor}"
    found = list(ptags.cpython_tags((major, minor), [abi], platforms))
    found += list(ptags.compatible_tags((major, minor), abi, platforms))
    return list(dict.fromkeys(found))


def host_target() -> str | None:
    """The known target this machine is, if any: the one read of the host."""
    machine = platform.machine().lower()
    if sys.platform.startswith("linux"):
        return {"x86_64": "linux-x86_64", "aarch64": "linux-aarch64"}.get(machine)
    if sys.platform == "win32":
        return "windows-x86_64" if machine in ("amd64", "x86_64") else None
    if sys.platform == "darwin":
        return "macos-arm64" if machine == "arm64" else "macos-x86_64"
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class WheelFilter:
    """Whether a file can matter to some targets (see `wheel_filter`); `key` names the filter
    (the parsed pages the index cache keeps are kept per filter)."""

    tags: frozenset[tuple[str, str, str]]  # (interpreter, abi, platform) a target accepts

    @property
    def key(self) -> str:
        return " ".join(sorted("-".join(tag) for tag in self.tags))

    def __call__(self, filename: str) -> bool:
        if not filename.endswith(".whl"):
            return True
        parts = filename[:-4].lower().rsplit("-", 3)
        return len(parts) == 4 and "-" in parts[0] and _fits(self.tags, parts[1:])


def _fits(tags: frozenset[tuple[str, str, str]], fields: Sequence[str]) -> bool:
    key = (tags, "-".join(fields))  # pages repeat a few hundred tag triples thousands of times
    if key not in _FITS:
        found = itertools.product(*(field.split(".") for field in fields))
        _FITS[key] = any(tag in tags for tag in found)
    return _FITS[key]


_FITS: dict[tuple[frozenset[tuple[str, str, str]], str], bool] = {}


def wheel_filter(targets: Sequence[Target]) -> WheelFilter:
    """Whether a file can matter to any of `targets`: every sdist, and the wheels one of them
    can install. Index pages list every Python and platform ever released for; the rest are
    dropped as pages are read (memory, and every later read of the page). What the rest is
    needed for reads the page whole: another platform's wheel standing in for an sdist's
    metadata, the explanation of why no file fits."""
    return WheelFilter(
        tags=frozenset(
            (tag.interpreter, tag.abi, tag.platform) for target in targets for tag in target.tags
        )
    )
