"""The core metadata fields resolution reads (Metadata-Version, Name, Version, Requires-Dist,
Requires-Python, Provides-Extra, Dynamic) from METADATA/PKG-INFO bytes, as
`packaging.metadata.parse_email` reads them.

`parse_email` goes through the stdlib email parser, ~1.2 ms a file (1.8 s for a cold lock's
1,458 files; unsloth's releases list ~1,000 Requires-Dist each). Most files are plain: UTF-8
`Name: value` lines up to the first empty line. Those are read here in a loop over lines, with
the email parser's rules for them (names case-insensitive, the value after the colon with
leading blanks stripped, a repeated single-valued field dropped); anything else (a folded
value of a field we read, a lone carriage return, a line the email parser would end the
headers at, bytes that are not UTF-8) goes to `parse_email` itself.
"""

from __future__ import annotations

import re
from typing import Any

_FIELDS = {
    "metadata-version": "metadata_version",
    "name": "name",
    "version": "version",
    "requires-dist": "requires_dist",
    "requires-python": "requires_python",
    "provides-extra": "provides_extra",
    "dynamic": "dynamic",
}
_LISTS = frozenset({"requires_dist", "provides_extra", "dynamic"})
_NAME = re.compile(r"[\041-\071\073-\176]+")  # the email parser's header name characters


def read_fields(data: bytes) -> dict[str, Any]:
    """The fields above, keyed as `packaging.metadata.RawMetadata` keys them."""
    found = _plain_fields(data)
    if found is None:
        # Imported here: it brings the email package (~17 ms), which plain files never need.
        from packaging.metadata import parse_email

        raw, _unparsed = parse_email(data)
        return {key: raw[key] for key in _FIELDS.values() if key in raw}  # type: ignore[literal-required]
    return found


def _plain_fields(data: bytes) -> dict[str, Any] | None:
    """The fields of plain headers; None when the email parser must say."""
    text = _header_text(data)
    if text is None:
        return None
    values: dict[str, list[str]] = {}
    reading = False  # the last header is one of ours: a folded line would belong to it
    for line in text.split("\n"):
        if not line:
            break  # the empty line that ends the headers (or the end of the text)
        if line[0] in " \t":
            if reading:
                return None
            continue
        name, colon, value = line.partition(":")
        if not colon or not _NAME.fullmatch(name) or line.startswith("From "):
            return None
        key = _FIELDS.get(name.lower())
        reading = key is not None
        if key is not None:
            values.setdefault(key, []).append(value.lstrip(" \t"))
    # parse_email leaves a repeated single-valued field out
    return {
        key: found if key in _LISTS else found[0]
        for key, found in values.items()
        if key in _LISTS or len(found) == 1
    }


def _header_text(data: bytes) -> str | None:
    """The headers' lines, up to the first empty one, when plain UTF-8 text."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")  # as the email parser splits lines
    end = data.find(b"\n\n")
    head = data if end < 0 else data[: end + 1]
    if b"\r" in head:  # a lone carriage return, which the email parser takes for a line end
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError:
        return None
