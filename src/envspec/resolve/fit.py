"""Why no file of a version fits a target, in one sentence with its cause and its fix. Pure.

Used where resolution says no version fits (`explain`) and where a target ends up with a much
older version than the others (`locking`), in the same words:
``torch 2.13.0 has wheels for macOS 15.0+ only (macosx_15_0_arm64); macos-arm64 is locked for
macOS 14.0: set [targets.macos-arm64] macos = "15.0"``. Causes, most specific first:

- Requires-Python excludes the spec's Python (the fix: the lowest Python it admits);
- wheels only for other CPython versions (``cp312``), no sdist;
- macOS wheels for a later macOS than the target's, manylinux wheels for a later glibc;
- wheels for other platforms only, no sdist (the fix: keep the name off that target);
- an sdist the spec's ``no-build`` forbids, a wheel ``no-binary`` forbids, a yanked file,
  a file uploaded after ``exclude-newer``.

The target's macOS and glibc levels are read from its own tag list (the best ``macosx_*`` and
``manylinux_2_*`` tags), so nothing but the `Target` is needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, NormalizedName, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from envspec.model import Artifact, Resolution, Target, Yank, utc_text

_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_PYTHONS = [f"3.{minor}" for minor in range(6, 20)]


def no_fit_reason(
    name: NormalizedName,
    version: Version,
    files: Sequence[Artifact],
    target: Target,
    settings: Resolution | None = None,
) -> str:
    """Why none of `files` (every file the index lists for `name` `version`) fits `target`;
    "" when one does fit, or when nothing listed explains it."""
    settings = settings or Resolution()
    what = f"{name} {version}"
    usable = [a for a in files if _allowed(name, a, settings)]
    if not usable:
        return _settings_reason(name, what, files, settings)
    python = _python_reason(what, usable, target)
    if python:
        return python
    wheels = [(a, tags) for a in usable if a.kind == "wheel" and (tags := _tags(a.filename))]
    if any(a.kind == "sdist" for a in usable) or any(set(t) & set(target.tags) for _, t in wheels):
        return ""
    return _wheel_reason(what, [t for _, t in wheels], target)


def _allowed(name: NormalizedName, artifact: Artifact, settings: Resolution) -> bool:
    if artifact.yanked is Yank.YANKED or settings.too_new(artifact):
        return False
    # per name: the bare lists made every sdist "barred" once no-build named any package
    if artifact.kind == "sdist":
        return settings.builds(name)
    return settings.takes_wheels(name)


def _settings_reason(
    name: NormalizedName, what: str, files: Sequence[Artifact], settings: Resolution
) -> str:
    if not files:
        return ""
    if all(a.yanked is Yank.YANKED for a in files):
        return f"{what} is yanked (only the spec's exact pin takes a yanked release)"
    if settings.exclude_newer and all(settings.too_new(a) for a in files):
        return f"{what} was uploaded after exclude-newer = {utc_text(settings.exclude_newer)!r}"
    if not settings.builds(name) and not settings.takes_wheels(name):
        return f"{what}: [resolution] no-build and no-binary leave it no file"
    if not settings.builds(name):
        return f"{what} has only an sdist, and [resolution] no-build forbids building it"
    return f"{what} has only wheels, and [resolution] no-binary forbids them"


def _python_reason(what: str, files: Sequence[Artifact], target: Target) -> str:
    python = Version(target.python_full_version)
    hints = [_specifier(a.requires_python) for a in files]
    if hints and all(h is not None and not h.contains(python, prereleases=True) for h in hints):
        spec = hints[0]
        assert spec is not None
        lowest = next((p for p in _PYTHONS if spec.contains(Version(p + ".0"))), "")
        fix = f': set [environment] python = "{lowest}"' if lowest else ""
        return (
            f"{what} requires Python {spec}; the spec locks for Python {target.python_version}{fix}"
        )
    wheels = [t for a in files if a.kind == "wheel" and (t := _tags(a.filename))]
    if not wheels or any(a.kind == "sdist" for a in files):
        return ""
    ours = {(t.interpreter, t.abi) for t in target.tags}
    if any((t.interpreter, t.abi) in ours for tags in wheels for t in tags):
        return ""
    cpythons = sorted(
        {t.interpreter for tags in wheels for t in tags if re.fullmatch(r"cp3\d+", t.interpreter)},
        key=lambda i: int(i[3:]),
    )
    if not cpythons:
        return ""
    versions = ", ".join(f"{i[2]}.{i[3:]}" for i in cpythons)
    first = f"{cpythons[0][2]}.{cpythons[0][3:]}"
    fix = "" if first == target.python_version else f': set [environment] python = "{first}"'
    return (
        f"{what} has wheels for CPython {versions} only ({cpythons[0]}); the spec locks for "
        f"Python {target.python_version}{fix}"
    )


def _wheel_reason(what: str, wheels: Sequence[frozenset[Tag]], target: Target) -> str:
    platforms = {t.platform for tags in wheels for t in tags}
    ours = {t.platform for t in target.tags}
    arch = _arch(target)
    darwin = target.markers["sys_platform"] == "darwin"
    linux = target.markers["sys_platform"] == "linux"
    macos = _later(platforms, _MACOS, arch, _macos_level(ours)) if darwin else None
    if macos:
        level, tag = macos
        current = _macos_level(ours)
        return (
            f"{what} has wheels for macOS {level[0]}.{level[1]}+ only ({tag}); {target.name} is "
            f"locked for macOS {current[0]}.{current[1]}: "
            f'set [targets.{target.name}] macos = "{level[0]}.{level[1]}"'
        )
    glibc = _later(platforms, _MANYLINUX, arch, _glibc_level(ours)) if linux else None
    if glibc:
        level, tag = glibc
        current = _glibc_level(ours)
        return (
            f"{what} has wheels for glibc {level[0]}.{level[1]}+ only ({tag}); {target.name} is "
            f"locked for glibc {current[0]}.{current[1]}: "
            f'set [targets.{target.name}] glibc = "{level[0]}.{level[1]}"'
        )
    shown = ", ".join(sorted(platforms)[:4]) + (", …" if len(platforms) > 4 else "")
    return (
        f"{what} has no wheel for {target.name} (only {shown}) and no sdist: limit its phase "
        f"with targets = [...], or add a marker such as "
        f"\"; sys_platform != '{target.markers['sys_platform']}'\""
    )


def _later(
    platforms: set[str], pattern: re.Pattern[str], arch: set[str], current: tuple[int, int]
) -> tuple[tuple[int, int], str] | None:
    """The lowest OS level above `current` some wheel of the right architecture needs."""
    found = []
    for given in platforms:
        platform = _legacy(given)
        match = pattern.fullmatch(platform)
        if match and match[3] in arch and (int(match[1]), int(match[2])) > current:
            found.append(((int(match[1]), int(match[2])), given))
    return min(found) if found else None


def _legacy(platform: str) -> str:
    head, _, arch = platform.partition("_")
    if head in _LEGACY:
        major, minor = _LEGACY[head]
        return f"manylinux_{major}_{minor}_{arch}"
    return platform


def _arch(target: Target) -> set[str]:
    machine = target.markers["platform_machine"].lower()
    if machine == "arm64":
        return {"arm64", "universal2"}
    if target.markers["sys_platform"] == "darwin":
        return {"x86_64", "intel", "universal2", "universal"}
    return {{"amd64": "x86_64"}.get(machine, machine)}


def _macos_level(platforms: set[str]) -> tuple[int, int]:
    levels = [(int(m[1]), int(m[2])) for p in platforms if (m := _MACOS.fullmatch(p))]
    return max(levels, default=(0, 0))


def _glibc_level(platforms: set[str]) -> tuple[int, int]:
    levels = [(int(m[1]), int(m[2])) for p in platforms if (m := _MANYLINUX.fullmatch(p))]
    return max(levels, default=(0, 0))


def _tags(filename: str) -> frozenset[Tag]:
    try:
        return parse_wheel_filename(filename)[3]
    except (InvalidWheelFilename, InvalidVersion):
        return frozenset()


def _specifier(text: str | None) -> SpecifierSet | None:
    try:
        return SpecifierSet(text) if text else None
    except InvalidSpecifier:
        return None
