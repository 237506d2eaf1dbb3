"""Package indexes: listing files, routing names, fetching metadata and hashes (see finder)."""

from __future__ import annotations

from envspec.index.fetch import FinderStats
from envspec.index.finder import Finder, FinderSettings, open_finder

__all__ = ["Finder", "FinderSettings", "FinderStats", "open_finder"]
