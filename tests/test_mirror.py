"""Locking through an index mirror (`ENVSPEC_INDEX_<NAME>_MIRROR` or the user config file):
pages and files come from the mirror, the lock records the canonical URLs, and a mirror whose
file differs from the one the lock records is an error."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from envspec.errors import IndexError_
from envspec.index import FinderSettings, open_finder
from envspec.index.mirror import Mirror, Mirrors
from envspec.model import Index
from support.index_server import IndexServer
from support.lockproject import lock, spec_text
from support.pytorch_mirror import (
    CANONICAL_URL,
    CU121_FILES,
    MirrorFile,
    PytorchIndex,
    add_pypi_standins,
    build_mirror_wheel,
)

VARIABLE = "ENVSPEC_INDEX_PYTORCH_CU121_MIRROR"
TORCH = [dataclasses.replace(f, pad_bytes=0) for f in CU121_FILES[:2]]  # 2.4.0+cu121 Linux, Win
LINUX_TORCH = "torch-2.4.0+cu121-cp311-cp311-linux_x86_64.whl"
ROUTED = {"linux-x86_64": "pytorch-cu121", "windows-x86_64": "pytorch-cu121"}


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVSPEC_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv(VARIABLE, raising=False)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[MirrorFile, Path]]:
    out = tmp_path_factory.mktemp("torch")
    return [(file, build_mirror_wheel(out, file)) for file in TORCH]


def serve(root: Path, wheels: list[tuple[MirrorFile, Path]], prefix: str) -> PytorchIndex:
    server = PytorchIndex(root, prefix=prefix)
    server.start()
    server.add_mirror_files(wheels)
    return server


@pytest.fixture
def canonical(tmp_path: Path, wheels: list[tuple[MirrorFile, Path]]) -> Iterator[PytorchIndex]:
    server = serve(tmp_path / "canonical", wheels, "/whl/cu121/")
    yield server
    server.stop()


@pytest.fixture
def mirror(tmp_path: Path, wheels: list[tuple[MirrorFile, Path]]) -> Iterator[PytorchIndex]:
    server = serve(tmp_path / "mirror", wheels, "/pytorch-wheels/cu121/")
    yield server
    server.stop()


def project(tmp_path: Path, pypi: IndexServer, torch_index: str) -> Path:
    add_pypi_standins(pypi)
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    text = spec_text(
        {"pypi": pypi.url, "pytorch-cu121": {"url": torch_index, "explicit": True}},
        [{"name": "torch", "index": ROUTED, "requirements": ["torch"]}],
    )
    (root / "envspec.toml").write_text(text)
    return root


def torch_entry(root: Path, target: str = "linux-x86_64") -> dict[str, Any]:
    doc = tomllib.loads((root / "locks" / f"pylock.{target}.toml").read_text())
    [torch] = [p for p in doc["packages"] if p["name"] == "torch"]
    return dict(torch)


def locks(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "locks").glob("*.toml"))}


def test_a_lock_made_through_a_mirror_records_the_canonical_urls(
    tmp_path: Path,
    index_server: IndexServer,
    mirror: PytorchIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The canonical index is the real one, which this machine cannot reach: nothing may ask it.
    root = project(tmp_path, index_server, CANONICAL_URL)
    monkeypatch.setenv(VARIABLE, mirror.url)
    assert lock(root) == 0
    torch = torch_entry(root)
    assert torch["version"] == "2.4.0+cu121"
    assert torch["index"] == "https://download.pytorch.org/whl/cu121/"
    [wheel] = torch["wheels"]
    assert wheel["url"] == (
        "https://download.pytorch.org/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-linux_x86_64.whl"
    )
    assert wheel["hashes"] == {"sha256": mirror.entry(LINUX_TORCH).sha256}
    assert wheel["size"] == mirror.entry(LINUX_TORCH).size  # HEAD, answered by the mirror
    assert "/pytorch-wheels/cu121/torch/" in mirror.paths_requested()
    assert "127.0.0.1" not in "".join(p.decode() for p in locks(root).values()).replace(
        index_server.base, ""
    )
    monkeypatch.delenv(VARIABLE)
    assert lock(root, "--check") == 0  # the mirror is not part of the lock's inputs


def test_the_same_lock_with_and_without_the_mirror(
    tmp_path: Path,
    index_server: IndexServer,
    canonical: PytorchIndex,
    mirror: PytorchIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = project(tmp_path, index_server, canonical.url)
    assert lock(root) == 0
    direct = locks(root)
    for path in (root / "locks").iterdir():
        path.unlink()
    canonical.reset_counters()
    monkeypatch.setenv(VARIABLE, mirror.url)
    assert lock(root, "--cache-dir", str(tmp_path / "cache2")) == 0
    assert locks(root) == direct
    assert canonical.requests == []


def test_a_mirror_file_whose_hash_differs_from_the_lock_is_an_error(
    tmp_path: Path,
    index_server: IndexServer,
    canonical: PytorchIndex,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project(tmp_path, index_server, canonical.url)
    assert lock(root) == 0
    before = locks(root)
    other = build_mirror_wheel(tmp_path / "other", dataclasses.replace(TORCH[0], pad_bytes=64))
    bad = PytorchIndex(tmp_path / "bad-mirror", prefix="/whl/cu121/")
    with bad:
        bad.add(other)
        monkeypatch.setenv(VARIABLE, bad.url)
        capsys.readouterr()
        assert lock(root, "--upgrade") == 1
        listed, bad_url = bad.entry(LINUX_TORCH).sha256, bad.url
    recorded = canonical.entry(LINUX_TORCH).sha256
    assert capsys.readouterr().err.splitlines() == [
        f"error: {VARIABLE}: mirror {bad_url} lists {LINUX_TORCH} with sha256 {listed}, but the "
        f"lock records {recorded} for {canonical.url}torch-2.4.0%2Bcu121-cp311-cp311-linux_x86_64"
        ".whl",
        "hint: the mirror's file is not the canonical one: fix the mirror, or lock without it "
        f"(unset {VARIABLE})",
    ]
    assert locks(root) == before


def test_a_mirror_without_hashes_takes_the_locks_and_downloads_nothing(
    tmp_path: Path,
    index_server: IndexServer,
    canonical: PytorchIndex,
    mirror: PytorchIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = project(tmp_path, index_server, canonical.url)
    assert lock(root) == 0
    before = locks(root)
    mirror.hashes = False
    monkeypatch.setenv(VARIABLE, mirror.url)
    assert lock(root, "--upgrade", "--cache-dir", str(tmp_path / "cache2")) == 0
    assert locks(root) == before
    for file in TORCH:
        assert mirror.file_bytes_sent(file.filename) < 70_000  # range reads for metadata only
        assert mirror.whole_downloads(file.filename) == 0


def test_the_mirror_may_come_from_the_user_config_and_needs_credentials(
    tmp_path: Path,
    index_server: IndexServer,
    mirror: PytorchIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = project(tmp_path, index_server, CANONICAL_URL)
    config = tmp_path / "config.toml"
    config.write_text(f'[mirrors]\npytorch-cu121 = "{mirror.url}"\nother = "https://x.invalid"\n')
    monkeypatch.setenv("ENVSPEC_CONFIG", str(config))
    mirror.auth = ("me", "s3cret")
    monkeypatch.setenv("ENVSPEC_INDEX_PYTORCH_CU121_USERNAME", "me")
    monkeypatch.setenv("ENVSPEC_INDEX_PYTORCH_CU121_PASSWORD", "s3cret")
    assert lock(root) == 0
    assert torch_entry(root, "windows-x86_64")["wheels"][0]["url"] == (
        "https://download.pytorch.org/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl"
    )
    assert all(b"s3cret" not in data for data in locks(root).values())


@pytest.mark.parametrize(
    "case",
    [
        (
            "ftp://mirror.example/whl/cu121",
            f"error: {VARIABLE}: 'ftp://mirror.example/whl/cu121' is not an http(s) or file URL",
            "hint: give the mirror's index URL, e.g. https://mirror.example.com/whl/cu121",
        ),
        (
            "https://${NO_SUCH_VARIABLE}/whl/cu121",
            f"error: {VARIABLE}: environment variable NO_SUCH_VARIABLE is not set",
            "hint: set NO_SUCH_VARIABLE or remove ${NO_SUCH_VARIABLE} from the index URL",
        ),
    ],
)
def test_a_bad_mirror_url_is_an_error(
    tmp_path: Path,
    index_server: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str],
) -> None:
    value, message, hint = case
    root = project(tmp_path, index_server, CANONICAL_URL)
    monkeypatch.setenv(VARIABLE, value)
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    assert lock(root) == 1
    assert capsys.readouterr().err.splitlines() == [message, hint]
    assert not (root / "locks").exists()


def test_a_bad_user_config_is_an_error(
    tmp_path: Path,
    index_server: IndexServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project(tmp_path, index_server, CANONICAL_URL)
    config = tmp_path / "config.toml"
    monkeypatch.setenv("ENVSPEC_CONFIG", str(config))
    config.write_text("[mirrors]\npytorch-cu121 = 3\n")
    assert lock(root) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {config}: mirrors.pytorch-cu121: expected a URL string"
    ]
    config.write_text("[mirrors\n")
    assert lock(root) == 1
    assert capsys.readouterr().err.splitlines()[0].startswith(
        f"error: {config}:1:9: invalid TOML: "
    )
    assert not (root / "locks").exists()


def test_a_mirror_with_a_layout_of_its_own_is_an_error(
    tmp_path: Path,
    index_server: IndexServer,
    wheels: list[tuple[MirrorFile, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = project(tmp_path, index_server, CANONICAL_URL)
    with IndexServer(tmp_path / "devpi-like") as other:  # pages at /simple/, files at /files/
        other.root_relative = True
        for _file, path in wheels:
            other.add(path)
        monkeypatch.setenv(VARIABLE, other.url)
        assert lock(root) == 1
        listed = f"{other.base}/files/torch-2.4.0%2Bcu121-cp311-cp311-linux_x86_64.whl"
        assert capsys.readouterr().err.splitlines() == [
            f"error: {VARIABLE}: mirror {other.url} lists {LINUX_TORCH} at {listed}, outside "
            "the layout of https://download.pytorch.org/whl/cu121/: its canonical URL cannot "
            "be told",
            "hint: use a mirror that keeps the canonical index's layout, or lock without it",
        ]


@pytest.mark.parametrize(
    ("mirror_url", "canonical", "listed", "expected"),
    [
        (  # under the mirror URL
            "https://m.example/pytorch-wheels/cu121/",
            "https://download.pytorch.org/whl/cu121/",
            "https://m.example/pytorch-wheels/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl",
            "https://download.pytorch.org/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl",
        ),
        (  # a PyPI mirror that copies the site whole (bandersnatch)
            "http://m.example:8080/pypi/simple/",
            "https://pypi.org/simple/",
            "http://m.example:8080/pypi/packages/ab/cd/six-1.16.0-py2.py3-none-any.whl",
            "https://files.pythonhosted.org/packages/ab/cd/six-1.16.0-py2.py3-none-any.whl",
        ),
        (  # the mirror links to the file where it lives
            "https://m.example/simple/",
            "https://pypi.org/simple/",
            "https://files.pythonhosted.org/packages/ab/six-1.16.0-py2.py3-none-any.whl",
            "https://files.pythonhosted.org/packages/ab/six-1.16.0-py2.py3-none-any.whl",
        ),
        (  # devpi's own layout: cannot be told
            "https://m.example/root/pypi/+simple/",
            "https://pypi.org/simple/",
            "https://m.example/root/pypi/+f/abc/six-1.16.0-py2.py3-none-any.whl",
            None,
        ),
    ],
)
def test_mirror_urls_map_back_to_canonical_ones(
    mirror_url: str, canonical: str, listed: str, expected: str | None
) -> None:
    mirror = Mirror(index="i", canonical=canonical, url=mirror_url, source="test")
    assert mirror.to_canonical(listed) == expected


@pytest.mark.parametrize(
    ("mirror_url", "canonical", "locked", "sources"),
    [
        (  # under the mirror URL, backwards
            "https://m.example/pytorch-wheels/cu121/",
            "https://download.pytorch.org/whl/cu121/",
            "https://download.pytorch.org/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl",
            (
                "https://m.example/pytorch-wheels/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl",
                "https://download.pytorch.org/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-win_amd64.whl",
            ),
        ),
        (  # a PyPI mirror that copies the site whole: files.pythonhosted.org → the mirror's root
            "http://m.example:8080/pypi/simple/",
            "https://pypi.org/simple/",
            "https://files.pythonhosted.org/packages/ab/cd/six-1.16.0-py2.py3-none-any.whl",
            (
                "http://m.example:8080/pypi/packages/ab/cd/six-1.16.0-py2.py3-none-any.whl",
                "https://files.pythonhosted.org/packages/ab/cd/six-1.16.0-py2.py3-none-any.whl",
            ),
        ),
        (  # a file off the canonical site is fetched where it is
            "https://m.example/simple/",
            "https://pypi.org/simple/",
            "https://cdn.example/six-1.16.0-py2.py3-none-any.whl",
            ("https://cdn.example/six-1.16.0-py2.py3-none-any.whl",),
        ),
    ],
)
def test_sync_fetches_a_locked_file_from_the_mirror_first(
    mirror_url: str, canonical: str, locked: str, sources: tuple[str, ...]
) -> None:
    mirrors = Mirrors(
        {"i": Mirror(index="i", canonical=canonical, url=mirror_url, source="test")}, [], {}
    )
    assert mirrors.sources(canonical, locked) == sources
    assert mirrors.sources("https://other.example/simple/", locked) == (locked,)


def test_the_variable_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[mirrors]\nmy-index = "https://config.example/simple"\n')
    index = Index(name="my-index", url="https://pypi.org/simple/")
    environ = {"ENVSPEC_INDEX_MY_INDEX_MIRROR": "https://u:p@env.example/simple"}
    mirrors = Mirrors.load([index], environ, config=config)
    assert mirrors.page_base(index) == "https://env.example/simple/"
    assert [login.location.secret for login in mirrors.logins] == [
        "https://u:p@env.example/simple/"
    ]
    assert Mirrors.load([index], {}, config=config).page_base(index) == (
        "https://config.example/simple/"
    )
    assert not Mirrors.load([index], {}, config=tmp_path / "absent.toml")
    with pytest.raises(IndexError_):
        Mirrors.load([index], {"ENVSPEC_INDEX_MY_INDEX_MIRROR": "mirror.example"})


def test_a_size_the_server_does_not_give_is_left_out(
    tmp_path: Path, canonical: PytorchIndex
) -> None:
    index = Index(name="pytorch-cu121", url=canonical.url, explicit=True)
    environ = {"HOME": str(tmp_path), "ENVSPEC_CONFIG": str(tmp_path / "none.toml")}
    settings = FinderSettings(cache_dir=tmp_path / "cache", backoff=0.0)
    with open_finder([index], environ, settings) as finder:
        [linux] = [a for a in finder.files(canonicalize_name("torch"), index) if "linux" in a.url]
        assert linux.sha256 and linux.size is None  # an HTML page: hash, no size
        canonical.fail(LINUX_TORCH, "404")  # HEAD: not found (the file is not there)
        done = finder.ensure_hash(linux)
    assert (done.sha256, done.size) == (linux.sha256, None)
    assert canonical.file_bytes_sent(LINUX_TORCH) == 0  # not downloaded to count its bytes
    assert [m for m, p, _ in canonical.requests if p.endswith(".whl")] == ["HEAD"]
