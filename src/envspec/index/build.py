"""PEP 517 metadata builds: a source tree's core metadata, asked of its own build backend in an
isolated build environment made by uv.

Steps, as pip and uv take them: read `[build-system]` (absent, setuptools' legacy backend);
`uv venv` with the interpreter running envspec; `uv pip install` its `requires`; ask the
backend for more (`get_requires_for_build_wheel`) and install those too; then
`prepare_metadata_for_build_wheel`, which pyproject-hooks replaces by `build_wheel` and reads
the wheel's `.dist-info` when a backend lacks the hook. pyproject-hooks (the PyPA library pip
and build use) owns the hook protocol — the in-process script, `backend-path`, the fallback;
the processes it starts go through `envspec.proc.HookRunner`.

uv is the binary the `uv` package ships, run with `--no-config` and no `UV_*` or `PIP_*`
variables from the caller but `UV_CACHE_DIR` (`proc.PASSED_TO_UV`); the spec's default-routed
indexes reach it through `UV_DEFAULT_INDEX`/`UV_INDEX`/`UV_FIND_LINKS` in its environment
(never argv, which every user of the machine can read).

Metadata built here describes the build on this machine: a backend may compute dependencies
from the platform it runs on. Callers say so when they lock for another platform.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.errors import MetadataError

if TYPE_CHECKING:
    from envspec import proc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
LEGACY_REQUIRES = ("setuptools>=40.8.0",)
_DROPPED = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")

log = logging.getLogger("envspec")


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildSettings:
    """How build environments are made: where build requirements come from and limits."""

    environ: Mapping[str, str]  # the CLI's snapshot: the base of every child's environment
    index_env: Mapping[str, str] = field(default_factory=dict)  # UV_DEFAULT_INDEX, ...
    offline: bool = False
    timeout: float = 900.0
    python: str = sys.executable


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()


def load_build_system(source: Path, shown: str) -> BuildSystem:
    """The `[build-system]` table of `source`'s pyproject.toml, with PEP 517's defaults."""
    path = source / "pyproject.toml"
    if not path.is_file():
        return BuildSystem(requires=LEGACY_REQUIRES, backend=LEGACY_BACKEND)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MetadataError(f"{shown}: unreadable pyproject.toml: {exc}") from exc
    table = data.get("build-system")
    if not isinstance(table, dict):
        return BuildSystem(requires=LEGACY_REQUIRES, backend=LEGACY_BACKEND)
    requires = table.get("requires", [])
    backend = table.get("build-backend", LEGACY_BACKEND)
    backend_path = table.get("backend-path", [])
    if not (_strings(requires) and isinstance(backend, str) and _strings(backend_path)):
        raise MetadataError(f"{shown}: pyproject.toml has an invalid [build-system] table")
    return BuildSystem(requires=tuple(requires), backend=backend, backend_path=tuple(backend_path))


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def build_metadata(source: Path, work: Path, settings: BuildSettings, *, shown: str) -> bytes:
    """The METADATA of the wheel `source` would build, from its backend; `work` is an empty
    scratch folder the caller removes; `shown` names the source in errors."""
    # imported by a build only: with the process door (subprocess), ~7 ms a lock need not pay
    from pyproject_hooks import BackendUnavailable, BuildBackendHookCaller, HookMissing

    from envspec import proc

    system = load_build_system(source, shown)
    python = _make_environment(work / "env", settings, shown)
    _install(python, system.requires, settings, shown)
    env = {**_clean_environment(settings.environ), "PYTHONNOUSERSITE": "1"}
    hooks = BuildBackendHookCaller(
        str(source),
        system.backend,
        backend_path=list(system.backend_path) or None,
        runner=proc.HookRunner(env, settings.timeout),
        python_executable=str(python),
    )
    try:
        with _logged_warnings(shown):
            extra = hooks.get_requires_for_build_wheel()
        _install(python, tuple(extra), settings, shown)
        out = work / "metadata"
        out.mkdir()
        with _logged_warnings(shown):
            folder = hooks.prepare_metadata_for_build_wheel(str(out))
        return (out / folder / "METADATA").read_bytes()
    except BackendUnavailable:
        raise MetadataError(
            f"{shown}: build backend '{system.backend}' is not available",
            hint=_backend_hint(system),
        ) from None
    except HookMissing as exc:
        raise MetadataError(
            f"{shown}: build backend '{system.backend}' has no {exc.hook_name} hook"
        ) from None
    except proc.ProcessFailed as exc:
        raise MetadataError(
            f"{shown}: metadata build failed: {_last(exc.finished)}",
            hint="backend output (last lines):\n" + exc.finished.tail(),
        ) from None
    except OSError as exc:
        raise MetadataError(f"{shown}: the backend wrote no METADATA ({exc})") from exc


@contextlib.contextmanager
def _logged_warnings(shown: str) -> Iterator[None]:
    """The warnings a backend's hook gave (pyproject-hooks raises them again here, as
    `BuildBackendWarning`: setuptools' license-classifier notice, one per hook) are the
    package author's to act on: logged for -vv, not printed twice on the user's stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for found in caught:
        log.debug("%s: the build backend warned: %s", shown, str(found.message).strip())


def _backend_hint(system: BuildSystem) -> str:
    if system.backend_path:
        return f"it is looked for in its backend-path {', '.join(system.backend_path)}"
    requires = ", ".join(system.requires)
    return f"its build-system.requires ({requires or 'empty'}) does not provide it"


def _last(finished: proc.Finished) -> str:
    return finished.tail(1) or f"exit code {finished.returncode}"


def _uv_reason(finished: proc.Finished) -> str:
    """uv's innermost cause: its last line, without the `cause:`/`error:` label."""
    last = _last(finished).strip()
    for label in ("cause: ", "error: ", "╰─▶ "):
        last = last.removeprefix(label)
    return last


def _clean_environment(environ: Mapping[str, str]) -> dict[str, str]:
    from envspec import proc

    env = proc.without_installer_settings(environ)
    for key in _DROPPED:
        env.pop(key, None)
    return env


def _uv(args: Sequence[str], settings: BuildSettings) -> proc.Finished:
    from uv import find_uv_bin  # the uv package: imported when a build needs it

    from envspec import proc

    argv = [find_uv_bin(), *args, "--no-config", "--quiet", "--color", "never"]
    if settings.offline:
        argv.append("--offline")
    env = {**_clean_environment(settings.environ), "UV_NO_PROGRESS": "1", **settings.index_env}
    return proc.run(argv, env=env, timeout=settings.timeout, merge=True)


def _make_environment(root: Path, settings: BuildSettings, shown: str) -> Path:
    made = _uv(["venv", "--python", settings.python, str(root)], settings)
    if not made.ok:
        raise MetadataError(f"{shown}: cannot create a build environment: {_last(made)}")
    scripts = "Scripts" if os.name == "nt" else "bin"
    return root / scripts / ("python.exe" if os.name == "nt" else "python")


def _install(python: Path, requires: Sequence[str], settings: BuildSettings, shown: str) -> None:
    if not requires:
        return
    done = _uv(["pip", "install", "--python", str(python), *requires], settings)
    if not done.ok:
        raise MetadataError(
            f"{shown}: cannot install its build requirements ({', '.join(requires)}): "
            f"{_uv_reason(done)}",
            hint="uv output (last lines):\n" + done.tail(),
        )
