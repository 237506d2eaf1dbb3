"""The spec: `envspec.toml` → a validated, normalized `model.Spec` (DESIGN.md §3).

Modules: `parse` (the document, [environment], [targets], [indexes]), `phases` ([[phases]]),
`variants` ([variants.<name>]), `options` ([resolution], [checks]) and `values`
(requirements, names, versions and target lists, checked with `packaging` and `targets`).

`load_spec` reads the file (the only file access); `parse_spec` is pure: ``${VAR}``
references in index URLs are expanded from the `environ` it is given (the CLI's snapshot).
This is the one place index URLs' references are expanded.
Validation is hand-written over `tomlread` because every error must name the file and the
table path of the offending value in one line; requirement, version and specifier syntax is
left to `packaging`. Unknown keys are errors everywhere.

Normalization: requirement names and extras are canonicalized (``Foo_Bar`` → ``foo-bar``) and
re-rendered by `packaging`; a phase's index becomes one routing per target (``index = "x"``
routes every target), sorted by target like target settings and version checks; phase
targets follow `environment.targets` order; ``exclude-newer`` becomes an aware UTC
`datetime` (a bare date means 00:00:00Z of that day);
``no-build``/``no-binary`` become sorted canonical names, or just ``(":all:",)``.
Without an `[indexes]` table the only index is ``pypi = "https://pypi.org/simple"``.

Errors are `SpecError`; ``str(error)`` is ``<file>: <path>: <message>`` where the path is
0-based (``phases[1].requirements[3]`` is the 4th requirement of the 2nd ``[[phases]]``), or
just ``<file>: <message>`` for the document as a whole. The messages, besides the generic
ones of `tomlread` (invalid TOML, ``expected a string, got integer``,
``missing required key 'x'``, ``unknown key 'x'`` + ``did you mean 'y'?``):

- ``missing required table [environment]`` · ``invalid environment name 'a b'`` ·
  ``invalid python version '3'`` · ``expected at least one target`` ·
  ``unknown target 'linux-x86'`` (from `targets.check_name`) · ``duplicate target 'x'`` ·
  ``target 'x' is not in environment.targets``
- ``invalid glibc version '3.1'`` · ``invalid macos version '9'`` · ``'glibc' does not apply
  to windows-x86_64`` (hint ``'glibc' is set for linux targets only``)
- ``no indexes defined`` · ``invalid index name 'a b'`` ·
  ``expected a string or a table, got integer`` ·
  ``undefined environment variable 'TOKEN'`` (the URL itself is never shown: it may hold
  credentials) · ``index URL is empty`` ·
  ``index URL must start with http://, https:// or file://`` ·
  ``index URL has a port that is not a number from 0 to 65535`` ·
  ``index URL has an unclosed '[' in the host`` ·
  ``no default index: every index is explicit``
- ``no phases defined`` · ``expected an array of tables, got table`` (``[phases]`` written for
  ``[[phases]]``) · ``invalid phase name 'a b'`` · ``duplicate phase name 'torch'`` ·
  ``phase has no requirements`` · ``two direct references for 'x'`` (requirements on one
  name under one marker are otherwise combined: extras united, specifiers intersected) ·
  ``unknown index 'pytorch'`` (hint ``did you mean 'pytorch-cu121'?`` or
  ``defined indexes: pypi, pytorch-cu121``)
- ``invalid requirement 'numpy<<2': <packaging's reason>`` · ``invalid requirement: its URL
  has a port that is not a number from 0 to 65535`` (shown texts have URL credentials removed)
- ``constraint 'x[y]' may not have extras`` · ``constraint 'x @ url' may not be a direct
  reference`` (likewise ``override ...``) · ``invalid prereleases 'sometimes'`` ·
  ``invalid exclude-newer 'soon'`` · ``exclude-newer '2024-01-01T00:00:00' has no time zone`` ·
  ``invalid package name 'a b'`` · ``invalid version '1..0'`` ·
  ``invalid requires-python '>=3.x'`` · ``duplicate dependency-metadata for 'x'``
- ``invalid import check 'a b'`` · ``invalid version specifier '<<2'`` ·
  ``duplicate package 'numpy'``
- ``[[rules]]`` (project compatibility rules) and ``[resolution] ignore-rules``: the messages
  of `compat.parse`, e.g. ``rules[0].constraints[0]: constraint 'numpy[dev]<2' may not have
  extras`` · ``resolution.ignore-rules[0]: unknown rule 'torchao-torhc'`` (hint ``did you
  mean 'torchao-torch'?``)

- ``[environment] variants`` and ``[variants.<name>]`` (accelerator variants, module
  `variants`): ``environment.variants[1]: unknown variant 'cpu'`` (hint ``add a
  [variants.cpu] table``, or ``did you mean``) · ``duplicate variant 'cpu'`` · ``invalid
  variant name 'a b'`` · ``variants.cu122: variant 'cu122' is not in environment.variants`` ·
  ``variants.cu121.index.torhc: unknown phase 'torhc'`` (likewise ``requirements``; hint
  ``did you mean 'torch'?``) · ``variants.cu121.index.torch: unknown index 'cuda'`` ·
  ``variants.cu121.cuda-driver.linux: invalid cuda-driver '>=525..60'`` (hint ``expected a
  version specifier, e.g. ">=525.60.13"``) · ``variants.cu121.cuda-driver: no windows driver
  given for target windows-x86_64`` · ``variants.cu121.compute-capability: invalid
  compute-capability 'sm_50'`` · the target and constraint messages above

`Spec.rules` is the set in force: the built-in rules (`compat.load_builtin_rules`, or the
`builtin` given to `parse_spec`) less the ignored ones, then the project's own.
"""

from __future__ import annotations

from envspec.spec.parse import PYPI, load_spec, parse_spec

__all__ = ["PYPI", "load_spec", "parse_spec"]
