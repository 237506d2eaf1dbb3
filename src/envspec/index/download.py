"""Downloading locked files for the artifact store (`envspec.apply.store`): each from its index's
mirror when one is set (`Mirrors.sources`: the mirror first, then the canonical URL if the
mirror does not have it), with the index's credentials, resumable (`Client.download`).

A lock names files by their canonical URLs and the index they came from; this module is the
one place that turns those into requests. The apply layer never imports HTTP code: the CLI
hands it a `LockedFiles` as its downloader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from envspec.errors import IndexError_
from envspec.index.auth import Credentials, public_index
from envspec.index.http import Client, Downloaded, FileMissing, Progress
from envspec.index.mirror import Mirrors
from envspec.model import Index


class LockedFiles:
    """Downloads the files a lock names; thread-safe (one connection pool)."""

    def __init__(
        self,
        indexes: Sequence[Index],
        environ: Mapping[str, str],
        *,
        retries: int = 3,
        backoff: float = 0.2,
        timeout: float = 30.0,
        workers: int = 8,
    ) -> None:
        self._mirrors = Mirrors.load([public_index(index) for index in indexes], environ)
        logins = [*indexes, *self._mirrors.logins]
        self._client = Client(
            Credentials(logins, environ),
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            maxsize=workers,
        )

    def download(
        self, url: str, index: str | None, path: Path, progress: Progress | None = None
    ) -> Downloaded:
        """Download the locked file `url` of `index` into `path` (resuming what is there)."""
        missing: FileMissing | None = None
        for source in self._mirrors.sources(index, url):
            try:
                return self._client.download(source, path, progress)
            except FileMissing as exc:
                missing = missing or exc
            except IndexError_ as exc:
                if missing is None:
                    raise
                raise missing from exc  # the mirror's answer is the one that matters
        assert missing is not None  # `sources` is never empty
        raise missing

    def close(self) -> None:
        self._client.close()
