"""Against the real PyPI (`pytest -m network`): the seed stack without the PyTorch index,
locked for windows-x86_64, linux-x86_64 and macos-arm64 (at macOS 13.0 and 14.0).

Each lock must be complete and consistent in uv's eyes: `uv pip compile` fed exactly its
pins adds nothing and changes nothing. Resolvers legitimately differ, so agreement with uv's
own choice is printed, not asserted: the share of equal pins and, for every direct
requirement, whose version is newer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version
from uv import find_uv_bin

from envspec.cli import main

pytestmark = pytest.mark.network
SEED = Path(__file__).parents[1] / "bench" / "seed_pypi.toml"
UV_PLATFORM = {
    "windows-x86_64": "x86_64-pc-windows-msvc",
    "linux-x86_64": "x86_64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
}
DIRECT = [
    "numpy", "torch", "torchvision", "torchaudio", "xformers", "transformers",
    "huggingface-hub", "bitsandbytes", "triton-windows", "unsloth", "trl", "peft",
    "accelerate", "datasets", "tensorboard",
]  # fmt: skip
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)", re.MULTILINE)


def _uv_env(macos: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env["MACOSX_DEPLOYMENT_TARGET"] = macos
    return env


def uv_compile(requirements: str, target: str, work: Path, macos: str = "13.0") -> dict[str, str]:
    """uv's resolution of `requirements` for `target`: name → version."""
    src = work / f"in-{target}.txt"
    src.write_text(requirements)
    out = subprocess.run(
        [
            find_uv_bin(), "pip", "compile", "--no-config", "--quiet", str(src),
            "--python-version", "3.11", "--python-platform", UV_PLATFORM[target],
            "--index-url", "https://pypi.org/simple", "--no-header", "--no-annotate",
        ],
        capture_output=True,
        text=True,
        env=_uv_env(macos),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return {canonicalize_name(n): v for n, v in _PIN.findall(out.stdout)}


def lock_seed(tmp_path: Path, macos: str | None = None) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    spec = SEED.read_text()
    if macos:
        spec += f'\n[targets.macos-arm64]\nmacos = "{macos}"\n'
    (project / "envspec.toml").write_text(spec)
    assert main(["lock", "--project", str(project), "--cache-dir", str(tmp_path / "c")]) == 0
    return project


def pins_of(project: Path, target: str) -> dict[str, str]:
    lock = tomllib.loads((project / "locks" / f"pylock.{target}.toml").read_text())
    return {p["name"]: p["version"] for p in lock["packages"]}


def _compare(target: str, ours: dict[str, str], theirs: dict[str, str]) -> str:
    same = sum(1 for n, v in ours.items() if theirs.get(n) == v)
    lines = [f"{target}: {same}/{len(ours)} pins equal to uv's ({len(theirs)} in uv's)"]
    for name in DIRECT:
        a, b = ours.get(name), theirs.get(name)
        if a and b and a != b:
            newer = "envspec" if Version(a) > Version(b) else "uv"
            lines.append(f"  {name}: envspec {a}, uv {b} ({newer} newer)")
    return "\n".join(lines)


@pytest.mark.parametrize("macos", ["13.0", "14.0"])
def test_seed_stack_locks_are_complete_and_consistent_for_uv(tmp_path: Path, macos: str) -> None:
    project = lock_seed(tmp_path, macos)
    requirements = SEED_REQUIREMENTS
    report = []
    for target in UV_PLATFORM:
        if macos != "13.0" and target != "macos-arm64":
            continue
        ours = pins_of(project, target)
        pinned = "".join(f"{n}=={v}\n" for n, v in sorted(ours.items()))
        assert uv_compile(pinned, target, tmp_path, macos) == ours, target
        report.append(_compare(target, ours, uv_compile(requirements, target, tmp_path, macos)))
    print(f"\nmacOS {macos}:\n" + "\n".join(report))


SEED_REQUIREMENTS = "\n".join(
    [
        "numpy<2", "torch", "torchvision", "torchaudio", "xformers", "transformers>=4.40",
        "huggingface_hub", "bitsandbytes", "triton-windows; sys_platform == 'win32'",
        "unsloth[colab-new]", "trl", "peft", "accelerate", "datasets", "tensorboard", "",
    ]
)


def test_small_real_stack_locks_for_three_targets(tmp_path: Path) -> None:
    project = tmp_path / "small"
    project.mkdir()
    (project / "envspec.toml").write_text(
        """\
[environment]
name = "small"
python = "3.11"
targets = ["windows-x86_64", "linux-x86_64", "macos-arm64"]

[[phases]]
name = "numpy"
requirements = ["numpy<2"]

[[phases]]
name = "web"
requirements = ["requests>=2.31", "colorama; sys_platform == 'win32'"]
"""
    )
    cache = tmp_path / "c"
    assert main(["lock", "--project", str(project), "--cache-dir", str(cache)]) == 0
    first = {p.name: p.read_bytes() for p in (project / "locks").iterdir()}
    shutil.rmtree(project / "locks")
    assert main(["lock", "--project", str(project), "--cache-dir", str(cache)]) == 0
    assert {p.name: p.read_bytes() for p in (project / "locks").iterdir()} == first
    windows, linux = pins_of(project, "windows-x86_64"), pins_of(project, "linux-x86_64")
    assert "colorama" in windows and "colorama" not in linux
    assert Version(windows["numpy"]) < Version("2")
