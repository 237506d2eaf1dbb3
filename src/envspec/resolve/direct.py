"""Direct references in one target's resolution: `name @ git+URL[@rev]`, archive URLs.

A name the spec requires by URL has exactly one candidate, on every path that reaches it
(extras and plain requirements on the same name from other packages included): the
distribution at that URL, whose version is whatever its metadata says. A URL that only a
dependency names is used the same way until the spec names the package by URL itself.

Where the candidate's metadata comes from, cheapest first:
1. `[[resolution.dependency-metadata]]` with a version: nothing is fetched — a git reference
   pinned by a full commit id then needs no network at all;
2. the previous lock's commit for the same URL and revision (kept unless upgraded), then the
   source's static `[project]` data or a PEP 517 build (the finder's work);
3. declared metadata without a version supplies the dependencies; the source the version.

A name `[resolution] no-build` lists (or all, with ":all:") is never built: its metadata must
be static or declared, else the lock fails saying so.

Metadata built on this machine is trusted for the target with a warning when the target is
another platform: a backend may compute dependencies from the platform it runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, NormalizedName, parse_wheel_filename
from packaging.version import Version

from envspec.errors import BuildNeeded, EnvspecError, MetadataError
from envspec.index.direct import parse_direct
from envspec.model import Artifact, DistMetadata, Target, VcsSource
from envspec.resolve.rules import Rules
from envspec.resolve.values import Candidate, Req

log = logging.getLogger("envspec")
Pinned = Artifact | VcsSource


class DirectSource(Protocol):
    """What direct references need of the finder."""

    def pin_direct(self, url: str) -> Pinned: ...
    def git_metadata(
        self, url: str, commit: str, *, allow_build: bool = True
    ) -> tuple[DistMetadata, bool]: ...
    def metadata(self, artifact: Artifact) -> DistMetadata: ...
    def build_metadata(self, artifact: Artifact) -> DistMetadata: ...


@dataclass(kw_only=True, slots=True)
class HostBuilds:
    """Warns, once per distribution, when metadata built here is trusted for another target."""

    target: Target
    host: str | None
    _warned: set[tuple[str, Version]] = field(default_factory=set)

    def trusted(self, name: str, version: Version) -> None:
        if self.host == self.target.name or (name, version) in self._warned:
            return
        self._warned.add((name, version))
        log.warning(
            "%s %s: metadata built on this machine (%s) is trusted for %s",
            name,
            version,
            self.host or "an unknown platform",
            self.target.name,
        )


@dataclass(kw_only=True, slots=True)
class DirectRefs:
    """The direct references of one target's resolution: the spec's (`rules.urls`) and those
    a dependency names, each pinned and its metadata read once."""

    rules: Rules
    source: DirectSource
    builds: HostBuilds
    _pinned: dict[str, tuple[Pinned, DistMetadata]] = field(default_factory=dict, init=False)
    _candidates: dict[tuple[str, str], Candidate] = field(default_factory=dict, init=False)

    def url_for(self, name: NormalizedName, reqs: Sequence[Req]) -> str | None:
        """The URL `name` comes from: the spec's, else the first a dependency gives."""
        return self.rules.urls.get(name) or next((r.url for r in reqs if r.url), None)

    def matches(
        self, req: Req, url: str, specifiers: Sequence[SpecifierSet], bad: set[Version]
    ) -> list[Candidate]:
        """The one candidate of `req`'s identifier: the distribution at `url`, if it fits."""
        key, name = req.key, req.name
        pinned, meta = self._pin(name, url)
        version = meta.version
        if version in bad or not all(s.contains(version, prereleases=True) for s in specifiers):
            return []
        if isinstance(pinned, Artifact) and not self._fits(pinned):
            return []
        if (key, url) not in self._candidates:
            self._candidates[(key, url)] = Candidate(
                key=key,
                name=name,
                version=version,
                extras=req.extras,
                artifact=pinned if isinstance(pinned, Artifact) else None,
                url=url,
                vcs=pinned if isinstance(pinned, VcsSource) else None,
            )
        return [self._candidates[(key, url)]]

    def metadata(self, candidate: Candidate) -> DistMetadata:
        assert candidate.url is not None
        return self._pin(candidate.name, candidate.url)[1]

    def _pin(self, name: NormalizedName, url: str) -> tuple[Pinned, DistMetadata]:
        if url not in self._pinned:
            try:
                self._pinned[url] = self._load(name, url)
            except EnvspecError as exc:
                if exc.context or url not in self.rules.where:
                    raise
                # The finder keeps its errors for every later caller (another target, the
                # next attempt): each gets its own copy with its own spec path.
                raise exc.with_context(self.rules.where[url]) from exc
        return self._pinned[url]

    def _load(self, name: NormalizedName, url: str) -> tuple[Pinned, DistMetadata]:
        pinned = self._kept(name, url) or self.source.pin_direct(url)
        declared = self.rules.declared.get(name)
        if declared is not None and declared.version is not None:
            return pinned, declared.as_metadata(declared.version)
        meta, built = self._fetch(name, url, pinned)
        if meta.name != name:
            raise MetadataError(
                f"{parse_direct(url).shown} holds {meta.name} {meta.version}, not {name}"
            )
        if built:
            self.builds.trusted(name, meta.version)
        return pinned, declared.as_metadata(meta.version) if declared else meta

    def _kept(self, name: NormalizedName, url: str) -> VcsSource | None:
        kept = self.rules.kept.get(name)
        ref = parse_direct(url)
        if kept is None or ref.kind != "git":
            return None
        same = kept.url == ref.public_location and kept.requested_revision == ref.revision
        return kept if same else None

    def _fetch(self, name: NormalizedName, url: str, pinned: Pinned) -> tuple[DistMetadata, bool]:
        build = self.rules.builds(name)
        try:
            if isinstance(pinned, VcsSource):
                return self.source.git_metadata(url, pinned.commit_id, allow_build=build)
            return self.source.metadata(pinned), False
        except BuildNeeded:
            if not build:
                raise self._no_build(name, url) from None
            if isinstance(pinned, VcsSource) or pinned.kind != "sdist":
                raise
        assert isinstance(pinned, Artifact)
        return self.source.build_metadata(pinned), True

    def _no_build(self, name: NormalizedName, url: str) -> MetadataError:
        """`[resolution] no-build` forbids the build `name`'s metadata needs."""
        listed = name if name in self.rules.settings.no_build else ":all:"
        if name in self.rules.declared:
            hint = f"add its version to the [[resolution.dependency-metadata]] entry for {name}"
        else:
            hint = "declare its metadata in [[resolution.dependency-metadata]] (name, version, "
            hint += "requires-dist)"
        return MetadataError(
            f"{name} ({parse_direct(url).shown}): its metadata needs a PEP 517 build, but "
            f"[resolution] no-build lists '{listed}'",
            hint=hint + ", so nothing is built",
        )

    def _fits(self, artifact: Artifact) -> bool:
        """A wheel fits the target by its tags; an sdist builds anywhere."""
        if artifact.kind != "wheel":
            return True
        try:
            tags = parse_wheel_filename(artifact.filename)[3]
        except InvalidWheelFilename as exc:
            raise MetadataError(f"{artifact.url}: invalid wheel filename") from exc
        return not tags.isdisjoint(self.rules.target.tags)
