"""Requirements files (pip's format) read for `envspec init`: everything pip reads in one, mapped
to what a spec can say.

- requirement lines: PEP 508 strings; bare wheel or sdist URLs and local archive paths become
  ``name @ URL`` (the name from the file name, or ``#egg=``); ``git+URL@ref#egg=name`` becomes
  ``name @ git+URL@ref``; environment markers are kept;
- ``-r FILE`` (``--requirement``): that file's lines in the same phase, its path taken relative
  to the file naming it; ``-c FILE`` (``--constraint``): its lines become constraints;
- ``-i/--index-url``, ``--extra-index-url``, ``-f/--find-links``, ``--no-index``, ``--pre``,
  ``--no-binary``, ``--only-binary``: where the requirements come from (see `review.init`);
- options after a requirement: ``--index-url``/``--extra-index-url`` route that requirement
  to the index (pip itself ignores them there, but that is what their authors meant);
  ``--hash`` is dropped (a lock records hashes itself); ``--config-settings`` and
  ``--global-option`` are dropped with a warning (a spec has no per-requirement build options);
- ``-e``: a git URL is taken non-editable, with a warning; a local folder cannot be locked (its
  content has no hash), so its line is left out with a warning saying how to install it;
- ``--trusted-host``, ``--require-hashes`` (every lock is hashed), ``--use-feature`` are
  dropped; ``--prefer-binary`` is dropped with a warning. Anything else is an error naming the
  file and line, as pip's own.

``${VAR}`` references in a line that holds a URL (an index, a direct reference) are kept as
written, never expanded: the spec must not hold the secrets they usually name (an index URL's
are expanded when the spec is read). In any other requirement line (``torch==${TORCH}``, a
local path) they are expanded, as pip does, so the spec holds what pip would have installed.

Hand-written, by measurement: pip's parser is internal. On the realistic files in
tests/reqfiles/ (``-r``/``-c`` includes, bare wheel URLs, ``git+…#egg=``, per-line options,
markers, ``--hash``, continuations), all of which pip 23.2 and 26.3 parse, `pip-requirements-parser`
32.0.1 (pip 22's parser vendored, last released 2022) refused lines in 2 of 11 files
(``--config-settings``; ``--index-url`` after a requirement) and `requirements-parser` 0.13.1
failed on 3 (the same two, and ``--requirement=FILE``), kept markers inside bare URLs, lost git
revisions and does not follow ``-c``. The line format is small: pip's rules are followed
(``\\`` joins lines before comments are removed; a ``#`` starts a comment at the start of a
line or after whitespace; a line whose first word starts with ``-`` is an option line).

`load_requirements` is the file edge (it reads included files too); `parse_requirements` is
pure given its `read` function; one requirement line's conversion is `review.reqline`.

Errors (`UsageError`, exit 2; context ``<file>:<line>`` or the file): ``no such requirements
file`` · ``invalid requirement 'x': <reason>`` · ``unsupported option '--upgrade'`` ·
``option '--index-url' needs a value`` · ``no requirements in the file`` ·
``cannot tell the project name of '<URL>'`` · ``'-r' includes itself`` · ``'-r' with a URL`` ·
``constraint 'x[y]<3' may not have extras`` · ``constraint 'x @ URL' may not be a direct
reference`` (a ``-c`` file's line, as pip refuses it) ·
``undefined environment variable 'X'`` (a ``${X}`` of a line without a URL).
Shown URLs have their credentials removed.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import shlex
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envspec.errors import UsageError
from envspec.review.reqline import URL, as_path, requirement_line
from envspec.secret import UnsetVariable, expand, redact

log = logging.getLogger(__name__)

_COMMENT = re.compile(r"(^|\s+)#.*$")
_VALUED = {
    "-i": "index-url",
    "--index-url": "index-url",
    "--extra-index-url": "extra-index-url",
    "-f": "find-links",
    "--find-links": "find-links",
    "--no-binary": "no-binary",
    "--only-binary": "only-binary",
    "--trusted-host": "trusted-host",
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "-e": "editable",
    "--editable": "editable",
    "--use-feature": "use-feature",
}
_FLAGS = {"--pre", "--no-index", "--prefer-binary", "--require-hashes"}
_SHORT = ("-i", "-f", "-r", "-c", "-e")  # optparse also takes `-rFILE`
_LINE_ROUTES = {"-i": "index", "--index-url": "index", "--extra-index-url": "index"}
_LINE_DROPPED = {"--global-option", "--config-settings", "--install-option", "-C"}
_SUPPORTED = (
    "requirements, -r, -c, -e, -i, --extra-index-url, -f, --no-index, --pre, --no-binary, "
    "--only-binary, --prefer-binary, --require-hashes, --trusted-host, --use-feature"
)

Read = Callable[[Path], str]
EMPTY_HINT = "each file becomes a phase"  # for `init --from`; `add -r` gives none


@dataclass(frozen=True, kw_only=True, slots=True)
class RequirementsFile:
    """What envspec takes from one requirements file (its includes merged in)."""

    where: str
    stem: str
    requirements: tuple[str, ...]
    routed: tuple[tuple[str, str], ...] = ()  # (requirement, index URL) from the line's options
    constraints: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    pre: bool = False
    # ("no-binary" or "only-binary", value), in the order given: pip's rules depend on it
    formats: tuple[tuple[str, str], ...] = ()


@dataclass(kw_only=True, slots=True)
class _Parsed:
    environ: Mapping[str, str]  # for the ${VAR}s of requirement lines without a URL
    cwd: Path  # where pip and uv take a relative package path (not the file's folder)
    requirements: list[str] = field(default_factory=list)
    routed: list[tuple[str, str]] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    formats: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True, slots=True)
class _File:
    """One file being read: where it is, and whether its lines are constraints."""

    path: Path
    shown: str
    constraint: bool
    chain: tuple[Path, ...]


# --- reading requirements files ------------------------------------------------------------


def load_requirements(
    path: Path, environ: Mapping[str, str], *, empty_hint: str = EMPTY_HINT
) -> RequirementsFile:
    """Read and parse one requirements file and the files it includes, relative package paths
    taken from the working folder."""
    return parse_requirements(
        _read(path),
        where=str(path),
        stem=path.stem,
        path=path,
        read=_read,
        environ=environ,
        empty_hint=empty_hint,
        cwd=Path.cwd(),
    )


def requirement_lines(
    file: RequirementsFile, index_urls: Collection[str], environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The requirements of a file read for `envspec add -r`, which adds requirements only: an
    option that says where they come from (but an index URL the spec already has, compared
    with the file's `${VAR}`s expanded from `environ`, as the spec's are) is an error naming
    it, where `init --from` would map it to the spec."""
    known = {url.rstrip("/") for url in index_urls}
    urls = [
        _expanded_url(u, environ or {})
        for u in (file.index_url, *file.extra_index_urls)
        if u is not None
    ]
    options = {
        "--index-url/--extra-index-url": any(u.rstrip("/") not in known for u in urls),
        "a requirement's own --index-url": bool(file.routed),
        "-c": bool(file.constraints),
        "-f/--find-links": bool(file.find_links),
        "--no-index": file.no_index,
        "--pre": file.pre,
        "--no-binary": any(key == "no-binary" for key, _ in file.formats),
        "--only-binary": any(key == "only-binary" for key, _ in file.formats),
    }
    found = [option for option, used in options.items() if used]
    if found:
        raise UsageError(
            f"add takes a file's requirements only, not its {', '.join(found)}",
            context=file.where,
            hint="'envspec add --index NAME' takes them from a spec index; 'envspec init "
            "--from FILE' maps a whole file's options",
        )
    return file.requirements


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")  # PEP 263, as pip reads it


def _expanded_url(url: str, environ: Mapping[str, str]) -> str:
    try:
        return expand(url, environ)
    except UnsetVariable:  # not the spec's then: refused below as any other index
        return url


def _read(path: Path) -> str:
    """A file's text, decoded as pip does: by its byte-order mark (UTF-16, UTF-8), else by a
    PEP 263 coding line in its first two lines (``# -*- coding: latin-1 -*-``), else UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError("no such requirements file", context=str(path)) from exc
    except OSError as exc:
        raise UsageError(f"cannot read the file: {exc.strerror}", context=str(path)) from exc
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    else:
        found = [m for line in data.split(b"\n")[:2] if (m := _CODING.match(line))]
        encoding = found[0][1].decode("ascii") if found else "utf-8"
    try:
        return data.decode(encoding)
    except LookupError as exc:
        raise UsageError(
            f"cannot read the file: unknown encoding '{encoding}' in its coding line",
            context=str(path),
        ) from exc
    except UnicodeDecodeError as exc:
        reason = "not UTF-8 text" if encoding.startswith("utf-8") else f"not {encoding} text"
        raise UsageError(f"cannot read the file: {reason}", context=str(path)) from exc


def parse_requirements(
    text: str,
    *,
    where: str,
    stem: str,
    path: Path | None = None,
    read: Read | None = None,
    environ: Mapping[str, str] | None = None,
    empty_hint: str = EMPTY_HINT,
    cwd: Path | None = None,
) -> RequirementsFile:
    """The requirements and options of a requirements file's text; `read` reads the files it
    includes (by path; relative to `path`'s folder); `environ` has the values of `${VAR}`s;
    `cwd`, the folder a relative package path or find-links folder is taken from (as pip
    does; `path`'s folder when not given)."""
    base = cwd if cwd is not None else (path or Path(where)).parent
    parsed = _Parsed(environ=environ or {}, cwd=Path(os.path.abspath(base)))
    top = _File(path=path or Path(where), shown=where, constraint=False, chain=())
    _parse_text(text, top, parsed, read)
    if not parsed.requirements and not parsed.routed:
        raise UsageError("no requirements in the file", context=where, hint=empty_hint)
    options = parsed.options
    return RequirementsFile(
        where=where,
        stem=stem,
        requirements=tuple(parsed.requirements),
        routed=tuple(parsed.routed),
        constraints=tuple(dict.fromkeys(parsed.constraints)),
        index_url=options.get("index-url", [None])[-1],
        extra_index_urls=tuple(dict.fromkeys(options.get("extra-index-url", []))),
        find_links=tuple(dict.fromkeys(options.get("find-links", []))),
        no_index="--no-index" in parsed.flags,
        pre="--pre" in parsed.flags,
        formats=tuple(parsed.formats),
    )


def _parse_text(text: str, file: _File, parsed: _Parsed, read: Read | None) -> None:
    for number, line in _logical_lines(text):
        context = f"{file.shown}:{number}"
        args, options = _split_line(line)
        if not args:
            _option_line(options, context, file, parsed, read)
            continue
        requirement = requirement_line(_expanded(args, context, parsed), context, parsed.cwd)
        routes = _line_options(options, context)
        if file.constraint:
            parsed.constraints.append(_constraint(requirement, context))
        elif routes:
            parsed.routed.append((requirement, routes[-1]))
        else:
            parsed.requirements.append(requirement)


def _expanded(text: str, context: str, parsed: _Parsed) -> str:
    """A requirement line's `${VAR}`s replaced, unless it holds a URL (see the docstring)."""
    if URL.search(text):
        return text
    try:
        return expand(text, parsed.environ)
    except UnsetVariable as unset:
        hint = f"set {unset.name}, or write its value in the file"
        raise UsageError(
            f"undefined environment variable '{unset.name}'", context=context, hint=hint
        ) from unset


def _constraint(requirement: str, context: str) -> str:
    """A constraints file's line, refused where pip refuses it ("Constraints cannot have
    extras", "Links are not allowed as constraints"), named by its file and line rather than
    by the spec it would go into."""
    parsed = Requirement(requirement)  # requirement_line made it: it parses
    if parsed.extras:
        raise UsageError(
            f"constraint '{redact(requirement)}' may not have extras",
            context=context,
            hint="constraints only bound versions; ask for extras in a requirements file",
        )
    if parsed.url:
        raise UsageError(
            f"constraint '{redact(requirement)}' may not be a direct reference",
            context=context,
            hint="put 'name @ URL' in a requirements file, not a constraints file",
        )
    return requirement


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each non-empty line, as pip reads them: ``\\`` joins a line
    to the next (a comment line ends the join), then comments are removed."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending.append(raw[:-1])
            continue
        last = " " + raw if _COMMENT.match(raw) else raw  # as pip: a comment stays one
        line = _COMMENT.sub("", "".join([*pending, last])).strip()
        pending = []
        if line:
            yield start, line
    tail = _COMMENT.sub("", "".join(pending)).strip()
    if tail:
        yield start, tail


def _split_line(line: str) -> tuple[str, str]:
    """pip's split of a line: the words before the first one starting with ``-``, the rest."""
    words = line.split(" ")
    for i, word in enumerate(words):
        if word.startswith("-"):
            return " ".join(words[:i]).strip(), " ".join(words[i:])
    return line.strip(), ""


def _words(options: str, context: str) -> list[str]:
    try:
        return shlex.split(options)
    except ValueError as exc:
        raise UsageError(f"cannot read the options: {exc}", context=context) from exc


def _option_words(words: list[str]) -> Iterator[tuple[str, str | None, list[str]]]:
    """(flag, inline value or None, the words left) for each option word."""
    while words:
        word = words.pop(0)
        flag, eq, inline = word.partition("=")
        if not eq and not word.startswith("--") and word[:2] in _SHORT and len(word) > 2:
            flag, inline, eq = word[:2], word[2:], "="
        yield flag, inline if eq else None, words


def _flag(word: str) -> str:
    """An option word as shown: its name only (whatever follows may be a value, a secret)."""
    found = re.match(r"-{1,2}[A-Za-z0-9][A-Za-z0-9-]*", word)
    return found[0] if found else word[:2]


def _value(flag: str, inline: str | None, words: list[str], context: str) -> str:
    value = inline if inline is not None else (words.pop(0) if words else "")
    if not value:
        raise UsageError(f"option '{flag}' needs a value", context=context)
    return value


def _option_line(
    options: str, context: str, file: _File, parsed: _Parsed, read: Read | None
) -> None:
    for flag, inline, words in _option_words(_words(options, context)):
        if flag in _FLAGS:
            parsed.flags.add(flag)
            if flag == "--prefer-binary":
                log.warning(
                    "%s: --prefer-binary dropped: envspec takes the highest version, "
                    "a wheel where one fits",
                    context,
                )
        elif flag in _LINE_DROPPED or flag == "--hash":  # after `-e URL`, as pip allows
            value = _value(flag, inline, words, context)
            if flag != "--hash":
                log.warning(
                    "%s: %s %s dropped: a spec has no per-requirement build options",
                    context,
                    flag,
                    _shown(value),
                )
        elif flag in _VALUED:
            key = _VALUED[flag]
            value = _value(flag, inline, words, context)
            if key in ("requirement", "constraint"):
                _include(value, context, file, parsed, read, constraint=key == "constraint")
            elif key == "editable":
                _editable(value, context, file, parsed)
            elif key == "find-links":
                parsed.options.setdefault(key, []).append(_find_links(value, file, parsed.cwd))
            else:
                parsed.options.setdefault(key, []).append(value)
                if key in ("no-binary", "only-binary"):
                    parsed.formats.append((key, value))
        else:
            hint = f"envspec init reads {_SUPPORTED}"
            raise UsageError(f"unsupported option '{_flag(flag)}'", context=context, hint=hint)


def _include(
    value: str, context: str, file: _File, parsed: _Parsed, read: Read | None, *, constraint: bool
) -> None:
    flag = "-c" if constraint else "-r"
    local = urlsplit(value) if value.lower().startswith("file:") else None
    if URL.match(value) and local is None:
        raise UsageError(
            f"'{flag}' with a URL: {redact(value)}",
            context=context,
            hint="download the file and name it by its path",
        )
    # a file: URL names a path, as pip takes it
    name = url2pathname(unquote(local.path)) if local is not None else value
    path = file.path.parent / as_path(name, context)
    if path.resolve() == file.path.resolve():
        raise UsageError(f"'{flag} {value}' includes itself", context=context)
    ring = [*file.chain, file.path]
    if path.resolve() in {p.resolve() for p in ring}:
        start = next(i for i, p in enumerate(ring) if p.resolve() == path.resolve())
        cycle = " → ".join(p.name for p in (*ring[start:], path))
        raise UsageError(
            f"'{flag} {value}' includes a file that includes it: {cycle}", context=context
        )
    if read is None:
        raise UsageError(f"'{flag} {value}': included files are not read here", context=context)
    try:
        text = read(path)
    except UsageError as exc:
        raise UsageError(f"{flag} {value}: {exc.message}", context=context) from exc
    shown = str(Path(file.shown).parent / value) if file.shown != str(file.path) else str(path)
    # As pip: a constraints file's `-r` lines are requirements again.
    child = _File(path=path, shown=shown, constraint=constraint, chain=(*file.chain, file.path))
    _parse_text(text, child, parsed, read)


def _find_links(value: str, file: _File, cwd: Path) -> str:
    """A relative find-links folder is relative to the file naming it, where it exists there
    (as uv), else to the working folder (as pip): made absolute either way, since the spec
    would take it from the project's folder."""
    if URL.match(value) or Path(value).is_absolute():
        return value
    beside = Path(os.path.abspath(file.path.parent / as_path(value, "")))
    try:
        found = beside.exists()
    except OSError:
        found = False
    return str(beside) if found else str(Path(os.path.abspath(cwd / value)))


def _editable(value: str, context: str, file: _File, parsed: _Parsed) -> None:
    if value.lower().startswith("git+"):
        requirement = requirement_line(value, context, parsed.cwd)
        log.warning("%s: -e %s is locked as a git source, not editable", context, _shown(value))
        if file.constraint:
            parsed.constraints.append(_constraint(requirement, context))
        else:
            parsed.requirements.append(requirement)
        return
    log.warning(
        "%s: -e %s left out: a local folder cannot be locked (its content has no hash); "
        "install it after 'envspec sync' with pip install -e %s",
        context,
        _shown(value),
        _shown(value),
    )


def _line_options(options: str, context: str) -> list[str]:
    """The index URLs a requirement line's own options route it to; build options and the
    options of a whole file (`-f`, `--pre`, `--trusted-host`, which pip ignores after a
    requirement) are dropped with a warning."""
    routes: list[str] = []
    for flag, inline, words in _option_words(_words(options, context)):
        if flag == "--hash":
            _value(flag, inline, words, context)
        elif flag in _LINE_ROUTES:
            routes.append(_value(flag, inline, words, context))
        elif flag in _LINE_DROPPED:
            value = _value(flag, inline, words, context)
            log.warning(
                "%s: %s %s dropped: a spec has no per-requirement build options",
                context,
                flag,
                _shown(value),
            )
        elif flag in _FLAGS or flag in _VALUED:  # a file's option: pip ignores it here
            shown = (
                flag if flag in _FLAGS else f"{flag} {_shown(_value(flag, inline, words, context))}"
            )
            log.warning(
                "%s: %s dropped: pip ignores a file's option after a requirement", context, shown
            )
        else:
            hint = (
                "only --hash, -i/--index-url, --extra-index-url, --config-settings and "
                "--global-option follow one"
            )
            raise UsageError(
                f"unsupported option '{_flag(flag)}' after a requirement",
                context=context,
                hint=hint,
            )
    return routes


def _shown(text: str) -> str:
    return redact(text)


def format_control(formats: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(no-binary, only-binary) names after `formats` (``--no-binary``/``--only-binary``
    values, in order), by pip's rules: a name joins its option's set and leaves the other's;
    ``:all:`` empties both sets and stands alone in its own; ``:none:`` empties its own."""
    sets: dict[str, set[str]] = {"no-binary": set(), "only-binary": set()}
    for key, value in formats:
        own = sets[key]
        other = sets["only-binary" if key == "no-binary" else "no-binary"]
        for name in (n.strip() for n in value.split(",")):
            if name == ":all:":
                own.clear()
                other.clear()
                own.add(name)
            elif name == ":none:":
                own.clear()
            elif name:
                other.discard(canonicalize_name(name))
                own.add(canonicalize_name(name))
    return sorted(sets["no-binary"]), sorted(sets["only-binary"])
