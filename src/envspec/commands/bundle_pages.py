"""The files of a bundle that are made from its manifest and locks, not copied (pure): the
static index's pages and the install files for tools without envspec. `envspec bundle` writes
them; `envspec bundle --check` makes them again and compares, so a page that was edited or
damaged is found like a file whose hash is wrong.

Pages (`simple/`): PEP 503 HTML (each link with `#sha256=`, `data-requires-python`, and
`data-dist-info-metadata`/`data-core-metadata` where the file has a PEP 658/714 sidecar) and
PEP 691 JSON 1.1 (`index.json` beside each `index.html`), every URL relative so the bundle can
be served from anywhere. One page per project, listing that project's files of every bundled
lock (all targets, every index they came from), sorted by file name. Written by hand: the
format is a few lines, and the libraries that write simple indexes (dumb-pypi, simple503)
either need their own input format or read every file again.

Install files (`install/`), for a machine without envspec, each for one target:
- `requirements.<target>.txt` (`review.export.export_for_bundle`): every pin as
  `name==version` (`===` beside a local variant of that version) with its hash and no
  `--index-url`, since pip lets a file's `--index-url` win over its command line's: ``pip
  install --index-url <bundle>/simple --require-hashes --no-deps -r
  install/requirements.<target>.txt`` (uv takes the same command), from a folder or a URL
  (both take `-r URL`);
- `pylock.<target>.toml` (`pylock.<target>-<variant>.toml`): a PEP 751 file naming each file
  by its path in the bundle,
  relative to itself: ``uv pip install -r <folder>/install/pylock.<target>.toml``, from a
  folder only. uv takes a PEP 751 file's files from each entry's `url` or `path` and ignores
  `--index-url` (measured), so the locks' own copies in `locks/` (canonical URLs) would fetch
  from the original indexes, not the bundle.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from packaging.version import Version

from envspec.index.bundle import BundledFile, Manifest
from envspec.model import Lock, LockedPackage, pylock_name
from envspec.review.export import export_for_bundle

API_VERSION = "1.1"


def derived_files(manifest: Manifest, locks: Mapping[str, Lock]) -> dict[str, bytes]:
    """Every page and install file of the bundle, by its path; `locks` by target (the install
    files of a lock not among them are left out)."""
    projects: dict[str, list[BundledFile]] = {}
    for item in sorted(manifest.files, key=lambda f: f.filename):
        projects.setdefault(item.name, []).append(item)
    names = sorted(projects)
    out = {
        "simple/index.html": _html("Simple index", [(f"{quote(n)}/", n, {}) for n in names]),
        "simple/index.json": _json({"projects": [{"name": n} for n in names]}),
    }
    for name, files in projects.items():
        out[f"simple/{name}/index.html"] = _html(f"Links for {name}", [_link(f) for f in files])
        out[f"simple/{name}/index.json"] = _json(
            {
                "name": name,
                "files": [_json_file(f) for f in files],
                "versions": sorted({f.version for f in files}, key=Version),
            }
        )
    by_sha = {f.sha256: f for f in manifest.files}
    local = {(f.name, v.public) for f in manifest.files if (v := Version(f.version)).local}
    for bundled in manifest.locks:
        if bundled.target not in locks:  # a lock that failed its check makes no install files
            continue
        lock, target = locks[bundled.target], bundled.target
        text = export_for_bundle(
            lock, phases=bundled.phases, source=bundled.path, local_variants=local
        )
        out[f"install/requirements.{target}.txt"] = text.encode()
        packages = [p for p in chosen(lock, bundled.phases) if p.vcs is None and p.artifact]
        out[f"install/{pylock_name(target)}"] = _pylock(packages, by_sha, target).encode()
    return out


def chosen(lock: Lock, phases: Sequence[str] | None) -> list[LockedPackage]:
    """The packages of `lock` in `phases` (None: every package)."""
    return [p for p in lock.packages if phases is None or p.phase in phases]


def _href(item: BundledFile) -> str:
    return f"../../{quote(item.path)}"


def _link(item: BundledFile) -> tuple[str, str, dict[str, str]]:
    attrs = {}
    if item.requires_python:
        attrs["data-requires-python"] = item.requires_python
    if item.metadata_sha256:
        attrs["data-dist-info-metadata"] = f"sha256={item.metadata_sha256}"
        attrs["data-core-metadata"] = f"sha256={item.metadata_sha256}"
    return f"{_href(item)}#sha256={item.sha256}", item.filename, attrs


def _html(title: str, links: Iterable[tuple[str, str, Mapping[str, str]]]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "<head>",
        f'<meta name="pypi:repository-version" content="{API_VERSION}">',
        f"<title>{html.escape(title)}</title>",
        "</head>",
        "<body>",
    ]
    for href, text, attrs in links:
        extra = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items())
        lines.append(f'<a href="{html.escape(href)}"{extra}>{html.escape(text)}</a><br>')
    lines += ["</body>", "</html>"]
    return ("\n".join(lines) + "\n").encode()


def _json_file(item: BundledFile) -> dict[str, object]:
    metadata: dict[str, str] | bool = (
        {"sha256": item.metadata_sha256} if item.metadata_sha256 else False
    )
    out: dict[str, object] = {
        "filename": item.filename,
        "url": _href(item),
        "hashes": {"sha256": item.sha256},
        "size": item.size,
        "core-metadata": metadata,
        "dist-info-metadata": metadata,
        "yanked": False,
    }
    if item.requires_python:
        out["requires-python"] = item.requires_python
    return out


def _json(data: Mapping[str, object]) -> bytes:
    page = {"meta": {"api-version": API_VERSION}, **data}
    return (json.dumps(page, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _pylock(
    packages: Sequence[LockedPackage], by_sha: Mapping[str, BundledFile], target: str
) -> str:
    out = [
        f"# target {target}, exported by envspec for a bundle; do not edit",
        "# install from the bundle's folder (the paths are relative to this file):",
        f"#   uv pip install -r install/{pylock_name(target)}",
        'lock-version = "1.0"',
        'created-by = "envspec"',
    ]
    for package in packages:
        artifact = package.artifact
        assert artifact is not None and artifact.sha256  # `chosen` and the lock's integrity
        path = f"../{by_sha[artifact.sha256].path}"
        entry = (
            f"{{name = {_toml(artifact.filename)}, path = {_toml(path)}, "
            f"hashes = {{sha256 = {_toml(artifact.sha256)}}}}}"
        )
        out += ["", "[[packages]]", f"name = {_toml(package.name)}"]
        out.append(f"version = {_toml(str(package.version))}")
        # the lock's own conditions go with it, so uv installs the set `sync --bundle` does
        if package.marker is not None:
            out.append(f"marker = {_toml(package.marker)}")
        if package.requires_python is not None:
            out.append(f"requires-python = {_toml(package.requires_python)}")
        if package.index:
            out.append(f"index = {_toml(package.index)}")
        out.append(f"wheels = [{entry}]" if artifact.kind == "wheel" else f"sdist = {entry}")
    return "\n".join(out) + "\n"


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; see `apply.plan._toml`)."""
    return json.dumps(text, ensure_ascii=False)
