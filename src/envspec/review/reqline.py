"""One requirement line of a requirements file as a PEP 508 string: a bare wheel or sdist URL
or local archive path becomes ``name @ URL`` (the name from ``#egg=`` or the file name, the
``egg=`` fragment dropped), a marker after ``; `` is kept, and anything else is handed to
`packaging`. Pure but for looking at a local path: taken from the working folder, as pip and
uv take it (not from the file's folder, as ``-r`` and ``-c`` are), and one that is not there
is an error, as in pip.

Errors (`UsageError`, context ``<file>:<line>``): ``invalid requirement 'x': <reason>`` ·
``cannot tell the project name of '<URL>'`` · ``invalid URL: <problem>`` (the URL itself not
shown: mangled, it may hold a secret where no userinfo is seen) · ``invalid path`` · ``no such
file '<path>'``. Shown texts
have URL credentials removed.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from envspec.errors import MetadataError, UsageError, requirement_reason
from envspec.index.direct import parse_direct
from envspec.secret import redact
from envspec.spec.values import url_problem

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz")
_EXTRAS = re.compile(r"(.+?)(\[[A-Za-z0-9._,\s-]*\])")  # a local path's `[extra,…]`


def requirement_line(text: str, context: str, cwd: Path) -> str:
    """The PEP 508 form of a requirement line's text (a bare URL or path gets its name; a
    relative path is taken from `cwd`)."""
    head, marker = _marker_split(text)
    if URL.match(head) or _looks_like_path(head):
        extras = ""
        if not URL.match(head) and (found := _EXTRAS.fullmatch(head)):  # ./x.whl[gpu], as pip
            head, extras = found[1], found[2]
        url = head if URL.match(head) else _path_url(head, cwd, context)
        named = _named_url(url, context, extras)
        text = f"{named} ; {marker}" if marker else named
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        reason = requirement_reason(text, exc)
        raise UsageError(
            f"invalid requirement '{redact(text)}': {reason}", context=context
        ) from exc
    if requirement.url:  # what `lock` would refuse (hg+, a git #subdirectory=), said here
        try:
            parse_direct(requirement.url)
        except MetadataError as exc:
            raise UsageError(exc.message, context=context, hint=exc.hint) from exc
    return str(requirement)


def _marker_split(text: str) -> tuple[str, str]:
    """(the requirement, its marker) for a bare URL or path, where pip wants ``; `` after
    whitespace; a PEP 508 string is returned whole."""
    if not (URL.match(text) or _looks_like_path(text)):
        return text, ""
    pieces = re.split(r"\s+;|;\s+", text, maxsplit=1)
    return (pieces[0].strip(), pieces[1].strip()) if len(pieces) == 2 else (text.strip(), "")


def _looks_like_path(text: str) -> bool:
    word = text.split(";", 1)[0].strip()
    if found := _EXTRAS.fullmatch(word):
        word = found[1]
    return word.startswith((".", "/", "~")) or (
        word.lower().endswith(_ARCHIVES) and "@" not in word and " " not in word
    )


def as_path(text: str, context: str) -> Path:
    """`text` as a path; one no file system takes (a NUL byte) is an error."""
    if "\0" in text:
        raise UsageError(f"invalid path '{text.replace(chr(0), '')}': a NUL byte", context=context)
    return Path(text)


def _path_url(text: str, cwd: Path, context: str) -> str:
    try:
        path = as_path(text, context).expanduser()
    except RuntimeError:  # `~user` of no known user: taken as written
        path = Path(text)
    if not path.is_absolute():
        path = cwd / path
    try:
        there, folder = path.is_file(), path.is_dir()
    except OSError:
        there = folder = False
    if folder:
        raise UsageError(
            f"'{text}' is a folder: a local project cannot be locked (its content has no hash)",
            context=context,
            hint="build it (uv build) and name the wheel, or install it after 'envspec sync'",
        )
    if not there:
        raise UsageError(
            f"no such file '{text}'",
            context=context,
            hint=f"a relative path is taken from the working folder, as pip does ({cwd})",
        )
    return path.resolve().as_uri()


def _named_url(url: str, context: str, extras: str = "") -> str:
    """``name[extras] @ URL`` for a bare URL: the name from ``#egg=`` or the file name,
    `extras` (``[gpu]``, as a local path gave them) after it."""
    problem = url_problem(url)
    if problem:  # not shown: a mangled URL may hold a secret where no userinfo is seen
        raise UsageError(f"invalid URL: {problem}", context=context)
    parts = urlsplit(url)
    fragment = [f for f in parts.fragment.split("&") if f and not f.startswith("egg=")]
    egg = next((f[4:] for f in parts.fragment.split("&") if f.startswith("egg=")), "")
    clean = urlunsplit(parts._replace(fragment="&".join(fragment)))
    name = egg or _name_from_filename(unquote(parts.path.rsplit("/", 1)[-1]))
    if not name:
        hint = "write it as 'name @ URL' (or add #egg=name)"
        raise UsageError(
            f"cannot tell the project name of '{redact(url)}'", context=context, hint=hint
        )
    return f"{name}{extras} @ {clean}"


def _name_from_filename(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[0])
        for suffix in (".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz"):
            if filename.endswith(suffix):
                return str(parse_sdist_filename(filename[: -len(suffix)] + ".tar.gz")[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return ""
    return ""
