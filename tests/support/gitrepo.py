"""Local git repositories holding a package with an in-tree PEP 517 backend (stdlib only, so
it builds with no index at all). `build_imports` makes the backend import modules while it
builds, which succeeds only without build isolation once an earlier phase installed them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

_BACKEND = """
import base64, hashlib, zipfile

NAME, VERSION, IMPORTS = {name!r}, {version!r}, {imports!r}
WHEEL = b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for module in IMPORTS:
        __import__(module)
    dist = NAME.replace("-", "_") + "-" + VERSION
    members = {{
        NAME.replace("-", "_") + "/__init__.py": b"BUILT = True\\n",
        dist + ".dist-info/METADATA": (
            "Metadata-Version: 2.1\\nName: " + NAME + "\\nVersion: " + VERSION + "\\n\\n"
        ).encode(),
        dist + ".dist-info/WHEEL": WHEEL,
    }}
    record = []
    for path, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(path + ",sha256=" + digest + "," + str(len(data)))
    record.append(dist + ".dist-info/RECORD,,")
    members[dist + ".dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    filename = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(wheel_directory + "/" + filename, "w") as zf:
        for path, data in members.items():
            zf.writestr(path, data)
    return filename
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def make_git_package(
    repo: Path, name: str, version: str, *, build_imports: Sequence[str] = ()
) -> str:
    """Create (or add a commit to) a git repository holding `name` `version`; its commit."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        _git(repo, "init", "-q")
        _git(repo, "config", "user.email", "tests@example.invalid")
        _git(repo, "config", "user.name", "tests")
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    (repo / "backend.py").write_text(
        _BACKEND.format(name=name, version=version, imports=tuple(build_imports))
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", f"{name} {version}")
    return _git(repo, "rev-parse", "HEAD")
