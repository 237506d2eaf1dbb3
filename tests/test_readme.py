"""The README documents the CLI as it is: every command has a usage line naming its own options
and no option it lacks, and every JSON event a command writes has a row in the events table."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from envspec.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Options every command takes (documented once, not on every usage line).
COMMON = {"-h", "--help", "--project", "-v", "--verbose", "-q", "--quiet", "--json", "--offline"}
COMMON |= {"--cache-dir"}
_USAGE = re.compile(r"^\$ (?:[A-Z_0-9]+=\S+ )*envspec (\w+)(.*)$")
_OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _documented() -> dict[str, set[str]]:
    """Options on the README's `$ envspec CMD …` lines (with their indented continuations)."""
    found: dict[str, set[str]] = {}
    lines = README.splitlines()
    for i, line in enumerate(lines):
        match = _USAGE.match(line)
        if match is None:
            continue
        text = match[2]
        for more in lines[i + 1 :]:
            if not more.startswith(" ") or "[" not in more:
                break
            text += more
        found.setdefault(match[1], set()).update(_OPTION.findall(text))
    return found


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_a_usage_line_matching_its_options(command: str) -> None:
    parser = _commands()[command]
    options = {o for action in parser._actions for o in action.option_strings}
    documented = _documented()
    assert command in documented, f"no '$ envspec {command}' usage line in README.md"
    assert documented[command] - options == set(), "documented but not accepted"
    undocumented = [
        "/".join(action.option_strings)
        for action in parser._actions
        if action.option_strings and not set(action.option_strings) & (COMMON | documented[command])
    ]
    assert undocumented == [], "accepted but not documented"


def test_every_named_event_has_a_row() -> None:
    kinds: set[str] = set()
    for path in (ROOT / "src" / "envspec").rglob("*.py"):
        text = path.read_text("utf-8")
        kinds |= set(re.findall(r'(?:event|emit)\(\s*"([a-z_]+)"', text))
        kinds |= set(re.findall(r'kind: ClassVar\[str\] = "([a-z_]+)"', text))  # event classes
    assert {"diff", "export", "why", "init", "lock", "stats"} <= kinds
    assert {"plan", "fetch", "download", "rollback", "check", "done"} <= kinds
    missing = sorted(k for k in kinds if f"| `{k}` |" not in README)
    assert missing == []


def test_add_and_remove_and_every_global_option_are_documented() -> None:
    documented = _documented()
    assert {"add", "remove"} <= set(documented)
    assert {"--phase", "--index", "--sync", "--python"} <= documented["add"]
    assert {"--phase", "--sync", "--python"} <= documented["remove"]
    parser = build_parser()
    top = {o for action in parser._actions for o in action.option_strings}
    assert top - {"-h", "--help", "--version"} == COMMON - {"-h", "--help"}
    start = README.index("- **Global options**")
    block = README[start:].split("\n- ", 2)[0]
    for option in sorted(COMMON - {"-h", "--help"}):
        assert f"`{option}" in block, option
