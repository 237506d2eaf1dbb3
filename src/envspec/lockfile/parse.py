"""PEP 751 TOML text → `Lock`, checking every field envspec reads: see the package docstring.

Keys this envspec does not know are ignored (a newer 1.x lock may add some); sources it
cannot represent (``archive``, ``directory``, several wheels) are refused.

Two readings, ours first: envspec's own checks and values (every field it reads, the
integrity checks below and ``[tool.envspec]``), then `packaging.pylock` (`Pylock.from_dict`)
for the standard as a whole, which also covers what envspec does not read (an sdist's file
name against its package, ``dependencies``, ``extras``, ``attestation-identities``, …). Ours
run first so a fault both see is worded as envspec words it; a fault only pylock sees is
wrapped with the file and pylock's path, its message lower-cased, the damaged-lock hint and
exit 2 (``<file>: packages[1].sdist: version in 'b-1.1.tar.gz' is not consistent with
package version '1.0'``). The values come from our reading, which keeps the texts of markers
and ``requires-python`` as written.

Integrity is checked here, when the lock is loaded, so no command acts on an entry it could
not verify: every file's ``hashes.sha256`` is 64 hexadecimal digits (every other listed hash
has its algorithm's length), its URL is http(s) (with a host) or file, its size is a byte
count, a wheel's file name is a wheel of the package it is listed under, and a git source's
commit is a full commit id. Names must be PEP 508 names, markers (``environments``, a
package's ``marker``) and ``requires-python`` must parse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidName,
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from envspec.errors import LockFileError
from envspec.lockfile.conditions import (
    check_marker,
    check_requires_python,
    lock_environments,
    shown,
)
from envspec.model import (
    SPEC_ROOT,
    AppliedRule,
    Artifact,
    Lock,
    LockedPackage,
    LockedPhase,
    Needs,
    VcsSource,
)
from envspec.secret import redact
from envspec.tomlread import Doc, Table, loads, type_name

READS_VERSION = "1.0"
_SOURCES = ("wheels", "sdist", "vcs")
_UNSUPPORTED = ("archive", "directory")
_URL_SCHEMES = ("http", "https", "file")
_HEX = re.compile(r"[0-9a-fA-F]+")
_COMMIT_LENGTHS = (40, 64)  # SHA-1 and SHA-256 git object names
_DAMAGED = "the lock was edited or damaged: restore it, or delete it and run 'envspec lock'"

log = logging.getLogger("envspec")


def parse_lock(text: str, *, path: str) -> Lock:
    """Read and check a lock's text; `path` names it in errors and warnings."""
    data = loads(text, where=path, error=LockFileError)
    lock = _read(Doc(path, LockFileError).root(data))
    # Imported here: its ~40 classes cost ~13 ms, and a relock whose locks are unchanged
    # (`lockfile.memo`) never parses one.
    from packaging.pylock import Pylock, PylockValidationError

    try:
        Pylock.from_dict(_as_standard(data))
    except PylockValidationError as exc:
        where = f"{path}: {exc.context}" if exc.context else path
        message = exc.message[:1].lower() + exc.message[1:]
        raise LockFileError(message, context=where, hint=_DAMAGED) from exc
    return lock


def _as_standard(data: dict[str, Any]) -> dict[str, Any]:
    """The lock as pylock is shown it (after our reading accepted it): read at the version
    envspec reads (a newer 1.x was warned of already), and a direct reference's archive, which
    envspec writes as ``[packages.sdist]`` under the file's own name (``main.tar.gz``, a
    ``.tar.bz2``), where the standard keeps such a file: ``[packages.archive]``, which has no
    name to match ``name-version``."""
    packages = [_archive_view(package) for package in data["packages"]]
    return {**data, "lock-version": READS_VERSION, "packages": packages}


def _archive_view(package: dict[str, Any]) -> dict[str, Any]:
    if "sdist" not in package or "index" in package:  # from an index: a real sdist
        return package
    archive = {k: v for k, v in package["sdist"].items() if k != "name"}
    return {**{k: v for k, v in package.items() if k != "sdist"}, "archive": archive}


def _read(root: Table) -> Lock:
    _check_version(root)
    root.required_string("created-by")
    tool = root.table("tool")
    envspec = tool.table("envspec") if tool is not None else None
    if envspec is None:
        root.fail(
            "missing required table [tool.envspec]",
            "envspec reads the locks it writes; run 'envspec lock'",
        )
    if "packages" not in root:
        root.fail("missing required key 'packages'")
    rules = envspec.table("rules")
    target = envspec.required_string("target")
    requires_python = check_requires_python(root)
    environments = lock_environments(root)
    tables = root.tables("packages")
    packages = tuple(_package(table) for table in tables)
    phases = _phases(envspec)
    _check_graph(tables, packages, phases)
    return Lock(
        target=target,
        requires_python=requires_python,
        environments=environments,
        packages=packages,
        phases=phases,
        inputs=envspec.value("inputs", dict, required=True) or {},
        rules=tuple(_applied_rule(t) for t in rules.tables("applied")) if rules else (),
        rules_version=(rules.string("version") or "") if rules else "",
        variant=envspec.string("variant"),
        needs=_needs(envspec.table("needs")),
    )


def _phases(envspec: Table) -> tuple[LockedPhase, ...]:
    """``[tool.envspec] phases``, each name once (a phase listed twice was installed twice)."""
    phases: list[LockedPhase] = []
    for table in envspec.tables("phases"):
        phase = _phase(table)
        if any(p.name == phase.name for p in phases):
            table.fail(f"duplicate phase '{phase.name}'", _DAMAGED, key="name")
        phases.append(phase)
    return tuple(phases)


def _check_graph(
    tables: Sequence[Table], packages: Sequence[LockedPackage], phases: Sequence[LockedPhase]
) -> None:
    """One entry per name, each in a phase the lock records and required by the spec or by
    packages of the lock: an edit that breaks one made sync and export pin a package twice,
    leave it out, or install one whose parent was deleted, while every command said the lock
    was fine."""
    first: dict[str, str] = {}
    phase_names = [p.name for p in phases]
    names = {package.name for package in packages}
    for table, package in zip(tables, packages, strict=True):
        _check_parents(table, package)
        missing = [n for n in package.required_by if n != SPEC_ROOT and n not in names]
        if missing:
            _package_envspec(table).fail(
                f"'{package.name}' is required by '{missing[0]}', which the lock does not have",
                _DAMAGED,
                key="required-by",
            )
        if package.name in first:
            hint = f"first at {first[package.name]}; {_DAMAGED}"
            table.fail(f"duplicate package '{package.name}'", hint, key="name")
        first[package.name] = table.path
        if package.phase not in phase_names:
            hint = "phases: " + ", ".join(phase_names) if phase_names else _DAMAGED
            _package_envspec(table).fail(f"unknown phase '{package.phase}'", hint, key="phase")


def _check_parents(table: Table, package: LockedPackage) -> None:
    """A package is in the lock because the spec or another package requires it: a
    `required-by` that is empty, names the package itself or repeats a name was written by
    no envspec (an orphan was installed, and `why` printed no chain or the same one twice)."""
    parents, name = package.required_by, package.name
    repeated = [p for p in parents if parents.count(p) > 1]
    if not parents:
        problem = f"'{name}' is required by nothing"
    elif name in parents:
        problem = f"'{name}' lists itself"
    elif repeated:
        problem = f"'{name}' lists '{repeated[0]}' twice"
    else:
        return
    _package_envspec(table).fail(problem, _DAMAGED, key="required-by")


def _needs(table: Table | None) -> Needs:
    """``[tool.envspec] needs``: what the lock's variant needs of a machine."""
    if table is None:
        return Needs()
    found: dict[str, SpecifierSet] = {}
    for key in ("cuda-driver", "compute-capability"):
        text = table.string(key)
        if text is None:
            continue
        try:
            found[key] = SpecifierSet(text)
        except InvalidSpecifier:
            table.fail(f"invalid {key} '{text}'", _DAMAGED, key=key)
    return Needs(
        cuda_driver=found.get("cuda-driver"), compute_capability=found.get("compute-capability")
    )


def _applied_rule(table: Table) -> AppliedRule:
    """One entry of ``[tool.envspec.rules] applied``: the rules about the lock's packages."""
    return AppliedRule(
        id=table.required_string("id"),
        sha256=table.required_string("sha256"),
        source=table.required_string("source"),
    )


def _check_version(root: Table) -> None:
    text = root.required_string("lock-version")
    try:
        version = Version(text)
    except InvalidVersion:
        root.fail(f"invalid lock-version '{text}'")
    if version.major != 1:
        root.fail(
            f"unsupported lock-version '{text}' (this envspec reads 1.x)",
            "upgrade envspec to read this lock",
        )
    if version > Version(READS_VERSION):
        log.warning(
            "%s: lock-version %s is newer than %s; fields this envspec does not know are ignored",
            root.doc.where,
            text,
            READS_VERSION,
        )


def _package(table: Table) -> LockedPackage:
    name = table.required_string("name")
    try:
        canonicalize_name(name, validate=True)
    except InvalidName:
        table.fail(f"invalid package name {shown(name)}", key="name")
    if canonicalize_name(name) != name:
        hint = f"write '{canonicalize_name(name)}'"
        table.fail(f"package name '{name}' is not normalized", hint, key="name")
    version_text = table.required_string("version")
    try:
        version = Version(version_text)
    except ValueError:  # InvalidVersion, or a release number past int()'s 4,300 digits
        table.fail(f"invalid version {shown(version_text)}", key="version")
    marker = check_marker(table, "marker")
    requires_python = check_requires_python(table) if "requires-python" in table else None
    source = _source_key(table)
    envspec = _package_envspec(table)
    return LockedPackage(
        name=canonicalize_name(name),
        version=version,
        marker=marker,
        requires_python=requires_python,
        index=table.string("index"),
        artifact=_artifact(table, source, name, version) if source != "vcs" else None,
        vcs=_vcs(table) if source == "vcs" else None,
        phase=envspec.required_string("phase"),
        required_by=tuple(envspec.strings("required-by", required=True) or ()),
        required_as=_required_as(envspec),
    )


def _package_envspec(table: Table) -> Table:
    """A package's ``[packages.tool.envspec]``, which every package of an envspec lock has."""
    tool = table.table("tool")
    envspec = tool.table("envspec") if tool is not None else None
    if envspec is None:
        table.fail("missing required table [packages.tool.envspec]")
    return envspec


def _required_as(envspec: Table) -> tuple[tuple[str, str], ...]:
    """`required-as = { parent = "requirement" }`: optional (locks before it lack it)."""
    table = envspec.table("required-as")
    if table is None:
        return ()
    out = []
    for parent, text in table.items():
        if not isinstance(text, str):
            table.fail(f"expected a string, got {type_name(text)}", key=parent)
        try:
            Requirement(text)
        except InvalidRequirement:
            table.fail(f"invalid requirement '{redact(text)}'", key=parent)
        out.append((parent, text))
    return tuple(sorted(out))


def _source_key(table: Table) -> str:
    for key in _UNSUPPORTED:
        if key in table:
            expected = ", ".join(_SOURCES[:-1]) + " or " + _SOURCES[-1]
            table.fail(f"unsupported source '{key}' (envspec locks hold {expected})")
    present = [key for key in _SOURCES if key in table]
    if not present:
        table.fail("no source: expected one of " + ", ".join(_SOURCES))
    if len(present) > 1:
        table.fail("more than one source: " + ", ".join(present))
    return present[0]


def _artifact(table: Table, key: str, name: str, version: Version) -> Artifact:
    if key == "sdist":
        sub = table.table("sdist", required=True)
        assert sub is not None  # required
        return _file(sub, "sdist")
    wheels = table.tables("wheels")
    if len(wheels) != 1:
        table.fail(f"expected exactly one wheel, got {len(wheels)}", key="wheels")
    artifact = _file(wheels[0], "wheel")
    _check_wheel_name(wheels[0], artifact.filename, name, version)
    return artifact


def _file(table: Table, kind: str) -> Artifact:
    url = _url(table)
    size = table.value("size", int)
    if size is not None and size < 0:
        table.fail(f"invalid size {size} (a file's size is 0 bytes or more)", _DAMAGED, key="size")
    uploaded = table.value("upload-time", dt.datetime)
    hashes = table.table("hashes", required=True)
    assert hashes is not None  # required
    return Artifact(
        filename=table.string("name") or unquote(urlsplit(url).path.rsplit("/", 1)[-1]),
        url=url,
        kind="wheel" if kind == "wheel" else "sdist",
        sha256=_hashes(hashes),
        size=size,
        upload_time=uploaded,
    )


def _url(table: Table) -> str:
    """The file's URL: http(s) with a host, or file; nothing else can be fetched and checked."""
    url = table.required_string("url")
    cut = shown(redact(url))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        table.fail(f"invalid URL {cut}", _DAMAGED, key="url")
    if parts.scheme.lower() not in _URL_SCHEMES:
        what = f"scheme '{parts.scheme}'" if parts.scheme else "no scheme"
        table.fail(
            f"URL {cut} has {what} (expected an http, https or file URL)", _DAMAGED, key="url"
        )
    if parts.scheme.lower() != "file" and not parts.hostname:
        table.fail(f"URL {cut} has no host", _DAMAGED, key="url")
    return url


def _hashes(hashes: Table) -> str:
    """The file's sha256, lower case; every listed hash must look like its algorithm's."""
    sha256 = hashes.required_string("sha256")
    for algorithm, _ in hashes.items():
        value = hashes.required_string(algorithm)
        length = _digest_length(algorithm)
        if not _HEX.fullmatch(value) or (length is not None and len(value) != length):
            digits = f"{length} hexadecimal digits" if length else "hexadecimal digits"
            what = f"invalid {algorithm} hash {shown(value)}" if value else "empty hash"
            hashes.fail(f"{what} (expected {digits})", _DAMAGED, key=algorithm)
    return sha256.lower()


def _digest_length(algorithm: str) -> int | None:
    """Hex digits of a fixed-size hashlib algorithm's digest (None: unknown or variable)."""
    if algorithm == "sha256":
        return 64
    if algorithm not in hashlib.algorithms_guaranteed or algorithm.startswith("shake_"):
        return None
    return hashlib.new(algorithm).digest_size * 2


def _check_wheel_name(table: Table, filename: str, name: str, version: Version) -> None:
    key = "name" if "name" in table else "url"
    try:
        found_name, found_version, _build, _tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        table.fail(f"invalid wheel file name {shown(filename)}", _DAMAGED, key=key)
    if found_name != name or found_version != version:
        table.fail(f"wheel {shown(filename)} is not {name} {version}", _DAMAGED, key=key)


def _vcs(table: Table) -> VcsSource:
    sub = table.table("vcs", required=True)
    assert sub is not None  # required
    kind = sub.required_string("type")
    if kind != "git":
        sub.fail(f"unsupported vcs type '{kind}'", "envspec locks git sources only", key="type")
    commit = sub.required_string("commit-id")
    if not _HEX.fullmatch(commit) or len(commit) not in _COMMIT_LENGTHS:
        sub.fail(
            f"invalid commit-id {shown(commit)} (expected a full commit id: 40 hexadecimal "
            "digits, or 64 for a SHA-256 repository)",
            _DAMAGED,
            key="commit-id",
        )
    return VcsSource(
        url=sub.required_string("url"),
        requested_revision=sub.string("requested-revision"),
        commit_id=commit.lower(),
    )


def _phase(table: Table) -> LockedPhase:
    return LockedPhase(
        name=table.required_string("name"),
        index=table.string("index"),
        optional=table.flag("optional"),
        skipped=table.string("skipped"),
    )
