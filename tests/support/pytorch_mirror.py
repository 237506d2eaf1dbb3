"""A mirror of the PyTorch cu121 index's shape, built from the recorded data in
`<repo>/../shared/fixtures/pytorch-cu121/` (see its README for what the real index looks like).

Shape, as download.pytorch.org/whl/cu121 serves it: static PEP 503 HTML only (a PEP 691 JSON
Accept header still gets HTML), project pages at `/whl/cu121/<name>/`, files beside them at
`/whl/cu121/<filename>` linked root-relative with `+` written `%2B`, `linux_x86_64` and
`win_amd64` wheels whose torch/torchvision/torchaudio versions carry `+cu121` (xformers' do
not), no `.metadata` sidecars and no `data-*` attributes, Range requests answered, and a few
links without `#sha256=`.

The wheels are built here, but each carries the REAL METADATA of the same release from the
fixtures (PyPI's, whose torch 2.4.x Linux wheels are the cu121 builds), with `Version:` given
the `+cu121` local label where the file name has it. torch 2.5.x is left out: PyPI's 2.5.1 is a
cu124 build, so its metadata would not be the cu121 wheel's. The wheels' bytes are stand-ins, so
their hashes are the test's own: never copy them into a committed lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from packaging.utils import canonicalize_name, parse_wheel_filename

from .handler import Handler
from .index_server import Entry, IndexServer, _html_page
from .wheels import build_wheel

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "pytorch-cu121"
METADATA = FIXTURES / "metadata"
PREFIX = "/whl/cu121/"
CANONICAL_URL = "https://download.pytorch.org/whl/cu121"
MB = 1 << 20


@dataclass(frozen=True)
class MirrorFile:
    """One file of the mirror: its real name, the fixture holding its release's METADATA,
    padding (so reading it whole would show), and whether its link carries `#sha256=`."""

    filename: str
    fixture: str
    pad_bytes: int = 0
    hashed: bool = True


def _cp311(
    name: str, version: str, platforms: tuple[str, str], *, pad: int = 0, hashed: bool = True
) -> MirrorFile:
    """A cp311 file on `platforms[0]` whose metadata is the recorded one for `platforms[1]`."""
    public = version.split("+", maxsplit=1)[0]
    fixture = f"{name}-{public}-cp311-cp311-{platforms[1]}.whl.metadata"
    return MirrorFile(f"{name}-{version}-cp311-cp311-{platforms[0]}.whl", fixture, pad, hashed)


LINUX = ("linux_x86_64", "manylinux1_x86_64")  # PyPI's file of the same build
WINDOWS = ("win_amd64", "win_amd64")
CU121_FILES: tuple[MirrorFile, ...] = (
    _cp311("torch", "2.4.0+cu121", LINUX, pad=8 * MB),
    _cp311("torch", "2.4.0+cu121", WINDOWS, pad=8 * MB),
    _cp311("torch", "2.4.1+cu121", LINUX, pad=8 * MB),
    _cp311("torch", "2.4.1+cu121", WINDOWS, pad=8 * MB),
    _cp311("torchvision", "0.19.0+cu121", LINUX, pad=MB),
    # The Windows torchvision/torchaudio cu121 hashes are the ones nobody recorded: unhashed here.
    _cp311("torchvision", "0.19.0+cu121", WINDOWS, pad=MB, hashed=False),
    _cp311("torchvision", "0.19.1+cu121", LINUX, pad=MB),
    _cp311("torchaudio", "2.4.0+cu121", LINUX, pad=MB),
    _cp311("torchaudio", "2.4.0+cu121", WINDOWS, pad=MB, hashed=False),
    _cp311("torchaudio", "2.4.1+cu121", LINUX, pad=MB),
    _cp311("xformers", "0.0.27.post2", ("manylinux2014_x86_64",) * 2, pad=MB),
    _cp311("xformers", "0.0.27.post2", WINDOWS, pad=MB),
    _cp311("xformers", "0.0.28.post1", ("manylinux_2_28_x86_64",) * 2),
)


def fixture_metadata(fixture: str, version: str | None = None) -> bytes:
    """A recorded METADATA file, its `Version:` replaced by `version` when given."""
    data = (METADATA / fixture).read_bytes()
    if version is None:
        return data
    replaced, count = re.subn(rb"(?m)^Version: .*$", f"Version: {version}".encode(), data, count=1)
    assert count == 1, f"{fixture} has no Version line"
    return replaced


def build_mirror_wheel(out_dir: Path, file: MirrorFile) -> Path:
    """A real wheel named `file.filename` carrying its release's recorded METADATA."""
    name, version, _build, _tags = parse_wheel_filename(file.filename)
    tag = "-".join(file.filename[: -len(".whl")].split("-")[-3:])
    metadata = fixture_metadata(file.fixture, str(version))
    path = build_wheel(
        out_dir, str(name), str(version), tag=tag, metadata=metadata, pad_bytes=file.pad_bytes
    )
    assert path.name == file.filename, (path.name, file.filename)
    return path


class PytorchHandler(Handler):
    """Routes the `/whl/cu121/` layout: project pages and files side by side."""

    index: PytorchIndex

    def _route(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        prefix = self.index.prefix
        if not path.startswith(prefix):
            return 404, b"not found\n", {}
        rest = path[len(prefix) :]
        if rest == "":
            return self._page(None)
        if rest.endswith("/") and "/" not in rest[:-1]:
            name = rest[:-1]  # a static site: no redirect to the normalized name
            return self._page(name) if name == canonicalize_name(name) else (404, b"", {})
        if "/" not in rest:
            return self._file(rest)
        return 404, b"not found\n", {}


class PytorchIndex(IndexServer):
    """An `IndexServer` in the PyTorch index's shape (see the module docstring)."""

    handler_class = PytorchHandler

    def __init__(self, root: Path | None = None, prefix: str = PREFIX) -> None:
        super().__init__(root)
        self.prefix = prefix
        self.json = False  # HTML whatever the Accept header asks for
        self.metadata = False  # no .metadata sidecars, no data-core-metadata
        self.root_relative = True
        self.etag = True

    @property
    def url(self) -> str:
        return f"{self.base}{self.prefix}"

    def file_url(self, filename: str) -> str:
        return f"{self.base}{self._href(filename)}"

    def _href(self, filename: str) -> str:
        return f"{self.prefix}{quote(filename)}"

    def render_root_html(self) -> bytes:
        links = [f'<a href="{self.prefix}{p}/">{p}</a><br/>' for p in self.projects()]
        return _html_page("Simple index", links)

    def add_mirror_files(self, built: Iterable[tuple[MirrorFile, Path]]) -> list[Entry]:
        """Serve wheels made by `build_mirror_wheel`, each link hashed as its `MirrorFile` says."""
        return [self.add(path, list_hash=file.hashed) for file, path in built]

    def file_bytes_sent(self, filename: str) -> int:
        return self.bytes_sent.get(f"{self.prefix}{filename}", 0)

    def whole_downloads(self, filename: str) -> int:
        """GETs of the file without a Range header: each sent the whole file."""
        return sum(
            1
            for method, path, headers in self.requests
            if method == "GET" and path == f"{self.prefix}{filename}" and "Range" not in headers
        )


def build_cu121_wheels(
    out_dir: Path, files: Iterable[MirrorFile] = CU121_FILES
) -> list[tuple[MirrorFile, Path]]:
    """Build every mirror wheel once (a session's tests then copy them into their servers)."""
    return [(file, build_mirror_wheel(out_dir, file)) for file in files]


LINUX_WHEEL = "cp311-cp311-manylinux_2_17_x86_64"
PYPI_TORCH_DEPS = {  # what torch 2.4's recorded METADATA asks of PyPI, as stand-ins
    "filelock": "3.16.1",
    "typing-extensions": "4.12.2",
    "networkx": "3.4.2",
    "fsspec": "2024.10.0",
    "markupsafe": "3.0.2",
    "mpmath": "1.3.0",
    "pillow": "11.0.0",
}


TORCH_LINUX_FIXTURE = "torch-2.4.0-cp311-cp311-manylinux1_x86_64.whl.metadata"


def nvidia_pins(fixture: str = TORCH_LINUX_FIXTURE) -> dict[str, str]:
    """The exact `nvidia-*-cu12` and `triton` pins of a recorded torch METADATA."""
    found = re.findall(
        r"(?m)^Requires-Dist: ((?:nvidia-[a-z0-9-]+|triton)) \(?==([0-9.]+)\)?",
        fixture_metadata(fixture).decode(),
    )
    return dict(found)


def add_pypi_standins(pypi: IndexServer) -> None:
    """A PyPI-like index offering what the cu121 wheels need, plus the temptations a routed
    lock must resist: a higher torch (and its torchvision/torchaudio/xformers), a CPU torch
    2.4.0 without the local label, numpy 2.x, and a pandas whose newest release wants it."""
    for tag in (LINUX_WHEEL, "cp311-cp311-win_amd64"):
        pypi.add_wheel("numpy", "1.26.4", tag=tag)
        pypi.add_wheel("numpy", "2.1.0", tag=tag)
        pypi.add_wheel("torch", "2.6.0", tag=tag, requires_dist=["filelock"])
    pypi.add_wheel("torch", "2.4.0", tag="cp311-cp311-win_amd64", requires_dist=["filelock"])
    for name, version in (("torchvision", "0.21.0"), ("torchaudio", "2.6.0")):
        pypi.add_wheel(name, version, requires_dist=["torch==2.6.0"])
    pypi.add_wheel("xformers", "0.0.29.post3", requires_dist=["numpy", "torch==2.6.0"])
    for name, version in PYPI_TORCH_DEPS.items():
        pypi.add_wheel(name, version)
    pypi.add_wheel("sympy", "1.13.1", requires_dist=["mpmath<1.4,>=1.1.0"])
    pypi.add_wheel("jinja2", "3.1.4", requires_dist=["MarkupSafe>=2.0"])
    for name, version in nvidia_pins().items():
        tag = LINUX_WHEEL if name == "triton" else "py3-none-manylinux2014_x86_64"
        pypi.add_wheel(name, version, tag=tag)
    pypi.add_wheel("triton", "3.1.0", tag=LINUX_WHEEL)
    pypi.add_wheel("pandas", "2.2.3", requires_dist=["numpy>=1.23.2"])
    pypi.add_wheel("pandas", "3.0.0", requires_dist=["numpy>=2.0"])
