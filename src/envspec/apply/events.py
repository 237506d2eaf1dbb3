"""How apply reports progress: a callable taking an event kind and its data.

The CLI renders events as human lines (stderr) or one JSON object per line (stdout, `--json`);
apply never prints. The kinds and their fields are listed in README.md ("JSON events").
"""

from __future__ import annotations

from typing import Any, Protocol


class Emit(Protocol):
    def __call__(self, kind: str, /, **data: Any) -> None: ...


def ignore(kind: str, /, **data: Any) -> None:
    """An `Emit` that drops everything."""
