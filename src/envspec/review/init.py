"""A starter ``envspec.toml`` (``envspec init``), optionally converted from requirements files:
each file becomes a phase, in the order given, so a chain of ``pip install -r`` steps becomes
one spec in one step.

Lives in `review` beside `export`, its inverse (spec ← requirements, lock → requirements);
`spec` owns reading specs, this module only writes a new one.

Conversion rules:
- phase name: the file's stem without a ``requirements`` prefix or a leading number
  (``requirements-torch.txt`` → ``torch``, ``02_numpy.txt`` → ``numpy``), made unique;
- ``--extra-index-url`` (not PyPI) becomes a non-explicit index searched before the default,
  as uv means it (first-index strategy: a name the extra index has comes from it, every other
  name from PyPI);
- ``-i/--index-url`` with a non-PyPI URL becomes a named explicit index the file's phase is
  routed to; a URL every file gives as ``--index-url`` replaces PyPI as the default instead;
  ``--no-index`` in every file leaves PyPI out;
- a requirement whose own line names an index (``torch==2.4.0+cu118 --index-url URL``) goes
  to a phase of its own routed to that index, before the rest of its file;
- ``-c`` files become ``[resolution] constraints``;
- ``-f/--find-links`` becomes a flat index; ``--pre`` sets ``prereleases = "allow"``;
  ``--no-binary``/``--only-binary`` fill ``[resolution] no-binary``/``no-build``.
- index names say what the index is: ``https://download.pytorch.org/whl/cu121`` →
  ``pytorch-cu121``, ``https://huggingface.github.io/autogptq-index/whl/cu118`` →
  ``autogptq-cu118`` (on a hosting site the path names the project, not the site).

Reading the files is `review.reqfile`. The generated text is validated with `spec.parse_spec`
before it is returned; `write_spec` is the file edge and never overwrites.

Errors (`UsageError`, exit 2): ``--no-index leaves no index to search`` ·
``envspec.toml already exists`` (context its path) · and the spec's own messages should a
requirement be one the spec refuses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import tomlkit

from envspec.errors import UsageError
from envspec.review.reqfile import RequirementsFile, format_control
from envspec.spec import PYPI, parse_spec

log = logging.getLogger(__name__)

DEFAULT_TARGETS = ("linux-x86_64", "windows-x86_64", "macos-arm64")
DEFAULT_PYTHON = "3.11"
_PYPI_HOSTS = ("pypi.org", "pypi.python.org")
_HOSTING = frozenset({"github", "gitlab", "githubusercontent", "amazonaws", "googleapis"})
_HOSTING_SITES = frozenset({"pages.dev", "netlify.app", "vercel.app", "blob.core"})
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
        environ={},  # it holds no ${VAR}
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
    indexes = _Indexes(files)
    planned = [
        (phase_name, file, _file_phases(file, indexes))
        for phase_name, file in zip(_phase_names(files), files, strict=True)
    ]
    doc["indexes"] = {n: _index_value(entry) for n, entry in indexes.entries.items()}
    phases = tomlkit.aot()
    taken: dict[str, None] = {}
    for phase_name, file, groups in planned:
        own = indexes.route(file)
        for index, requirements in groups:
            phase = tomlkit.table()
            phase["name"] = _unique(phase_name if index == own else str(index), taken)
            taken[phase["name"]] = None
            if index:
                phase["index"] = index
            phase["requirements"] = _lines(requirements)
            phases.append(phase)
    doc["phases"] = phases
    resolution = _resolution(files)
    if resolution:
        doc["resolution"] = resolution
    text = tomlkit.dumps(doc).rstrip("\n") + "\n"
    parse_spec(text, filename="envspec.toml (generated)", environ=_AnyEnviron())
    return text


def _file_phases(file: RequirementsFile, indexes: _Indexes) -> list[tuple[str | None, list[str]]]:
    """The phases of one file: its requirements routed by their own lines' options first
    (one phase per index: a phase routes all its names to one index), then the rest. pip
    installs a file in one go, so their order among themselves changes nothing."""
    own = indexes.route(file)
    groups: dict[str | None, list[str]] = {}
    for requirement, url in file.routed:
        groups.setdefault(indexes.route_url(url), []).append(requirement)
    rest = groups.pop(own, []) + list(file.requirements)
    out: list[tuple[str | None, list[str]]] = list(groups.items())
    if rest:
        out.append((own, rest))
    return out


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


class _Indexes:
    """The spec's named indexes, in search order, as pip's and uv's options mean them:
    find-links first (the user's own files); then ``--extra-index-url`` URLs, searched before
    the default index (uv's meaning, with its first-index strategy: a name comes from the
    first index that has it); the default is PyPI, or the ``--index-url`` every file gives
    (PyPI, when also an extra URL, then comes after it); then the explicit indexes a file's
    ``--index-url`` or a requirement line's options route names to."""

    def __init__(self, files: Sequence[RequirementsFile]) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self._by_url: dict[str, str] = {}
        self.default_url = _replacement_index(files)
        # a folder or page of files first: its names are the user's own, not a same-named
        # project on an index
        for url in dict.fromkeys(u for f in files for u in f.find_links):
            self.add(url, flat=True)
        extras = list(dict.fromkeys(u for f in files for u in f.extra_index_urls))
        for url in extras:
            if not self._is_default(url):
                self.add(url)
        if not all(f.no_index for f in files):
            self.add(self.default_url or PYPI)
            for file in files:
                if file.no_index:
                    log.warning(
                        "%s: --no-index kept out of the spec: its indexes serve every phase",
                        file.where,
                    )
        pypi = next((u for u in extras if _is_pypi(u)), None)
        if self.default_url is not None and pypi is not None:
            # PyPI as an extra beside a mirror that replaces it: kept, after the mirror, as
            # the fallback it is meant as; before it, PyPI would hand out a name the mirror
            # serves to whoever registered it there
            self.add(pypi)
        if not any(not e.get("explicit") for e in self.entries.values()):
            raise UsageError(
                "--no-index leaves no index to search",
                context=", ".join(f.where for f in files),
                hint="add -f/--find-links with the folder or page of the files",
            )

    def add(self, url: str, **flags: bool) -> str:
        key = url.rstrip("/")
        if key not in self._by_url:
            name = "pypi" if _is_pypi(url) else _index_name(url)
            self._by_url[key] = _unique(name, self.entries)
            self.entries[self._by_url[key]] = {"url": url, **flags}
        return self._by_url[key]

    def _is_default(self, url: str) -> bool:
        return _is_default(url, self.default_url)

    def route(self, file: RequirementsFile) -> str | None:
        """The index a file's own ``--index-url`` routes its phase to (None: the default)."""
        url = file.index_url
        return None if not url or self._is_default(url) else self.add(url, explicit=True)

    def route_url(self, url: str) -> str:
        """The index a requirement line's ``--index-url`` routes it to."""
        key = url.rstrip("/")
        return self._by_url.get(key) or self.add(url, explicit=True)


def _replacement_index(files: Sequence[RequirementsFile]) -> str | None:
    """The ``--index-url`` every file gives, when that is not PyPI: it replaces PyPI."""
    given = {f.index_url for f in files}
    only = given.pop() if len(given) == 1 else None
    return only if only and not _is_pypi(only) else None


def _is_default(url: str, default_url: str | None) -> bool:
    return _is_pypi(url) or (default_url is not None and url.rstrip("/") == default_url.rstrip("/"))


def _is_pypi(url: str) -> bool:
    return (_hostname(url) or "") in _PYPI_HOSTS


def _hostname(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:  # an unclosed IPv6 bracket: the spec check names it
        return None


def _index_name(url: str) -> str:
    """A name that says what an index is: the site, then what its path says that is not
    generic (``download.pytorch.org/whl/cu121`` → pytorch-cu121). On a hosting site
    (``huggingface.github.io/autogptq-index/whl/cu118``) the site names nobody: the path's
    first word does (→ autogptq-cu118)."""
    try:
        parts = urlsplit(url)
        labels = (parts.hostname or "").split(".")
    except ValueError:  # an unclosed IPv6 bracket: the spec check names it
        return "index"
    if len(labels) > 1 and not labels[-1].isdigit():
        labels = labels[:-1]  # the top-level domain
    host = [label for label in labels if label and not label.isdigit() and label not in _GENERIC]
    path = [_word(seg) for seg in unquote(parts.path).split("/")]
    path = [seg for seg in path if seg and seg.lower() not in _GENERIC]
    path = [seg for seg in path if not re.fullmatch(r"v\d+", seg)]  # API versions
    if host and (host[-1] in _HOSTING or ".".join(labels[-2:]) in _HOSTING_SITES):
        host, path = path[:1], path[1:]
        host = [re.sub(r"[-_.](index|wheels?|pypi|repo|simple)$", "", w) for w in host]
    words = host[-1:] + (path[-3:] if host else path[-1:])  # a local folder: its own name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(words)).strip("-._")
    return re.sub(r"-{2,}", "-", name) or "index"


def _word(segment: str) -> str:
    return re.sub(r"\.(html?|json)$", "", segment).strip(".")


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
    no_binary, no_build = format_control(fmt for f in files for fmt in f.formats)
    constraints = list(dict.fromkeys(c for f in files for c in f.constraints))
    if constraints:
        out["constraints"] = _lines(constraints)
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


def phase_count(text: str) -> int:
    """How many phases a spec written here has."""
    return len(tomlkit.parse(text).get("phases", []))


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
