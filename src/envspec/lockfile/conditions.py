"""A lock's conditions as PEP 751 reads them: markers (``environments``, a package's
``marker``) and ``requires-python``, each checked when the lock is read so that no command
meets one it cannot evaluate. A marker is tried as a lock file's (`Marker.evaluate` with the
``lock_file`` context) against a probe environment, where a comparison that can never be made
(`sys_platform === 'linux'`, ``extras == 'foo'``) raises; the texts are kept as written."""

from __future__ import annotations

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envspec.tomlread import Table

_SHOWN = 72  # a longer bad value is cut in messages


def check_requires_python(table: Table) -> str:
    text = table.string("requires-python") or ""
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        table.fail(f"invalid requires-python '{text}'", key="requires-python")
    return text


def check_marker(table: Table, key: str) -> str | None:
    text = table.string(key)
    if text is not None and not is_marker(text):
        table.fail(f"invalid marker {shown(text)}", key=key)
    return text


def is_marker(text: str) -> bool:
    """Whether `text` is a marker that can be evaluated, as a lock file's marker (PEP 751's
    set-valued ``extras`` and ``dependency_groups`` beside the usual variables): one that
    parses but compares strings with an operator only versions have (`sys_platform ===
    'linux'`), or a set with ``==`` (``extras == 'foo'``, not ``'foo' in extras``), raised
    `UndefinedComparison` in sync and check, whatever the environment."""
    try:
        Marker(text).evaluate(_PROBE, "lock_file")
    except (InvalidMarker, RecursionError, UndefinedComparison, UndefinedEnvironmentName):
        return False  # RecursionError: packaging's parser recurses on nested brackets
    return True


# Every marker variable, with values any comparison that can be evaluated at all can take:
# versions where markers compare versions ('3.11' ~= python_version), empty strings elsewhere
_PROBE: dict[str, str | frozenset[str]] = {
    **dict.fromkeys(
        (
            "implementation_name", "os_name", "platform_machine", "platform_release",
            "platform_system", "platform_version", "platform_python_implementation",
            "sys_platform", "extra",
        ),
        "",
    ),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_version": "3.11.0",
    "extras": frozenset(),
    "dependency_groups": frozenset(),
}  # fmt: skip


def lock_environments(root: Table) -> tuple[str, ...]:
    markers = root.strings("environments") or []
    for i, text in enumerate(markers):
        if not is_marker(text):
            root.doc.fail(f"environments[{i}]", f"invalid marker {shown(text)}")
    return tuple(markers)


def shown(value: str) -> str:
    """`value` quoted for a message, cut when long."""
    return f"'{cut(value)}'"


def cut(value: str) -> str:
    """`value` for a message: whole up to 72 characters, else its start and '…' (a hand-edited
    marker of 66 KB was printed whole by every command that named it)."""
    return value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…"
