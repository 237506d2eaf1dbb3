"""Real distribution files for tests: wheels (zip with METADATA, WHEEL, RECORD) and sdists
(.tar.gz with PKG-INFO and pyproject.toml), built deterministically so the same inputs give
the same bytes (and so the same sha256).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import random
import re
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

_EPOCH = (1980, 1, 1, 0, 0, 0)


def dist_name(name: str) -> str:
    """The distribution name as it appears in wheel and sdist filenames."""
    return canonicalize_name(name).replace("-", "_")


def wheel_filename(name: str, version: str, tag: str = "py3-none-any") -> str:
    ver = str(Version(version)).replace("-", "_")
    return f"{dist_name(name)}-{ver}-{tag}.whl"


def sdist_filename(name: str, version: str) -> str:
    return f"{dist_name(name)}-{Version(version)}.tar.gz"


def core_metadata(
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    provides_extra: Sequence[str] = (),
    metadata_version: str = "2.3",
    dynamic: Sequence[str] = (),
) -> bytes:
    """A core metadata file (METADATA / PKG-INFO) in email header format."""
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    lines += [f"Dynamic: {field}" for field in dynamic]
    lines += ["Summary: test distribution"]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in provides_extra]
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    return ("\n".join(lines) + "\n\n").encode()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _wheel_file(tag: str) -> bytes:
    lines = ["Wheel-Version: 1.0", "Generator: envspec-tests", "Root-Is-Purelib: true"]
    lines += [f"Tag: {t}" for t in sorted(str(t) for t in parse_tag(tag))]
    return ("\n".join(lines) + "\n").encode()


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    provides_extra: Sequence[str] = (),
    files: Mapping[str, bytes] | None = None,
    metadata_version: str = "2.3",
    pad_bytes: int = 0,
    metadata: bytes | None = None,
) -> Path:
    """Build a real wheel in `out_dir` and return its path.

    `pad_bytes` adds an incompressible (stored) member before the dist-info, so a wheel can be
    made large and range reads can be shown not to download it. `metadata` is a whole METADATA
    file to ship instead of one made from the other arguments (a real one, from fixtures).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    filename = wheel_filename(name, version, tag)
    pkg = dist_name(name)
    dist_info = f"{filename.split('-')[0]}-{filename.split('-')[1]}.dist-info"
    members: dict[str, bytes] = {f"{pkg}/__init__.py": f"__version__ = {version!r}\n".encode()}
    members.update(files or {})
    if pad_bytes:
        members[f"{pkg}/_pad.bin"] = random.Random(filename).randbytes(pad_bytes)
    members[f"{dist_info}/METADATA"] = metadata or core_metadata(
        name,
        version,
        requires_dist=requires_dist,
        requires_python=requires_python,
        provides_extra=provides_extra,
        metadata_version=metadata_version,
    )
    members[f"{dist_info}/WHEEL"] = _wheel_file(tag)
    record = [_record_line(path, data) for path, data in members.items()]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = out_dir / filename
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            stored = member.endswith("_pad.bin")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def build_sdist(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    provides_extra: Sequence[str] = (),
    metadata_version: str = "2.2",
    dynamic: Sequence[str] = (),
    pad_bytes: int = 0,
    pkg_info_last: bool = False,
) -> Path:
    """Build a real sdist (.tar.gz with PKG-INFO and pyproject.toml) and return its path.
    `pad_bytes` adds an incompressible member after PKG-INFO (before it with
    `pkg_info_last`), so an sdist can be large where its metadata is not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    filename = sdist_filename(name, version)
    root = filename[: -len(".tar.gz")]
    pkg = dist_name(name)
    deps = ", ".join(f'"{_toml_escape(r)}"' for r in requires_dist)
    pyproject = (
        '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
    )
    if requires_python is not None:
        pyproject += f'requires-python = "{_toml_escape(requires_python)}"\n'
    members = {
        f"{root}/PKG-INFO": core_metadata(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            provides_extra=provides_extra,
            metadata_version=metadata_version,
            dynamic=dynamic,
        ),
        f"{root}/pyproject.toml": pyproject.encode(),
        f"{root}/{pkg}/__init__.py": f"__version__ = {version!r}\n".encode(),
    }
    if pad_bytes:
        members[f"{root}/{pkg}/_pad.bin"] = random.Random(filename).randbytes(pad_bytes)
    if pkg_info_last:
        members[f"{root}/PKG-INFO"] = members.pop(f"{root}/PKG-INFO")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    path = out_dir / filename
    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return path


def _toml_escape(text: str) -> str:
    return re.sub(r'(["\\])', r"\\\1", text)
