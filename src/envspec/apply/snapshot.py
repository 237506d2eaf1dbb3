"""Snapshots: what an environment held before envspec changed it, to roll back to.

A snapshot is one JSON file `<env>/.envspec/snapshots/<id>.json` (ids count up from 1; the
newest 20 are kept) holding the environment's `pip freeze` verbatim (taken with
`uv pip freeze`, which needs no pip in the environment), the installed versions by name, and
the provenance of what envspec installed (artifact URL and sha256, index, phase), which
distributions carry a REQUESTED marker, and the environment's variant record (see
`select`). Provenance
lives between syncs in `<env>/.envspec/provenance.json`, written after every phase.
Restoring gives uv the freeze with each URL line's recorded hash added, and each registry
line (`name==version`) whose file envspec installed from the artifact store pinned to that
file: its hash, and its store folder as a `--find-links` location. Files are written with
`atomic.write_atomic` (whole, synced, renamed into place), so a kill never leaves half a
snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from envspec.apply import uv
from envspec.apply.environment import Environment
from envspec.apply.installed import has_distributions, load_installed
from envspec.apply.plan import Installed
from envspec.apply.requested import load_requested
from envspec.apply.select import load_variant_record
from envspec.apply.store import Wanted
from envspec.atomic import write_atomic
from envspec.errors import ApplyError, UsageError
from envspec.model import Artifact, ArtifactKind, LockedPackage
from envspec.secret import redact

KEEP = 20
FORMAT = 1
_PROVENANCE = "provenance.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class Provenance:
    """Where envspec installed one distribution from."""

    version: str
    url: str | None = None
    sha256: str | None = None
    index: str | None = None
    phase: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Snapshot:
    """One saved state of an environment."""

    id: int
    created: str  # UTC, RFC 3339
    command: str
    freeze: str
    packages: tuple[tuple[str, str], ...]  # (name, version), sorted
    provenance: tuple[tuple[str, Provenance], ...] = ()
    # the distributions carrying REQUESTED, sorted (None: a snapshot from before it was kept)
    requested: tuple[str, ...] | None = None
    variant: str | None = None  # the environment's variant record (variant.json), if it had one

    def versions(self) -> dict[str, str]:
        return dict(self.packages)

    def sources(self) -> dict[str, bool]:
        """Per name its freeze lists plainly, whether as a direct reference (``name @ URL``:
        True) or a registry pin (``name==version``: False); editable lines are left out."""
        found: dict[str, bool] = {}
        for line in self.freeze.splitlines():
            name, at, _ = line.partition(" @ ")
            if not at:
                name, pinned, _ = line.partition("==")
                if not pinned:
                    continue
            if name.strip() and not name.startswith(("#", "-")):
                found[canonicalize_name(name.strip())] = bool(at)
        return found


def snapshots_dir(state_dir: Path) -> Path:
    return state_dir / "snapshots"


def provenance_of(package: LockedPackage) -> Provenance:
    artifact = package.artifact
    url = artifact.url if artifact else (package.vcs.url if package.vcs else None)
    return Provenance(
        version=str(package.version),
        url=redact(url) if url else None,
        sha256=artifact.sha256 if artifact else None,
        index=package.index,
        phase=package.phase,
    )


def new_snapshot(
    *,
    id: int,
    command: str,
    freeze: str,
    installed: Iterable[Installed],
    provenance: Mapping[str, Provenance],
    now: dt.datetime,
    requested: Iterable[str] = (),
    variant: str | None = None,
) -> Snapshot:
    """A snapshot of `installed`; provenance is kept where it still describes the version."""
    versions: dict[str, str] = {dist.name: dist.version for dist in installed}
    kept = {n: p for n, p in provenance.items() if versions.get(n) == p.version}
    return Snapshot(
        id=id,
        created=now.astimezone(dt.timezone.utc).strftime(_CREATED),
        command=command,
        freeze=freeze,
        packages=tuple(sorted(versions.items())),
        provenance=tuple(sorted(kept.items())),
        requested=tuple(sorted(requested)),
        variant=variant,
    )


def restore_text(snapshot: Snapshot, stored: Mapping[str, Path] | None = None) -> str:
    """The requirements uv installs to restore `snapshot`: its freeze, URL lines hashed, and
    registry lines whose file is in `stored` (sha256 → stored file) pinned to it."""
    hashes = {p.url: p.sha256 for _, p in snapshot.provenance if p.url and p.sha256}
    known = dict(snapshot.provenance)
    folders, lines = [], []
    for line in snapshot.freeze.splitlines():
        _, sep, url = line.partition(" @ ")
        digest = hashes.get(url.strip()) if sep else None
        pinned = _registry_provenance(line, known)
        sha256 = pinned.sha256 if pinned is not None else None
        if sha256 and stored and sha256 in stored:
            folders.append(f"--find-links {stored[sha256].parent}")
            digest = sha256
        lines.append(f"{line} --hash=sha256:{digest}" if digest else line)
    return "".join(line + "\n" for line in [*folders, *lines])


def restore_files(snapshot: Snapshot) -> tuple[list[Wanted], bool]:
    """The stored files the registry lines of `snapshot` were installed from, and whether
    every registry line has one (then uv needs no index to restore it)."""
    known = dict(snapshot.provenance)
    wanted, complete = [], True
    for line in snapshot.freeze.splitlines():
        if not _registry_line(line):
            continue
        found = _registry_provenance(line, known)
        if found is None or found.url is None or found.sha256 is None:
            complete = False
            continue
        filename = unquote(urlsplit(found.url).path.rsplit("/", 1)[-1])
        kind: ArtifactKind = "wheel" if filename.endswith(".whl") else "sdist"
        artifact = Artifact(filename=filename, url=found.url, kind=kind, sha256=found.sha256)
        wanted.append(Wanted(artifact=artifact, index=found.index))
    return wanted, complete


def _registry_line(line: str) -> bool:
    name, sep, version = line.partition("==")
    return bool(sep and name.strip() and version.strip()) and " " not in line.strip()


def _registry_provenance(line: str, known: Mapping[str, Provenance]) -> Provenance | None:
    """The provenance of a `name==version` line envspec installed from an index file."""
    if not _registry_line(line):
        return None
    name, _, version = line.strip().partition("==")
    found = known.get(canonicalize_name(name))
    if found is None or found.version != version or not found.sha256 or not found.index:
        return None
    return found


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What turned `before` into `after`: `+name 1.0`, `-name 1.0`, `name 1.0→2.0`."""
    out = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old is None:
            out.append(f"+{name} {new}")
        elif new is None:
            out.append(f"-{name} {old}")
        elif old != new:
            out.append(f"{name} {old}→{new}")
    return out


def take_snapshot(env: Environment, command: str, options: uv.UvOptions) -> Snapshot:
    """Freeze the environment now and save it as the next snapshot."""
    ids = snapshot_ids(env.state_dir)
    installed = load_installed(env)
    # Nothing installed (a new environment) freezes to nothing: no need to start uv for it.
    freeze = uv.pip_freeze(env.python, options) if has_distributions(env) else ""
    snapshot = new_snapshot(
        id=ids[-1] + 1 if ids else 1,
        command=command,
        freeze=freeze,
        installed=installed,
        provenance=load_provenance(env.state_dir),
        now=dt.datetime.now(dt.timezone.utc),
        requested=load_requested(env.site_packages),
        variant=load_variant_record(env),
    )
    write_snapshot(env.state_dir, snapshot)
    return snapshot


# -- files ---------------------------------------------------------------------------------


def snapshot_ids(state_dir: Path) -> list[int]:
    """The ids of the snapshots on disk, oldest first."""
    folder = snapshots_dir(state_dir)
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def load_snapshot(state_dir: Path, snapshot_id: str | int) -> Snapshot:
    """The snapshot `snapshot_id`; an unknown id is a usage error, a damaged file an error."""
    ids = snapshot_ids(state_dir)
    text_id = str(snapshot_id).strip()
    if not text_id.isdigit() or int(text_id) not in ids:
        listed = ", ".join(map(str, ids[-10:])) if ids else "none"
        raise UsageError(
            f"no snapshot '{snapshot_id}'",
            context=str(snapshots_dir(state_dir)),
            hint=f"snapshots: {listed} (see 'envspec history')",
        )
    path = snapshots_dir(state_dir) / f"{int(text_id)}.json"
    try:
        return _decode(json.loads(path.read_text(encoding="utf-8")), int(text_id))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ApplyError(
            f"snapshot {int(text_id)} is damaged and cannot be read",
            context=str(path),
            hint="pick another snapshot with 'envspec history'",
        ) from exc


_CREATED = "%Y-%m-%dT%H:%M:%SZ"  # a snapshot's time, UTC


def _decode(data: Any, snapshot_id: int) -> Snapshot:
    if not isinstance(data, dict) or data.get("format") != FORMAT or data["id"] != snapshot_id:
        raise ValueError("not a snapshot")
    packages = data["packages"]
    provenance = data["provenance"]
    requested, variant = data.get("requested"), data.get("variant")
    if not isinstance(data["freeze"], str) or not isinstance(packages, dict):
        raise ValueError("bad snapshot fields")
    if requested is not None and not (
        isinstance(requested, list) and all(isinstance(n, str) for n in requested)
    ):
        raise ValueError("bad snapshot requested")
    if variant is not None and not isinstance(variant, str):
        raise ValueError("bad snapshot variant")
    # as `take_snapshot` writes it (history showed any text as the time); ValueError if not
    dt.datetime.strptime(data["created"], _CREATED)
    return Snapshot(
        id=snapshot_id,
        created=str(data["created"]),
        command=str(data["command"]),
        freeze=data["freeze"],
        packages=tuple(sorted((str(k), str(v)) for k, v in packages.items())),
        provenance=tuple(sorted((str(k), Provenance(**v)) for k, v in provenance.items())),
        requested=tuple(sorted(requested)) if requested is not None else None,
        variant=variant,
    )


def write_snapshot(state_dir: Path, snapshot: Snapshot, keep: int = KEEP) -> Path:
    """Save `snapshot`, then drop all but the newest `keep`."""
    data = {
        "format": FORMAT,
        "id": snapshot.id,
        "created": snapshot.created,
        "command": snapshot.command,
        "freeze": snapshot.freeze,
        "packages": dict(snapshot.packages),
        "provenance": {name: asdict(p) for name, p in snapshot.provenance},
        "requested": list(snapshot.requested) if snapshot.requested is not None else None,
        "variant": snapshot.variant,
    }
    path = snapshots_dir(state_dir) / f"{snapshot.id}.json"
    write_json(path, data)
    for old in snapshot_ids(state_dir)[:-keep]:
        (snapshots_dir(state_dir) / f"{old}.json").unlink(missing_ok=True)
    return path


def delete_snapshot(state_dir: Path, snapshot_id: int) -> None:
    (snapshots_dir(state_dir) / f"{snapshot_id}.json").unlink(missing_ok=True)


def load_provenance(state_dir: Path) -> dict[str, Provenance]:
    """What envspec installed, by name; a missing or damaged file is just no knowledge."""
    try:
        data = json.loads((state_dir / _PROVENANCE).read_text(encoding="utf-8"))
        return {str(name): Provenance(**value) for name, value in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def write_provenance(state_dir: Path, provenance: Mapping[str, Provenance]) -> None:
    write_json(state_dir / _PROVENANCE, {n: asdict(p) for n, p in sorted(provenance.items())})


def write_json(path: Path, data: Any) -> None:
    """`data` as the JSON file `path`, replaced atomically and synced (a state file)."""
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False)
    try:
        write_atomic(path, text.encode("utf-8"), mode=0o644, durable=True)
    except OSError as exc:
        raise ApplyError(f"cannot write {path.name}: {exc.strerror}", context=str(path)) from exc


def write_requirements(state_dir: Path, name: str, text: str) -> Path:
    """A requirements file for one uv call, kept in the state folder (it has no secrets)."""
    path = state_dir / "tmp" / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ApplyError(f"cannot write {path.name}: {exc.strerror}", context=str(path)) from exc
    return path
