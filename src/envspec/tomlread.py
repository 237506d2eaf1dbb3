"""Reading TOML documents with errors that say where: the position of a syntax error, and the
table path (``phases[1].requirements[3]``) of a value of the wrong type, a missing key or an
unknown one.

Shared by `spec` (``envspec.toml``) and `lockfile` (``pylock.*.toml``), which must not import
each other. Parsing is `tomllib` (`tomli` before Python 3.11); the typed access is ours because
the available schema libraries report paths in their own format, and every envspec error must
name its place in the same ``file: table.path`` form (DESIGN.md §3).

Paths are 0-based for array items, as in TOML's own arrays: ``phases[0]`` is the first
``[[phases]]`` table. Keys that are not bare TOML keys are quoted: ``indexes."my.index"``.

Messages this module raises (with the caller's error class):

- ``<file>:<line>:<col>: invalid TOML: <tomllib's reason>`` · ``<file>: invalid TOML: nested
  too deeply`` (arrays or inline tables nested beyond what the parser can recurse into)
- ``<file>: <path>: expected a string, got integer`` (article and TOML type names:
  string, integer, float, boolean, array, table, datetime, date, time)
- ``<file>: <path>: missing required key 'python'``
- ``<file>: <path>: unknown key 'requirement'``, hint ``did you mean 'requirements'?`` or
  ``allowed keys: a, b, c``
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from envspec.errors import EnvspecError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_END = re.compile(r"\s*\(at end of document\)$")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?)?"
)
_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: bool is an int subclass, TOML keeps them apart
    (str, "string"),
    (int, "integer"),
    (float, "float"),
    (list, "array"),
    (dict, "table"),
    (dt.datetime, "datetime"),  # before date: datetime is a date subclass
    (dt.date, "date"),
    (dt.time, "time"),
)


def type_name(value: object) -> str:
    """The TOML name of a parsed value's type ("string", "integer", "table", ...)."""
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _with_article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _is(value: object, kind: type) -> bool:
    if isinstance(value, bool) and kind is not bool:
        return False
    if kind is dt.date and isinstance(value, dt.datetime):
        return False
    return isinstance(value, kind)


def key_path(path: str, key: str) -> str:
    """`path` extended by `key`, quoting keys that are not bare TOML keys."""
    part = key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'
    return f"{path}.{part}" if path else part


def loads(text: str, *, where: str, error: type[EnvspecError]) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes `error` with context ``<where>:<line>:<col>``."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        line, col, reason = _position(str(exc), text)
        reason = reason[:1].lower() + reason[1:]
        # a byte-order mark some Windows editors write: TOML's grammar has no room for it
        hint = (
            "the file starts with a UTF-8 byte-order mark, which TOML does not allow: save "
            "it as UTF-8 without one"
            if text.startswith("\ufeff") and (line, col) == (1, 1)
            else ""
        )
        raise error(f"invalid TOML: {reason}", context=f"{where}:{line}:{col}", hint=hint) from exc
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise error("invalid TOML: nested too deeply", context=where) from None


def _position(message: str, text: str) -> tuple[int, int, str]:
    # tomllib puts the position in the message only (3.14 adds attributes; the text works on all)
    found = _POSITION.search(message)
    if found:
        return int(found[1]), int(found[2]), message[: found.start()]
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1, _END.sub("", message)


def parse_datetime(text: str) -> dt.datetime | dt.date | None:
    """An RFC 3339 date or date-time string as a value (None when it is not one).

    Written by hand because `datetime.fromisoformat` accepts more than RFC 3339 on 3.11+ and
    less (no ``Z``, fixed fraction widths) on 3.10. A date-time without an offset is naive.
    """
    found = _RFC3339.fullmatch(text)
    if not found:
        return None
    g = found.groups()
    try:
        if g[3] is None:
            return dt.date(int(g[0]), int(g[1]), int(g[2]))
        micro = int((g[6] or "0")[:6].ljust(6, "0"))
        zone: dt.tzinfo | None = None
        if g[7]:
            zone = dt.timezone.utc
        elif g[8]:
            offset = dt.timedelta(hours=int(g[9]), minutes=int(g[10]))
            zone = dt.timezone(offset if g[8] == "+" else -offset)
        year, month, day, hour, minute, second = (int(x) for x in g[:6])
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError:  # month 13, hour 25, ...
        return None


class Doc:
    """A parsed document's name and the error class its problems are raised as."""

    __slots__ = ("error", "where")

    def __init__(self, where: str, error: type[EnvspecError]) -> None:
        self.where = where
        self.error = error

    def fail(self, path: str, message: str, hint: str = "") -> NoReturn:
        context = f"{self.where}: {path}" if path else self.where
        raise self.error(message, context=context, hint=hint)

    def root(self, data: Mapping[str, Any]) -> Table:
        return Table(data, "", self)


class Table:
    """A table of a document and its path, for typed reads that fail naming the path."""

    __slots__ = ("data", "doc", "path")

    def __init__(self, data: Mapping[str, Any], path: str, doc: Doc) -> None:
        self.data = data
        self.path = path
        self.doc = doc

    def at(self, key: str) -> str:
        return key_path(self.path, key)

    def fail(self, message: str, hint: str = "", *, key: str | None = None) -> NoReturn:
        self.doc.fail(self.path if key is None else self.at(key), message, hint)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def keys(self) -> list[str]:
        return list(self.data)

    def check_keys(self, allowed: Sequence[str]) -> None:
        """Refuse keys outside `allowed`, suggesting the closest allowed one."""
        for key in self.data:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or "allowed keys: " + ", ".join(allowed)
                self.fail(f"unknown key '{key}'", hint)

    def value(self, key: str, kind: type[T], *, required: bool = False) -> T | None:
        """The value at `key` if it has TOML type `kind`; None when absent and not required."""
        if key not in self.data:
            if required:
                self.fail(f"missing required key '{key}'")
            return None
        return check_type(self.data[key], kind, self.doc, self.at(key))

    def string(self, key: str, *, required: bool = False) -> str | None:
        return self.value(key, str, required=required)

    def required_string(self, key: str) -> str:
        found = self.value(key, str, required=True)
        assert found is not None  # value() failed otherwise
        return found

    def flag(self, key: str, default: bool = False) -> bool:
        found = self.value(key, bool)
        return default if found is None else found

    def array(self, key: str, *, required: bool = False) -> list[Any] | None:
        return self.value(key, list, required=required)

    def strings(self, key: str, *, required: bool = False) -> list[str] | None:
        """An array of strings, each item checked (``key[i]`` in errors)."""
        found = self.array(key, required=required)
        if found is None:
            return None
        path = self.at(key)
        return [check_type(item, str, self.doc, f"{path}[{i}]") for i, item in enumerate(found)]

    def table(self, key: str, *, required: bool = False) -> Table | None:
        found = self.value(key, dict, required=required)
        return None if found is None else Table(found, self.at(key), self.doc)

    def tables(self, key: str) -> list[Table]:
        """An array of tables (``[[key]]``); empty when absent."""
        found = self.array(key) or []
        out = []
        for i, item in enumerate(found):
            path = f"{self.at(key)}[{i}]"
            out.append(Table(check_type(item, dict, self.doc, path), path, self.doc))
        return out

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self.data.items())


def check_type(value: Any, kind: type[T], doc: Doc, path: str) -> T:
    """`value` if it has TOML type `kind`, else an ``expected a string, got integer`` error."""
    if not _is(value, kind):
        expected = _with_article(dict(_TYPE_NAMES)[kind])
        doc.fail(path, f"expected {expected}, got {type_name(value)}")
    return value  # type: ignore[no-any-return]
