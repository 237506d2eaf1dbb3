"""The index layer's one door to child processes: git (`ls-remote`, `fetch`), uv (build
environments) and PEP 517 hooks (pyproject-hooks takes this module's runner) all start here.

Why one module rather than a `subprocess.run` in each of `git.py` and `build.py`: every child
of the index layer needs the same handling — stdin closed (a git password prompt must fail,
not hang a lock), a timeout, stdout and stderr kept together for the error tail a person reads,
and URL credentials masked in that output — and one function gives all of them alike. `git.py`
and `build.py` decide *what* to run; this module decides *how*. (`apply/uv.py` is the apply
layer's counterpart; layers do not share code sideways.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envspec.errors import MetadataError
from envspec.secret import redact

TAIL_LINES = 12


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """A process that ran to its end: exit code and its output (stdout and stderr merged)."""

    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.output.splitlines() if line.strip()]

    def tail(self, count: int = TAIL_LINES) -> str:
        return "\n".join(self.lines()[-count:])


class ProcessFailed(Exception):
    """A process exited non-zero; its caller words the error (it knows what was attempted)."""

    def __init__(self, finished: Finished) -> None:
        super().__init__(f"{finished.argv[0]} exited with {finished.returncode}")
        self.finished = finished


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
) -> Finished:
    """Run `argv` to its end; a missing program or a timeout is a `MetadataError`."""
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise MetadataError(
            f"cannot run {Path(argv[0]).name}: it is not installed or not on PATH"
        ) from exc
    except OSError as exc:
        raise MetadataError(f"cannot run {Path(argv[0]).name}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise MetadataError(
            f"{Path(argv[0]).name} {' '.join(argv[1:2])} timed out after {timeout:g}s"
        ) from exc
    output = redact(done.stdout or "")
    return Finished(argv=tuple(argv), returncode=done.returncode, output=output)


def check(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
) -> Finished:
    """`run`, raising `ProcessFailed` on a non-zero exit."""
    finished = run(argv, cwd=cwd, env=env, timeout=timeout)
    if not finished.ok:
        raise ProcessFailed(finished)
    return finished


class HookRunner:
    """A pyproject-hooks subprocess runner: each hook runs in `env` (plus what pyproject-hooks
    adds), its output kept for the error tail instead of spilling onto envspec's stderr."""

    def __init__(self, env: Mapping[str, str], timeout: float) -> None:
        self._env = dict(env)
        self._timeout = timeout

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        env = {**self._env, **(extra_environ or {})}
        check(cmd, cwd=Path(cwd) if cwd else None, env=env, timeout=self._timeout)
