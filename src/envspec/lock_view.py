"""What `envspec lock` (and the relock of `add`/`remove`) shows while it resolves and when it
is done. It is `commands.lock`'s `LockProgress`, called from the resolving threads.

- On a terminal: a rich live line per target (a spinner, resolving, packages pinned so far,
  requests made), then a table — target, packages, changes, seconds, lock — with the skipped
  phases and the divergences across targets with their cause below it.
- Elsewhere: one line per target at the end (nothing before: a failed lock says only its
  error), and each divergence as a `WARNING:` log line (grep-able, the same words).
- With `--json`: `resolving` events (at most 4 a second per target), then per target the
  `lock` event with its `changes` and `seconds`, and a `diverging` event per divergence.

rich is imported only on a terminal, as in `render`. Events and lines from several threads
are written under one lock, so lines never interleave.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.output import Out, plural, rel

if TYPE_CHECKING:
    from envspec.commands.lock import Changes, Divergence, Locked
    from envspec.model import Lock

log = logging.getLogger("envspec")
_EVENT_GAP = 0.25  # seconds between two `resolving` events of one target


@dataclass(kw_only=True, slots=True)
class _Row:
    """One target's state while it resolves (mutable: the view's own bookkeeping)."""

    state: str = "waiting"
    packages: int = 0
    requests: int = 0
    seconds: float = 0.0
    evented: float = 0.0


class LockView:
    """See the module docstring."""

    def __init__(self, out: Out, targets: Sequence[str], *, tty: bool) -> None:
        self.out = out
        self.human = not out.json_mode and not out.quiet
        self.rows = {target: _Row() for target in targets}
        self.lock = threading.Lock()
        self.requests: Callable[[], int] | None = None
        self.live: Any = None
        self.tty = self.human and tty
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self.live = Live(
                get_renderable=self._progress,
                console=Console(stderr=True),
                transient=True,
                refresh_per_second=8,
            )
            self.live.start()
            atexit.register(self.stop)  # an interrupted lock must give the cursor back

    # -- LockProgress ------------------------------------------------------------------------

    def counting(self, requests: Callable[[], int]) -> None:
        self.requests = requests

    def started(self, target: str) -> None:
        row = self.rows[target]
        row.state = "resolving"
        self._resolving(target, row, force=True)

    def advanced(self, target: str, packages: int, requests: int) -> None:
        row = self.rows[target]
        row.packages, row.requests = packages, requests
        self._resolving(target, row)

    def finished(self, target: str, packages: int, requests: int, seconds: float) -> None:
        row = self.rows[target]
        row.state, row.packages, row.requests, row.seconds = "resolved", packages, requests, seconds

    def _resolving(self, target: str, row: _Row, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.out.json_mode or (not force and now - row.evented < _EVENT_GAP):
            return
        row.evented = now
        with self.lock:
            self.out.event("resolving", target=target, packages=row.packages, requests=row.requests)

    # -- the end -----------------------------------------------------------------------------

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def summary(
        self,
        results: Sequence[Locked],
        divergences: Sequence[Divergence],
        project: Path,
        floors: Mapping[str, str],
    ) -> None:
        """Each target's outcome and the divergences, once every lock is written; `floors`
        names the OS release a target's lock is for, where it has one (``macOS 14.0``)."""
        if self.tty:
            self._table(results, divergences, project, floors)
        else:
            for result in results:
                floor = floors.get(result.lock.label)
                self.out.say(
                    f"{result.lock.label}: {plural(len(result.lock.packages), 'package')} "
                    f"({changes_text(result.changes)}), {_verb(result)} "
                    f"{rel(result.path, project)}"
                    + (f" (for {floor})" if floor else "")
                    + f" in {result.seconds:.2f}s"
                )
                for phase in result.lock.phases:
                    if phase.skipped:
                        self.out.say(f"  optional phase '{phase.name}' skipped: {phase.skipped}")
            for divergence in divergences:
                log.warning("%s", divergence.text())
        for result in results:
            self.out.event(
                "lock",
                target=result.target,
                state="written" if result.written else "unchanged",
                path=str(result.path),
                **lock_fields(result.lock),
                changes={
                    "added": result.changes.added,
                    "removed": result.changes.removed,
                    "changed": result.changes.changed,
                    "new": result.changes.new,
                },
                seconds=round(result.seconds, 3),
            )
        for divergence in divergences:
            self.out.event(
                "diverging",
                target=divergence.target,
                name=divergence.name,
                version=str(divergence.version),
                newest=str(divergence.newest),
                ahead=list(divergence.ahead),
                reason=divergence.reason,
            )

    def _progress(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        requests = self.requests() if self.requests is not None else 0
        for target, row in self.rows.items():
            if row.state == "resolved":
                mark: Any = "[green]✓[/]"
                what = f"resolved in {row.seconds:.1f}s"
            else:
                mark = Spinner("dots") if row.state == "resolving" else " "
                what = row.state
            shown = row.requests if row.state == "resolved" else max(requests, row.requests)
            table.add_row(
                mark, target, what, plural(row.packages, "package"), plural(shown, "request")
            )
        return table

    def _table(
        self,
        results: Sequence[Locked],
        divergences: Sequence[Divergence],
        project: Path,
        floors: Mapping[str, str],
    ) -> None:
        from rich.console import Console
        from rich.padding import Padding
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("target", "packages", "changes", "seconds", "lock"):
            justify = "right" if column in ("packages", "seconds") else "left"
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for result in results:
            table.add_row(
                result.lock.label,
                str(len(result.lock.packages)),
                changes_text(result.changes),
                f"{result.seconds:.2f}",
                f"{_verb(result)} {rel(result.path, project)}"
                + (f" (for {floor})" if (floor := floors.get(result.lock.label)) else ""),
            )
        console = Console(stderr=True, highlight=False)
        with self.lock:
            console.print(table)
            for result in results:
                for phase in result.lock.phases:
                    if phase.skipped:
                        console.print(
                            f"  {result.lock.label}: optional phase '{phase.name}' skipped: "
                            f"{phase.skipped}",
                            markup=False,
                        )
            if divergences:
                console.print("[yellow]Diverging across targets:[/]")
                for divergence in divergences:  # wrapped lines keep the indent
                    console.print(Padding(Text(divergence.text()), (0, 0, 0, 2)))


def variant_field(variant: str | None) -> dict[str, str]:
    """A `lock` event's `variant`, present only for a variant's lock (a spec without
    variants gives the same events as before there were any)."""
    return {"variant": variant} if variant else {}


def lock_fields(lock: Lock) -> dict[str, Any]:
    """What a `lock` event says of a lock just resolved, beside its target, state and path."""
    return {
        "packages": len(lock.packages),
        "skipped": [p.name for p in lock.phases if p.skipped],
        "rules": [r.id for r in lock.rules],
        **variant_field(lock.variant),
    }


def changes_text(changes: Changes) -> str:
    """``new lock``, ``no changes``, or ``2 added, 1 removed, 3 changed``."""
    if changes.new:
        return "new lock"
    parts = [
        f"{count} {word}"
        for count, word in (
            (changes.added, "added"),
            (changes.removed, "removed"),
            (changes.changed, "changed"),
        )
        if count
    ]
    return ", ".join(parts) or "no changes"


def _verb(result: Locked) -> str:
    return "wrote" if result.written else "unchanged"
