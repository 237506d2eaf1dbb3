"""PEP 751 TOML text → `Lock`, checking every field envspec reads: see the package docstring.

Keys this envspec does not know are ignored (a newer 1.x lock may add some); sources it
cannot represent (``archive``, ``directory``, several wheels) are refused.
"""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from envspec.errors import LockFileError
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase, VcsSource
from envspec.tomlread import Doc, Table, loads

READS_VERSION = "1.0"
_SOURCES = ("wheels", "sdist", "vcs")
_UNSUPPORTED = ("archive", "directory")

log = logging.getLogger("envspec")


def parse_lock(text: str, *, path: str) -> Lock:
    """Read and check a lock's text; `path` names it in errors and warnings."""
    root = Doc(path, LockFileError).root(loads(text, where=path, error=LockFileError))
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
    return Lock(
        target=envspec.required_string("target"),
        requires_python=_requires_python(root),
        environments=_environments(root),
        packages=tuple(_package(table) for table in root.tables("packages")),
        phases=tuple(_phase(table) for table in envspec.tables("phases")),
        inputs=envspec.value("inputs", dict, required=True) or {},
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


def _requires_python(root: Table) -> str:
    text = root.string("requires-python") or ""
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        root.fail(f"invalid requires-python '{text}'", key="requires-python")
    return text


def _environments(root: Table) -> tuple[str, ...]:
    markers = root.strings("environments") or []
    for i, text in enumerate(markers):
        try:
            Marker(text)
        except InvalidMarker:
            root.doc.fail(f"environments[{i}]", f"invalid marker '{text}'")
    return tuple(markers)


def _package(table: Table) -> LockedPackage:
    name = table.required_string("name")
    if canonicalize_name(name) != name:
        hint = f"write '{canonicalize_name(name)}'"
        table.fail(f"package name '{name}' is not normalized", hint, key="name")
    version_text = table.required_string("version")
    try:
        version = Version(version_text)
    except InvalidVersion:
        table.fail(f"invalid version '{version_text}'", key="version")
    source = _source_key(table)
    tool = table.table("tool")
    envspec = tool.table("envspec") if tool is not None else None
    if envspec is None:
        table.fail("missing required table [packages.tool.envspec]")
    return LockedPackage(
        name=canonicalize_name(name),
        version=version,
        index=table.string("index"),
        artifact=_artifact(table, source) if source != "vcs" else None,
        vcs=_vcs(table) if source == "vcs" else None,
        phase=envspec.required_string("phase"),
        required_by=tuple(envspec.strings("required-by", required=True) or ()),
    )


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


def _artifact(table: Table, key: str) -> Artifact:
    if key == "sdist":
        sub = table.table("sdist", required=True)
        assert sub is not None  # required
        return _file(sub, "sdist")
    wheels = table.tables("wheels")
    if len(wheels) != 1:
        table.fail(f"expected exactly one wheel, got {len(wheels)}", key="wheels")
    return _file(wheels[0], "wheel")


def _file(table: Table, kind: str) -> Artifact:
    url = table.required_string("url")
    size = table.value("size", int)
    uploaded = table.value("upload-time", dt.datetime)
    hashes = table.table("hashes", required=True)
    assert hashes is not None  # required
    return Artifact(
        filename=table.string("name") or unquote(urlsplit(url).path.rsplit("/", 1)[-1]),
        url=url,
        kind="wheel" if kind == "wheel" else "sdist",
        sha256=hashes.required_string("sha256"),
        size=size,
        upload_time=uploaded,
    )


def _vcs(table: Table) -> VcsSource:
    sub = table.table("vcs", required=True)
    assert sub is not None  # required
    kind = sub.required_string("type")
    if kind != "git":
        sub.fail(f"unsupported vcs type '{kind}'", "envspec locks git sources only", key="type")
    return VcsSource(
        url=sub.required_string("url"),
        requested_revision=sub.string("requested-revision"),
        commit_id=sub.required_string("commit-id"),
    )


def _phase(table: Table) -> LockedPhase:
    return LockedPhase(
        name=table.required_string("name"),
        index=table.string("index"),
        optional=table.flag("optional"),
        skipped=table.string("skipped"),
    )
