"""Package indexes: listing files, routing names, fetching metadata and hashes (see finder)."""

from __future__ import annotations

from envspec.index.finder import Finder, FinderStats

__all__ = ["Finder", "FinderStats"]
