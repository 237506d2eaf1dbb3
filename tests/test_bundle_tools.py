"""A bundle is an index for other tools too: real pip (`PIP_CONFIG_FILE=/dev/null`) and real uv
(`--no-config`) install from it, from a static server or from its folder, the same set
`envspec sync --bundle` installs — with the bundle's own install files, since the locks and
`envspec export` name the original indexes' URLs, which both tools follow (shown here too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
from uv import find_uv_bin

from envspec.cli import main
from support.envproject import PYTHON, TARGET, clean_environ
from support.index_server import IndexServer
from support.static_server import StaticServer

TAG = {"linux-x86_64": "py3-none-manylinux_2_17_x86_64"}.get(TARGET, "py3-none-any")
ENV = {**clean_environ(), "PIP_CONFIG_FILE": os.devnull}


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer) -> Path:
    """A spec over two indexes (the second explicit, for one phase) and its lock."""
    index_server.add_wheel("alpha", "1.0", requires_dist=["beta"])
    index_server.add_wheel("beta", "2.0", tag=TAG)
    extra = IndexServer(tmp_path / "extra").start()
    extra.add_wheel("gpu-kernels", "1.0+cu121")
    extra.add_wheel("alpha", "9.0")  # the explicit index's own copy: never taken
    folder = tmp_path / "project"
    folder.mkdir()
    spec = {
        "environment": {"name": "t", "python": PYTHON, "targets": [TARGET]},
        "indexes": {"local": index_server.url, "extra": {"url": extra.url, "explicit": True}},
        "phases": [
            {"name": "base", "requirements": ["alpha"]},
            {"name": "gpu", "index": {TARGET: "extra"}, "requirements": ["gpu-kernels"]},
        ],
    }
    (folder / "envspec.toml").write_text(tomlkit.dumps(spec))
    cache = str(tmp_path / "cache")
    assert main(["lock", "--project", str(folder), "--cache-dir", cache]) == 0
    bundle = ["bundle", str(tmp_path / "bundle"), "--project", str(folder), "--cache-dir", cache]
    assert main(bundle) == 0
    extra.stop()
    return folder


def venv(path: Path) -> Path:
    run([find_uv_bin(), "venv", "-q", "--no-config", "--python", sys.executable, str(path)])
    return path / "bin" / "python"


def run(argv: list[str], *, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False)
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc


def freeze(python: Path) -> str:
    return run([find_uv_bin(), "pip", "freeze", "--no-config", "--python", str(python)]).stdout


def pip(python: Path, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir",
         "--disable-pip-version-check", "--retries", "0", "--timeout", "5", *map(str, args)],
        ok=ok,
    )  # fmt: skip


def uv_pip(python: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cache = str(python.parent.parent.parent / f"uv-cache-{python.parent.parent.name}")
    return run(
        [find_uv_bin(), "pip", "install", "--no-config", "--python", str(python),
         "--cache-dir", cache, *args],
        ok=ok,
    )  # fmt: skip


def test_pip_and_uv_install_the_set_envspec_syncs_from_a_served_bundle_or_its_folder(
    project: Path, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    index_server.stop()  # from here on, only the bundle can serve a file
    synced = venv(tmp_path / "envspec-env")
    args = ["--project", str(project), "--cache-dir", str(tmp_path / "machine")]
    assert main(["sync", "--python", str(synced), "--bundle", str(dest), *args]) == 0
    expected = freeze(synced)
    assert expected == "alpha==1.0\nbeta==2.0\ngpu-kernels==1.0+cu121\n"
    requirements = f"install/requirements.{TARGET}.txt"
    with StaticServer(dest) as server:
        simple = f"{server.url}simple"
        for name, install in [
            ("pip-url", lambda py: pip(py, "--index-url", simple, "--require-hashes",
                                      "--no-deps", "-r", server.url + requirements)),
            ("uv-url", lambda py: uv_pip(py, "--index-url", simple, "--require-hashes",
                                        "--no-deps", "-r", server.url + requirements)),
        ]:  # fmt: skip
            python = venv(tmp_path / name)
            install(python)
            assert freeze(python) == expected, name
        asked = {p.split("/")[1] for p in server.paths}
        assert asked == {"simple", "files", "install"}
    local = (dest / "simple").as_uri()
    python = venv(tmp_path / "pip-folder")
    pip(python, "--index-url", local, "--require-hashes", "--no-deps", "-r", dest / requirements)
    assert freeze(python) == expected
    python = venv(tmp_path / "uv-pylock")
    uv_pip(python, "-r", str(dest / "install" / f"pylock.{TARGET}.toml"))
    assert freeze(python) == expected


def test_the_locks_and_a_plain_export_name_the_original_indexes_which_both_tools_follow(
    project: Path, index_server: IndexServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bundle"
    export = tmp_path / "export.txt"
    assert main(["export", "--project", str(project), "-o", str(export)]) == 0
    canonical = index_server.url
    index_server.stop()
    with StaticServer(dest) as server:
        simple = f"{server.url}simple"
        lock = str(dest / "locks" / f"pylock.{TARGET}.toml")
        ran = uv_pip(venv(tmp_path / "uv"), "--index-url", simple, "-r", lock, ok=False)
        fetched = re.findall(r"Failed to fetch: (\S+)", ran.stderr)
        assert fetched and fetched[0] in Path(lock).read_text()  # the entry's own url
        ran = pip(venv(tmp_path / "pip"), "--index-url", simple, "--require-hashes",
                  "--no-deps", "-r", str(export), ok=False)  # fmt: skip
        assert f"Looking in indexes: {canonical.rstrip('/')}" in ran.stdout  # the file's wins
        assert server.paths == []


def test_a_package_marker_in_the_lock_reaches_the_bundles_install_files(
    project: Path, index_server: IndexServer, tmp_path: Path
) -> None:
    """Its install files dropped a lock's package marker: uv and pip installed what `envspec
    sync --bundle` leaves out."""
    lock = project / "locks" / f"pylock.{TARGET}.toml"
    head = 'name = "beta"\nversion = "2.0"\n'
    lock.write_text(lock.read_text().replace(head, head + "marker = \"python_version < '3.0'\"\n"))
    dest = tmp_path / "bundle"
    cache = str(tmp_path / "cache")
    assert main(["bundle", str(dest), "--project", str(project), "--cache-dir", cache]) == 0
    index_server.stop()
    synced = venv(tmp_path / "envspec-env")
    args = ["--project", str(project), "--cache-dir", str(tmp_path / "machine"), "--frozen",
            "--no-checks"]  # alpha needs beta: the check says so
    assert main(["sync", "--python", str(synced), "--bundle", str(dest), *args]) == 0
    expected = freeze(synced)
    assert expected == "alpha==1.0\ngpu-kernels==1.0+cu121\n"
    python = venv(tmp_path / "uv-pylock")
    uv_pip(python, "-r", str(dest / "install" / f"pylock.{TARGET}.toml"))
    assert freeze(python) == expected
    python = venv(tmp_path / "pip-folder")
    requirements = dest / "install" / f"requirements.{TARGET}.txt"
    pip(python, "--index-url", (dest / "simple").as_uri(), "--require-hashes", "--no-deps", "-r",
        requirements)  # fmt: skip
    assert freeze(python) == expected
