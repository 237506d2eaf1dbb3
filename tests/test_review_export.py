"""`envspec export` and lock interop: the exported requirements file is installed unchanged by
real pip (``--require-hashes --no-deps``) and real uv into real virtual environments made by
``uv venv``, from indexes on 127.0.0.1; and ``uv pip install -r locks/pylock.<target>.toml``
installs a lock written by ``envspec lock`` (uv reads PEP 751 files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import uv
from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.cli import main
from envspec.lockfile import lock_path, write_lock
from envspec.model import Artifact, Lock, LockedPackage, LockedPhase, VcsSource
from envspec.targets import host_target
from support.index_server import IndexServer
from support.lockproject import lock, spec_text

TORCH_LINUX = "torch-2.3.1+cu121-cp311-cp311-linux_x86_64.whl"
PINS = {"numpy": "1.26.4", "torch": "2.3.1+cu121", "filelock": "3.15.0", "app": "1.0"}


@pytest.fixture
def torch_index() -> Iterator[IndexServer]:
    with IndexServer() as server:
        server.add_wheel(
            "torch",
            "2.3.1+cu121",
            tag="cp311-cp311-linux_x86_64",
            requires_dist=["numpy", "filelock"],
        )
        server.add_wheel(
            "torch", "2.3.1+cu121", tag="cp311-cp311-win_amd64", requires_dist=["numpy", "filelock"]
        )
        server.add_wheel("numpy", "1.26.4", pad_bytes=16)  # a copy the lock must not take
        yield server


@pytest.fixture
def project(tmp_path: Path, index_server: IndexServer, torch_index: IndexServer) -> Path:
    index_server.add_wheel("numpy", "1.26.4")
    index_server.add_wheel("numpy", "2.1.0")
    index_server.add_wheel("filelock", "3.15.0")
    index_server.add_wheel("app", "1.0", requires_dist=["torch", "numpy"])
    root = tmp_path / "project"
    root.mkdir()
    indexes: dict[str, str | Mapping[str, object]] = {
        "pypi": index_server.url,
        "cu121": {"url": torch_index.url, "explicit": True},
    }
    phases = [
        {"name": "numpy", "requirements": ["numpy<2"]},
        {"name": "torch", "requirements": ["torch"], "index": "cu121"},
        {"name": "app", "requirements": ["app"]},
    ]
    (root / "envspec.toml").write_text(spec_text(indexes, phases))
    assert lock(root) == 0
    return root


def export(project: Path, *args: str) -> int:
    return main(["export", "--project", str(project), *args])


# --- real installers -----------------------------------------------------------------------


def clean_env(tmp: Path) -> dict[str, str]:
    """The environment without any pip/uv configuration of the machine or the user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_"))}
    env.update(
        PIP_CONFIG_FILE="/dev/null",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_CACHE_DIR=str(tmp / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def make_venv(path: Path, env: dict[str, str]) -> Path:
    uv_bin = uv.find_uv_bin()
    run([uv_bin, "venv", "--no-config", "--quiet", "--python", sys.executable, str(path)], env)
    return path / "bin" / "python"


def installed(python: Path, env: dict[str, str]) -> dict[str, str]:
    """name → version of what is installed (read by uv from the environment's dist-info)."""
    uv_bin = uv.find_uv_bin()
    done = run(
        [uv_bin, "pip", "list", "--no-config", "--format", "json", "--python", str(python)], env
    )
    return {canonicalize_name(d["name"]): d["version"] for d in json.loads(done.stdout)}


def pip_install(python: Path, requirements: Path, env: dict[str, str]) -> None:
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(requirements),
        ],
        env,
    )


def uv_install(python: Path, requirements: Path, env: dict[str, str]) -> None:
    run(
        [
            uv.find_uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--python",
            str(python),
            "-r",
            str(requirements),
        ],
        env,
    )


# --- the exported file ---------------------------------------------------------------------


def test_export_layout(
    project: Path,
    index_server: IndexServer,
    torch_index: IndexServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    assert export(project, "--target", "linux-x86_64") == 0
    sha = {
        name: server.entry(name).sha256
        for server, name in [
            (index_server, "numpy-1.26.4-py3-none-any.whl"),
            (index_server, "filelock-3.15.0-py3-none-any.whl"),
            (index_server, "app-1.0-py3-none-any.whl"),
            (torch_index, TORCH_LINUX),
        ]
    }
    assert capsys.readouterr().out == (
        "# target linux-x86_64, exported by envspec from locks/pylock.linux-x86_64.toml\n"
        "# do not edit: run 'envspec export' again\n"
        "# for: sys_platform == 'linux' and platform_machine == 'x86_64'\n"
        "# requires-python: ==3.11.*\n"
        "# install: pip install --require-hashes --no-deps -r FILE  or  uv pip install -r FILE\n"
        f"--index-url {index_server.url}\n"
        "\n"
        "# phase numpy\n"
        "numpy==1.26.4 \\\n"
        f"    --hash=sha256:{sha['numpy-1.26.4-py3-none-any.whl']}\n"
        "\n"
        "# phase torch (index cu121)\n"
        "filelock==3.15.0 \\\n"
        f"    --hash=sha256:{sha['filelock-3.15.0-py3-none-any.whl']}\n"
        f"torch @ {torch_index.file_url(TORCH_LINUX)} \\\n"
        f"    --hash=sha256:{sha[TORCH_LINUX]}\n"
        "\n"
        "# phase app\n"
        "app==1.0 \\\n"
        f"    --hash=sha256:{sha['app-1.0-py3-none-any.whl']}\n"
    )


def test_each_target_exports_its_own_files(
    project: Path, torch_index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert export(project, "--target", "windows-x86_64") == 0
    windows = torch_index.entry("torch-2.3.1+cu121-cp311-cp311-win_amd64.whl").sha256
    assert f"    --hash=sha256:{windows}\n" in capsys.readouterr().out


def test_pip_installs_the_export_with_require_hashes(project: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    out = tmp_path / "requirements.txt"
    assert export(project, "--target", "linux-x86_64", "-o", str(out)) == 0
    python = make_venv(tmp_path / "venv", env)
    pip_install(python, out, env)
    assert installed(python, env) == PINS


def test_uv_installs_the_export(project: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    out = tmp_path / "requirements.txt"
    assert export(project, "--target", "linux-x86_64", "--output", str(out)) == 0
    python = make_venv(tmp_path / "venv", env)
    uv_install(python, out, env)
    assert installed(python, env) == PINS


def test_one_phase_at_a_time_in_phase_order(
    project: Path, tmp_path: Path, index_server: IndexServer, torch_index: IndexServer
) -> None:
    env = clean_env(tmp_path)
    python = make_venv(tmp_path / "venv", env)
    seen: dict[str, str] = {}
    for phase in ("numpy", "torch", "app"):
        out = tmp_path / f"{phase}.txt"
        assert export(project, "--target", "linux-x86_64", "--phase", phase, "-o", str(out)) == 0
        pip_install(python, out, env)
        now = installed(python, env)
        assert set(seen) < set(now)
        seen = now
    assert seen == PINS
    torch_only = (tmp_path / "torch.txt").read_text()
    assert torch_only.splitlines()[0] == (
        "# phase torch of target linux-x86_64, exported by envspec from "
        "locks/pylock.linux-x86_64.toml"
    )
    assert f"--index-url {index_server.url}\n" in torch_only  # for filelock
    assert f"torch @ {torch_index.file_url(TORCH_LINUX)} \\\n" in torch_only


def test_uv_installs_the_pep751_lock_itself(project: Path, tmp_path: Path) -> None:
    """The interop proof: uv installs the lock written by `envspec lock` as is, and the
    environment it gives is the one `envspec sync` gives (and the exported file)."""
    env = clean_env(tmp_path)
    from_lock = make_venv(tmp_path / "from-lock", env)
    uv_install(from_lock, lock_path(project, "linux-x86_64"), env)
    from_sync = make_venv(tmp_path / "from-sync", env)
    sync = ["sync", "--project", str(project), "--python", str(from_sync)]
    assert main([*sync, "--cache-dir", str(tmp_path / "cache")]) == 0
    out = tmp_path / "requirements.txt"
    assert export(project, "--target", "linux-x86_64", "-o", str(out)) == 0
    from_export = make_venv(tmp_path / "from-export", env)
    pip_install(from_export, out, env)
    assert installed(from_lock, env) == PINS
    assert installed(from_sync, env) == PINS
    assert installed(from_export, env) == PINS


# --- sources other than an index -----------------------------------------------------------


def test_git_and_url_packages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "envspec.toml").write_text(
        spec_text(
            {"pypi": "https://pypi.org/simple"},
            [{"name": "x", "requirements": ["x"]}],
            targets=["linux-x86_64"],
        )
    )
    commit = "0123456789abcdef0123456789abcdef01234567"
    unsloth = LockedPackage(
        name=canonicalize_name("unsloth"),
        version=Version("2024.8"),
        vcs=VcsSource(
            url="https://github.com/unslothai/unsloth.git",
            requested_revision=None,
            commit_id=commit,
        ),
        phase="x",
        required_by=("<spec>",),
    )
    url = "https://example.org/dl/tool-1.0.tar.gz"
    tool = LockedPackage(
        name=canonicalize_name("tool"),
        version=Version("1.0"),
        artifact=Artifact(filename="tool-1.0.tar.gz", url=url, kind="sdist", sha256="c" * 64),
        phase="x",
        required_by=("unsloth",),
    )
    write_lock(
        lock_path(project, "linux-x86_64"),
        Lock(
            target="linux-x86_64",
            requires_python="==3.11.*",
            environments=(),
            packages=(unsloth, tool),
            phases=(LockedPhase(name="x"),),
            inputs={},
        ),
    )
    assert export(project) == 0  # the only target needs no --target
    lines = capsys.readouterr().out.splitlines()
    assert lines[4:] == [
        "# note: git packages have no hash; pip refuses them with --require-hashes, "
        "so install them with uv or separately",
        "",
        "# phase x",
        f"tool @ {url} \\",
        f"    --hash=sha256:{'c' * 64}",
        f"unsloth @ git+https://github.com/unslothai/unsloth.git@{commit}",
    ]


# --- bad input -----------------------------------------------------------------------------


def test_unknown_target(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export(project, "--target", "linux-x86") == 2
    assert capsys.readouterr().err.endswith(
        "error: --target: target 'linux-x86' is not in the spec\n"
        "hint: did you mean 'linux-x86_64'?\n"
    )


def test_several_targets_default_to_this_machines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `sync` picks the lock of its interpreter's platform, `export` without `--target`
    exports this machine's target when the spec locks it."""
    host = host_target()
    assert host in ("linux-x86_64", "windows-x86_64"), "the project locks these two"
    capsys.readouterr()
    assert export(project) == 0
    assert capsys.readouterr().out.startswith(
        f"# target {host}, exported by envspec from locks/pylock.{host}.toml\n"
    )


def test_several_targets_none_of_them_this_machines(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = project / "envspec.toml"
    others = [t for t in ("windows-x86_64", "macos-arm64", "linux-x86_64") if t != host_target()]
    text = spec.read_text()
    start = text.index("targets = [")
    end = text.index("]", start) + 1
    spec.write_text(text[:start] + f"targets = {json.dumps(others[:2])}" + text[end:])
    capsys.readouterr()
    assert export(project) == 2
    assert capsys.readouterr().err == (
        "error: --target: the spec has several targets, none of them this machine's (this "
        f"machine is {host_target()}): choose one\n"
        f"hint: targets: {', '.join(others[:2])}\n"
    )


def test_unknown_phase(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.txt"
    assert export(project, "--target", "linux-x86_64", "--phase", "trch", "-o", str(out)) == 2
    assert capsys.readouterr().err.endswith(
        "error: --phase: unknown phase 'trch'\nhint: did you mean 'torch'?\n"
    )
    assert not out.exists()
    assert export(project, "--target", "linux-x86_64", "--phase", "zzz") == 2
    assert capsys.readouterr().err.endswith(
        "error: --phase: unknown phase 'zzz'\n"
        "hint: phases of target linux-x86_64: numpy, torch, app\n"
    )


def test_a_phase_of_other_targets_is_named_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "unknown phase", of a phase the spec has."""
    spec = project / "envspec.toml"
    spec.write_text(
        spec.read_text()
        + '\n[[phases]]\nname = "win"\ntargets = ["windows-x86_64"]\nrequirements = ["filelock"]\n'
    )
    assert lock(project) == 0
    capsys.readouterr()
    assert export(project, "--target", "linux-x86_64", "--phase", "win") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --phase: phase 'win' is not on linux-x86_64",
        "hint: it is on windows-x86_64; pass --target with one of them",
    ]


def test_missing_lock(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = lock_path(project, "windows-x86_64")
    path.unlink()
    assert export(project, "--target", "windows-x86_64") == 3
    assert capsys.readouterr().err.endswith(
        f"error: {path}: no lock file\nhint: run 'envspec lock' to write it\n"
    )


def test_json_mode_keeps_stdout_to_events(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert export(project, "--target", "linux-x86_64", "--phase", "numpy", "--json") == 0
    event = json.loads(capsys.readouterr().out)
    assert (event["event"], event["target"], event["phase"]) == ("export", "linux-x86_64", "numpy")
    assert event["text"].startswith("# phase numpy of target linux-x86_64")


def test_a_package_marker_in_the_lock_stays_with_its_line(
    project: Path, tmp_path: Path, torch_index: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lock edited to say when a package installs (`sync` honours it): the export dropped
    the marker, so pip installed what sync leaves out."""
    path = project / "locks" / "pylock.linux-x86_64.toml"
    text = path.read_text()
    marker = "marker = \"python_version < '3.0'\"\n"
    for name, version in (("filelock", "3.15.0"), ("torch", "2.3.1+cu121")):
        head = f'name = "{name}"\nversion = "{version}"\n'
        assert head in text
        text = text.replace(head, head + marker)
    numpy = 'name = "numpy"\nversion = "1.26.4"\n'
    text = text.replace(numpy, numpy + 'requires-python = ">=3.12,!=3.13.0"\n')
    path.write_text(text)
    out = tmp_path / "requirements.txt"
    assert export(project, "--target", "linux-x86_64", "-o", str(out)) == 0
    lines = out.read_text().splitlines()
    assert "filelock==3.15.0 ; python_version < '3.0' \\" in lines
    assert f"torch @ {torch_index.file_url(TORCH_LINUX)} ; python_version < '3.0' \\" in lines
    # its requires-python as a marker: it was dropped, so pip installed it on 3.11
    assert (
        "numpy==1.26.4 ; python_full_version != '3.13.0' and python_full_version >= '3.12' \\"
        in lines
    )
    env = clean_env(tmp_path)
    python = make_venv(tmp_path / "venv", env)
    pip_install(python, out, env)
    assert set(installed(python, env)) == {"app"}


def test_a_marker_a_requirements_file_would_cut_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """` #` starts a comment in a requirements file: the line was written, uv then failed."""
    path = project / "locks" / "pylock.linux-x86_64.toml"
    head = 'name = "numpy"\nversion = "1.26.4"\n'
    path.write_text(
        path.read_text().replace(head, head + "marker = \"platform_version != 'x #1'\"\n")
    )
    capsys.readouterr()
    assert export(project, "--target", "linux-x86_64") == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: locks/pylock.linux-x86_64.toml: cannot export 'numpy': its marker holds ' #', "
        "which a requirements file reads as the start of a comment",
        "hint: install from the lock itself (uv pip install -r pylock.toml)",
    ]
