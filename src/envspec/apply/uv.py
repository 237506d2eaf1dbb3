"""The only place envspec starts processes: uv and the target interpreter.

uv is always the binary the `uv` package ships (`uv.find_uv_bin()`), never whatever `uv` is on
PATH, and always runs with `--no-config`, with every `UV_*` variable removed from its
environment and our own options given explicitly, so a user's or machine's uv/pip
configuration cannot change what is installed (DESIGN.md §7). Index URLs, which may carry
credentials, reach uv through its environment (`UV_INDEX`, `UV_DEFAULT_INDEX`), never through
argv (visible to every user of the machine) or a message.

The target interpreter runs two kinds of small stdlib-only scripts: one that prints its
marker environment and install paths, and one per import probe. Both run isolated (`-I`): no
user site, no `PYTHON*` variables, no current directory on `sys.path`.

Every child is tied to envspec as `children` describes: it inherits the environment locks,
gets the SIGINT and SIGTERM envspec gets, and (on Linux) dies with it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uv import find_uv_bin

from envspec.apply import children
from envspec.errors import ApplyError, Interrupted
from envspec.model import Index

_TAIL_LINES = 12
_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
_PROBE_MARK = "@@envspec-probe@@"


@dataclass(frozen=True, kw_only=True, slots=True)
class UvOptions:
    """What every uv call of one envspec command shares."""

    cache_dir: Path | None = None
    offline: bool = False
    indexes: tuple[Index, ...] = ()  # the spec's: for credentials, build deps, registry lines
    environ: Mapping[str, str] = field(default_factory=dict)  # for ENVSPEC_INDEX_* credentials


@dataclass(frozen=True, kw_only=True, slots=True)
class Ran:
    """A finished process."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines uv wrote to stderr, for an error report."""
        text = [
            line
            for line in self.stderr.splitlines()
            if line.strip() and not line.startswith("Using Python ")
        ]
        return "\n".join(text[-lines:])


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeResult:
    """What importing `module[:attr]` in the target interpreter did."""

    error: str | None
    warnings: tuple[str, ...]
    seconds: float


def index_urls(indexes: Sequence[Index], environ: Mapping[str, str]) -> tuple[str, ...]:
    """The spec's default-routed indexes as URLs for uv, credentials from the environment
    (`ENVSPEC_INDEX_<NAME>_USERNAME/_PASSWORD`) put in when the URL has none."""
    if not any(key.startswith("ENVSPEC_INDEX_") for key in environ):
        return tuple(i.url for i in indexes if not i.explicit and not i.flat)
    from envspec.index.auth import with_env_login  # costly to import: only when it has work

    return tuple(
        with_env_login(i.url, i.name, environ)
        for i in indexes
        if not i.explicit and not i.flat
    )


def _uv_environment(options: UvOptions) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("CONDA_PREFIX", None)
    env["UV_NO_PROGRESS"] = "1"
    urls = index_urls(options.indexes, options.environ)
    if urls:
        # uv's priority order is UV_INDEX (in order), then UV_DEFAULT_INDEX: the spec's order.
        env["UV_DEFAULT_INDEX"] = urls[-1]
        if len(urls) > 1:
            env["UV_INDEX"] = " ".join(urls[:-1])
    return env


def _run(argv: Sequence[str], *, env: Mapping[str, str] | None, timeout: float | None) -> Ran:
    """Run `argv` to its end, see the module docstring; `TimeoutExpired` after `timeout`
    (the child killed), `Interrupted` after a SIGINT or SIGTERM was passed on to it."""
    start = time.perf_counter()
    with children.Forwarder() as forwarder:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                encoding="utf-8",
                errors="replace",
                env=dict(env) if env is not None else None,
                pass_fds=children.inherited_fds(),
                preexec_fn=children.dies_with_parent(),  # noqa: PLW1509 - see `children`
            )
        except OSError as exc:
            raise ApplyError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        forwarder.attach(proc)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:  # a timeout, or a signal we do not forward
            proc.kill()
            proc.communicate()
            raise
    if forwarder.signal is not None:
        name = signal.Signals(forwarder.signal).name
        raise Interrupted(
            f"interrupted by {name} while {Path(argv[0]).name} ran", signal_number=forwarder.signal
        )
    return Ran(
        returncode=proc.returncode,
        stdout=stdout,
        stderr=_redact_urls(stderr),
        seconds=time.perf_counter() - start,
    )


def _redact_urls(text: str) -> str:
    """uv masks credentials itself; this is the belt to its braces."""
    return _USERINFO.sub(r"\1", text)


def uv(*args: str, options: UvOptions, timeout: float | None = None) -> Ran:
    """Run `uv <args>` with our fixed global options."""
    argv = [find_uv_bin(), *args, "--no-config", "--color", "never"]
    if options.cache_dir is not None:
        argv += ["--cache-dir", str(options.cache_dir)]
    if options.offline:
        argv.append("--offline")
    return _run(argv, env=_uv_environment(options), timeout=timeout)


def pip_install(
    python: Path,
    requirements: Path,
    options: UvOptions,
    *,
    require_hashes: bool,
    no_build_isolation: bool,
    reinstall: Sequence[str] = (),
    no_cache: bool = False,
) -> Ran:
    """Install exactly the artifacts listed in `requirements` (a requirements file, or a PEP
    751 file named `pylock.*toml`), resolving nothing; the names in `reinstall` are installed
    afresh even where uv thinks them present (reinstalls and repairs); `no_cache` unpacks
    every file anew instead of linking uv's cached copy."""
    args = ["pip", "install", "--python", str(python), "--no-deps", "-r", str(requirements)]
    if requirements.name.startswith("pylock."):
        args += ["--preview-features", "pylock"]  # uv calls reading PEP 751 experimental
    if require_hashes:
        args.append("--require-hashes")
    if no_build_isolation:
        args.append("--no-build-isolation")
    args += _reinstall_args(reinstall)
    if no_cache:
        args.append("--no-cache")
    return uv(*args, options=options)


def pip_sync(
    python: Path,
    requirements: Path,
    options: UvOptions,
    *,
    no_index: bool = False,
    reinstall: Sequence[str] = (),
) -> Ran:
    """Make the environment hold exactly `requirements` (extras removed); with `no_index`,
    from its `--find-links` folders and uv's cache alone; `reinstall` as for `pip_install`."""
    args = ["pip", "sync", "--python", str(python), "--allow-empty-requirements"]
    if no_index:
        args.append("--no-index")
    return uv(*args, str(requirements), *_reinstall_args(reinstall), options=options)


def _reinstall_args(names: Sequence[str]) -> list[str]:
    return [arg for name in names for arg in ("--reinstall-package", name)]


def pip_uninstall(python: Path, names: Sequence[str], options: UvOptions) -> Ran:
    return uv("pip", "uninstall", "--python", str(python), *names, options=options)


def pip_freeze(python: Path, options: UvOptions) -> str:
    """The environment's `pip freeze`, verbatim."""
    ran = uv("pip", "freeze", "--python", str(python), options=options)
    if not ran.ok:
        raise ApplyError(
            f"'uv pip freeze' failed: {ran.tail(1) or f'exit code {ran.returncode}'}",
            context=str(python),
        )
    return ran.stdout


def create_venv(root: Path, python: str, options: UvOptions) -> None:
    """`uv venv --python <python> <root>`."""
    ran = uv("venv", "--python", python, str(root), options=options)
    if not ran.ok:
        raise ApplyError(
            f"cannot create the environment with Python {python}: {ran.tail(1)}",
            context=str(root),
            hint="install that Python, or pass --python with an existing environment",
        )


_INTERPRETER_SCRIPT = """
import json, os, platform, sys, sysconfig
def fmt(v):
    out = "%d.%d.%d" % (v.major, v.minor, v.micro)
    if v.releaselevel != "final":
        out += v.releaselevel[0] + str(v.serial)
    return out
markers = {
    "implementation_name": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
paths = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
print(json.dumps({"markers": markers, "prefix": sys.prefix, "site_packages": paths}))
"""


def probe_interpreter(python: Path) -> dict[str, Any]:
    """The interpreter's marker environment, prefix and site-packages folders."""
    ran = _run([str(python), "-I", "-c", _INTERPRETER_SCRIPT], env=None, timeout=60)
    try:
        data: dict[str, Any] = json.loads(ran.stdout)
    except ValueError as exc:
        raise ApplyError(
            f"cannot query the Python interpreter: {ran.tail(1) or 'no answer'}",
            context=str(python),
        ) from exc
    return data


_IMPORT_SCRIPT = """
import importlib, json, sys, warnings
module, _, attr = sys.argv[1].partition(":")
error = None
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        loaded = importlib.import_module(module)
        if attr and not hasattr(loaded, attr):
            error = "module %r has no attribute %r" % (module, attr)
    except BaseException as exc:
        error = "%s: %s" % (type(exc).__name__, exc)
found = ["%s: %s" % (w.category.__name__, w.message) for w in caught]
sys.stdout.flush()
print(MARK + json.dumps({"error": error, "warnings": found}), flush=True)
"""


def probe_import(python: Path, check: str, timeout: float) -> ProbeResult:
    """Import `module` (and look up `attr`) of `check` in a fresh interpreter.

    Warnings raised during the import and anything the import printed to stderr (compiled
    modules print ABI complaints there) are reported as warnings."""
    script = f"MARK = {_PROBE_MARK!r}\n{_IMPORT_SCRIPT}"
    start = time.perf_counter()
    try:
        ran = _run([str(python), "-I", "-c", script, check], env=None, timeout=timeout)
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout:g}s"
        return ProbeResult(error=error, warnings=(), seconds=time.perf_counter() - start)
    answer = [line for line in ran.stdout.splitlines() if line.startswith(_PROBE_MARK)]
    if not answer:
        error = f"the interpreter exited with code {ran.returncode}: {ran.tail(1)}".rstrip(": ")
        return ProbeResult(error=error, warnings=(), seconds=ran.seconds)
    data = json.loads(answer[-1][len(_PROBE_MARK) :])
    printed = tuple(line for line in ran.stderr.splitlines() if line.strip())
    return ProbeResult(
        error=data["error"], warnings=(*data["warnings"], *printed), seconds=ran.seconds
    )
