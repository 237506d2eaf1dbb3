"""Where a candidate's metadata comes from, decided in one place: its direct reference
(`DirectRefs`), the spec's declared metadata (`Rules.declared_for`), its file through the
`Source`, another platform's wheel of the same version standing in for an sdist (as uv does:
a version's wheels share their metadata), or a PEP 517 build on this machine.

What the compatibility rules in force add (`Rules.patches_for`) comes with it, whatever the
source: a candidate's metadata is `Patched`, the distribution's own and the rules' additions,
as if upstream had declared them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from packaging.utils import NormalizedName

from envspec.errors import BuildNeeded, EnvspecError
from envspec.model import Artifact, DistMetadata
from envspec.resolve.direct import DirectRefs, DirectSource, HostBuilds
from envspec.resolve.files import FileChoice, Listing
from envspec.resolve.rules import Patch, Rules
from envspec.resolve.values import Candidate

log = logging.getLogger("envspec")


class Source(Listing, DirectSource, Protocol):
    """Where candidates and their metadata come from (the index finder)."""

    def metadata(self, artifact: Artifact) -> DistMetadata: ...
    @property
    def reads_ahead(self) -> bool: ...  # whether the prefetches fetch anything
    def prefetch_metadata(self, artifacts: Iterable[Artifact]) -> None: ...
    def prefetch_files(self, names: Iterable[tuple[NormalizedName, str | None]]) -> None: ...


class SourceFailed(Exception):
    """`error` (an index, a git repository or a build failing) happened while resolvelib asked
    about `identifier`. Never reaches the CLI: `resolve_target` skips the optional phases
    only that identifier's failure stops, or raises `error` itself."""

    def __init__(self, identifier: str, error: EnvspecError) -> None:
        super().__init__(identifier, error)
        self.identifier = identifier
        self.error = error


@dataclass(frozen=True, kw_only=True, slots=True)
class Patched:
    """A candidate's metadata and what the compatibility rules add to it."""

    dist: DistMetadata
    patches: tuple[Patch, ...] = ()


@dataclass(kw_only=True, slots=True)
class CandidateMetadata:
    """The metadata of one target's candidates (the source and the refs memoize it)."""

    rules: Rules
    source: Source
    refs: DirectRefs
    files: FileChoice
    builds: HostBuilds  # warns when metadata built here serves another target

    def __call__(self, candidate: Candidate) -> Patched:
        """A candidate's metadata, cheapest source first, and the rules' patches to it."""
        return Patched(
            dist=self._own(candidate),
            patches=self.rules.patches_for(candidate.name, candidate.version),
        )

    def _own(self, candidate: Candidate) -> DistMetadata:
        """The distribution's own metadata (see the module docstring)."""
        if candidate.url:
            return self.refs.metadata(candidate)
        declared = self.rules.declared_for(candidate.name, candidate.version)
        if declared is not None:
            return declared
        assert candidate.artifact is not None
        try:
            return self.source.metadata(candidate.artifact)
        except BuildNeeded:
            siblings = self.files.sibling_wheels(candidate.name, candidate.version)
            if candidate.artifact.kind != "sdist":
                raise
            if not siblings:
                return self._built(candidate.artifact)
        # As uv does: a version's wheels share their metadata, so another platform's wheel
        # stands in for a source build that cannot run while locking.
        wheel = sorted(siblings, key=lambda a: a.filename)[0]
        barred = self.files.wheels_barred(candidate.name)
        log.warning(
            "%s %s on %s: %s, dependencies read from %s",
            candidate.name,
            candidate.version,
            self.rules.target.name,
            "[resolution] no-binary keeps its wheels out" if barred else "no wheel fits",
            wheel.filename,
        )
        return self.source.metadata(wheel)

    def _built(self, artifact: Artifact) -> DistMetadata:
        """An sdist's metadata from a PEP 517 build on this machine."""
        meta = self.source.build_metadata(artifact)
        self.builds.trusted(meta.name, meta.version)
        return meta
