"""Compatibility rules: sourced facts that package metadata does not carry (issue 11).

torchao's wheels declare no torch requirement, torch 2.4.0's Windows wheels break under NumPy 2
without saying so, triton-windows does not say which torch it fits: no resolver can see these
from metadata. envspec ships them as data, `rules.toml` beside this file (versioned, each rule
with its source and reason), and a project adds its own as `[[rules]]` in `envspec.toml` in
the same format, or turns a built-in one off with `[resolution] ignore-rules`.

A rule is about one package (`model.Rule`); per range of its versions (`model.RuleCase`) it
adds requirements, as if the package's metadata had declared them, or constraints, which bound
another package only when something else brings it in. Where they act:
- locking: as metadata patches (`resolve.rules`, `resolve.metadata`);
- `lock --check`: the rules about a lock's packages are part of its inputs (`inputs`);
- `check`: any environment's installed versions against them (`evaluate`);
- `envspec rules [NAME]`: listed, with their sources (`review.rules`).

Modules: `parse` (TOML tables → rules, errors naming file and table path), `evaluate`.
`load_builtin_rules` is the file edge: it reads `rules.toml` from the installed package.
"""

from __future__ import annotations

import functools
import pkgutil

from envspec.compat.parse import parse_builtin
from envspec.model import RuleSet

BUILTIN = "rules.toml"


@functools.cache
def load_builtin_rules() -> RuleSet:
    """envspec's own rule set (read once: it is part of the installed package)."""
    # pkgutil.get_data, not importlib.resources (~8 ms of imports for an unchanged relock):
    # the same loader's read, from a folder or a zipped install alike.
    data = pkgutil.get_data(__package__, BUILTIN)
    assert data is not None  # this package's loader reads files
    text = data.decode("utf-8")
    return parse_builtin(text, where=f"envspec/compat/{BUILTIN}")


__all__ = ["load_builtin_rules"]
