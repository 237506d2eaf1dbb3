"""Requirements files (pip's format) read for `envspec init`: the requirements, and the options
that say where they come from (``-i/--index-url``, ``--extra-index-url``, ``-f/--find-links``,
``--pre``, ``--no-binary``, ``--only-binary``). ``--trusted-host`` and per-requirement
``--hash`` are accepted and dropped (a lock records hashes itself); any other option is an
error rather than silently lost. Hand-written: pip's parser is internal, and the line format
is small (comments, ``\\`` continuations, option lines, requirement lines).

`load_requirements` is the file edge; `parse_requirements` is pure.

Errors (`UsageError`, exit 2; context ``<file>:<line>`` or the file): ``no such requirements
file`` · ``invalid requirement 'x': <reason>`` · ``unsupported option '-r'`` (with a hint per
option) · ``option '--index-url' needs a value`` · ``no requirements in the file``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from envspec.errors import UsageError

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
}
_UNSUPPORTED_HINTS = {
    "-r": "pass that file with another --from; each file becomes a phase",
    "--requirement": "pass that file with another --from; each file becomes a phase",
    "-c": "put its lines in [resolution] constraints",
    "--constraint": "put its lines in [resolution] constraints",
    "-e": "envspec locks no editable installs; use 'name @ file:///path'",
    "--editable": "envspec locks no editable installs; use 'name @ file:///path'",
    "--no-index": "list the find-links locations with -f instead",
}
_SUPPORTED = "requirements, -i, --extra-index-url, -f, --pre, --no-binary, --only-binary"


@dataclass(frozen=True, kw_only=True, slots=True)
class RequirementsFile:
    """What envspec takes from one requirements file."""

    where: str
    stem: str
    requirements: tuple[str, ...]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    pre: bool = False
    no_binary: tuple[str, ...] = ()
    only_binary: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True)
class _Parsed:
    requirements: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)
    pre: bool = False


# --- reading requirements files ------------------------------------------------------------


def load_requirements(path: Path) -> RequirementsFile:
    """Read and parse one requirements file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError("no such requirements file", context=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the file: {reason}", context=str(path)) from exc
    return parse_requirements(text, where=str(path), stem=path.stem)


def parse_requirements(text: str, *, where: str, stem: str) -> RequirementsFile:
    """The requirements and index options of a requirements file's text."""
    parsed = _Parsed()
    for number, line in _logical_lines(text):
        context = f"{where}:{number}"
        if line.startswith("-"):
            _option_line(line, context, parsed)
        else:
            parsed.requirements.append(_requirement_line(line, context))
    if not parsed.requirements:
        raise UsageError(
            "no requirements in the file", context=where, hint="each file becomes a phase"
        )
    options = parsed.options
    return RequirementsFile(
        where=where,
        stem=stem,
        requirements=tuple(parsed.requirements),
        index_url=options.get("index-url", [None])[-1],
        extra_index_urls=tuple(options.get("extra-index-url", [])),
        find_links=tuple(options.get("find-links", [])),
        pre=parsed.pre,
        no_binary=_binary_names(options.get("no-binary", [])),
        only_binary=_binary_names(options.get("only-binary", [])),
    )


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each non-empty line, comments removed, ``\\`` joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = " ".join([*pending, line]).strip()
        pending = []
        if joined:
            yield start, joined
    if pending and " ".join(pending).strip():
        yield start, " ".join(pending).strip()


def _option_line(line: str, context: str, parsed: _Parsed) -> None:
    words = shlex.split(line)
    while words:
        word = words.pop(0)
        flag, _, inline = word.partition("=")
        if flag == "--pre":
            parsed.pre = True
        elif flag in _VALUED:
            value = inline or (words.pop(0) if words else "")
            if not value:
                raise UsageError(f"option '{flag}' needs a value", context=context)
            parsed.options.setdefault(_VALUED[flag], []).append(value)
        else:
            hint = _UNSUPPORTED_HINTS.get(flag, f"envspec init reads {_SUPPORTED}")
            raise UsageError(f"unsupported option '{flag}'", context=context, hint=hint)


def _requirement_line(line: str, context: str) -> str:
    text, _, options = line.partition(" --")
    for word in shlex.split("--" + options) if options else []:
        if not word.startswith("--hash"):
            hint = "only --hash may follow a requirement; the lock records hashes itself"
            raise UsageError(
                f"unsupported option '{word.split('=')[0]}'", context=context, hint=hint
            )
    text = text.strip()
    try:
        return str(Requirement(text))
    except InvalidRequirement as exc:
        reason = str(exc).split("\n", 1)[0]
        reason = reason[:1].lower() + reason[1:]
        raise UsageError(f"invalid requirement '{text}': {reason}", context=context) from exc


def _binary_names(values: Sequence[str]) -> tuple[str, ...]:
    names = {name.strip() for value in values for name in value.split(",") if name.strip()}
    return tuple(sorted(names - {":none:"}))
