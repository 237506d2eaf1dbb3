"""`envspec init`: a starter spec, and the conversion of requirements files (each a phase) into
a spec that `envspec lock` then locks against indexes on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from envspec.cli import main
from envspec.lockfile import load_lock, lock_path
from envspec.spec import load_spec
from support.index_server import IndexServer
from support.lockproject import lock

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def init(project: Path, *args: str) -> int:
    return main(["init", "--project", str(project), *args])


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def test_starter_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "my app"
    project.mkdir()
    assert init(project) == 0
    assert (project / "envspec.toml").read_text() == (
        "# envspec.toml, written by 'envspec init'.\n"
        "# Each [[phases]] table is one install step, in order; then run 'envspec lock'.\n"
        "\n"
        "[environment]\n"
        'name = "my-app"\n'
        'python = "3.11"\n'
        'targets = ["linux-x86_64", "windows-x86_64", "macos-arm64"]\n'
        "\n"
        "[indexes]\n"
        'pypi = "https://pypi.org/simple"\n'
        "\n"
        "[[phases]]\n"
        'name = "main"\n'
        '# PEP 508 requirements, e.g. "numpy<2", "torch>=2.3"\n'
        "requirements = []\n"
    )
    assert capsys.readouterr().err == f"wrote {project / 'envspec.toml'}\n"


def test_starter_options(tmp_path: Path) -> None:
    args = ["--name", "trainer", "--python-version", "3.12", "--target", "macos-arm64"]
    assert init(tmp_path, *args) == 0
    doc = tomllib.loads((tmp_path / "envspec.toml").read_text())
    assert doc["environment"] == {"name": "trainer", "python": "3.12", "targets": ["macos-arm64"]}


def test_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "envspec.toml"
    spec.write_text("# mine\n")
    reqs = write(tmp_path, "requirements.txt", "numpy\n")
    assert init(tmp_path, "--from", reqs) == 2
    assert capsys.readouterr().err == (
        f"error: {spec}: envspec.toml already exists\nhint: edit it, or remove it to start over\n"
    )
    assert spec.read_text() == "# mine\n"


SEED = {
    "01-numpy.txt": "numpy<2  # torch is built against NumPy 1.x\n",
    "02-torch.txt": (
        "--index-url https://download.pytorch.org/whl/cu121\n"
        "torch\ntorchvision\ntorchaudio\nxformers\n"
    ),
    "03-transformers.txt": "transformers>=4.40\nhuggingface_hub\n",
    "04-unsloth.txt": "unsloth[colab-new] @ git+https://github.com/unslothai/unsloth.git\n",
    "05-training.txt": (
        "trl \\\n  --hash=sha256:00\npeft\n\n# the rest\naccelerate\ndatasets\ntensorboard\n"
    ),
}


def test_the_seed_install_script_converts(tmp_path: Path) -> None:
    files = [write(tmp_path, name, text) for name, text in SEED.items()]
    assert init(tmp_path, "--name", "trainer", *(a for f in files for a in ("--from", f))) == 0
    text = (tmp_path / "envspec.toml").read_text()
    assert text.split("\n", 3)[3] == (
        "[environment]\n"
        'name = "trainer"\n'
        'python = "3.11"\n'
        'targets = ["linux-x86_64", "windows-x86_64", "macos-arm64"]\n'
        "\n"
        "[indexes]\n"
        'pypi = "https://pypi.org/simple"\n'
        'pytorch-cu121 = {url = "https://download.pytorch.org/whl/cu121", explicit = true}\n'
        "\n"
        "[[phases]]\n"
        'name = "numpy"\n'
        'requirements = ["numpy<2"]\n'
        "\n"
        "[[phases]]\n"
        'name = "torch"\n'
        'index = "pytorch-cu121"\n'
        'requirements = ["torch", "torchvision", "torchaudio", "xformers"]\n'
        "\n"
        "[[phases]]\n"
        'name = "transformers"\n'
        'requirements = ["transformers>=4.40", "huggingface_hub"]\n'
        "\n"
        "[[phases]]\n"
        'name = "unsloth"\n'
        'requirements = ["unsloth[colab-new] @ git+https://github.com/unslothai/unsloth.git"]\n'
        "\n"
        "[[phases]]\n"
        'name = "training"\n'
        'requirements = ["trl", "peft", "accelerate", "datasets", "tensorboard"]\n'
    )
    spec = load_spec(tmp_path / "envspec.toml", {})
    assert [p.name for p in spec.phases] == [
        "numpy",
        "torch",
        "transformers",
        "unsloth",
        "training",
    ]
    assert {spec.phases[1].index_for(t) for t in spec.targets} == {"pytorch-cu121"}
    assert spec.index("pytorch-cu121").explicit


def test_converted_spec_locks_from_the_routed_index(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("numpy", "1.26.4")
    index_server.add_wheel("numpy", "2.1.0")
    index_server.add_wheel("torch", "2.3.1")  # the CPU build: must not be taken
    index_server.add_wheel("filelock", "3.15.0")
    with IndexServer() as cuda:
        cuda.add_wheel("torch", "2.3.1+cu121", requires_dist=["numpy", "filelock"])
        project = tmp_path / "project"
        project.mkdir()
        files = [
            write(tmp_path, "requirements-numpy.txt", f"-i {index_server.url}\nnumpy<2\n"),
            write(
                tmp_path,
                "requirements-torch.txt",
                f"-i {index_server.url}\n--extra-index-url={cuda.url}\ntorch\n",
            ),
        ]
        args = ["--target", "linux-x86_64", "--from", files[0], "--from", files[1]]
        assert init(project, *args) == 0
        doc = tomllib.loads((project / "envspec.toml").read_text())
        # --extra-index-url as uv means it: searched first, so torch comes from it
        assert doc["indexes"] == {"index": cuda.url, "index-2": index_server.url}
        assert [p.get("index") for p in doc["phases"]] == [None, None]
        assert lock(project) == 0
    pins = {p.name: str(p.version) for p in load_lock(lock_path(project, "linux-x86_64")).packages}
    assert pins == {"numpy": "1.26.4", "torch": "2.3.1+cu121", "filelock": "3.15.0"}
    assert capsys.readouterr().err.startswith(f"wrote {project / 'envspec.toml'} with 2 phases\n")


def test_an_index_url_every_file_gives_replaces_pypi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where pip takes `-f ./wheels` from
    mirror = "https://mirror.example.com/pypi/simple"
    files = [
        write(tmp_path, "a.txt", f"--index-url {mirror}\n--pre\nnumpy\n"),
        write(tmp_path, "b.txt", f"-i {mirror}\n-f ./wheels\n--only-binary :all:\nscipy\n"),
        write(tmp_path, "c.txt", f"-i {mirror}\n--no-binary=tool,other\ntool --hash=sha256:00\n"),
    ]
    project = tmp_path / "p"
    project.mkdir()
    assert init(project, *(a for f in files for a in ("--from", f))) == 0
    doc = tomllib.loads((project / "envspec.toml").read_text())
    # absolute: written as it was, the spec took it from the project's folder
    wheels = str(tmp_path / "wheels")
    assert doc["indexes"] == {"example": mirror, "wheels": {"url": wheels, "flat": True}}
    assert [(p["name"], p.get("index"), p["requirements"]) for p in doc["phases"]] == [
        ("a", None, ["numpy"]),
        ("b", None, ["scipy"]),
        ("c", None, ["tool"]),
    ]
    assert doc["resolution"] == {
        "prereleases": "allow",
        "no-binary": ["other", "tool"],
        "no-build": [":all:"],
    }


# --- bad input: nothing is written ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        ("numpy\nnumpy<<2\n", 2, "invalid requirement 'numpy<<2': expected ", None),
        ("-r other.txt\n", 1, "-r other.txt: no such requirements file", None),
        ("--upgrade\nnumpy\n", 1, "unsupported option '--upgrade'", "envspec init reads "),
        ("numpy --upgrade\n", 1, "unsupported option '--upgrade' after a requirement", None),
        ("--index-url\nnumpy\n", 1, "option '--index-url' needs a value", None),
    ],
)
def test_bad_requirements_file(  # noqa: PLR0917 (pytest passes parameters by position)
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: int,
    message: str,
    hint: str | None,
) -> None:
    reqs = write(tmp_path, "reqs.txt", text)
    assert init(tmp_path, "--from", reqs) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {reqs}:{line}: {message}")
    if hint:
        assert err[1].startswith(f"hint: {hint}")
    assert not (tmp_path / "envspec.toml").exists()


def test_exact_messages_for_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.txt"
    assert init(tmp_path, "--from", str(missing)) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such requirements file\n"
    empty = write(tmp_path, "empty.txt", "# nothing\n\n")
    assert init(tmp_path, "--from", empty) == 2
    assert capsys.readouterr().err == (
        f"error: {empty}: no requirements in the file\nhint: each file becomes a phase\n"
    )
    bad = write(tmp_path, "bad.txt", "numpy<<2\n")
    assert init(tmp_path, "--from", bad) == 2
    assert capsys.readouterr().err == (
        f"error: {bad}:1: invalid requirement 'numpy<<2': "
        "expected semicolon (after name with no version specifier) or end\n"
    )
    assert not (tmp_path / "envspec.toml").exists()


def test_unknown_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init(tmp_path, "--target", "linux-x86") == 2
    assert capsys.readouterr().err == (
        "error: --target: unknown target 'linux-x86'\nhint: did you mean 'linux-x86_64'?\n"
    )
    assert not (tmp_path / "envspec.toml").exists()


def test_a_relative_package_path_is_taken_from_the_working_folder_as_pip_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pip install -r sub/reqs.txt` takes `./dist/x.whl` from where it runs (`-r` and `-c`
    from the file's folder); envspec took it from the file's folder, another file or none,
    and never looked whether it was there."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "dist").mkdir()
    wheel = tmp_path / "dist" / "tinypkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    reqs = write(tmp_path / "sub", "reqs.txt", "./dist/tinypkg-1.0-py3-none-any.whl\n")
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "p"
    project.mkdir()
    assert init(project, "--from", reqs) == 0
    doc = tomllib.loads((project / "envspec.toml").read_text())
    assert doc["phases"][0]["requirements"] == [f"tinypkg @ {wheel.as_uri()}"]
    monkeypatch.chdir(tmp_path / "sub")
    (project / "envspec.toml").unlink()
    capsys.readouterr()
    assert init(project, "--from", reqs) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {reqs}:1: no such file './dist/tinypkg-1.0-py3-none-any.whl'",
        "hint: a relative path is taken from the working folder, as pip does "
        f"({tmp_path / 'sub'})",
    ]
    assert not (project / "envspec.toml").exists()


def test_extras_and_a_marker_on_a_local_wheel_and_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`./x.whl[gpu]` (pip takes extras there) was refused as a file named with the brackets;
    a local project folder was "no such file"."""
    (tmp_path / "dist").mkdir()
    wheel = tmp_path / "dist" / "tinypkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    monkeypatch.chdir(tmp_path)
    line = "dist/tinypkg-1.0-py3-none-any.whl[a,b] ; os_name == 'posix'\n"
    reqs = write(tmp_path, "reqs.txt", line)
    project = tmp_path / "p"
    project.mkdir()
    assert init(project, "--from", reqs) == 0
    doc = tomllib.loads((project / "envspec.toml").read_text())
    assert doc["phases"][0]["requirements"] == [
        f'tinypkg[a,b] @ {wheel.as_uri()} ; os_name == "posix"'
    ]
    (project / "envspec.toml").unlink()
    write(tmp_path, "reqs.txt", "./dist\n")
    capsys.readouterr()
    assert init(project, "--from", reqs) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {reqs}:1: './dist' is a folder: a local project cannot be locked (its content "
        "has no hash)",
        "hint: build it (uv build) and name the wheel, or install it after 'envspec sync'",
    ]
