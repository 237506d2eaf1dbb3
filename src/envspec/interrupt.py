"""SIGTERM as an interrupt: `Terminated`, raised in the main thread as Python raises
KeyboardInterrupt for SIGINT, so a terminated command unwinds as an interrupted one does
(downloads stopped at their next chunk, temporary files removed, the environment lock let go)
and is reported the same way, where the signal's default action would end the process with
no word and its temporary files left. Set first by `entry`, then by `cli` around a command."""

from __future__ import annotations

import signal
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM was received."""

    signal_number = signal.SIGTERM


def raise_terminated(number: int, frame: FrameType | None) -> None:
    """The SIGTERM handler."""
    raise Terminated
