"""envspec.index against the hermetic IndexServer: pages, metadata, auth, retries, cache."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from envspec.errors import BuildNeeded, IndexError_, MetadataError, OfflineError
from envspec.index import Finder, FinderSettings, open_finder, requires
from envspec.index.metadata import from_cached, parse_metadata, to_cached
from envspec.model import Artifact, CoreMetadata, DistMetadata, Index, Yank
from envspec.targets import make_target, wheel_filter
from support.index_server import IndexServer
from support.wheels import build_sdist, build_wheel

FIXTURES = Path("/work/shared/fixtures/pytorch-cu121/metadata")
SECRET = "s3cret-p4ss"


def n(name: str) -> NormalizedName:
    return canonicalize_name(name)


@pytest.fixture
def finders(tmp_path: Path) -> Iterator[Any]:
    """A factory of Finders with fast retries, isolated HOME/cache; all closed at the end."""
    made: list[Finder] = []

    def make(*indexes: Index, environ: dict[str, str] | None = None, **kw: Any) -> Finder:
        kw.setdefault("cache_dir", tmp_path / "cache")
        kw.setdefault("backoff", 0.0)
        kw.setdefault("timeout", 0.5)
        kw.setdefault("workers", 4)
        keep = kw.pop("keep_file", None)
        environ = {"HOME": str(tmp_path)} if environ is None else environ
        finder = open_finder(indexes, environ, FinderSettings(**kw), keep_file=keep)
        made.append(finder)
        return finder

    yield make
    for finder in made:
        finder.close()


def index_of(server: IndexServer, name: str = "test", **kw: Any) -> Index:
    return Index(name=name, url=kw.pop("url", server.url), **kw)


# -- pages --------------------------------------------------------------------------------


@pytest.mark.parametrize("use_json", [True, False])
def test_page_json_and_html(index_server: IndexServer, finders: Any, use_json: bool) -> None:
    index_server.json = use_json
    whl = index_server.add_wheel(
        "Foo",
        "1.0",
        requires_python=">=3.8,<4",
        yanked="broken build",
        upload_time="2024-01-02T03:04:05Z",
    )
    index_server.add_wheel("foo", "1.1", yanked="")
    index_server.add_sdist("foo", "1.1")
    index_server.add_wheel("bar", "1.0")
    found = {
        a.filename: a
        for a in finders(index_of(index_server)).files(n("foo"), index_of(index_server))
    }
    assert sorted(found) == [
        "foo-1.0-py3-none-any.whl",
        "foo-1.1-py3-none-any.whl",
        "foo-1.1.tar.gz",
    ]
    first = found["foo-1.0-py3-none-any.whl"]
    entry = index_server.entry(whl.name)
    assert first.url == index_server.file_url(whl.name)
    assert first.sha256 == entry.sha256 and first.kind == "wheel"
    assert first.requires_python == ">=3.8,<4" and first.yanked is Yank.YANKED
    assert first.yanked_reason == "broken build"
    assert first.metadata is CoreMetadata.SERVED and first.metadata_sha256
    yanked = found["foo-1.1-py3-none-any.whl"]
    assert yanked.yanked is Yank.YANKED and yanked.yanked_reason == ""
    assert found["foo-1.1.tar.gz"].kind == "sdist" and found["foo-1.1.tar.gz"].yanked is Yank.LIVE
    if use_json:
        assert first.size == entry.size
        assert first.upload_time == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
        assert index_server.requests[0][2]["Accept"].startswith(
            "application/vnd.pypi.simple.v1+json"
        )


def test_html_root_relative_local_versions_without_hashes(
    index_server: IndexServer, finders: Any
) -> None:
    index_server.json, index_server.root_relative, index_server.hashes = False, True, False
    index_server.metadata = False
    whl = index_server.add_wheel(
        "torch", "2.4.0+cu121", tag="cp311-cp311-linux_x86_64", requires_dist=["filelock", "sympy"]
    )
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("torch"), index)
    assert artifact.filename == "torch-2.4.0+cu121-cp311-cp311-linux_x86_64.whl"
    assert (
        artifact.url
        == f"{index_server.base}/files/torch-2.4.0%2Bcu121-cp311-cp311-linux_x86_64.whl"
    )
    assert artifact.sha256 is None and artifact.metadata is CoreMetadata.ABSENT
    meta = finder.metadata(artifact)
    assert meta.version == Version("2.4.0+cu121")
    assert [str(r) for r in meta.requires_dist] == ["filelock", "sympy"]
    assert finder.ensure_hash(artifact).sha256 == hashlib.sha256(whl.read_bytes()).hexdigest()


def test_missing_project_is_empty(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0")
    index = index_of(index_server)
    assert finders(index).files(n("nope"), index) == []


# -- metadata -----------------------------------------------------------------------------


def test_metadata_sidecar_is_used(index_server: IndexServer, finders: Any) -> None:
    whl = index_server.add_wheel(
        "foo",
        "1.0",
        requires_dist=['bar>=2; extra == "x"'],
        provides_extra=["x"],
        requires_python=">=3.9",
    )
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("foo"), index)
    meta = finder.metadata(artifact)
    assert meta.name == "foo" and meta.version == Version("1.0")
    assert meta.requires_dist == (Requirement('bar>=2; extra == "x"'),)
    assert meta.provides_extra == ("x",) and meta.requires_python == ">=3.9"
    assert index_server.file_bytes_sent(whl.name) == 0
    assert f"/files/{whl.name}.metadata" in index_server.paths_requested()
    assert finder.stats.metadata_fetched == 1 and finder.stats.full_downloads == 0


def test_range_reads_of_a_large_wheel(index_server: IndexServer, finders: Any) -> None:
    index_server.metadata = False
    whl = index_server.add_wheel("big", "1.0", requires_dist=["numpy<2"], pad_bytes=5_000_000)
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("big"), index)
    assert artifact.metadata is CoreMetadata.ABSENT
    assert finder.metadata(artifact).requires_dist == (Requirement("numpy<2"),)
    size = whl.stat().st_size
    assert size > 5_000_000
    assert index_server.file_bytes_sent(whl.name) < 150_000
    assert index_server.paths_requested().count(f"/files/{whl.name}") <= 3
    assert finder.stats.full_downloads == 0


def test_full_download_when_ranges_are_ignored(
    index_server: IndexServer, finders: Any, caplog: pytest.LogCaptureFixture
) -> None:
    index_server.metadata, index_server.ranges = False, False
    whl = index_server.add_wheel("big", "1.0", requires_dist=["numpy<2"], pad_bytes=300_000)
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("big"), index)
    with caplog.at_level(logging.INFO, logger="envspec.index"):
        assert finder.metadata(artifact).requires_dist == (Requirement("numpy<2"),)
    assert index_server.file_bytes_sent(whl.name) == whl.stat().st_size
    assert finder.stats.full_downloads == 1
    assert f"downloading whole wheel {whl.name} for metadata" in caplog.messages


def test_sdist_static_metadata(index_server: IndexServer, finders: Any) -> None:
    index_server.add_sdist("foo", "1.0", requires_dist=["bar<3"], requires_python=">=3.8")
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("foo"), index)
    meta = finder.metadata(artifact)
    assert meta.requires_dist == (Requirement("bar<3"),) and meta.requires_python == ">=3.8"


def test_a_large_sdist_is_read_only_up_to_its_pkg_info(
    index_server: IndexServer, finders: Any
) -> None:
    sdist = index_server.add_sdist("big", "1.0", requires_dist=["bar<3"], pad_bytes=5_000_000)
    index_server.rate = 10_000_000  # so what the client never reads is never sent either
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("big"), index)
    assert finder.metadata(artifact).requires_dist == (Requirement("bar<3"),)
    assert sdist.stat().st_size > 5_000_000
    assert index_server.file_bytes_sent(sdist.name) < 2_000_000
    assert finder.stats.full_downloads == 1  # counted as the sdist read it is


@pytest.mark.parametrize("fault", ["cut", "500"])
def test_an_sdist_read_that_fails_midway_is_read_again(
    index_server: IndexServer, finders: Any, fault: str
) -> None:
    index_server.add_sdist(
        "foo", "1.0", requires_dist=["bar<3"], pkg_info_last=True, pad_bytes=300_000
    )
    index_server.fail("foo-1.0.tar.gz", fault)
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("foo"), index)
    assert finder.metadata(artifact).requires_dist == (Requirement("bar<3"),)
    assert index_server.paths_requested().count("/files/foo-1.0.tar.gz") == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"dynamic": ["Requires-Dist"]},
            "foo-1.0.tar.gz declares requires-dist dynamic; it needs a PEP 517 build",
        ),
        (
            {"metadata_version": "2.1"},
            "foo-1.0.tar.gz has Metadata-Version 2.1 (< 2.2); it needs a PEP 517 build",
        ),
    ],
)
def test_sdist_dynamic_metadata_needs_a_build(
    index_server: IndexServer, finders: Any, kwargs: dict[str, Any], message: str
) -> None:
    index_server.add_sdist("foo", "1.0", **kwargs)
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("foo"), index)
    with pytest.raises(BuildNeeded) as err:
        finder.metadata(artifact)
    assert err.value.message == message
    assert err.value.hint == ""  # a cue for the resolver to build it, never shown as is


def test_real_torch_metadata_parses() -> None:
    path = FIXTURES / "torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl.metadata"
    meta = parse_metadata(path.read_bytes(), path.name)
    assert meta.name == "torch" and meta.version == Version("2.4.0")
    reqs = {r.name: r for r in meta.requires_dist}
    cublas = reqs["nvidia-cublas-cu12"]
    assert str(cublas.specifier) == "==12.1.3.1"
    assert str(cublas.marker) == 'platform_system == "Linux" and platform_machine == "x86_64"'
    assert str(reqs["triton"].specifier) == "==3.0.0"
    assert "opt-einsum" in meta.provides_extra and meta.requires_python == ">=3.8.0"


def test_every_fixture_metadata_parses() -> None:
    files = sorted(FIXTURES.glob("*.metadata"))
    assert len(files) > 90
    for path in files:
        meta = parse_metadata(path.read_bytes(), path.name)
        assert meta.name == canonicalize_name(path.name.split("-")[0])


def _fields(requirement: Requirement) -> tuple[object, ...]:
    r = requirement
    return (str(r), r.name, r.url, r.extras, r.specifier, r.marker, hash(r))


def test_every_fixture_requirement_reads_as_its_whole_line_parses() -> None:
    """Requires-Dist lines are read in two halves, each parsed once (see `_split_parse`): the
    requirement equals `Requirement(line)` in every field, for every line of the real
    metadata, and one line's requirement is not another's."""
    lines = {
        line.split(":", 1)[1].strip()
        for path in FIXTURES.glob("*.metadata")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert len(lines) > 2000
    text = "".join(f"Requires-Dist: {line}\n" for line in sorted(lines))
    meta = parse_metadata(f"Name: x\nVersion: 1\n{text}".encode(), "x")
    assert [_fields(r) for r in meta.requires_dist] == [
        _fields(Requirement(line)) for line in sorted(lines)
    ]
    assert len({id(r) for r in meta.requires_dist}) == len(lines)


def test_every_fixture_requirement_reads_back_from_the_cache_as_its_whole_line_parses() -> None:
    """The metadata cache's lines are read with their part before the marker parsed only when
    it is first read (`cached_requirement`): each requirement still equals `Requirement(line)`
    in every field, for every line of the real metadata, and so does a copy of one."""
    metas = [parse_metadata(p.read_bytes(), p.name) for p in sorted(FIXTURES.glob("*.metadata"))]
    requires._REQUIREMENTS.clear()  # as in a new process: nothing parsed but what it reads
    back = [from_cached(to_cached(meta)) for meta in metas]
    assert [_fields(r) for m in back for r in m.requires_dist] == [
        _fields(Requirement(requires.line_of(r))) for m in back for r in m.requires_dist
    ]
    lazily = next(r for m in back for r in m.requires_dist if type(r) is not Requirement)
    assert type(copy.copy(lazily)) is Requirement and copy.copy(lazily) == lazily


def test_a_cached_line_parses_its_head_only_when_read() -> None:
    head = "never-read-before-xyzzy >=1.0,<2"
    line = f'{head}; extra == "gpu"'
    fields = {"name": "x", "version": "1", "requires-python": "", "provides-extra": ["gpu"]}
    cached = from_cached(json.dumps(fields).encode() + b"\n" + line.encode())
    (found,) = cached.requires_dist
    assert head not in requires._HEADS and str(found.marker) == 'extra == "gpu"'
    assert (found.name, str(found.specifier)) == ("never-read-before-xyzzy", "<2,>=1.0")
    assert head in requires._HEADS
    assert to_cached(cached).split(b"\n")[1:] == [line.encode()]  # written back as read


@pytest.mark.parametrize(
    "lines",
    [[], ["a>=1"], ["a>=1", 'b; extra == "x"', "c @ https://h/c.whl ; os_name == 'nt'"]],
)
def test_the_cached_form_gives_back_every_line_in_order(lines: list[str]) -> None:
    meta = DistMetadata(
        name=n("x"),
        version=Version("1"),
        requires_dist=tuple(map(Requirement, lines)),
        requires_python=">=3.9",
        provides_extra=("x",),
    )
    back = from_cached(to_cached(meta))
    assert [str(r) for r in back.requires_dist] == [str(Requirement(line)) for line in lines]
    assert (back.name, back.version, back.requires_python, back.provides_extra) == (
        "x",
        Version("1"),
        ">=3.9",
        ("x",),
    )


def test_a_cached_line_with_a_line_break_keeps_the_json_form() -> None:
    """A line is written back as it was read (`line_of`); one read with a line break in it
    (packaging refuses none today) must not split into two on its way back."""
    odd = requires._remember("odd-name >=1\n", Requirement("odd-name>=1"))
    meta = DistMetadata(name=n("x"), version=Version("1"), requires_dist=(odd,))
    data = to_cached(meta)
    assert json.loads(data)["requires-dist"] == ["odd-name >=1\n"]  # one JSON object
    assert [str(r) for r in from_cached(data).requires_dist] == ["odd-name>=1"]


@pytest.mark.parametrize(
    "line",
    [
        ' foo [a,b] >= 1.0 ; extra == "X_Y"',
        'foo; extra == "a" or python_version < "3.8"',
        "foo==1.*;os_name=='nt'",
        'foo @ https://example.com/f.whl?a=1;b=2 ; python_version >= "3"',  # `;` in the URL
    ],
)
def test_a_requirement_read_in_halves_is_the_whole_parse(line: str) -> None:
    meta = parse_metadata(f"Name: x\nVersion: 1\nRequires-Dist: {line}\n".encode(), "x")
    assert [_fields(r) for r in meta.requires_dist] == [_fields(Requirement(line))]


@pytest.mark.parametrize(
    "line", ["foo ; ", 'foo (>=1.0 ; extra=="x")', 'foo>=1.0;extra == "x" and', "foo; bogus"]
)
def test_a_line_refused_whole_is_refused(line: str) -> None:
    with pytest.raises(MetadataError, match="invalid Requires-Dist"):
        parse_metadata(f"Name: x\nVersion: 1\nRequires-Dist: {line}\n".encode(), "x")


def test_metadata_identity_is_checked() -> None:
    artifact = Artifact(
        filename="foo-2.0-py3-none-any.whl", url="http://x/foo-2.0-py3-none-any.whl", kind="wheel"
    )
    with pytest.raises(MetadataError) as err:
        parse_metadata(b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n\n", "src", artifact)
    assert err.value.message == "src: metadata says foo 1.0 but the file is foo 2.0"


# -- auth ---------------------------------------------------------------------------------


def _secured(server: IndexServer) -> None:
    server.auth = ("user", SECRET)
    server.metadata = False  # force range reads, which must carry the credentials too
    server.add_wheel("foo", "1.0", requires_dist=["bar"])


def _fetch_all(finder: Finder, index: Index) -> None:
    [artifact] = finder.files(n("foo"), index)
    assert "@" not in artifact.url and SECRET not in artifact.url
    assert finder.metadata(artifact).requires_dist == (Requirement("bar"),)


def test_auth_from_url_userinfo(index_server: IndexServer, finders: Any, tmp_path: Path) -> None:
    _secured(index_server)
    index = index_of(index_server, url=index_server.url_with_auth("user", SECRET))
    _fetch_all(finders(index), index)
    for path in (tmp_path / "cache").rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes()


def test_auth_from_netrc(index_server: IndexServer, finders: Any, tmp_path: Path) -> None:
    _secured(index_server)
    netrc = tmp_path / "my-netrc"
    netrc.write_text(f"machine 127.0.0.1\n  login user\n  password {SECRET}\n")
    index = index_of(index_server)
    _fetch_all(finders(index, environ={"HOME": str(tmp_path), "NETRC": str(netrc)}), index)


def test_auth_from_environment(index_server: IndexServer, finders: Any, tmp_path: Path) -> None:
    _secured(index_server)
    index = index_of(index_server, name="corp.private-idx")
    environ = {
        "HOME": str(tmp_path),
        "ENVSPEC_INDEX_CORP_PRIVATE_IDX_USERNAME": "user",
        "ENVSPEC_INDEX_CORP_PRIVATE_IDX_PASSWORD": SECRET,
    }
    _fetch_all(finders(index, environ=environ), index)


def test_wrong_credentials_never_shown(
    index_server: IndexServer, finders: Any, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _secured(index_server)
    index = index_of(
        index_server, name="corp", url=index_server.url_with_auth("user", "wr0ng-" + SECRET)
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(IndexError_) as err:
        finders(index).files(n("foo"), index)
    assert str(err.value) == f"GET {index_server.url}foo/ failed: HTTP 401"
    assert err.value.hint == (
        "give credentials in the index URL, in netrc, or as ENVSPEC_INDEX_CORP_USERNAME/_PASSWORD"
    )
    index_server.fail("/simple/foo/", "500", times=3)
    with pytest.raises(IndexError_) as err500:
        finders(index, cache_dir=tmp_path / "cache2").files(n("foo"), index)
    for text in (str(err.value), err.value.hint, str(err500.value), caplog.text):
        assert SECRET not in text and "wr0ng" not in text


# -- faults and retries -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "429", "timeout", "truncate"])
def test_transient_faults_are_retried(index_server: IndexServer, finders: Any, kind: str) -> None:
    index_server.fault_sleep = 1.0
    index_server.add_wheel("foo", "1.0")
    index_server.fail("/simple/foo/", kind, times=2)
    index = index_of(index_server)
    assert len(finders(index).files(n("foo"), index)) == 1
    assert index_server.paths_requested().count("/simple/foo/") == 3


def test_truncated_range_read_is_retried(index_server: IndexServer, finders: Any) -> None:
    index_server.metadata = False
    whl = index_server.add_wheel("foo", "1.0", requires_dist=["bar"], pad_bytes=200_000)
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("foo"), index)
    index_server.fail(f"/files/{whl.name}", "truncate")
    assert finder.metadata(artifact).requires_dist == (Requirement("bar"),)
    assert index_server.paths_requested().count(f"/files/{whl.name}") >= 2
    assert index_server.file_bytes_sent(whl.name) < whl.stat().st_size


def test_final_failure_message(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0")
    index_server.fail("/simple/foo/", "500", times=3)
    index = index_of(index_server)
    with pytest.raises(IndexError_) as err:
        finders(index).files(n("foo"), index)
    assert str(err.value) == f"GET {index_server.url}foo/ failed: HTTP 500 after 3 attempts"


def test_timeout_final_message(index_server: IndexServer, finders: Any) -> None:
    index_server.fault_sleep = 0.6
    index_server.add_wheel("foo", "1.0")
    index_server.fail("/simple/foo/", "timeout", times=2)
    index = index_of(index_server)
    with pytest.raises(IndexError_) as err:
        finders(index, retries=2, timeout=0.2).files(n("foo"), index)
    assert str(err.value) == (
        f"GET {index_server.url}foo/ failed: timed out: no answer from "
        f"127.0.0.1:{index_server.url.split(':')[2].split('/')[0]} in 0.2 s after 2 attempts"
    )


def test_unreachable_index_message(finders: Any) -> None:
    index = Index(name="down", url="http://127.0.0.1:9/simple/")
    with pytest.raises(IndexError_) as err:
        finders(index, retries=1).files(n("foo"), index)
    assert str(err.value) == (
        "GET http://127.0.0.1:9/simple/foo/ failed: "
        "connection refused by 127.0.0.1:9 after 1 attempt"
    )


# -- cache --------------------------------------------------------------------------------


def test_offline_without_cache(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0")
    index = index_of(index_server, url=index_server.url_with_auth("user", SECRET))
    with pytest.raises(OfflineError) as err:
        finders(index, offline=True).files(n("foo"), index)
    assert str(err.value) == f"offline: {index_server.url}foo/ is not in the cache"
    assert err.value.hint == "run without --offline"
    assert index_server.requests == []


def test_offline_with_warm_cache(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0", requires_dist=["bar"])
    index_server.add_wheel("foo", "2.0")
    index = index_of(index_server)
    online = finders(index)
    second, first = online.files(n("foo"), index)  # newest release first
    online.metadata(first)
    index_server.reset_counters()
    offline = finders(index, offline=True)
    assert offline.files(n("foo"), index) == [second, first]
    assert offline.metadata(first).requires_dist == (Requirement("bar"),)
    with pytest.raises(OfflineError) as err:
        offline.metadata(second)
    assert str(err.value) == f"offline: {second.url} is not in the cache"
    assert index_server.requests == []


def test_pages_are_revalidated_with_304(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0")
    index = index_of(index_server)
    assert len(finders(index).files(n("foo"), index)) == 1
    index_server.reset_counters()
    assert len(finders(index).files(n("foo"), index)) == 1
    [(_method, path, headers)] = index_server.requests
    assert path == "/simple/foo/" and "If-None-Match" in headers
    assert index_server.bytes_sent.get("/simple/foo/", 0) == 0  # 304: no body
    index_server.add_wheel("foo", "2.0")  # the page changes: new ETag, new body
    assert len(finders(index).files(n("foo"), index)) == 2


def test_a_page_without_validators_is_fetched_whole_and_kept_once(
    index_server: IndexServer, finders: Any, tmp_path: Path
) -> None:
    """No ETag or Last-Modified (as PyPI answers here): each lock fetches the page whole;
    an unchanged body is not written again, a changed one replaces it."""
    index_server.etag = False
    index_server.add_wheel("foo", "1.0")
    index = index_of(index_server)
    assert len(finders(index).files(n("foo"), index)) == 1
    [body] = (tmp_path / "cache").rglob("*.body")
    stamp = body.stat().st_mtime_ns
    assert len(finders(index).files(n("foo"), index)) == 1
    assert index_server.paths_requested().count("/simple/foo/") == 2
    assert body.stat().st_mtime_ns == stamp
    index_server.add_wheel("foo", "2.0")
    assert len(finders(index).files(n("foo"), index)) == 2
    assert body.stat().st_mtime_ns != stamp


def test_max_age_and_refresh(index_server: IndexServer, finders: Any) -> None:
    index_server.cache_control = "max-age=600"
    index_server.add_wheel("foo", "1.0")
    index = index_of(index_server)
    finders(index).files(n("foo"), index)
    index_server.reset_counters()
    finders(index).files(n("foo"), index)
    assert index_server.requests == []
    finders(index, refresh=True).files(n("foo"), index)
    assert index_server.paths_requested() == ["/simple/foo/"]


def test_a_page_is_parsed_once_per_content_and_filter(
    index_server: IndexServer, finders: Any, tmp_path: Path
) -> None:
    """The files a page lists are kept parsed, per file filter, for as long as the page's
    body is the same; offline, a page whose parsed form is kept is not read at all."""
    for tag in ("cp311-cp311-win_amd64", "cp312-cp312-win_amd64"):
        index_server.add_wheel("foo", "1.0", tag=tag)
    index_server.add_sdist("foo", "1.0")
    index = index_of(index_server)
    py311, py312 = (
        wheel_filter([make_target("windows-x86_64", python)]) for python in ("3.11", "3.12")
    )

    def names(finder: Finder) -> list[str]:
        return sorted(a.filename for a in finder.files(n("foo"), index))

    only_311 = ["foo-1.0-cp311-cp311-win_amd64.whl", "foo-1.0.tar.gz"]
    assert names(finders(index, keep_file=py311)) == only_311
    assert names(finders(index, keep_file=py312)) == [
        "foo-1.0-cp312-cp312-win_amd64.whl",
        "foo-1.0.tar.gz",
    ]
    assert len(list((tmp_path / "cache").rglob("*.listing"))) == 2
    for body in (tmp_path / "cache").rglob("*.body"):
        body.write_bytes(b"not a page")  # a page read again would now fail its hash check
    assert names(finders(index, keep_file=py311, offline=True)) == only_311
    index_server.add_wheel("foo", "2.0", tag="cp311-cp311-win_amd64")  # new content, new parse
    assert names(finders(index, keep_file=py311)) == [
        "foo-1.0-cp311-cp311-win_amd64.whl",
        "foo-1.0.tar.gz",
        "foo-2.0-cp311-cp311-win_amd64.whl",
    ]


def test_a_page_is_asked_for_once_per_finder(index_server: IndexServer, finders: Any) -> None:
    """The unfiltered view an explanation asks for comes from the answer already had."""
    index_server.add_wheel("foo", "1.0", tag="cp311-cp311-win_amd64")
    index_server.add_wheel("foo", "1.0", tag="cp312-cp312-win_amd64")
    index = index_of(index_server)
    finder = finders(index, keep_file=wheel_filter([make_target("windows-x86_64", "3.11")]))
    assert len(finder.files(n("foo"), index)) == 1
    assert len(finder.every_file(n("foo"), index)) == 2
    assert index_server.paths_requested() == ["/simple/foo/"]


def test_metadata_cache_is_persistent(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0", requires_dist=["bar"])
    index = index_of(index_server)
    [artifact] = finders(index).files(n("foo"), index)
    finders(index).metadata(artifact)
    index_server.reset_counters()
    again = finders(index)
    assert again.metadata(artifact).requires_dist == (Requirement("bar"),)
    assert index_server.requests == [] and again.stats.metadata_fetched == 0


# -- local indexes, routing, hashes, prefetch ---------------------------------------------


def test_file_index_and_find_links_folder(tmp_path: Path, finders: Any) -> None:
    simple = tmp_path / "simple"
    build_wheel(simple / "foo", "foo", "1.0", requires_dist=["bar"])
    build_sdist(simple / "foo", "foo", "1.0")
    tree = Index(name="tree", url=simple.as_uri())
    links_dir = tmp_path / "links"
    build_wheel(links_dir, "foo", "2.0")
    build_wheel(links_dir, "bar", "1.0")
    (links_dir / "notes.txt").write_text("not a distribution")
    links = Index(name="links", url=str(links_dir), flat=True)
    finder = finders(tree, links, offline=True)  # local files need no network
    wheel, sdist = finder.files(n("foo"), tree)
    assert wheel.url == (simple / "foo" / "foo-1.0-py3-none-any.whl").as_uri()
    assert (wheel.kind, sdist.kind) == ("wheel", "sdist")
    assert finder.metadata(wheel).requires_dist == (Requirement("bar"),)
    assert [a.filename for a in finder.files(n("foo"), links)] == ["foo-2.0-py3-none-any.whl"]
    assert finder.route(n("bar"), None) == finder._indexes["links"]
    assert finder.files(n("nope"), tree) == []


def test_flat_page_over_http(index_server: IndexServer, finders: Any) -> None:
    index_server.add_wheel("foo", "1.0")
    index_server.add_wheel("bar", "1.0")
    links = Index(name="links", url=index_server.flat_url, flat=True)
    assert [a.filename for a in finders(links).files(n("bar"), links)] == [
        "bar-1.0-py3-none-any.whl"
    ]


def test_route_first_index_and_explicit(tmp_path: Path, finders: Any) -> None:
    with IndexServer() as a, IndexServer() as b, IndexServer() as c:
        a.add_wheel("torch", "2.4.0+cu121")
        b.add_wheel("numpy", "1.26.4")
        c.add_wheel("numpy", "2.0.0")
        c.add_wheel("tqdm", "4.0")
        ia = Index(name="a", url=a.url, explicit=True)
        ib, ic = Index(name="b", url=b.url), Index(name="c", url=c.url)
        finder = finders(ia, ib, ic)
        assert finder.route(n("numpy"), None) == ib
        assert finder.route(n("tqdm"), None) == ic
        assert finder.route(n("torch"), None) is None  # explicit indexes only by routing
        assert finder.route(n("numpy"), "a") == ia
        assert finder.files(n("numpy"), ia) == []
        with pytest.raises(IndexError_) as err:
            finder.route(n("numpy"), "nope")
        assert str(err.value) == "unknown index 'nope'"


def test_ensure_hash(index_server: IndexServer, finders: Any, tmp_path: Path) -> None:
    whl = index_server.add_wheel("foo", "1.0", pad_bytes=50_000)
    index_server.json, index_server.hashes = False, False
    index = index_of(index_server)
    finder = finders(index)
    [artifact] = finder.files(n("foo"), index)
    assert artifact.sha256 is None and artifact.size is None
    done = finder.ensure_hash(artifact)
    assert done.sha256 == hashlib.sha256(whl.read_bytes()).hexdigest()
    assert done.size == whl.stat().st_size and finder.stats.full_downloads == 1
    assert finder.ensure_hash(done) is done
    index_server.hashes = True  # sha256 known, size not (HTML): HEAD, no download
    index_server.reset_counters()
    fresh = finders(index, cache_dir=tmp_path / "cache2")
    [hashed] = fresh.files(n("foo"), index)
    assert hashed.sha256 == done.sha256 and hashed.size is None
    assert fresh.ensure_hash(hashed) == done
    assert index_server.file_bytes_sent(whl.name) == 0
    assert ("HEAD", f"/files/{whl.name}") in [(m, p) for m, p, _ in index_server.requests]


def test_prefetch_dedupes_work(index_server: IndexServer, finders: Any) -> None:
    names = [f"pkg{i}" for i in range(12)]
    for name in names:
        index_server.add_wheel(name, "1.0", requires_dist=["dep"])
    index = index_of(index_server)
    finder = finders(index, workers=4)
    finder.prefetch_files((n(name), None) for name in names)
    found = [a for name in names for a in finder.files(n(name), index)]
    finder.prefetch_metadata(found)
    finder.prefetch_metadata(found)
    assert all(finder.metadata(a).requires_dist == (Requirement("dep"),) for a in found)
    paths = index_server.paths_requested()
    for name in names:
        assert paths.count(f"/simple/{name}/") == 1
        assert paths.count(f"/files/{name}-1.0-py3-none-any.whl.metadata") == 1
    assert finder.stats.metadata_fetched == len(names)


# -- the real PyPI ------------------------------------------------------------------------


@pytest.mark.network
def test_real_pypi(finders: Any) -> None:
    pypi = Index(name="pypi", url="https://pypi.org/simple")
    finder = finders(pypi, timeout=30.0)
    assert finder.route(n("Packaging"), None) == pypi
    files = {a.filename: a for a in finder.files(n("packaging"), pypi)}
    wheel = files["packaging-24.1-py3-none-any.whl"]
    assert wheel.sha256 and wheel.size and wheel.upload_time
    # this machine's PyPI mirror may serve no core-metadata keys: then this is a range read
    meta = finder.metadata(wheel)
    by_ranges = finder.metadata(wheel.with_(sha256=None, metadata=CoreMetadata.ABSENT))
    assert meta == by_ranges and meta.requires_python == ">=3.8"
    assert finder.stats.full_downloads == 0


@pytest.mark.network
def test_real_torch_wheel_metadata_by_ranges(finders: Any) -> None:
    pypi = Index(name="pypi", url="https://pypi.org/simple")
    finder = finders(pypi, timeout=30.0)
    files = {a.filename: a for a in finder.files(n("torch"), pypi)}
    wheel = files["torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl"]
    assert (wheel.size or 0) > 700_000_000
    meta = finder.metadata(wheel.with_(metadata=CoreMetadata.ABSENT))
    fixture = FIXTURES / "torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl.metadata"
    assert meta == parse_metadata(fixture.read_bytes(), fixture.name)
    assert finder.stats.bytes_downloaded < 5_000_000  # page + zip directory + METADATA
