"""Test support: real wheels/sdists (`wheels`) and a hermetic index server (`index_server`)."""

from __future__ import annotations

from .index_server import IndexServer
from .wheels import build_sdist, build_wheel

__all__ = ["IndexServer", "build_sdist", "build_wheel"]
