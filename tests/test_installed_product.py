"""The product as a user gets it: every module envspec imports at run time is a declared
dependency, and the project installed non-editable, without its dev extras, into a fresh
virtual environment runs `lock`, `sync`, `check`, `history` and `rollback` on a
pseudo-terminal (where the rich progress display is used) without a traceback, and answers an
unchanged `lock --check` from its fresh-locks memo."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from uv import find_uv_bin

from support.envproject import PYTHON, TARGET, clean_environ
from support.index_server import IndexServer
from support.terminal import on_a_terminal

ROOT = Path(__file__).parents[1]
SOURCES = ROOT / "src" / "envspec"


def _imported_modules() -> set[str]:
    """The top-level modules envspec's code imports, anywhere in a module (not only at its
    top), other than its own and the standard library's."""
    found = set()
    for path in SOURCES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"envspec", "__future__"}


def test_every_module_imported_at_run_time_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_modules()):
        distributions = {canonicalize_name(d) for d in providers.get(module, [module])}
        if not distributions & declared:
            missing[module] = sorted(distributions)
    assert missing == {}, "imported but not in [project] dependencies"


@pytest.mark.network  # the build backend and the dependencies come from PyPI
def test_the_installed_product_runson_a_terminal(
    tmp_path: Path, index_server: IndexServer
) -> None:
    uv = find_uv_bin()
    product = tmp_path / "product"
    env = clean_environ()
    subprocess.run([uv, "venv", "-q", "--no-config", "--python", sys.executable, str(product)],
                   check=True, env=env)  # fmt: skip
    subprocess.run(
        [uv, "pip", "install", "-q", "--no-config", "--python", str(product),
         "--refresh-package", "envspec", str(ROOT)],
        check=True, env=env,
    )  # fmt: skip
    python = product / "bin" / "python"
    dev_only = subprocess.run(
        [str(python), "-c", "import pytest"], capture_output=True, env=env, check=False
    )
    assert dev_only.returncode != 0, "the dev extras were installed"
    index_server.add_wheel("alpha", "1.0")
    index_server.add_wheel("beta", "1.0", requires_dist=["alpha"])
    project = tmp_path / "project"
    project.mkdir()
    (project / "envspec.toml").write_text(
        f'[environment]\nname = "t"\npython = "{PYTHON}"\ntargets = ["{TARGET}"]\n\n'
        f'[indexes]\nlocal = "{index_server.url}"\n\n'
        '[[phases]]\nname = "one"\nrequirements = ["alpha"]\n\n'
        '[[phases]]\nname = "two"\nrequirements = ["beta"]\n\n'
        '[checks]\nimports = ["alpha", "beta"]\n'
    )
    envspec = str(product / "bin" / "envspec")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    expected = {
        "lock": f"wrote locks/pylock.{TARGET}.toml",  # the summary table
        "sync": "Synced.",
        "check": "All checks passed.",
        "history": "sync",
        "rollback": "Restored snapshot 1: -alpha 1.0, -beta 1.0",
        "rules": "torchao-torch (built-in): torchao",  # the rule set ships in the wheel
    }
    for command, shown in expected.items():
        code, output = on_a_terminal([envspec, command, *cache], cwd=project)
        assert code == 0, f"{command}:\n{output}"
        assert "Traceback" not in output, f"{command}:\n{output}"
        assert shown in output, f"{command}:\n{output}"
    # the fresh-locks memo works from an installed package: its code stamp reads the install
    for _ in range(2):
        code, output = on_a_terminal([envspec, "lock", "--check", *cache], cwd=project)
        assert (code, "The lock is up to date." in output) == (0, True), output
    assert len(list((tmp_path / "cache" / "v1" / "fresh").glob("*.json"))) == 1
