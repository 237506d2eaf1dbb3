"""Renderings of a `LockDiff`: for people, plain text (ANSI-coloured when the caller says the
output is a terminal) and Markdown to paste as a pull-request comment (a summary line first,
then one table per changed target, then the divergence across targets); for programs, plain
data (`to_json`, ``--format json`` and the ``diff`` event).

ANSI codes are written by hand: eight SGR sequences are less than `rich`'s markup escaping
would take, and the text stays byte-exact for tests without a terminal.
"""

from __future__ import annotations

from typing import Any

from envspec.review.diff import (
    ConditionChange,
    Divergence,
    LockDiff,
    PackageChange,
    PhaseChange,
    RuleChange,
    SourceChange,
    TargetDiff,
)

_SGR = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "bold": "1", "alarm": "1;31"}
_MARK = {"added": "+", "removed": "-", "upgraded": "↑", "downgraded": "↓", "changed": "~"}
_TEXT_COLOUR = {
    "added": "green",
    "removed": "red",
    "upgraded": "cyan",
    "downgraded": "yellow",
    "changed": "yellow",
}


def summary_line(diff: LockDiff) -> str:
    """One line: how many targets changed and what happened to their packages."""
    counts = diff.summary()
    if not diff.has_changes:
        parts = ["no changes"]
    else:
        n = counts["targets-changed"]
        parts = [f"{n} target{'s' if n != 1 else ''} changed"]
        for kind in ("added", "removed", "upgraded", "downgraded", "changed"):
            if counts[kind]:
                parts.append(f"{counts[kind]} {kind}")
        if counts["major"]:
            parts.append(f"{counts['major']} major")
        if counts["flagged"]:
            parts.append(f"{counts['flagged']} flagged source change{_s(counts['flagged'])}")
        if counts["conditions"]:
            parts.append(f"{counts['conditions']} condition change{_s(counts['conditions'])}")
    if counts["diverging"]:
        parts.append(f"{counts['diverging']} diverging across targets")
    return ", ".join(parts)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


# --- text ----------------------------------------------------------------------------------


def render_text(diff: LockDiff, *, color: bool = False) -> str:
    """The diff for a terminal or a log."""

    def paint(text: str, style: str) -> str:
        return f"\x1b[{_SGR[style]}m{text}\x1b[0m" if color else text

    lines = [
        f"{paint(diff.old_label, 'bold')} → {paint(diff.new_label, 'bold')}: " + summary_line(diff)
    ]
    for target in diff.targets:
        lines.append(paint(f"{target.target}: {_target_headline(target)}", "bold"))
        lines += ["  " + paint(_condition_text(c), "alarm") for c in target.conditions]
        for change in target.packages:
            loud = change.flagged or change.conditions
            lines.append(
                "  " + paint(_package_text(change), "alarm" if loud else _TEXT_COLOUR[change.kind])
            )
            for source in change.sources:
                style = "alarm" if source.flagged else "yellow"
                lines.append("      " + paint(_source_text(source), style))
            lines += ["      " + paint(_condition_text(c), "alarm") for c in change.conditions]
        lines += ["  " + _phase_text(change) for change in target.phases]
        lines += ["  " + _rule_text(change) for change in target.rules]
    if diff.divergences:
        lines.append(paint("across targets:", "bold"))
        lines += ["  " + _divergence_text(d) for d in diff.divergences]
    return "\n".join(lines) + "\n"


def _source_text(source: SourceChange) -> str:
    flag = "  FLAGGED" if source.flagged else ""
    return f"{source.field}: {source.old} → {source.new}{flag}"


def _condition_text(change: ConditionChange) -> str:
    return f"{change.field}: {change.old or '-'} → {change.new or '-'}"


def _target_headline(target: TargetDiff) -> str:
    if target.status in ("added", "removed"):
        n = len(target.packages)
        return f"target {target.status} ({n} package{_s(n)})"
    if target.status == "unchanged":
        return "unchanged"
    parts = [
        f"{target.count(kind)} {kind}"
        for kind in ("added", "removed", "upgraded", "downgraded", "changed")
        if target.count(kind)
    ]
    if target.conditions:
        parts.append(" and ".join(c.field for c in target.conditions) + " changed")
    return ", ".join(parts) or ("phases changed" if target.phases else "rules changed")


def _package_text(change: PackageChange) -> str:
    mark = _MARK[change.kind]
    if change.kind == "added":
        text = f"{mark} {change.name} {change.new}"
    elif change.kind == "removed":
        text = f"{mark} {change.name} {change.old}"
    elif change.kind == "changed":
        text = f"{mark} {change.name} {change.new} (same version)"
    else:
        text = f"{mark} {change.name} {change.old} → {change.new}"
    if change.phase:
        text += f"  [phase {change.phase}]"
    if change.major:
        text += "  MAJOR"
    if change.flagged:
        text += "  SOURCE CHANGED"
    if change.conditions:
        text += "  CONDITION CHANGED"
    return text


def _phase_text(change: PhaseChange) -> str:
    if change.status in ("added", "removed"):
        text = f"phase {change.name}: {change.status}"
    else:
        text = f"phase {change.name}:"
    members = [f"+{n}" for n in change.added] + [f"-{n}" for n in change.removed]
    if members:
        text += " " + " ".join(members)
    if change.skipped_old != change.skipped_new:
        text += " " + _skip_note(change)
    return text


def _rule_text(change: RuleChange) -> str:
    if change.status == "changed":
        moved = f", from {change.old_source}" if change.old_source else ""
        return f"rule {change.id}: changed ({change.source}{moved})"
    return f"rule {change.id}: {change.status} ({change.source})"


def _skip_note(change: PhaseChange) -> str:
    if change.skipped_new is not None:
        return f"(now skipped: {change.skipped_new})"
    return "(no longer skipped)" if change.status == "changed" else ""


def _divergence_text(divergence: Divergence) -> str:
    groups: dict[str, list[str]] = {}
    for target, version in divergence.versions:
        groups.setdefault(version, []).append(target)
    text = "; ".join(f"{v} on {', '.join(ts)}" for v, ts in groups.items())
    return f"{divergence.name}: {text}" + ("  (new)" if divergence.introduced else "")


# --- markdown ------------------------------------------------------------------------------


def render_markdown(diff: LockDiff) -> str:
    """The diff as a pull-request comment."""
    lines = [
        f"**envspec lock diff** `{_code(diff.old_label)}` → `{_code(diff.new_label)}`: "
        f"{summary_line(diff)}",
        "",
    ]
    for target in diff.targets:
        if not target.has_changes:
            continue
        lines += [f"### {target.target} — {_target_headline(target)}", ""]
        if target.conditions:
            lines += [f"- 🚩 {_cell(_condition_md(c))}" for c in target.conditions]
            lines.append("")
        if target.packages:
            lines += ["| | package | old | new | phase | notes |", "|---|---|---|---|---|---|"]
            lines += [_package_row(change) for change in target.packages]
            lines.append("")
        if target.phases or target.rules:
            lines += [f"- {_cell(_phase_text(change))}" for change in target.phases]
            lines += [f"- {_cell(_rule_text(change))}" for change in target.rules]
            lines.append("")
    unchanged = [t.target for t in diff.targets if not t.has_changes]
    if unchanged:
        lines += ["Unchanged: " + ", ".join(unchanged), ""]
    if diff.divergences:
        lines += _divergence_table(diff)
    return "\n".join(lines).rstrip("\n") + "\n"


def _package_row(change: PackageChange) -> str:
    notes = []
    if change.major:
        notes.append("**major**")
    for source in change.sources:
        flag = "🚩 " if source.flagged else ""
        notes.append(f"{flag}{source.field}: `{_code(source.old)}` → `{_code(source.new)}`")
    notes += [f"🚩 {_condition_md(c)}" for c in change.conditions]
    loud = change.flagged or bool(change.conditions)
    cells = [
        _MARK[change.kind] if change.kind != "changed" else "🚩" if loud else "~",
        f"**{change.name}**" if loud else change.name,
        change.old or "",
        change.new or "",
        change.phase,
        "<br>".join(notes),
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _condition_md(change: ConditionChange) -> str:
    return f"{change.field}: `{_code(change.old or '-')}` → `{_code(change.new or '-')}`"


def _divergence_table(diff: LockDiff) -> list[str]:
    targets = sorted({t for d in diff.divergences for t, _ in d.versions})
    lines = [
        "### Versions that differ across targets",
        "",
        "| package | " + " | ".join(targets) + " | |",
        "|---|" + "---|" * len(targets) + "---|",
    ]
    for divergence in diff.divergences:
        versions = dict(divergence.versions)
        cells = [divergence.name, *(versions.get(t, "—") for t in targets)]
        cells.append("new" if divergence.introduced else "")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [*lines, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return text.replace("`", "'")


# --- plain data ----------------------------------------------------------------------------


def to_json(diff: LockDiff) -> dict[str, Any]:
    """The diff as plain data (``--format json``)."""
    return {
        "old": diff.old_label,
        "new": diff.new_label,
        "changed": diff.has_changes,
        "summary": diff.summary(),
        "targets": [
            {
                "target": t.target,
                "status": t.status,
                "packages": [_package_json(p) for p in t.packages],
                "phases": [_phase_json(p) for p in t.phases],
                "conditions": [_condition_json(c) for c in t.conditions],
                "rules": [
                    {"id": r.id, "status": r.status, "source": r.source, "old-source": r.old_source}
                    for r in t.rules
                ],
            }
            for t in diff.targets
        ],
        "divergence": [
            {"name": d.name, "versions": dict(d.versions), "introduced": d.introduced}
            for d in diff.divergences
        ],
    }


def _package_json(change: PackageChange) -> dict[str, Any]:
    return {
        "name": change.name,
        "kind": change.kind,
        "old": change.old,
        "new": change.new,
        "major": change.major,
        "flagged": change.flagged,
        "phase": change.phase,
        "sources": [
            {"field": s.field, "old": s.old, "new": s.new, "flagged": s.flagged}
            for s in change.sources
        ],
        "conditions": [_condition_json(c) for c in change.conditions],
    }


def _condition_json(change: ConditionChange) -> dict[str, Any]:
    return {"field": change.field, "old": change.old, "new": change.new}


def _phase_json(change: PhaseChange) -> dict[str, Any]:
    return {
        "name": change.name,
        "status": change.status,
        "added": list(change.added),
        "removed": list(change.removed),
        "skipped-old": change.skipped_old,
        "skipped-new": change.skipped_new,
    }
