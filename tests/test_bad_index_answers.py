"""What an index answers is input: a JSON page of the wrong structure, a malformed link, a hash
that is not one, each through the real `envspec lock` against a server on 127.0.0.1. Each is
an exact one-line message naming the page, nothing is written, and no credential given in a
requirement, a constraint or a direct reference is ever echoed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envspec.lockfile import load_lock, lock_path
from support.handler import Handler
from support.index_server import JSON_TYPE, IndexServer
from support.lockproject import lock, spec_text


class _RawHandler(Handler):
    """Serves `index.raw[path]` (content type, body) where given; the real index elsewhere."""

    def _route(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        raw: dict[str, tuple[str, bytes]] = getattr(self.index, "raw", {})
        if path in raw:
            content_type, body = raw[path]
            return 200, body, {"Content-Type": content_type}
        return super()._route(path)


class RawServer(IndexServer):
    handler_class = _RawHandler

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.raw: dict[str, tuple[str, bytes]] = {}


@pytest.fixture
def raw(tmp_path: Path) -> Any:
    with RawServer(tmp_path / "index") as server:
        yield server


def project(tmp_path: Path, url: str, requirements: list[str], **extra: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    text = spec_text({"pypi": url}, [{"name": "main", "requirements": requirements}])
    (folder / "envspec.toml").write_text(text + "".join(extra.values()))
    return folder


def failed(folder: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert lock(folder) == 1
    assert not (folder / "locks").exists()
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        ({"files": {"a": 1}}, "'files' is not a list"),
        ([1, 2], "'files' is not a list"),
        ({"files": ["foo-1.0-py3-none-any.whl"]}, "files[0] is not a table"),
        (
            {"files": [{"filename": "foo-1.0-py3-none-any.whl", "url": 7}]},
            "files[0].url is not a string",
        ),
        (
            {"files": [{"filename": "foo-1.0-py3-none-any.whl", "url": "x", "hashes": "abc"}]},
            "files[0].hashes is not a table",
        ),
        ({"files": [{"filename": ["x"], "url": "x"}]}, "files[0].filename is not a string"),
    ],
)
def test_a_json_page_of_the_wrong_structure(
    tmp_path: Path, raw: RawServer, capsys: pytest.CaptureFixture[str], page: Any, reason: str
) -> None:
    raw.raw["/simple/foo/"] = (JSON_TYPE, json.dumps(page).encode())
    err = failed(project(tmp_path, raw.url, ["foo"]), capsys)
    assert err == [f"error: {raw.url}foo/: not a PEP 691 project page: {reason}"]


def test_a_json_page_nested_too_deeply(
    tmp_path: Path, raw: RawServer, capsys: pytest.CaptureFixture[str]
) -> None:
    raw.raw["/simple/foo/"] = (JSON_TYPE, b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    err = failed(project(tmp_path, raw.url, ["foo"]), capsys)
    assert err == [f"error: {raw.url}foo/: not a PEP 691 project page: nested too deeply"]


@pytest.mark.parametrize(
    ("href", "shown"),
    [
        ("http://[::1/foo-1.0-py3-none-any.whl", "http://[::1/foo-1.0-py3-none-any.whl"),
        (
            "http://u:secret@127.0.0.1:99999/foo-1.0-py3-none-any.whl",
            "http://127.0.0.1:99999/foo-1.0-py3-none-any.whl",
        ),
    ],
)
def test_a_malformed_link(
    tmp_path: Path, raw: RawServer, capsys: pytest.CaptureFixture[str], href: str, shown: str
) -> None:
    raw.raw["/simple/foo/"] = (
        "text/html",
        f'<a href="{href}">foo-1.0-py3-none-any.whl</a>'.encode(),
    )
    err = failed(project(tmp_path, raw.url, ["foo"]), capsys)
    assert len(err) == 1
    assert err[0].startswith(f"error: {raw.url}foo/: malformed link '{shown}' (")
    assert "secret" not in err[0]


def test_a_listed_hash_that_is_not_one_rejects_that_file(
    tmp_path: Path, raw: RawServer, capsys: pytest.CaptureFixture[str]
) -> None:
    raw.add_wheel("foo", "1.0")
    good = raw.entry("foo-1.0-py3-none-any.whl")
    raw.add_wheel("foo", "2.0", advertised_sha256="zz" * 32)
    folder = project(tmp_path, raw.url, ["foo"])
    assert lock(folder) == 0
    err = capsys.readouterr().err
    assert (
        f"WARNING: {raw.url}foo/: foo-2.0-py3-none-any.whl left out: its sha256 "
        f"'{'zz' * 32}' is not 64 hex digits"
    ) in err.splitlines()
    locked = load_lock(lock_path(folder, "linux-x86_64")).packages
    assert [(str(p.version), p.artifact and p.artifact.sha256) for p in locked] == [
        ("1.0", good.sha256)
    ]
    assert "zz" * 32 not in (folder / "locks" / "pylock.linux-x86_64.toml").read_text()


def test_a_negative_listed_size_is_taken_as_unknown(
    tmp_path: Path, raw: RawServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = raw.add_wheel("foo", "1.0")
    entry = raw.entry(path.name)
    page = {
        "meta": {"api-version": "1.1"},
        "files": [
            {
                "filename": path.name,
                "url": raw.file_url(path.name),
                "hashes": {"sha256": entry.sha256},
                "size": -5,
            }
        ],
    }
    raw.raw["/simple/foo/"] = (JSON_TYPE, json.dumps(page).encode())
    folder = project(tmp_path, raw.url, ["foo"])
    assert lock(folder) == 0, capsys.readouterr().err
    (package,) = load_lock(lock_path(folder, "linux-x86_64")).packages
    assert package.artifact is not None and package.artifact.size == entry.size  # HEAD's


# --- credentials never echoed ---------------------------------------------------------------


def test_credentials_in_a_direct_reference_are_redacted(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("bar", "1.0")
    url = index_server.base.replace("http://", "http://user:s3cret@") + "/files/foo-1.0.whl"
    folder = project(tmp_path, index_server.url, [f"foo @ {url}", "bar"])
    assert lock(folder, "-v") == 1
    err = capsys.readouterr().err
    assert "s3cret" not in err and "user:" not in err
    assert f"{index_server.base}/files/foo-1.0.whl" in err


def test_credentials_in_a_conflicting_requirement_are_redacted(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    index_server.add_wheel("app", "1.0", requires_dist=["foo>=2"])
    foo = index_server.add_wheel("foo", "1.0")
    url = index_server.base.replace("http://", "http://user:s3cret@") + f"/files/{foo.name}"
    folder = project(tmp_path, index_server.url, [f"foo @ {url}", "app"])
    assert lock(folder) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"error: target linux-x86_64: foo @ {index_server.base}/files/{foo.name} (phase main) "
        "conflicts with foo>=2 required by app 1.0 (phase main)"
    )
    assert "s3cret" not in err


def test_credentials_in_a_constraint_are_redacted(
    tmp_path: Path, index_server: IndexServer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = project(
        tmp_path,
        index_server.url,
        ["foo"],
        resolution='\n[resolution]\nconstraints = ["foo @ https://tok@example.com/foo.whl"]\n',
    )
    assert lock(folder) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        f"error: {folder / 'envspec.toml'}: resolution.constraints[0]: constraint "
        "'foo @ https://example.com/foo.whl' may not be a direct reference"
    )
    assert "tok" not in err
