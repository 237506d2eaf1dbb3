"""The error tree: every failure envspec reports is an `EnvspecError`.

Each error carries a one-line message, the context it happened in (a file and a table path
such as ``envspec.toml: phases[1].requirements[3]``), an optional hint, and the exit code the
CLI uses (DESIGN.md §2). Only the CLI prints errors and exits.
"""

from __future__ import annotations

import copy
import re
import signal
from collections.abc import Iterable
from typing import TypeVar

from envspec.secret import redact

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STALE = 3

E = TypeVar("E", bound="EnvspecError")


class EnvspecError(Exception):
    """Root of every error envspec reports to a user. Its texts never hold a URL's
    credentials: they are removed here, whatever the raiser quoted."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, context: str = "", hint: str = "") -> None:
        message, context, hint = redact(message), redact(context), redact(hint)
        super().__init__(message)
        self.message = message
        self.context = context
        self.hint = hint

    def with_context(self: E, context: str) -> E:
        """A new error like this one, located at `context`: an error already raised (and
        perhaps kept for later callers, as the finder keeps its errors) is never changed."""
        located = copy.copy(self)
        located.context = redact(context)
        return located

    def __str__(self) -> str:
        where = f"{self.context}: " if self.context else ""
        return f"{where}{self.message}"


class UsageError(EnvspecError):
    """Bad command-line usage."""

    exit_code = EXIT_USAGE


class SpecError(EnvspecError):
    """An invalid `envspec.toml`."""

    exit_code = EXIT_USAGE


class LockFileError(EnvspecError):
    """A lockfile that cannot be read or is of an unknown version."""

    exit_code = EXIT_USAGE


class StaleLockError(EnvspecError):
    """A lock is missing or does not match its inputs."""

    exit_code = EXIT_STALE


class IndexError_(EnvspecError):
    """An index could not be reached or answered something unusable."""


class OfflineError(IndexError_):
    """Something needed the network while `--offline` was set."""


class MetadataError(EnvspecError):
    """A distribution's metadata could not be obtained or parsed."""


class UnreadableMetadata(MetadataError):
    """A distribution's metadata was had but cannot be read (not a wheel, no Name, a
    requirement no leniency makes sense of): the resolver rejects that candidate by name and
    goes on, as uv does."""


class BuildNeeded(MetadataError):
    """A source's metadata cannot be trusted without a PEP 517 build: a cue for the resolver,
    which builds it, or refuses to where `[resolution] no-build` names it."""


class ResolutionError(EnvspecError):
    """No set of versions satisfies the requirements."""


class WriteError(EnvspecError):
    """A file envspec writes (a lock, the edited spec) could not be written: the command
    failed (exit 1); nothing is wrong with its inputs."""


class ApplyError(EnvspecError):
    """An environment could not be read, changed or restored (sync, rollback, check)."""


class Interrupted(EnvspecError):
    """SIGINT or SIGTERM stopped the command; the exit code is 128 + the signal's number
    (130, 143), as a shell reports a process the signal ended."""

    def __init__(
        self, message: str, *, signal_number: int, context: str = "", hint: str = ""
    ) -> None:
        super().__init__(message, context=context, hint=hint)
        self.signal_number = signal_number
        self.exit_code = 128 + signal_number

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name


def requirement_reason(text: str, exc: Exception) -> str:
    """Why `text` is not a PEP 508 requirement, for ``invalid requirement '…': <reason>``:
    packaging's first line, lower-cased, credentials removed; where packaging's words mislead
    (``attrs~=23``: "expected semicolon … or end"), PEP 440's own rule, as uv says it."""
    single = re.search(r"~=\s*((?:\d+!)?\d+)(?![\d.*])", text)
    if single:
        return f"~= needs two or more release segments (~={single[1]}.0, not ~={single[1]})"
    reason = str(exc).split("\n", 1)[0]
    return redact(reason[:1].lower() + reason[1:])


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "did you mean" hint for `word` among `choices`, or an empty string."""
    import difflib  # here: only a misspelt word needs it

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
