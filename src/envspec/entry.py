"""The `envspec` script's and `python -m envspec`'s first code: SIGTERM becomes an interrupt
before anything else is imported, then `envspec.cli.run` runs the command.

Importing the command line takes ~0.1 s, and SIGTERM's default action in that time ended the
process with exit 143 and no word, where a SIGTERM a moment later is reported
(``error: interrupted by SIGTERM``). Here the handler comes first; `cli` puts its own in
place while a command runs, and this one back after. Nothing but `signal`, `sys` and
`envspec.interrupt` is imported first, so the window without a handler is the interpreter's
own start.
"""

from __future__ import annotations

import signal
import sys

from envspec.interrupt import Terminated, raise_terminated


def run() -> int:
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        from envspec.cli import run as run_command
    except KeyboardInterrupt as exc:  # before the command line could be read: nothing began
        number = exc.signal_number if isinstance(exc, Terminated) else signal.SIGINT
        print(f"error: interrupted by {signal.Signals(number).name}", file=sys.stderr)
        return 128 + number
    return run_command()
