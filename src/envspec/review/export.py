"""A target's lock as a requirements file (``envspec export``): every pin with its
``--hash=sha256:`` line and the index URL it needs, grouped by phase in phase order, so
``pip install --require-hashes --no-deps -r`` and ``uv pip install -r`` install exactly the
locked files without resolving anything.

The format is pip's requirements-file format, written by hand: it is a handful of line shapes
(``name==version \\`` + hash lines, ``name @ URL``, ``--index-url``), and no maintained library
writes it.

Indexes: a requirements file cannot route a name to one index, and the installers disagree on
several: pip pools them, uv takes a name from the first ``--extra-index-url`` that has it, then
``--index-url``. The PyTorch index, for one, serves its own copies of numpy and friends, so
``--extra-index-url`` would have uv fetch those and fail their hash. So the file names one
index: the first one the pins use that the spec does not mark explicit (spec order) is
``--index-url`` and its pins are ``name==version``; every pin from another index (an explicit
one, a later one, a flat one) is written as ``name @ <file URL>`` with its hash, which both
installers fetch as is. Git packages are ``name @ git+URL@commit`` (pip refuses those in
hash-checking mode; the file says so); a file locked from a URL is ``name @ URL``.

`export_for_bundle` writes the same pins for a bundle (`envspec bundle`): the bundle is one
index holding every file of the lock, whichever index it came from, so every file's pin is
``name==version`` with its hash (``name===version`` where the bundle also holds that
version under a local label: ``==2.4.0`` admits 2.4.0+cu121) and the file names no index:
pip lets a file's ``--index-url`` win over its command line's, and the bundle's URL is known
only where it is installed (``pip install --index-url <bundle>/simple --require-hashes
--no-deps -r FILE``; uv takes the same command). Git packages, which a bundle cannot carry,
are comments.

`export_requirements` and `export_for_bundle` are pure; `write_requirements` is the file edge.

Errors: ``unknown phase 'x'`` (`UsageError`, context ``--phase``, with a "did you mean" or the
lock's phases); ``cannot write the requirements file: <reason>`` (`EnvspecError`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from envspec.errors import EnvspecError, LockFileError, UsageError, did_you_mean
from envspec.model import Lock, LockedPackage, LockedPhase

_OTHER = "(no phase)"


def export_requirements(lock: Lock, *, phase: str | None = None, source: str = "") -> str:
    """The lock (or one `phase` of it) as requirements-file text; `source` names the lock."""
    phases = _chosen_phases(lock, phase)
    members = _by_phase(lock.packages)
    packages = [p for ph in phases for p in members.get(ph.name, [])]
    if phase is None:
        packages += members.get("", [])
    lines = _header(lock, phase, source, packages)
    primary = primary_index(lock, packages)
    if primary:
        lines.append(f"--index-url {primary}")
    for locked_phase in phases:
        lines += ["", _phase_comment(locked_phase)]
        for package in members.get(locked_phase.name, []):
            lines += _package_lines(package, primary, source)
    if phase is None and members.get(""):
        lines += ["", f"# {_OTHER}"]
        for package in members[""]:
            lines += _package_lines(package, primary, source)
    return "\n".join(lines) + "\n"


def export_for_bundle(
    lock: Lock,
    *,
    phases: Sequence[str] | None = None,
    source: str = "",
    local_variants: Collection[tuple[str, str]] = (),
) -> str:
    """The lock's pins (of `phases`; None: every phase) as a bundle serves them.
    `local_variants`: the (name, public version) pairs the bundle also holds under a local
    label (torch 2.4.0 beside 2.4.0+cu121); such a pin is written ``===2.4.0``, since
    ``==2.4.0`` admits 2.4.0+cu121 too (PEP 440), which uv then takes, before the hashes
    tell it otherwise."""
    chosen = [p for p in lock.phases if phases is None or p.name in phases]
    members = _by_phase(lock.packages)
    if phases is None and members.get(""):
        chosen.append(LockedPhase(name=_OTHER))
        members[_OTHER] = members[""]
    which = "every phase" if phases is None else "phases " + ", ".join(p.name for p in chosen)
    lines = [
        f"# target {lock.target} ({which}), exported by envspec for a bundle"
        + (f" from {source}" if source else ""),
        "# do not edit: run 'envspec bundle' again",
        "# install: pip install --index-url <bundle>/simple --require-hashes --no-deps -r FILE",
        "#      or: uv pip install --index-url <bundle>/simple --require-hashes --no-deps -r FILE",
    ]
    for locked_phase in chosen:
        lines += ["", _phase_comment(locked_phase)]
        for package in members.get(locked_phase.name, []):
            if package.vcs is not None or package.artifact is None:
                lines.append(f"# {_package_lines(package, None)[0]}: a git source, not in bundles")
            else:
                exact = (package.name, str(package.version)) in local_variants
                operator = "===" if exact else "=="
                pin = f"{package.name}{operator}{package.version}{when(package, source)}"
                lines += [f"{pin} \\", f"    --hash=sha256:{package.artifact.sha256}"]
    return "\n".join(lines) + "\n"


def _chosen_phases(lock: Lock, phase: str | None) -> list[LockedPhase]:
    if phase is None:
        return list(lock.phases)
    for locked in lock.phases:
        if locked.name == phase:
            return [locked]
    names = [p.name for p in lock.phases]
    hint = did_you_mean(phase, names) or f"phases of target {lock.target}: " + ", ".join(names)
    raise UsageError(f"unknown phase '{phase}'", context="--phase", hint=hint)


def _by_phase(packages: Iterable[LockedPackage]) -> dict[str, list[LockedPackage]]:
    out: dict[str, list[LockedPackage]] = {}
    for package in sorted(packages, key=lambda p: p.name):
        out.setdefault(package.phase, []).append(package)
    return out


def _header(
    lock: Lock, phase: str | None, source: str, packages: Sequence[LockedPackage]
) -> list[str]:
    what = f"phase {phase} of " if phase else ""
    lines = [
        f"# {what}target {lock.target}, exported by envspec"
        + (f" from {source}" if source else ""),
        "# do not edit: run 'envspec export' again",
    ]
    if lock.environments:
        lines.append(f"# for: {' or '.join(lock.environments)}")
    if lock.requires_python:
        lines.append(f"# requires-python: {lock.requires_python}")
    lines.append(
        "# install: pip install --require-hashes --no-deps -r FILE  or  uv pip install -r FILE"
    )
    if any(p.vcs is not None for p in packages):
        lines.append(
            "# note: git packages have no hash; pip refuses them with --require-hashes, so "
            "install them with uv or separately"
        )
    return lines


def primary_index(lock: Lock, packages: Sequence[LockedPackage]) -> str | None:
    """The one index the export names: the first the pins use, non-explicit ones first."""
    used = {p.index for p in packages if p.index and p.vcs is None and p.artifact}
    known = _known_indexes(lock.inputs)
    ordered = [url for url in known if url in used] + sorted(used - set(known))
    pages = [url for url in ordered if not known.get(url, {}).get("flat")]
    default = [url for url in pages if not known.get(url, {}).get("explicit")]
    chosen = default or pages
    return chosen[0] if chosen else None


def _known_indexes(inputs: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The spec's indexes recorded in the lock's inputs, by URL, in spec order."""
    out: dict[str, Mapping[str, Any]] = {}
    for entry in inputs.get("indexes", []):
        if isinstance(entry, Mapping) and isinstance(entry.get("url"), str):
            out.setdefault(entry["url"], entry)
    return out


def _phase_comment(phase: LockedPhase) -> str:
    text = f"# phase {phase.name}"
    if phase.index:
        text += f" (index {phase.index})"
    if phase.optional:
        text += " (optional)"
    if phase.skipped is not None:
        text += f": skipped, {phase.skipped}"
    return text


def when(package: LockedPackage, where: str = "") -> str:
    """A package's own conditions as a requirement line's marker (`` ; …``, the space ending a
    URL), so pip and uv install what `sync` installs: its lock `marker`, and its lock
    `requires-python` as `python_full_version` comparisons; "" when it has neither (a lock
    envspec wrote). One that holds " #" cannot be written: a requirements file reads the
    rest of the line as a comment (`where` names the lock in that error)."""
    clauses = [
        f"python_full_version {spec.operator} '{spec.version}'"
        for spec in sorted(SpecifierSet(package.requires_python or ""), key=str)
    ]
    if package.marker is not None:
        clauses.insert(0, f"({package.marker})" if clauses else package.marker)
    text = " and ".join(clauses)
    if re.search(r"\s#", text):
        raise LockFileError(
            f"cannot export '{package.name}': its marker holds ' #', which a requirements "
            "file reads as the start of a comment",
            context=where,
            hint="install from the lock itself (uv pip install -r pylock.toml)",
        )
    return f" ; {text}" if text else ""


def _package_lines(package: LockedPackage, primary: str | None, where: str = "") -> list[str]:
    when_text = when(package, where)
    if package.vcs is not None:
        url = package.vcs.url if package.vcs.url.startswith("git+") else f"git+{package.vcs.url}"
        return [f"{package.name} @ {url}@{package.vcs.commit_id}{when_text}"]
    artifact = package.artifact
    if artifact is None or (package.index and package.index == primary):
        head = f"{package.name}=={package.version}{when_text}"
    else:
        head = f"{package.name} @ {artifact.url}{when_text}"
    if artifact is None or not artifact.sha256:
        return [head]
    return [f"{head} \\", f"    --hash=sha256:{artifact.sha256}"]


def write_requirements(path: Path, text: str) -> None:
    """Write an exported requirements file."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvspecError(
            f"cannot write the requirements file: {exc.strerror}", context=str(path)
        ) from exc
