"""uv's commands as the apply layer runs them, and the target interpreter's probes. Every
process starts at `envspec.proc`, with SIGINT and SIGTERM forwarded to it (`Interrupted`
afterwards), the environment locks inherited and, on Linux, the death signal set: see there.

uv is always the binary the `uv` package ships (`uv.find_uv_bin()`), never whatever `uv` is on
PATH, and always runs with `--no-config`, with every `UV_*` and `PIP_*` variable but
`UV_CACHE_DIR` (`proc.PASSED_TO_UV`: uv's cache stays the user's) removed from its environment
(the CLI's snapshot, `UvOptions.environ`) and our own options given explicitly, so a user's or
machine's uv/pip configuration cannot change what is installed (DESIGN.md §7).
Index URLs, which may carry credentials, reach uv through its environment (`UV_INDEX`,
`UV_DEFAULT_INDEX`: `Index.location.secret`, with an `ENVSPEC_INDEX_<NAME>_*` login put in by
`index.auth.uv_url`), never through argv (visible to every user of the machine) or a message.

The target interpreter runs two kinds of small stdlib-only scripts: one that prints its
marker environment and install paths, and one per import probe. Both run isolated (`-I`): no
user site, no `PYTHON*` variables, no current directory on `sys.path`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uv import find_uv_bin

from envspec import proc
from envspec.errors import ApplyError
from envspec.model import Index

_PROBE_MARK = "@@envspec-probe@@"


@dataclass(frozen=True, kw_only=True, slots=True)
class UvOptions:
    """What every uv call of one envspec command shares."""

    environ: Mapping[str, str]  # the CLI's snapshot: uv's environment, ENVSPEC_INDEX_* logins
    cache_dir: Path | None = None
    offline: bool = False
    indexes: tuple[Index, ...] = ()  # the spec's: for credentials, build deps, registry lines


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeResult:
    """What importing `module[:attr]` in the target interpreter did."""

    error: str | None
    warnings: tuple[str, ...]
    seconds: float


def index_urls(indexes: Sequence[Index], environ: Mapping[str, str]) -> tuple[str, ...]:
    """The spec's default-routed indexes as URLs for uv, credentials from the environment
    (`ENVSPEC_INDEX_<NAME>_USERNAME/_PASSWORD`) put in when the URL has none."""
    routed = [i for i in indexes if not i.explicit and not i.flat]
    if not any(key.startswith("ENVSPEC_INDEX_") for key in environ):
        return tuple(i.location.secret for i in routed)
    from envspec.index.auth import uv_url  # costly to import: only when it has work

    return tuple(uv_url(i, environ).secret for i in routed)


def _uv_environment(options: UvOptions) -> dict[str, str]:
    env = proc.without_installer_settings(options.environ)
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


def tail(ran: proc.Finished, lines: int = proc.TAIL_LINES) -> str:
    """The last lines uv wrote to stderr, for an error report (its `Using Python` notice
    left out)."""
    text = [
        line
        for line in ran.output.splitlines()
        if line.strip() and not line.startswith("Using Python ")
    ]
    return "\n".join(text[-lines:])


def reason(ran: proc.Finished) -> str:
    """uv's last line, to quote after our own message: its `error: ` prefix dropped, as our
    message already carries one."""
    last = tail(ran, 1)
    return last.removeprefix("error:").strip()


def uv(*args: str, options: UvOptions, timeout: float | None = None) -> proc.Finished:
    """Run `uv <args>` with our fixed global options."""
    argv = [find_uv_bin(), *args, "--no-config", "--color", "never"]
    if options.cache_dir is not None:
        argv += ["--cache-dir", str(options.cache_dir)]
    if options.offline:
        argv.append("--offline")
    env = _uv_environment(options)
    return proc.run(argv, env=env, timeout=timeout, forward_signals=True)


def pip_install(
    python: Path,
    requirements: Path,
    options: UvOptions,
    *,
    require_hashes: bool,
    no_build_isolation: bool,
    reinstall: Sequence[str] = (),
    no_cache: bool = False,
) -> proc.Finished:
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
) -> proc.Finished:
    """Make the environment hold exactly `requirements` (extras removed); with `no_index`,
    from its `--find-links` folders and uv's cache alone; `reinstall` as for `pip_install`."""
    args = ["pip", "sync", "--python", str(python), "--allow-empty-requirements"]
    if no_index:
        args.append("--no-index")
    return uv(*args, str(requirements), *_reinstall_args(reinstall), options=options)


def _reinstall_args(names: Sequence[str]) -> list[str]:
    return [arg for name in names for arg in ("--reinstall-package", name)]


def pip_uninstall(python: Path, names: Sequence[str], options: UvOptions) -> proc.Finished:
    return uv("pip", "uninstall", "--python", str(python), *names, options=options)


def pip_freeze(python: Path, options: UvOptions) -> str:
    """The environment's `pip freeze`, verbatim."""
    ran = uv("pip", "freeze", "--python", str(python), options=options)
    if not ran.ok:
        raise ApplyError(
            f"'uv pip freeze' failed: {reason(ran) or f'exit code {ran.returncode}'}",
            context=str(python),
        )
    return ran.stdout


def create_venv(root: Path, python: str, options: UvOptions) -> None:
    """`uv venv --python <python> <root>`."""
    ran = uv("venv", "--python", python, str(root), options=options)
    if not ran.ok:
        raise ApplyError(
            f"cannot create the environment with Python {python}: {reason(ran)}",
            context=str(root),
            hint="install that Python, or pass --python with an existing environment",
        )


def find_python(python: str, options: UvOptions) -> Path:
    """The interpreter `uv venv --python <python>` would make an environment from: `uv python
    find --system` (no virtual environment, nothing downloaded, nothing cached: a dry run
    writes nothing anywhere)."""
    ran = uv("python", "find", "--system", "--no-cache", python, options=options)
    found = ran.stdout.strip()
    if not ran.ok or not found:
        raise ApplyError(
            f"no Python {python} to create the environment with: {reason(ran)}",
            hint="install that Python ('uv python install " + python + "'), or pass --python "
            "with an existing environment",
        )
    return Path(found)


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


def probe_interpreter(python: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """The interpreter's marker environment, prefix and site-packages folders; it runs in
    `environ` (the CLI's snapshot)."""
    argv = [str(python), "-I", "-c", _INTERPRETER_SCRIPT]
    ran = proc.run(argv, env=environ, timeout=60, forward_signals=True)
    try:
        data: dict[str, Any] = json.loads(ran.stdout)
    except ValueError as exc:
        raise ApplyError(
            f"cannot query the Python interpreter: {reason(ran) or 'no answer'}",
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


def probe_import(
    python: Path, check: str, timeout: float, environ: Mapping[str, str]
) -> ProbeResult:
    """Import `module` (and look up `attr`) of `check` in a fresh interpreter, in `environ`.

    Warnings raised during the import and anything the import printed to stderr (compiled
    modules print ABI complaints there) are reported as warnings."""
    script = f"MARK = {_PROBE_MARK!r}\n{_IMPORT_SCRIPT}"
    start = time.perf_counter()
    argv = [str(python), "-I", "-c", script, check]
    try:
        ran = proc.run(argv, env=environ, timeout=timeout, forward_signals=True)
    except proc.TimedOut:
        error = f"timed out after {timeout:g}s"
        return ProbeResult(error=error, warnings=(), seconds=time.perf_counter() - start)
    answer = [line for line in ran.stdout.splitlines() if line.startswith(_PROBE_MARK)]
    if not answer:
        error = f"the interpreter exited with code {ran.returncode}: {reason(ran)}".rstrip(": ")
        return ProbeResult(error=error, warnings=(), seconds=ran.seconds)
    data = json.loads(answer[-1][len(_PROBE_MARK) :])
    printed = tuple(line for line in ran.output.splitlines() if line.strip())
    return ProbeResult(
        error=data["error"], warnings=(*data["warnings"], *printed), seconds=ran.seconds
    )
