"""Reading locks for people and other tools: `diff` (what a change does to each target),
`export` (a requirements file), `why` (how a package got in) and `init` (a starter spec, also
from requirements files). Everything here reads locks; `gitrev` runs git (through
`envspec.proc`).
"""
