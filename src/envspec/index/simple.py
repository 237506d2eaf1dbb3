"""Parsing of index listings into `Artifact`s: PEP 691 JSON and PEP 503 HTML project pages and
flat find-links pages (a local folder arrives here as an HTML listing made by `http`). Pure: bytes
and a base URL in, values out.

Hand-written over `html.parser` and `json` (pip's and uv's parsers are internal): the rules are
short — hrefs resolved with urljoin against the page URL (or a `<base>`), `%2B` unquoted in
filenames, an optional `#sha256=` fragment, `data-yanked`, `data-requires-python` and
`data-dist-info-metadata`/`data-core-metadata` attributes (PEP 592/503/658/714).

What an index answers is input like any other: a JSON page of the wrong structure (``'files'
is not a list``, ``files[3].url is not a string``), too deeply nested, or a link that cannot be
a URL (an unclosed IPv6 bracket, a port out of range) is an `IndexError_` naming the page. A
file whose listed sha256 is not 64 hex digits is left out with a warning, so such a hash never
reaches a lock; a negative or non-integer size is taken as unknown.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from envspec.errors import IndexError_
from envspec.model import Artifact, ArtifactKind, CoreMetadata, Yank
from envspec.secret import redact
from envspec.tomlread import parse_datetime

log = logging.getLogger(__name__)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
SDIST_SUFFIXES = (".tar.gz", ".zip")


Identity = tuple[NormalizedName, Version, ArtifactKind]
# parse_filename's answers: pages are re-read per target and filenames repeat across pages;
# a listing from the cache hands in the answers it was made with (see `load_listing`).
_IDENTITIES: dict[str, Identity | None] = {}


def parse_filename(filename: str) -> Identity | None:
    """Project name, version and kind of a wheel or sdist filename; None for anything else."""
    try:
        return _IDENTITIES[filename]
    except KeyError:
        found = _IDENTITIES[filename] = _parse_filename(filename)
        return found


def remember_identity(filename: str, identity: Identity | None) -> None:
    """Tell `parse_filename` its answer for `filename`, known from elsewhere (a cached
    listing's header), so the name is not parsed again."""
    _IDENTITIES.setdefault(filename, identity)


def _parse_filename(filename: str) -> Identity | None:
    try:
        if filename.endswith(".whl"):
            # packaging's checks, but the tags' (which build a set of Tag objects, unused
            # here) made by `_tags_valid`, packaging's rules for them
            head, sep, tags = filename[:-4].rpartition("-")
            head, sep, abi = head.rpartition("-")
            head, sep, python = head.rpartition("-")
            if not sep or not _tags_valid(python, abi, tags):
                return None
            named = _wheel_head(head)
            return None if named is None else (*named, "wheel")
        if filename.endswith(SDIST_SUFFIXES):
            stem = filename[: -len(".tar.gz")] if filename.endswith(".tar.gz") else filename[:-4]
            name, version = parse_sdist_filename(stem + ".tar.gz")
            return name, version, "sdist"
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


@functools.cache  # a version's wheels (torch's: ~20 per release) share the name-version head
def _wheel_head(head: str) -> tuple[NormalizedName, Version] | None:
    try:
        name, version, _build, _tags = parse_wheel_filename(f"{head}-py3-none-any.whl")
    except (InvalidWheelFilename, InvalidVersion):
        return None
    return name, version


def _tags_valid(python: str, abi: str, platform: str) -> bool:
    """What `packaging.tags.parse_tag` accepts: no empty part, interpreters identifiers."""
    parts = [python.split("."), abi.split("."), platform.split(".")]
    return all(all(parts) for parts in parts) and all(p.isidentifier() for p in parts[0])


Keep = Callable[[str], bool]


class FileFilter(Protocol):
    """A `Keep` with a name, `key`: the cache keeps pages parsed through it per name."""

    @property
    def key(self) -> str: ...

    def __call__(self, filename: str) -> bool: ...


def parse_page(
    body: bytes, content_type: str, url: str, keep: Keep | None = None
) -> list[Artifact]:
    """The artifacts of a project page or flat listing (JSON or HTML by content type) whose
    filenames `keep` accepts. A project page's files are not checked against the project's
    name here: the resolver checks each file it considers."""
    if content_type.split(";", maxsplit=1)[0].strip().lower() == JSON_TYPE:
        return parse_json(body, url, keep)
    return parse_html(body, url, keep)


def parse_json(body: bytes, url: str, keep: Keep | None = None) -> list[Artifact]:
    """A PEP 691 project page."""
    try:
        page = json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise _not_a_page(url, reason) from None
    files = page.get("files") if isinstance(page, dict) else None
    if not isinstance(files, list):
        raise _not_a_page(url, "'files' is not a list")
    out = []
    for i, item in enumerate(files):
        if not isinstance(item, dict):
            raise _not_a_page(url, f"files[{i}] is not a table")
        if keep is not None and not keep(str(item.get("filename", ""))):
            continue
        artifact = _json_artifact(item, url, i)
        if artifact is not None:
            out.append(artifact)
    return out


def _not_a_page(url: str, reason: str) -> IndexError_:
    return IndexError_(f"{redact(url)}: not a PEP 691 project page: {reason}")


def _kind(filename: str) -> ArtifactKind | None:
    """Wheel or sdist by suffix; names and versions are parsed later, and only for files a
    target can use (a page such as torch's lists thousands of files)."""
    if filename.endswith(".whl"):
        return "wheel"
    return "sdist" if filename.endswith(SDIST_SUFFIXES) else None


def _join(page: str, base: str, href: str) -> str:
    """`href` resolved against `base`, checked: a URL that cannot be fetched is an error
    naming the page, not a traceback later."""
    try:
        joined = href if href.startswith(("https://", "http://")) else urljoin(base, href)
        _check_authority(_authority(joined))
    except ValueError as exc:
        raise IndexError_(f"{redact(page)}: malformed link '{redact(href)}' ({exc})") from None
    return joined


def _authority(url: str) -> str:
    """`url` up to the end of its host and port: all that `urlsplit` can refuse in it."""
    start = url.find("//")
    if start < 0:
        return url
    ends = [i for i in (url.find(c, start + 2) for c in "/?#") if i >= 0]
    return url[: min(ends)] if ends else url


@functools.lru_cache(maxsize=1024)  # a page's thousands of links share a few hosts
def _check_authority(authority: str) -> None:
    urlsplit(authority).port  # noqa: B018 (the property validates the port)


def _defrag(url: str) -> tuple[str, str]:
    """`urldefrag`, without its parsing for the many URLs that have no fragment."""
    if "#" not in url:
        return url, ""
    found = urldefrag(url)
    return found.url, found.fragment


_TYPES: dict[str, tuple[type, ...]] = {
    "filename": (str,),
    "url": (str,),
    "hashes": (dict,),
    "requires-python": (str,),
    "upload-time": (str,),
    "yanked": (bool, str),
    "core-metadata": (bool, dict),
    "dist-info-metadata": (bool, dict),
}


def _json_artifact(item: Mapping[str, Any], base: str, i: int) -> Artifact | None:
    for key, kinds in _TYPES.items():
        if item.get(key) is not None and not isinstance(item[key], kinds):
            raise _not_a_page(base, f"files[{i}].{key} is not {_TYPE_WORDS[kinds]}")
    filename = str(item.get("filename", ""))
    kind = _kind(filename)
    if kind is None or not item.get("url"):
        return None
    hashes = item.get("hashes") or {}
    sha256 = _listed_sha256(hashes.get("sha256"), filename, base)
    if sha256 is False:
        return None
    yanked = item.get("yanked", False)
    metadata, metadata_sha256 = _json_metadata(
        item.get("core-metadata", item.get("dist-info-metadata"))
    )
    size = item.get("size")
    return Artifact(
        filename=filename,
        url=_defrag(_join(base, base, str(item["url"])))[0],
        kind=kind,
        sha256=sha256,
        size=size if type(size) is int and size >= 0 else None,
        requires_python=item.get("requires-python") or None,
        yanked=Yank.LIVE if yanked is False or yanked is None else Yank.YANKED,
        yanked_reason=yanked if isinstance(yanked, str) else "",
        upload_time=_upload_time(item.get("upload-time")),
        metadata=metadata,
        metadata_sha256=metadata_sha256,
    )


def _upload_time(text: str | None) -> dt.datetime | None:
    """PEP 700's upload time (UTC: `Artifact` reads an offset-less one so); None when absent
    or not a date-time to the second. `fromisoformat` first, for the date-times indexes
    write (`2024-01-02T03:04:05.123456Z`): it is C, and pages list thousands of files; the
    RFC 3339 parser for what it refuses (a `Z` or a one-digit fraction before Python 3.11)."""
    if not text or len(text) < 19 or text[10] not in "Tt ":
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        moment = parse_datetime(text)
    return moment if isinstance(moment, dt.datetime) else None


_TYPE_WORDS: dict[tuple[type, ...], str] = {
    (str,): "a string",
    (dict,): "a table",
    (bool, str): "a boolean or a string",
    (bool, dict): "a boolean or a table",
}


Sidecar = tuple[CoreMetadata, str | None]  # whether a .metadata file is served, its sha256
_NO_SIDECAR: Sidecar = (CoreMetadata.ABSENT, None)


def _json_metadata(value: object) -> Sidecar:
    if isinstance(value, Mapping):
        return CoreMetadata.SERVED, _sha256(value.get("sha256"))
    return (CoreMetadata.SERVED, None) if value is True else _NO_SIDECAR


def _sha256(value: object) -> str | None:
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return value.lower()
    return None


def _listed_sha256(value: object, filename: str, page: str) -> str | Literal[False] | None:
    """A file's listed sha256; None when none is listed; False when the listed one is not 64
    hex digits: that file is left out (its hash could never be checked), with a warning."""
    if value is None:
        return None
    digest = _sha256(value)
    if digest is None:
        shown = repr(value if not isinstance(value, str) or len(value) < 80 else value[:77] + "...")
        log.warning(
            "%s: %s left out: its sha256 %s is not 64 hex digits",
            redact(page),
            filename,
            shown,
        )
        return False
    return digest


def parse_html(body: bytes, url: str, keep: Keep | None = None) -> list[Artifact]:
    """A PEP 503 project page or a flat find-links page."""
    parser = _link_parser()()
    parser.feed(body.decode("utf-8", errors="replace"))
    parser.close()
    base = _join(url, url, parser.base) if parser.base else url
    out = []
    for attrs in parser.links:
        artifact = _html_artifact(attrs, base, url)
        if artifact is not None and (keep is None or keep(artifact.filename)):
            out.append(artifact)
    return out


def _html_artifact(attrs: Mapping[str, str | None], base: str, page: str) -> Artifact | None:
    href = attrs.get("href")
    if not href:
        return None
    target, fragment = _defrag(_join(page, base, href))
    filename = unquote(urlsplit(target).path.rsplit("/", 1)[-1])
    parsed = parse_filename(filename)
    if parsed is None:
        return None
    name, _, value = fragment.partition("=")
    sha256 = _listed_sha256(value, filename, page) if name.lower() == "sha256" else None
    if sha256 is False:
        return None
    metadata, metadata_sha256 = _html_metadata(
        attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata", False))
    )
    return Artifact(
        filename=filename,
        url=target,
        kind=parsed[2],
        sha256=sha256,
        requires_python=attrs.get("data-requires-python") or None,
        yanked=Yank.YANKED if "data-yanked" in attrs else Yank.LIVE,
        yanked_reason=attrs.get("data-yanked") or "",
        metadata=metadata,
        metadata_sha256=metadata_sha256,
    )


def _html_metadata(value: str | bool | None) -> Sidecar:
    if value is False:
        return _NO_SIDECAR
    name, _, digest = (value if isinstance(value, str) and value else "true").partition("=")
    if name.lower() == "sha256" and _sha256(digest):
        return CoreMetadata.SERVED, digest.lower()
    return _NO_SIDECAR if name.lower() == "false" else (CoreMetadata.SERVED, None)


@functools.cache
def _link_parser() -> type[_LinkParser]:
    """The HTML page parser, made when a first HTML page comes (PyPI answers JSON, and a lock
    from the cache reads none): `html.parser` and its entities cost ~3 ms to import."""
    from html.parser import HTMLParser

    class LinkParser(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.links: list[dict[str, str | None]] = []
            self.base: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self.links.append(dict(attrs))
            elif tag == "base" and self.base is None:
                self.base = dict(attrs).get("href")

    return LinkParser


class _LinkParser(Protocol):
    """What `parse_html` reads of its parser."""

    links: list[dict[str, str | None]]
    base: str | None

    def feed(self, data: str) -> None: ...
    def close(self) -> None: ...
