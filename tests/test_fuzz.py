"""A seeded, bounded fuzz over what envspec reads: specs, locks, index pages, core metadata and
requirements files, mutated from valid ones. Whatever the input, the answer is a value or an
`EnvspecError` — never a traceback — and no credential planted in the input is echoed; a spec
that is refused leaves nothing written; an index answer that is taken yields only artifacts a
lock may hold (64-hex sha256, a size that is not negative, a URL that parses). A few mutated
index pages go through the real `envspec lock` too, and every lock written then loads back.

Runs in a few seconds: the seed and the counts are fixed, so a failure replays exactly.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from packaging.utils import canonicalize_name

from envspec.cli import main
from envspec.errors import EnvspecError
from envspec.index.metadata import parse_metadata
from envspec.index.releases import dump_listing, load_listing, load_releases, of_artifacts
from envspec.index.simple import JSON_TYPE, parse_page
from envspec.lockfile import load_lock
from envspec.model import Artifact
from envspec.review.reqfile import parse_requirements
from envspec.secret import redact as redact_urls
from envspec.spec import parse_spec
from support.handler import Handler
from support.index_server import IndexServer
from support.wheels import core_metadata

SEED = 20260901
SECRET = "s3cr3tT0ken"
BUDGET = 20.0  # seconds for the whole module, far above what it takes

SPEC = f"""
[environment]
name = "fuzz"
python = "3.11"
targets = ["linux-x86_64", "macos-arm64"]

[targets.macos-arm64]
macos = "14.0"

[indexes]
pypi = "https://pypi.org/simple"
private = {{ url = "https://user:{SECRET}@pkgs.example.com/simple", explicit = true }}

[[phases]]
name = "numpy"
requirements = ["numpy<2", "numpy>=1.20"]

[[phases]]
name = "torch"
index = {{ linux-x86_64 = "private" }}
requirements = ["torch==2.4.0", "pkg @ https://tok:{SECRET}@files.example.com/pkg-1.0.tar.gz"]

[resolution]
constraints = ["filelock<4"]
exclude-newer = "2026-01-01"

[checks]
imports = ["numpy"]
versions = {{ numpy = "<2" }}
"""

TOKENS = [
    "[",
    "]",
    "{",
    "}",
    '"',
    "'",
    "=",
    ",",
    "\n",
    "#",
    ".",
    "\\",
    "${X}",
    "${UNSET}",
    "@",
    "[[phases]]",
    "[indexes]",
    "x = 1",
    "= [",
    "[" * 300,
    "{ a = " * 200,
    "\x00",
    "\u2028",
    "é",
    "1979-05-27T07:32:00Z",
    "inf",
    "nan",
    "true",
    "-1",
    "99999999999999999999",
    "http://[::1",
    "https://h:99999/",
    f"https://u:{SECRET}@h/x.whl",
    "git+https://",
    "numpy (>=1.19.*)",
    "a[",
    "; python_version >",
    "===",
    "~=1",
    ":all:",
]


def _mutate(rng: random.Random, text: str, rounds: int = 3) -> str:
    for _ in range(rng.randint(1, rounds)):
        at = rng.randrange(len(text) + 1)
        choice = rng.random()
        if choice < 0.4:
            text = text[:at] + rng.choice(TOKENS) + text[at:]
        elif choice < 0.7:
            text = text[:at] + text[at + rng.randint(1, 12) :]
        elif choice < 0.85:
            line = rng.choice(text.splitlines() or [""])
            text = text[:at] + line + "\n" + text[at:]
        else:
            text = text[:at] + chr(rng.randrange(32, 0x2FF)) + text[at:]
    return text


def _survives(parse: Callable[[], object], given: str = "") -> object | None:
    """`parse()`'s value, or None when it raised an EnvspecError; its message must not show
    the secret where `given` (the input) holds it only as a URL's credentials (a mutation
    that moved it out of a URL made it plain text, and plain text is not redacted)."""
    try:
        return parse()
    except EnvspecError as exc:
        shown = f"{exc}\n{exc.hint}"
        if SECRET not in redact_urls(given):
            assert SECRET not in shown, shown
        return None


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + BUDGET


@pytest.fixture(autouse=True)
def quiet_log() -> Iterator[None]:
    """Warnings about fuzzed input are expected; a handler left by an earlier `main()` may
    point at a closed stream."""
    logger = logging.getLogger("envspec")
    saved = logger.handlers[:]
    logger.handlers[:] = [logging.NullHandler()]
    yield
    logger.handlers[:] = saved


def test_specs(deadline: float) -> None:
    rng = random.Random(SEED)
    assert parse_spec(SPEC, environ={})  # the seed itself is valid
    for _ in range(1500):
        text = _mutate(rng, SPEC)
        _survives(partial(parse_spec, text, environ={"X": "x"}), text)
        assert time.monotonic() < deadline


def test_refused_specs_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED + 1)
    for i in range(40):
        folder = tmp_path / str(i)
        folder.mkdir()
        text = _mutate(rng, SPEC, rounds=6)
        (folder / "envspec.toml").write_text(text)
        code = main(["lock", "--check", "--project", str(folder)])
        err = capsys.readouterr().err
        assert code in (2, 3), err  # refused, or valid and its locks missing
        assert "Traceback" not in err
        assert SECRET not in err or SECRET in redact_urls(text), err
        assert sorted(p.name for p in folder.iterdir()) == ["envspec.toml"]


LOCK = (Path(__file__).parent.parent / "locks" / "pylock.macos-arm64.toml").read_text()[:6000]
LOCK = LOCK[: LOCK.rindex("\n[[packages]]")] + "\n"


def test_locks(tmp_path: Path, deadline: float) -> None:
    rng = random.Random(SEED + 2)
    path = tmp_path / "pylock.fuzz.toml"
    for _ in range(300):
        text = _mutate(rng, LOCK)
        path.write_text(text, encoding="utf-8")
        _survives(partial(load_lock, path), text)
        assert time.monotonic() < deadline


def _page(rng: random.Random) -> tuple[bytes, str]:
    files = []
    for i in range(rng.randint(0, 4)):
        entry: dict[str, object] = {
            "filename": rng.choice([f"foo-1.{i}-py3-none-any.whl", f"foo-1.{i}.tar.gz", "x"]),
            "url": rng.choice(
                ["files/f.whl", "http://[::1/f.whl", f"http://u:{SECRET}@h:99999/f", "//h/f.whl"]
            ),
            "hashes": {"sha256": rng.choice(["a" * 64, "zz" * 32, "a" * 63, 5, None])},
            "size": rng.choice([10, -1, "10", None, True]),
            "yanked": rng.choice([False, True, "why", 3]),
            "requires-python": rng.choice([">=3.8", ">=3.x", 3, None]),
            "core-metadata": rng.choice([True, {"sha256": "b" * 64}, "x", None]),
        }
        for key in rng.sample(sorted(entry), rng.randint(0, 2)):
            entry.pop(key)
        files.append(entry)
    if rng.random() < 0.5:
        body = json.dumps({"meta": {"api-version": "1.1"}, "files": files})
        return _mutate(rng, body, rounds=2).encode(errors="replace"), JSON_TYPE
    links = "".join(
        f'<a href="{e.get("url", "")}#sha256={(e.get("hashes") or {}).get("sha256")}" '
        f'data-requires-python="{e.get("requires-python")}">{e.get("filename")}</a>'
        for e in files
    )
    return _mutate(
        rng, f"<html><base href='{rng.choice(['/', 'http://[x'])}'>{links}"
    ).encode(), "text/html"


def _lockable(artifacts: object) -> None:
    assert isinstance(artifacts, list)
    for artifact in artifacts:
        assert artifact.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", artifact.sha256)
        assert artifact.size is None or artifact.size >= 0
        urlsplit(artifact.url).port  # noqa: B018 (raises on a URL that cannot be fetched)


def test_index_pages(deadline: float) -> None:
    rng = random.Random(SEED + 3)
    for _ in range(1500):
        body, content_type = _page(rng)
        url = "https://idx.example/simple/foo/"
        found = _survives(
            partial(parse_page, body, content_type, url), body.decode(errors="replace")
        )
        if found is not None:
            _lockable(found)
            _kept_as_parsed(found)
        assert time.monotonic() < deadline


def _kept_as_parsed(found: list[Artifact]) -> None:
    """The cache's compact form of a page gives back the files parsed, whole and by release."""
    data = dump_listing(found)
    back = load_listing(data)
    assert back is not None and sorted(back, key=repr) == sorted(found, key=repr)
    releases = load_releases(data, canonicalize_name("foo"))
    assert releases is not None
    assert list(releases.every()) == list(of_artifacts(found, canonicalize_name("foo")).every())


def test_core_metadata(deadline: float) -> None:
    rng = random.Random(SEED + 4)
    seed = core_metadata(
        "foo",
        "1.0",
        requires_dist=['numpy (>=1.19.*) ; python_version >= "3.7"', "bar[x]>=1"],
        requires_python=">=3.8",
    ).decode()
    for _ in range(800):
        data = _mutate(rng, seed).encode("utf-8", errors="replace")
        _survives(partial(parse_metadata, data, "foo-1.0-py3-none-any.whl"))
        assert time.monotonic() < deadline


REQUIREMENTS = f"""-r base.txt
-c constraints.txt
--extra-index-url https://u:{SECRET}@pkgs.example.com/simple
torch==2.4.0+cu118 --index-url https://download.pytorch.org/whl/cu118
git+https://tok:{SECRET}@github.com/a/b.git@v1#egg=b
https://h/x/flash_attn-2.6.3-cp311-cp311-linux_x86_64.whl ; sys_platform == "linux"
numpy>=1.24 \\
    --hash=sha256:{"0" * 64}
-e ./local
"""


def test_requirements_files(deadline: float) -> None:
    rng = random.Random(SEED + 5)
    included = {"base.txt": "requests\n", "constraints.txt": "urllib3<3\n"}

    def read(path: Path) -> str:
        if path.name not in included:
            raise EnvspecError("no such requirements file", context=str(path))
        return _mutate(rng, included[path.name], rounds=1)

    for _ in range(800):
        text = _mutate(rng, REQUIREMENTS)
        _survives(partial(parse_requirements, text, where="r.txt", stem="r", read=read), text)
        assert time.monotonic() < deadline


class _FuzzHandler(Handler):
    def _route(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        page = getattr(self.index, "page", None)
        if path == "/simple/foo/" and page is not None:
            return 200, page[0], {"Content-Type": page[1]}
        return super()._route(path)


def test_index_pages_through_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED + 6)
    server = type("FuzzServer", (IndexServer,), {"handler_class": _FuzzHandler})(tmp_path / "ix")
    with server:
        server.add_wheel("foo", "1.0")
        for i in range(15):
            server.page = _page(rng)  # type: ignore[attr-defined]
            folder = tmp_path / f"p{i}"
            folder.mkdir()
            (folder / "envspec.toml").write_text(
                "[environment]\nname = 'f'\npython = '3.11'\ntargets = ['linux-x86_64']\n"
                f"[indexes]\npypi = '{server.url}'\n"
                "[[phases]]\nname = 'main'\nrequirements = ['foo']\n"
            )
            code = main(["lock", "--project", str(folder), "--cache-dir", str(tmp_path / "c")])
            err = capsys.readouterr().err
            assert "Traceback" not in err, err
            assert SECRET not in err or SECRET in redact_urls(
                server.page[0].decode(errors="replace")
            ), err  # type: ignore[attr-defined]
            if code == 0:
                _lockable(
                    [
                        p.artifact
                        for p in load_lock(folder / "locks" / "pylock.linux-x86_64.toml").packages
                    ]
                )
            else:
                assert code == 1, err
                assert not (folder / "locks").exists()


def test_deeply_nested_toml_is_invalid_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "x = " + "[" * 5000 + "]" * 5000 + "\n"
    spec = tmp_path / "envspec.toml"
    spec.write_text(deep)
    assert main(["lock", "--check", "--project", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {spec}: invalid TOML: nested too deeply\n"
    spec.write_text(SPEC.replace("https://user:s3cr3tT0ken@", "https://"))
    (tmp_path / "locks").mkdir()
    lock = tmp_path / "locks" / "pylock.linux-x86_64.toml"
    lock.write_text("a = " + "{ b = " * 5000 + "1" + " }" * 5000 + "\n")
    assert main(["export", "--target", "linux-x86_64", "--project", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {lock}: invalid TOML: nested too deeply\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envspec.toml", "locks"]
