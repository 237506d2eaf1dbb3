"""A starter ``envspec.toml`` (``envspec init``), optionally converted from requirements files:
each file becomes a phase, in the order given, so a chain of ``pip install -r`` steps becomes
one spec in one step.

Lives in `review` beside `export`, its inverse (spec ← requirements, lock → requirements);
`spec` owns reading specs, this module only writes a new one.

Conversion rules:
- phase name: the file's stem without a ``requirements`` prefix or a leading number
  (``requirements-torch.txt`` → ``torch``, ``02_numpy.txt`` → ``numpy``), made unique;
- ``-i/--index-url`` and ``--extra-index-url`` with a non-PyPI URL become a named explicit index
  (``https://download.pytorch.org/whl/cu121`` → ``pytorch-cu121``) the file's phase is routed
  to; a URL given as ``--index-url`` by every file replaces PyPI as the default index instead;
- ``-f/--find-links`` becomes a flat index; ``--pre`` sets ``prereleases = "allow"``;
  ``--no-binary``/``--only-binary`` fill ``[resolution] no-binary``/``no-build``.

Reading the files is `review.reqfile`. The generated text is validated with `spec.parse_spec`
before it is returned; `write_spec` is the file edge and never overwrites.

Errors (`UsageError`, exit 2): ``a phase takes one index, but this file names 2: URL, URL``
(context the file) · ``envspec.toml already exists`` (context its path) · and the spec's own
messages should a requirement be one the spec refuses (a duplicate, say).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit

from envspec.errors import UsageError
from envspec.review.reqfile import RequirementsFile
from envspec.spec import PYPI, parse_spec

DEFAULT_TARGETS = ("linux-x86_64", "windows-x86_64", "macos-arm64")
DEFAULT_PYTHON = "3.11"
_PYPI_HOSTS = ("pypi.org", "pypi.python.org")
_GENERIC = frozenset(
    {"www", "download", "downloads", "files", "packages", "repo", "repository", "simple"}
    | {"whl", "index", "pypi", "api", "v1", "com", "org", "net", "io", "dev"}
)


def starter_spec(
    name: str, *, python: str = DEFAULT_PYTHON, targets: Sequence[str] = DEFAULT_TARGETS
) -> str:
    """A starter spec with one empty phase to fill in (validated with a placeholder in it)."""
    parse_spec(
        tomlkit.dumps(_starter(name, python, targets, ["example"])),
        filename="envspec.toml (generated)",
    )
    return tomlkit.dumps(_starter(name, python, targets, []))


def _starter(
    name: str, python: str, targets: Sequence[str], requirements: Sequence[str]
) -> tomlkit.TOMLDocument:
    doc = _document(name, python, targets, ["envspec.toml, written by 'envspec init'."])
    doc["indexes"] = {"pypi": PYPI}
    phase = tomlkit.table()
    phase["name"] = "main"
    phase.add(tomlkit.comment('PEP 508 requirements, e.g. "numpy<2", "torch>=2.3"'))
    phase["requirements"] = _lines(requirements)
    doc.add(tomlkit.nl())
    doc["phases"] = tomlkit.aot()
    doc["phases"].append(phase)
    return doc


def spec_from_requirements(
    files: Sequence[RequirementsFile],
    name: str,
    *,
    python: str = DEFAULT_PYTHON,
    targets: Sequence[str] = DEFAULT_TARGETS,
) -> str:
    """A spec with one phase per requirements file, validated before it is returned."""
    sources = ", ".join(f.where for f in files)
    doc = _document(
        name, python, targets, [f"envspec.toml, written by 'envspec init' from {sources}."]
    )
    indexes, routes = _indexes(files)
    doc["indexes"] = {n: _index_value(entry) for n, entry in indexes.items()}
    phases = tomlkit.aot()
    for phase_name, file in zip(_phase_names(files), files, strict=True):
        phase = tomlkit.table()
        phase["name"] = phase_name
        if routes.get(file.where):
            phase["index"] = routes[file.where]
        phase["requirements"] = _lines(file.requirements)
        phases.append(phase)
    doc["phases"] = phases
    resolution = _resolution(files)
    if resolution:
        doc["resolution"] = resolution
    text = tomlkit.dumps(doc).rstrip("\n") + "\n"
    parse_spec(text, filename="envspec.toml (generated)", environ=_AnyEnviron())
    return text


def _document(
    name: str, python: str, targets: Sequence[str], header: Sequence[str]
) -> tomlkit.TOMLDocument:
    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line))
    doc.add(
        tomlkit.comment(
            "Each [[phases]] table is one install step, in order; then run 'envspec lock'."
        )
    )
    environment = tomlkit.table()
    environment["name"] = name
    environment["python"] = python
    environment["targets"] = list(targets)
    doc["environment"] = environment
    return doc


def _indexes(
    files: Sequence[RequirementsFile],
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Named indexes (default first) and each file's routed index name."""
    default_url = _replacement_index(files)
    names: dict[str, dict[str, Any]] = {}
    by_url: dict[str, str] = {}

    def add(url: str, **flags: bool) -> str:
        key = url.rstrip("/")
        if key not in by_url:
            by_url[key] = _unique(_index_name(url) if not _is_pypi(url) else "pypi", names)
            names[by_url[key]] = {"url": url, **flags}
        return by_url[key]

    add(default_url or PYPI)
    for url in [u for f in files for u in f.find_links]:
        add(url, flat=True)
    routes: dict[str, str] = {}
    for file in files:
        own = [
            u
            for u in (file.index_url, *file.extra_index_urls)
            if u and not _is_default(u, default_url)
        ]
        own = list(dict.fromkeys(own))
        if len(own) > 1:
            raise UsageError(
                f"a phase takes one index, but this file names {len(own)}: " + ", ".join(own),
                context=file.where,
                hint="split the file: one requirements file per index",
            )
        if own:
            routes[file.where] = add(own[0], explicit=True)
    return names, routes


def _replacement_index(files: Sequence[RequirementsFile]) -> str | None:
    """The ``--index-url`` every file gives, when that is not PyPI: it replaces PyPI."""
    given = {f.index_url for f in files}
    only = given.pop() if len(given) == 1 else None
    return only if only and not _is_pypi(only) else None


def _is_default(url: str, default_url: str | None) -> bool:
    return _is_pypi(url) or (default_url is not None and url.rstrip("/") == default_url.rstrip("/"))


def _is_pypi(url: str) -> bool:
    return (urlsplit(url).hostname or "") in _PYPI_HOSTS


def _index_name(url: str) -> str:
    """A readable index name from its URL: ``download.pytorch.org/whl/cu121`` → pytorch-cu121."""
    parts = urlsplit(url)
    labels = (parts.hostname or "").split(".")
    if len(labels) > 1 and not labels[-1].isdigit():
        labels = labels[:-1]  # the top-level domain
    host = [label for label in labels if label and not label.isdigit() and label not in _GENERIC]
    path = [seg for seg in parts.path.split("/") if seg.strip(".") and seg.lower() not in _GENERIC]
    words = host[-1:] + path[-1:]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(words)).strip("-._")
    return name or "index"


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def _index_value(entry: Mapping[str, Any]) -> Any:
    if len(entry) == 1:
        return entry["url"]
    table = tomlkit.inline_table()
    table.update(entry)
    return table


def _phase_names(files: Sequence[RequirementsFile]) -> list[str]:
    out: list[str] = []
    for i, file in enumerate(files, start=1):
        stem = re.sub(r"^requirements(?=$|[-_.])[-_.]?", "", file.stem, flags=re.IGNORECASE)
        stem = re.sub(r"^\d+[-_.]*", "", stem)
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or (
            "main" if len(files) == 1 else f"phase{i}"
        )
        out.append(_unique(name, dict.fromkeys(out)))
    return out


def _resolution(files: Sequence[RequirementsFile]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if any(f.pre for f in files):
        out["prereleases"] = "allow"
    no_binary = sorted({n for f in files for n in f.no_binary})
    no_build = sorted({n for f in files for n in f.only_binary})
    if no_binary:
        out["no-binary"] = [":all:"] if ":all:" in no_binary else no_binary
    if no_build:
        out["no-build"] = [":all:"] if ":all:" in no_build else no_build
    return out


def _lines(items: Sequence[str]) -> Any:
    array = tomlkit.array()
    array.extend(items)
    if len(array.as_string()) > 80:
        array.multiline(True)
    return array


class _AnyEnviron(Mapping[str, str]):
    """Every ``${VAR}`` defined, so validation checks a spec's shape, not today's environment."""

    def __getitem__(self, key: str) -> str:
        return "set"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def default_name(project: Path) -> str:
    """An environment name from the project folder's name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", project.resolve().name).strip("-._")
    return name or "env"


def write_spec(path: Path, text: str) -> None:
    """Write a new spec; an existing one is never overwritten."""
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError as exc:
        raise UsageError(
            f"{path.name} already exists",
            context=str(path),
            hint="edit it, or remove it to start over",
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot write the spec: {exc.strerror}", context=str(path)) from exc
