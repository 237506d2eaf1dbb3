"""Source trees with an in-tree PEP 517 backend (stdlib only, so they build with no index at
all): local git repositories, sdists that need a build, and a `git daemon` serving
repositories on 127.0.0.1.

`build_imports` makes the backend import modules while it builds a wheel, which succeeds only
without build isolation once an earlier phase installed them. `static` writes the
dependencies into `[project]` (readable without a build); otherwise `[project]` declares them
dynamic and only the backend knows them. `fail` makes every hook raise with that message,
`warn` makes the metadata hook give that warning;
`prepare=False` leaves out `prepare_metadata_for_build_wheel` (frontends then build a wheel).
"""

from __future__ import annotations

import gzip
import io
import json
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

_BACKEND = """
import base64, hashlib, os, warnings, zipfile

NAME, VERSION, IMPORTS, FAIL, WARN = {name!r}, {version!r}, {imports!r}, {fail!r}, {warn!r}
REQUIRES = {requires!r}
WHEEL = b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
DIST = NAME.replace("-", "_") + "-" + VERSION


def _metadata():
    if WARN:
        warnings.warn(WARN)
    if FAIL:
        print("backend: about to fail")
        raise RuntimeError(FAIL)
    lines = ["Metadata-Version: 2.1", "Name: " + NAME, "Version: " + VERSION] + REQUIRES
    return ("\\n".join(lines) + "\\n\\n").encode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def _prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    folder = os.path.join(metadata_directory, DIST + ".dist-info")
    os.makedirs(folder)
    with open(os.path.join(folder, "METADATA"), "wb") as f:
        f.write(_metadata())
    return DIST + ".dist-info"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for module in IMPORTS:
        __import__(module)
    members = {{
        NAME.replace("-", "_") + "/__init__.py": b"BUILT = True\\n",
        DIST + ".dist-info/METADATA": _metadata(),
        DIST + ".dist-info/WHEEL": WHEEL,
    }}
    record = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(path + ",sha256=" + digest + "," + str(len(data)))
    record.append(DIST + ".dist-info/RECORD,,")
    members[DIST + ".dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    filename = DIST + "-py3-none-any.whl"
    with zipfile.ZipFile(wheel_directory + "/" + filename, "w") as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return filename
"""


def backend_source(
    name: str,
    version: str,
    *,
    dependencies: Sequence[str] = (),
    optional_dependencies: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
    build_imports: Sequence[str] = (),
    fail: str | None = None,
    warn: str | None = None,
    prepare: bool = True,
) -> str:
    """The in-tree backend's code, its METADATA made from the given fields; `warn`: a
    warning its metadata hook gives."""
    requires = [f"Requires-Dist: {d}" for d in dependencies]
    for extra, lines in (optional_dependencies or {}).items():
        requires.append(f"Provides-Extra: {extra}")
        requires += [f"Requires-Dist: {_with_extra(line, extra)}" for line in lines]
    if requires_python:
        requires.append(f"Requires-Python: {requires_python}")
    code = _BACKEND.format(
        name=name,
        version=version,
        imports=tuple(build_imports),
        fail=fail,
        warn=warn,
        requires=requires,
    )
    if prepare:
        code += "\nprepare_metadata_for_build_wheel = _prepare_metadata_for_build_wheel\n"
    return code


def _with_extra(requirement: str, extra: str) -> str:
    if ";" in requirement:
        head, marker = requirement.split(";", 1)
        return f"{head}; ({marker.strip()}) and extra == '{extra}'"
    return f"{requirement}; extra == '{extra}'"


def pyproject(
    name: str,
    version: str,
    *,
    static: bool,
    dependencies: Sequence[str] = (),
    optional_dependencies: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
    backend: str = "backend",
    requires: Sequence[str] = (),
) -> str:
    text = (
        f"[build-system]\nrequires = {json.dumps(list(requires))}\n"
        f'build-backend = "{backend}"\nbackend-path = ["."]\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
    )
    if not static:
        return text + 'dynamic = ["dependencies", "optional-dependencies"]\n'
    text += f"dependencies = {json.dumps(list(dependencies))}\n"
    if requires_python:
        text += f"requires-python = {json.dumps(requires_python)}\n"
    if optional_dependencies:
        text += "\n[project.optional-dependencies]\n"
        text += "".join(f"{k} = {json.dumps(list(v))}\n" for k, v in optional_dependencies.items())
    return text


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_git_package(
    repo: Path,
    name: str,
    version: str,
    *,
    build_imports: Sequence[str] = (),
    dependencies: Sequence[str] = (),
    optional_dependencies: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
    static: bool = False,
    fail: str | None = None,
    warn: str | None = None,
    prepare: bool = True,
    tag: str | None = None,
) -> str:
    """Create (or add a commit to) a git repository (branch `main`) holding `name` `version`;
    its commit. `tag` adds an annotated tag on it."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "config", "user.email", "tests@example.invalid")
        _git(repo, "config", "user.name", "tests")
        _git(repo, "config", "commit.gpgsign", "false")
    fields = {
        "dependencies": dependencies,
        "optional_dependencies": optional_dependencies,
        "requires_python": requires_python,
    }
    (repo / "pyproject.toml").write_text(pyproject(name, version, static=static, **fields))
    (repo / "backend.py").write_text(
        backend_source(
            name,
            version,
            build_imports=build_imports,
            fail=fail,
            warn=warn,
            prepare=prepare,
            **fields,
        )
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", f"{name} {version}")
    if tag:
        _git(repo, "tag", "-a", tag, "-m", tag)
    return _git(repo, "rev-parse", "HEAD")


def make_backend_sdist(
    out_dir: Path,
    name: str,
    version: str,
    *,
    backend: str = "backend",
    requires: Sequence[str] = (),
    dependencies: Sequence[str] = (),
    fail: str | None = None,
) -> Path:
    """An sdist whose PKG-INFO cannot be trusted (Metadata-Version 2.1), so its metadata
    needs a PEP 517 build: by the in-tree backend, or by `backend` from `requires`."""
    root = f"{name.replace('-', '_')}-{version}"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"
    members = {
        f"{root}/PKG-INFO": pkg_info.encode(),
        f"{root}/pyproject.toml": pyproject(
            name, version, static=False, backend=backend, requires=requires
        ).encode(),
        f"{root}/backend.py": backend_source(
            name, version, dependencies=dependencies, fail=fail
        ).encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{root}.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """`git daemon` exporting every repository under `base` on 127.0.0.1; yields its root
    URL (`git://127.0.0.1:PORT/`), stopped on exit."""
    port = _free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--informative-errors",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
