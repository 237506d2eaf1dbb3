"""The target environment: where it is and what its interpreter is (what is installed in it
is `installed`).

Which environment: `--python` (an interpreter or an environment folder), else `$VIRTUAL_ENV`,
else the project's `.venv`, which `envspec sync` creates with `uv venv` at the spec's Python.
The interpreter's marker environment and site-packages folders cost a subprocess to learn, so
they are kept in `<env>/.envspec/interpreter.json` keyed by the interpreter's path and mtime
(a sync with nothing to do starts no process at all), and, for virtual environments, once per
base interpreter in the envspec cache folder (a new environment needs no probe either).

An interpreter that is not a virtual environment (no `pyvenv.cfg`, PEP 405) is changed only
when the user says so (`--system`, uv's rule): `open_environment` is told whether it may write
there, and writes nothing (not even its cache) otherwise, nor for `--dry-run`. What an exact
sync keeps although the lock does not name it follows uv too: the seed packages (pip,
setuptools, wheel, uv) of an environment uv did not make (its `pyvenv.cfg` has no `uv` key)
or made with them (`uv venv --seed`: ``seed = true``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envspec.apply import uv
from envspec.atomic import write_atomic
from envspec.errors import ApplyError, UsageError

STATE_DIR = ".envspec"
JOURNAL_FILE = "journal.json"  # in STATE_DIR: see `journal`
_CACHE_FILE = "interpreter.json"
SEED_PACKAGES = ("pip", "setuptools", "uv", "wheel")


@dataclass(frozen=True, kw_only=True, slots=True)
class Environment:
    """A Python environment envspec may read and change."""

    root: Path
    python: Path
    markers: tuple[tuple[str, str], ...]
    site_packages: tuple[Path, ...]
    virtual: bool = True  # a virtual environment (PEP 405), not an interpreter's own prefix
    keep: tuple[str, ...] = ()  # what an exact sync keeps unnamed: seeds of a non-uv venv

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def python_version(self) -> str:
        return dict(self.markers)["python_full_version"]

    def marker_environment(self) -> dict[str, str]:
        return dict(self.markers)


@dataclass(frozen=True, kw_only=True, slots=True)
class Location:
    """Where the environment is expected, and whether envspec may create it there."""

    root: Path
    python: Path
    creatable: bool
    source: str  # "--python", "$VIRTUAL_ENV" or "project"

    def present(self) -> bool:
        """Whether the interpreter is there (one that cannot be looked at is an error)."""
        return _present(self.python, self.source)


def interpreter_in(root: Path, source: str) -> Path:
    """The interpreter of the environment at `root` (POSIX `bin/`, Windows `Scripts/`), as
    `source` names it."""
    for candidate in (root / "bin" / "python", root / "Scripts" / "python.exe"):
        if _present(candidate, source):
            return candidate
    return root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _present(path: Path, source: str) -> bool:
    """`path.exists()`, but a folder on the way the user may not look into is an error, not
    a traceback (`Path.exists` raises `PermissionError`)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink loop: as good as absent
            return False
        raise UsageError(
            f"cannot look at {path}: {exc.strerror}",
            context=source,
            hint="pass --python with an environment you can read",
        ) from exc
    return True


def locate(project: Path, python: Path | None, environ: Mapping[str, str]) -> Location:
    """Pick the environment as DESIGN.md §2 orders it."""
    if python is not None:
        python = Path(os.path.abspath(python))
        if _present(python, "--python") and python.is_dir():
            return Location(
                root=python,
                python=interpreter_in(python, "--python"),
                creatable=False,
                source="--python",
            )
        parent = python.parent
        root = parent.parent if parent.name in ("bin", "Scripts") else parent
        return Location(root=root, python=python, creatable=False, source="--python")
    if environ.get("VIRTUAL_ENV"):
        root = Path(environ["VIRTUAL_ENV"])
        return Location(
            root=root,
            python=interpreter_in(root, "$VIRTUAL_ENV"),
            creatable=False,
            source="$VIRTUAL_ENV",
        )
    root = Path(os.path.abspath(project)) / ".venv"
    python = interpreter_in(root, "project")
    return Location(root=root, python=python, creatable=True, source="project")


def ensure_environment(location: Location, python: str, options: uv.UvOptions) -> bool:
    """Create the project's `.venv` when absent; True when it was created. The caller holds
    the creation lock (`journal.creation_lock`) when it may create."""
    if location.present():
        return False
    _check_creatable(location)
    uv.create_venv(location.root, python, options)
    return True


def _missing_hint(location: Location) -> str:
    """What to do about an interpreter that is not there: create the environment, unless
    something is there already that `sync` would refuse too (a file, or a folder whose
    interpreter is gone or a dangling link)."""
    if location.root.is_file():
        return f"{location.root} is a file, not an environment folder: pass --python"
    if location.python.is_symlink() or location.root.is_dir():
        return (
            "the environment's interpreter is missing or a broken link: remove the folder and "
            "run 'envspec sync' to create it again, or pass --python"
        )
    return "run 'envspec sync' to create the environment, or pass --python"


def planned_environment(location: Location, python: str, options: uv.UvOptions) -> Environment:
    """The environment `ensure_environment` would create, for `sync --dry-run`, which creates
    nothing: the markers of the interpreter uv would make it from (`uv python find`), and
    nothing installed."""
    _check_creatable(location)
    base = uv.find_python(python, options)
    facts = uv.probe_interpreter(base, options.environ)
    return Environment(
        root=location.root,
        python=location.python,
        markers=_markers(facts),
        site_packages=(),  # a new environment has nothing installed
    )


def remove_environment(location: Location) -> None:
    """Remove the environment `ensure_environment` created at `location` (best effort: what
    cannot be removed stays, and the next sync finds it broken and says so)."""
    shutil.rmtree(location.root, ignore_errors=True)


def _check_creatable(location: Location) -> None:
    if not location.creatable:
        raise UsageError(
            f"no Python interpreter at {location.python}",
            context=location.source,
            hint="pass --python with an existing interpreter or environment folder",
        )
    if os.path.lexists(location.root):
        raise UsageError(
            f"{location.root} exists but has no working Python interpreter ({location.python})",
            context=location.source,
            hint=f"remove {location.root} and run 'envspec sync' again, or pass --python",
        )


def load_venv_config(root: Path) -> dict[str, str] | None:
    """`<root>/pyvenv.cfg` as keys and values; None when there is none (not a virtual
    environment)."""
    try:
        text = (root / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip().lower()] = value.strip()
    return found


def open_environment(
    location: Location,
    environ: Mapping[str, str],
    shared: Path | None = None,
    *,
    system: bool = False,
    write: bool = True,
) -> Environment:
    """The environment at `location`, its interpreter facts from a cache when still valid:
    its own, else (a new virtual environment) the one in the `shared` cache folder kept for
    every environment made from the same base interpreter, else a probe (run in `environ`,
    the CLI's snapshot). The caches are written only with `write`, and in an interpreter that
    is not a virtual environment only with `system` too."""
    if not location.present():
        raise UsageError(
            f"no Python interpreter at {location.python}",
            context=location.source,
            hint=_missing_hint(location),
        )
    config = load_venv_config(location.root)
    write = write and (config is not None or system)
    key = _interpreter_key(location.python)
    own = location.root / STATE_DIR / _CACHE_FILE
    facts = load_interpreter_cache(own, key)
    if facts is None:
        facts = _venv_facts(location, shared if config is not None else None, environ, write)
        facts = facts or uv.probe_interpreter(location.python, environ)
        if write:
            write_interpreter_cache(own, key, facts)
    return Environment(
        root=location.root,
        python=location.python,
        markers=_markers(facts),
        site_packages=tuple(dict.fromkeys(Path(p) for p in facts["site_packages"])),
        virtual=config is not None,
        keep=SEED_PACKAGES if _keeps_seeds(config) else (),
    )


def _markers(facts: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """An interpreter probe's marker environment, as `Environment.markers` holds it."""
    return tuple(sorted((str(k), str(v)) for k, v in facts["markers"].items()))


def _keeps_seeds(config: Mapping[str, str] | None) -> bool:
    """uv's rule for the seed packages an exact sync keeps: in an environment uv did not make
    (no `uv` key), or one it made with them (`uv venv --seed`: ``seed = true``)."""
    return config is None or "uv" not in config or config.get("seed", "").lower() == "true"


def _venv_facts(
    location: Location, shared: Path | None, environ: Mapping[str, str], write: bool
) -> dict[str, Any] | None:
    """A virtual environment has its base interpreter's markers and its site-packages at the
    same place below its root as any other of that base: probe once per base interpreter."""
    if shared is None:
        return None
    real = os.path.realpath(location.python)
    key = {**_interpreter_key(location.python), "python": real}
    digest = hashlib.sha256(real.encode()).hexdigest()[:20]
    path = shared / "interpreters" / f"{digest}.json"
    known = load_interpreter_cache(path, key)
    if known is not None and "site_relative" in known:
        site = [str(location.root / rel) for rel in known["site_relative"]]
        return {"markers": known["markers"], "site_packages": site}
    facts = uv.probe_interpreter(location.python, environ)
    prefix = Path(facts["prefix"])
    relative = [os.path.relpath(p, prefix) for p in facts["site_packages"]]
    if write and not any(rel.startswith("..") for rel in relative):
        entry = {"markers": facts["markers"], "site_packages": [], "site_relative": relative}
        write_interpreter_cache(path, key, entry)
    return facts


def _interpreter_key(python: Path) -> dict[str, Any]:
    stat = python.stat()  # follows a venv's symlink: a replaced base interpreter invalidates
    return {"python": str(python), "mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


def load_interpreter_cache(path: Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != dict(key):
        return None
    facts = data.get("facts")
    if not isinstance(facts, dict) or not {"markers", "site_packages"} <= facts.keys():
        return None
    return facts


def write_interpreter_cache(path: Path, key: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
    """Best effort: an environment or cache we may not write to is still usable."""
    data = json.dumps({"key": dict(key), "facts": dict(facts)}).encode("utf-8")
    with contextlib.suppress(OSError):
        write_atomic(path, data, mode=0o644)


def refuse_system(location: Location, system: bool) -> None:
    """uv's rule: an interpreter that is not a virtual environment is changed only with
    `--system` (a project's `.venv` yet to be made is one)."""
    if system or not location.present():  # nothing there yet: `ensure_environment`
        return
    if load_venv_config(location.root) is None:
        raise UsageError(
            f"{location.python} is not a virtual environment",
            context=location.source,
            hint="run 'uv venv' to create one and pass it with --python, or pass --system "
            "to install into a non-virtual environment",
        )


def require_state_dir(env: Environment) -> Path:
    """The environment's `.envspec` folder, created; an unwritable one is an error."""
    try:
        env.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplyError(
            f"cannot create {env.state_dir}: {exc.strerror}", context=str(env.root)
        ) from exc
    return env.state_dir


def require_writable(env: Environment) -> None:
    """Every folder a sync writes into (site-packages, the interpreter's folder, where uv puts
    entry points, and envspec's state folder with the `tmp/` of uv's requirements files)
    takes a new file: tried with a file made and removed, as root passes `os.access` on
    folders it still cannot write (`chattr +i`, a read-only mount). Else an install would
    fail halfway, after the snapshot, and its restore with it."""
    scratch = env.state_dir / "tmp"
    with contextlib.suppress(OSError):  # one that cannot be made fails the probe below
        scratch.mkdir(parents=True, exist_ok=True)
    for folder in (*env.site_packages, env.python.parent, env.state_dir, scratch):
        try:
            fd, name = tempfile.mkstemp(prefix=".envspec-probe-", dir=folder)
        except OSError as exc:
            raise ApplyError(
                f"cannot write into the environment: {exc.strerror}",
                context=str(folder),
                hint="nothing was changed; make the folder writable, or pass --python with "
                "another environment",
            ) from exc
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
