"""Requires-Dist and Requires-Python as `packaging` objects: each distinct text parsed once,
and what `packaging` refuses repaired where its meaning is plain.

Parsed once: releases of a package repeat most of their lines, and resolution reads many
releases; a line is parsed as its part before the marker and its marker, each memoized on its
own (`_split_parse`), since a few hundred markers close thousands of lines. A line read back
from the metadata cache has its part before the marker parsed only when first read
(`cached_requirement`): a candidate's markers decide which lines it wants, and most lines
(unsloth's extras) are never wanted.

Leniency, as uv's (its `LenientRequirement`, read for the list of repairs, not its code): a
Requires-Dist or Requires-Python that `packaging` refuses is repaired where its meaning is
plain — ``>=1.19.*`` → ``>=1.19`` (a wildcard only ``==``/``!=`` may take), ``>=7.2.0<8.0.0``
→ ``>=7.2.0,<8.0.0`` (a missing comma), ``!=3.0*`` → ``!=3.0.*``, ``!=~5.0`` → ``!=5.0``,
``=>1.0`` → ``>=1.0``, ``=1.0`` → ``==1.0``, a trailing comma, stray quotes — and read with one
warning naming the distribution and both forms. A line that still cannot be read is an
`UnreadableMetadata` naming the file.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import cast

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envspec.errors import UnreadableMetadata

log = logging.getLogger("envspec")


# Each distinct Requires-Dist line parsed once, and each requirement's line, so the parsed
# form the cache keeps (`metadata.to_cached`) writes the line back rather than rendering it again.
_REQUIREMENTS: dict[str, Requirement] = {}
_LINES: dict[int, str] = {}  # id of a requirement in _REQUIREMENTS → its line
_HEADS: dict[str, Requirement] = {}  # a line's part before its marker → parsed
_MARKERS: dict[str, Marker] = {}  # a marker's text → parsed


def requirement(line: str) -> Requirement:
    """Parsed once per distinct line: releases of a package repeat most of their lines (each
    unsloth release lists ~1,000), and resolution reads many releases."""
    found = _REQUIREMENTS.get(line)
    if found is None:
        found = _remember(line, _split_parse(line) or Requirement(line))
    return found


def cached_requirement(line: str) -> Requirement:
    """`requirement` for a line the metadata cache holds (validated when it was written):
    the part before the marker is parsed only when it is first read (`_Deferred`)."""
    found = _REQUIREMENTS.get(line)
    if found is not None:
        return found
    halves = _halves(line)
    if halves is None:
        return requirement(line)
    return _remember(line, _Deferred(halves[0], _parsed_marker(halves[1])))


def cached_requirements(lines: list[str]) -> tuple[Requirement, ...]:
    """`cached_requirement` of each line, the ones parsed before looked up without a step of
    Python per line: a release's lines were nearly all read already (an offline lock of the
    seed stack looks up ~40,000 lines of unsloth's releases for 2,700 distinct ones)."""
    known = list(map(_REQUIREMENTS.get, lines))
    if None in known:
        return tuple(k or cached_requirement(line) for k, line in zip(known, lines, strict=True))
    return cast("tuple[Requirement, ...]", tuple(known))


def _halves(line: str) -> tuple[str, str] | None:
    """`line`'s part before its marker and its marker; None when it has no marker, or a URL
    (whose `;` may belong to it)."""
    head, sep, marker = line.partition(";")
    if not sep or "@" in head or not marker.strip():
        return None
    return head, marker


def _split_parse(line: str) -> Requirement | None:
    """`Requirement(line)` from its two halves, each parsed once per distinct text: a page's
    3,000 distinct lines have ~1,400 distinct heads and ~560 distinct markers (`; extra ==
    "torch"` closes hundreds), and the marker was most of each parse. A line with a URL (whose
    `;` may belong to it) or either half refused gets the whole-line parse, with its errors."""
    halves = _halves(line)
    if halves is None:
        return None
    try:
        base = _parsed_head(halves[0])
        condition = _parsed_marker(halves[1])
    except (InvalidRequirement, InvalidMarker):
        return None
    # A requirement of its own, made as `packaging` makes one in `__replace__`: its public
    # fields set (`copy.copy` would parse the whole line again, from its pickled state).
    found = Requirement.__new__(Requirement)
    found.name, found.url, found.extras = base.name, base.url, set(base.extras)
    found.specifier, found.marker = base.specifier, condition
    return found


_PARSED = threading.Lock()


def _remember(line: str, parsed: Requirement) -> Requirement:
    """`parsed` as `line`'s requirement, unless another thread's came first."""
    with _PARSED:
        found = _REQUIREMENTS.setdefault(line, parsed)
        _LINES[id(found)] = line
    return found


def _parsed_head(head: str) -> Requirement:
    found = _HEADS.get(head)
    if found is None:
        found = _HEADS.setdefault(head, Requirement(head))
    return found


def _parsed_marker(marker: str) -> Marker:
    found = _MARKERS.get(marker)
    if found is None:
        found = _MARKERS.setdefault(marker, Marker(marker))
    return found


class _Deferred(Requirement):
    """A requirement whose marker is parsed and whose part before it is parsed when first
    read, once per distinct text: which lines a candidate wants is decided by their markers
    alone, and an offline lock of the seed stack wants 449 of the 2,872 lines it loads (362
    of their 1,151 heads; unsloth's extras are most of the rest). Its fields are the parsed
    head's, shared with every line of that head: none of them is ever changed."""

    __slots__ = ("_head",)

    def __init__(self, head: str, marker: Marker) -> None:  # nothing parsed yet: no super()
        self._head = head
        self.marker = marker

    def __reduce__(self) -> tuple[type[Requirement], tuple[str]]:
        return Requirement, (str(self),)  # copied or pickled: a requirement parsed whole

    @property
    def name(self) -> str:  # type: ignore[override]
        return _parsed_head(self._head).name

    @property
    def url(self) -> str | None:  # type: ignore[override]
        return _parsed_head(self._head).url

    @property
    def extras(self) -> set[str]:  # type: ignore[override]
        return _parsed_head(self._head).extras

    @property
    def specifier(self) -> SpecifierSet:  # type: ignore[override]
        return _parsed_head(self._head).specifier


def line_of(parsed: Requirement) -> str:
    """The Requires-Dist line `parsed` was read from (when `requirement` gave it), else its
    rendering: what the cache's parsed form writes back."""
    return _LINES.get(id(parsed)) or str(parsed)


# Repairs of specifiers `packaging` refuses but whose meaning is plain (see the docstring).
_REPAIRS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"""["']"""), ""),  # stray quotes: `>= "1.0"`
    (re.compile(r"=>"), ">="),
    (re.compile(r"=<"), "<="),
    (re.compile(r"(?<![=!<>~])=(?!=)"), "=="),  # `=1.0`
    (re.compile(r"!=~"), "!="),
    (re.compile(r"(<=|>=|<|>|~=)\s*(\d+(?:\.\d+)*)\.\*"), r"\1\2"),  # `>=1.19.*`
    (re.compile(r"(\d)\*"), r"\1.*"),  # `!=3.0*`
    (re.compile(r"(\d)\s*(?=[<>=~!])"), r"\1,"),  # `>=7.2.0<8.0.0`
    (re.compile(r",\s*(?=,|$)"), ""),  # a trailing or doubled comma
)
_SPECIFIER = re.compile(r"[<>=!~][^;]*")


def _repaired(specifiers: str) -> str:
    for pattern, replacement in _REPAIRS:
        specifiers = pattern.sub(replacement, specifiers)
    return specifiers.strip()


@functools.lru_cache(maxsize=4096)
def lenient_requirement(line: str) -> Requirement | None:
    """A Requires-Dist line `packaging` refuses, repaired; None when no repair makes sense."""
    head, sep, marker = line.partition(";")
    found = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*", head)
    if not found or "@" in head:
        return None
    name, extras, rest = found[1], found[2] or "", found[3]
    inner = rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest.strip("()")
    if inner and not _SPECIFIER.fullmatch(inner.strip()):
        return None
    text = f"{name}{extras}{_repaired(inner)}" + (f"; {marker.strip()}" if sep else "")
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def requirements(lines: list[str], source: str, who: str) -> list[Requirement]:
    """Requires-Dist `lines` as requirements; `source` names the file in errors, `who` the
    distribution in the warning of a repaired line."""
    out = []
    for line in lines:
        try:
            out.append(requirement(line))
            continue
        except InvalidRequirement:
            repaired = lenient_requirement(line)
        if repaired is None:
            raise UnreadableMetadata(f"{source}: invalid Requires-Dist '{line}'")
        _warn_once(f"{who}: invalid Requires-Dist '{line}' read as '{repaired}'")
        out.append(repaired)
    return out


def requires_python(value: str, source: str, who: str) -> str:
    """A Requires-Python `value` normalized (repaired when it must be; "" when unreadable)."""
    try:
        return str(SpecifierSet(value)) if value else ""
    except InvalidSpecifier:
        pass
    try:
        repaired = str(SpecifierSet(_repaired(value)))
    except InvalidSpecifier:
        log.warning("%s: ignoring invalid Requires-Python %r", source, value)
        return ""
    _warn_once(f"{who}: invalid Requires-Python '{value}' read as '{repaired}'")
    return repaired


@functools.lru_cache(maxsize=4096)
def _warn_once(message: str) -> None:
    """One warning per repaired line and distribution, however often its metadata is read."""
    log.warning("%s", message)
