"""Running a command on a real pseudo-terminal, as a user's shell would: what rich draws
there (live lines, bars, tables) is what the test reads back."""

from __future__ import annotations

import errno
import os
import pty
import select
import subprocess
from pathlib import Path

from .envproject import clean_environ


def on_a_terminal(argv: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as stdin, stdout and stderr; exit code and output."""
    master, slave = pty.openpty()
    env = {**clean_environ(), "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout}s from {argv}")
            try:
                data = os.read(master, 65536)
            except OSError as exc:  # EIO: every writer has closed the terminal
                if exc.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")
