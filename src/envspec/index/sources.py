"""Source trees for the finder: git sources pinned to commits and checked out, sdists unpacked,
and their core metadata — static `[project]` data where that suffices, else a PEP 517 build.

Caching, under the finder's cache root: checkouts in `git/<commit>` (a commit's tree never
changes), metadata by commit (`git-static:`/`git-built:<commit>`, so a cached answer still
says whether it came from a build) and built sdist metadata by the sdist's sha256
(`pep517:<sha256>`). A build's scratch folder (environment, unpacked sdist) lives under
`builds/` and is removed when the build ends.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envspec.errors import BuildNeeded, MetadataError, OfflineError
from envspec.index import build, git
from envspec.index.auth import uv_url
from envspec.index.cache import Cache
from envspec.index.direct import DirectRef
from envspec.index.http import Client
from envspec.model import Artifact, Index
from envspec.secret import redact

log = logging.getLogger(__name__)
OFFLINE_HINT = "run without --offline"


@dataclass(frozen=True, kw_only=True, slots=True)
class Tree:
    """Raw core metadata of a source tree, and whether a build (on this machine) made it."""

    data: bytes
    built: bool


def index_environment(indexes: Sequence[Index], environ: Mapping[str, str]) -> dict[str, str]:
    """uv's index variables for build requirements: the spec's default-routed indexes in
    order (uv ranks `UV_INDEX` entries before `UV_DEFAULT_INDEX`), credentials put in from
    `ENVSPEC_INDEX_<NAME>_*` where the URL has none; flat ones as find-links."""
    urls, links = [], []
    for index in indexes:
        if index.explicit:
            continue
        if index.flat:
            links.append(index.location.secret)
            continue
        urls.append(uv_url(index, environ).secret)
    env = {"UV_DEFAULT_INDEX": urls[-1]} if urls else {"UV_NO_INDEX": "1"}
    if len(urls) > 1:
        env["UV_INDEX"] = " ".join(urls[:-1])
    if links:
        env["UV_FIND_LINKS"] = ",".join(links)
    return env


class SourceTrees:
    """Git pins and checkouts, sdist builds and their metadata, cached (thread-safe: callers
    run each key once; folders appear atomically)."""

    def __init__(self, *, cache: Cache, client: Client, settings: build.BuildSettings) -> None:
        self._cache = cache
        self._client = client
        self._settings = settings

    # -- git -------------------------------------------------------------------------------
    def commit(self, ref: DirectRef) -> str:
        """The commit `ref`'s revision names (no network for a full commit id)."""
        if ref.revision is not None and git.FULL_SHA.fullmatch(ref.revision):
            return ref.revision.lower()
        if self._cache.offline:
            raise OfflineError(
                f"offline: {ref.shown} needs 'git ls-remote' to find its commit",
                hint=OFFLINE_HINT,
            )
        return git.resolve_commit(
            ref.location, ref.revision, shown=ref.shown, environ=self._settings.environ
        )

    def git_metadata(self, ref: DirectRef, commit: str, *, allow_build: bool = True) -> Tree:
        """The metadata of `ref` at `commit`: static `[project]` data, else a build (without
        `allow_build`, `BuildNeeded` instead: a build made earlier and cached is not used either,
        so the answer does not depend on what the cache holds)."""
        shown = f"{ref.shown} ({commit[:12]})"
        for built, key in ((False, f"git-static:{commit}"), (True, f"git-built:{commit}")):
            data = self._cache.load_metadata(key)
            if data is not None and (allow_build or not built):
                return Tree(data=data, built=built)
            if data is not None:
                raise BuildNeeded(f"{shown}: its metadata needs a PEP 517 build")
        tree = self._checkout(ref, commit)
        # Imported here: packaging.metadata brings the email package (~17 ms), and only a
        # source tree (a git or local direct reference) needs it.
        from envspec.index.project import load_static_metadata

        static = load_static_metadata(tree, shown)
        if static is not None:
            self._cache.store_metadata(f"git-static:{commit}", static)
            return Tree(data=static, built=False)
        if not allow_build:
            raise BuildNeeded(f"{shown}: its metadata needs a PEP 517 build")
        log.info("building metadata of %s", shown)
        with self._scratch() as work:
            data = build.build_metadata(tree, work / "build", self._settings, shown=shown)
        self._cache.store_metadata(f"git-built:{commit}", data)
        return Tree(data=data, built=True)

    def _checkout(self, ref: DirectRef, commit: str) -> Path:
        dest = self._cache.root / "git" / commit
        if not dest.is_dir() and self._cache.offline:
            raise OfflineError(
                f"offline: {ref.shown} at {commit[:12]} is not in the cache", hint=OFFLINE_HINT
            )
        return git.checkout(
            ref.location, commit, dest, shown=ref.shown, environ=self._settings.environ
        )

    # -- sdists ----------------------------------------------------------------------------
    def sdist_metadata(self, artifact: Artifact) -> bytes:
        """The metadata a PEP 517 build of the sdist gives, cached by the sdist's sha256."""
        if artifact.sha256:
            data = self._cache.load_metadata(f"pep517:{artifact.sha256}")
            if data is not None:
                return data
        self._cache.require_online(artifact.url)
        with self._scratch() as work:
            archive = work / artifact.filename
            with archive.open("wb") as sink:
                sha256, _size = self._client.stream_to(artifact.url, sink)
            if artifact.sha256 and sha256 != artifact.sha256:
                raise MetadataError(
                    f"{redact(artifact.url)}: sha256 {sha256} does not match the "
                    f"expected {artifact.sha256}"
                )
            cached = self._cache.load_metadata(f"pep517:{sha256}")
            if cached is not None:
                return cached
            log.info("building metadata of %s", artifact.filename)
            tree = _unpack(archive, work / "src", artifact.filename)
            name = artifact.filename
            data = build.build_metadata(tree, work / "build", self._settings, shown=name)
        self._cache.store_metadata(f"pep517:{sha256}", data)
        return data

    def _scratch(self) -> _Scratch:
        return _Scratch(self._cache.root / "builds")


class _Scratch:
    """A temporary folder under `parent`, removed on exit."""

    def __init__(self, parent: Path) -> None:
        self._parent = parent
        self._path: Path | None = None

    def __enter__(self) -> Path:
        self._parent.mkdir(parents=True, exist_ok=True)
        self._path = Path(tempfile.mkdtemp(dir=self._parent, prefix="build-"))
        (self._path / "build").mkdir()
        return self._path

    def __exit__(self, *exc: object) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


def _unpack(archive: Path, dest: Path, filename: str) -> Path:
    """Unpack an sdist; its source tree (the single top folder, as sdists are laid out)."""
    import tarfile  # with zipfile, ~6 ms to import: only a build needs them
    import zipfile

    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest)
        else:
            with tarfile.open(archive, mode="r:*") as tf:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, filter="data")
                else:  # pragma: no cover - Pythons before the tarfile filters
                    tf.extractall(dest)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise MetadataError(f"{filename}: not a readable sdist ({exc})") from exc
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
