"""Locking against a mirror of the PyTorch cu121 index's shape (HTML only, root-relative `%2B`
links, `+cu121` wheels carrying the real recorded METADATA, no `.metadata`, some links without
a hash) next to a PyPI-like index that offers a higher torch and numpy 2."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from support.index_server import IndexServer
from support.lockproject import lock, spec_text
from support.pytorch_mirror import (
    CU121_FILES,
    MirrorFile,
    PytorchIndex,
    add_pypi_standins,
    build_cu121_wheels,
    nvidia_pins,
)

TARGETS = ("linux-x86_64", "windows-x86_64")
ROUTED = {"linux-x86_64": "pytorch-cu121", "windows-x86_64": "pytorch-cu121"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[MirrorFile, Path]]:
    return build_cu121_wheels(tmp_path_factory.mktemp("cu121-wheels"))


@pytest.fixture
def mirror(tmp_path: Path, built: list[tuple[MirrorFile, Path]]) -> Iterator[PytorchIndex]:
    server = PytorchIndex(tmp_path / "cu121")
    with server:
        server.add_mirror_files(built)
        yield server


@pytest.fixture
def pypi(index_server: IndexServer) -> IndexServer:
    add_pypi_standins(index_server)
    return index_server


def project(
    tmp_path: Path, pypi: IndexServer, mirror: PytorchIndex, torch_phase: list[str]
) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    text = spec_text(
        {"pypi": pypi.url, "pytorch-cu121": {"url": mirror.url, "explicit": True}},
        [
            {"name": "numpy", "requirements": ["numpy<2"]},
            {"name": "torch", "index": ROUTED, "requirements": torch_phase},
            {"name": "app", "requirements": ["pandas"]},
        ],
        targets=TARGETS,
    )
    (root / "envspec.toml").write_text(text)
    return root


def packages(root: Path, target: str) -> dict[str, dict[str, Any]]:
    doc = tomllib.loads((root / "locks" / f"pylock.{target}.toml").read_text())
    return {p["name"]: p for p in doc["packages"]}


def wheel(package: dict[str, Any]) -> dict[str, Any]:
    [only] = package["wheels"]
    return dict(only)


SEED_TORCH = ["torch", "torchvision", "torchaudio", "xformers==0.0.27.post2"]


def test_torch_comes_from_the_routed_index_as_cu121(
    tmp_path: Path, pypi: IndexServer, mirror: PytorchIndex
) -> None:
    root = project(tmp_path, pypi, mirror, SEED_TORCH)
    assert lock(root) == 0
    for target, platform in (("linux-x86_64", "linux_x86_64"), ("windows-x86_64", "win_amd64")):
        pins = packages(root, target)
        versions = {name: p["version"] for name, p in pins.items()}
        assert versions["torch"] == "2.4.0+cu121"  # PyPI offers 2.6.0 and a CPU 2.4.0
        assert versions["torchvision"] == "0.19.0+cu121"
        assert versions["torchaudio"] == "2.4.0+cu121"
        assert versions["xformers"] == "0.0.27.post2"  # its exact torch==2.4.0 holds
        assert versions["numpy"] == "1.26.4"  # pandas 3.0.0 wants numpy>=2: not taken
        assert versions["pandas"] == "2.2.3"
        torch = pins["torch"]
        assert torch["index"] == mirror.url
        assert wheel(torch)["url"] == (
            f"{mirror.base}/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-{platform}.whl"
        )
        assert torch["tool"]["envspec"]["phase"] == "torch"
        assert pins["numpy"]["index"] == pypi.url
    linux, windows = packages(root, "linux-x86_64"), packages(root, "windows-x86_64")
    cuda = set(nvidia_pins())
    assert cuda <= set(linux) and not cuda & set(windows)  # torch's Linux-only markers
    assert {n: linux[n]["version"] for n in cuda} == nvidia_pins()


def test_each_target_follows_its_own_xformers_pin(
    tmp_path: Path, pypi: IndexServer, mirror: PytorchIndex
) -> None:
    root = project(tmp_path, pypi, mirror, ["torch", "torchvision", "torchaudio", "xformers"])
    assert lock(root) == 0
    linux, windows = packages(root, "linux-x86_64"), packages(root, "windows-x86_64")
    # Linux: the newest cu121 xformers (0.0.28.post1) pins torch==2.4.1; Windows has only
    # 0.0.27.post2 on cu121, which pins torch==2.4.0. Neither target looks at PyPI's 0.0.29.
    assert (linux["xformers"]["version"], linux["torch"]["version"]) == (
        "0.0.28.post1",
        "2.4.1+cu121",
    )
    assert linux["torchvision"]["version"] == "0.19.1+cu121"
    assert (windows["xformers"]["version"], windows["torch"]["version"]) == (
        "0.0.27.post2",
        "2.4.0+cu121",
    )


def test_no_wheel_is_downloaded_whole_for_metadata(
    tmp_path: Path, pypi: IndexServer, mirror: PytorchIndex
) -> None:
    root = project(tmp_path, pypi, mirror, SEED_TORCH)
    assert lock(root) == 0
    read = {f.filename: mirror.file_bytes_sent(f.filename) for f in CU121_FILES}
    for file in CU121_FILES:
        size = mirror.entry(file.filename).size
        if file.hashed:
            # metadata by range reads (the zip's tail, then the METADATA member), size by HEAD
            assert read[file.filename] < 150_000, (file.filename, read[file.filename], size)
            assert mirror.whole_downloads(file.filename) == 0
    assert sum(read[f.filename] for f in CU121_FILES if f.filename.startswith("torch-")) < 400_000
    assert not any(
        path.endswith(".metadata") for path in mirror.paths_requested()
    )  # never advertised, never asked for


def test_links_without_a_hash_are_hashed_once(
    tmp_path: Path, pypi: IndexServer, mirror: PytorchIndex
) -> None:
    root = project(tmp_path, pypi, mirror, SEED_TORCH)
    assert lock(root) == 0
    unhashed = [f for f in CU121_FILES if not f.hashed]
    assert unhashed
    windows = packages(root, "windows-x86_64")
    for file in unhashed:
        entry = mirror.entry(file.filename)
        assert mirror.whole_downloads(file.filename) == 1
        name = file.filename.split("-")[0]
        assert wheel(windows[name])["hashes"] == {"sha256": entry.sha256}
        assert wheel(windows[name])["size"] == entry.size
    assert lock(root, "--upgrade") == 0  # a fresh resolution, same cache: no second download
    for file in unhashed:
        assert mirror.whole_downloads(file.filename) == 1


def test_the_mirror_has_the_real_index_shape(mirror: PytorchIndex) -> None:
    http = urllib3.PoolManager()
    json_accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
    page = http.request("GET", f"{mirror.url}torch/", headers=json_accept)
    assert page.status == 200 and page.headers["Content-Type"] == "text/html"
    body = page.data.decode()
    assert 'href="/whl/cu121/torch-2.4.0%2Bcu121-cp311-cp311-linux_x86_64.whl#sha256=' in body
    assert "data-" not in body
    vision = http.request("GET", f"{mirror.url}torchvision/").data.decode()
    assert 'href="/whl/cu121/torchvision-0.19.0%2Bcu121-cp311-cp311-win_amd64.whl">' in vision
    name = "torch-2.4.0+cu121-cp311-cp311-linux_x86_64.whl"
    assert http.request("GET", f"{mirror.file_url(name)}.metadata").status == 404
    tail = http.request("GET", mirror.file_url(name), headers={"Range": "bytes=-100"})
    assert tail.status == 206 and len(tail.data) == 100
    assert mirror.entry(name).size > 8 << 20
