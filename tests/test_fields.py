"""The fields resolution reads from core metadata (index/fields.py) are what
`packaging.metadata.parse_email` reads: on real METADATA files, on the forms the fast path
hands to the email parser, and on seeded mutations of real files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from packaging.metadata import parse_email

from envspec.index.fields import _FIELDS, _plain_fields, read_fields

FIXTURES = Path("/work/shared/fixtures/pytorch-cu121/metadata")
REAL = sorted(FIXTURES.glob("*.metadata"))


def expected(data: bytes) -> dict[str, Any]:
    raw, _unparsed = parse_email(data)
    return {key: raw[key] for key in _FIELDS.values() if key in raw}  # type: ignore[literal-required]


def test_real_files_read_alike_without_the_email_parser() -> None:
    assert len(REAL) > 90
    for path in REAL:
        data = path.read_bytes()
        assert _plain_fields(data) is not None, path.name  # the fast path took it
        assert read_fields(data) == expected(data), path.name


PLAIN = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nRequires-Dist: bar>=1\n"


@pytest.mark.parametrize(
    ("data", "fast"),
    [
        (PLAIN + b"\nbody: not a header\n", True),
        (PLAIN.replace(b"\n", b"\r\n") + b"\r\nbody\r\n", True),  # CRLF lines
        (b"name: foo\nVERSION: 1.0\nrequires-dist:  bar\nrequires-dist:\tbaz\n", True),
        (PLAIN + b"Name: foo\n", True),  # a repeated Name is left out, as parse_email does
        (PLAIN + b"Description: a\n  folded value\n", True),  # folded, not a field we read
        (b"Name: caf\xc3\xa9\nVersion: 1.0\n", True),
        (PLAIN + b"Requires-Dist: baz;\n  extra == 'x'\n", False),  # folded, ours
        (PLAIN.replace(b"\n", b"\r"), False),  # lone carriage returns
        (b"Name: caf\xe9\nVersion: 1.0\n", False),  # not UTF-8
        (b"Name: foo\nnot a header line\nVersion: 1.0\n", False),
        (b"Name: foo\nX Y: z\nVersion: 1.0\n", False),
        (b"From someone\nName: foo\n", False),
        (b"\nName: foo\n", True),  # an empty first line: no headers at all
    ],
)
def test_edge_forms_read_alike(data: bytes, fast: bool) -> None:
    assert (_plain_fields(data) is not None) is fast
    assert read_fields(data) == expected(data)


def test_seeded_mutations_of_real_files_read_alike() -> None:
    rnd = random.Random(20261201)
    pieces = [
        b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b"\xff", b"\xc3\xa9", b"From ",
        b"Name: x\n", b"Requires-Dist: a\n", b"\n ", b"\n\t", b"X Y: z\n", b"\n\n",
    ]  # fmt: skip
    samples = [path.read_bytes()[:2000] for path in REAL]
    for _ in range(3000):
        data = bytearray(rnd.choice(samples))
        for _ in range(rnd.randint(1, 4)):
            at = rnd.randrange(len(data) + 1)
            data[at:at] = rnd.choice(pieces)
        assert read_fields(bytes(data)) == expected(bytes(data)), bytes(data[:200])
