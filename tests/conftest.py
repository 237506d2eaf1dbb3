"""Shared fixtures. `tests/` is put on sys.path so tests import helpers as `support.*`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.index_server import IndexServer


@pytest.fixture
def index_server(tmp_path: Path) -> Iterator[IndexServer]:
    """A started hermetic index serving files from a fresh tmp folder."""
    with IndexServer(tmp_path / "index") as server:
        yield server
