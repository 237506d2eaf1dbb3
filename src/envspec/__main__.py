"""`python -m envspec` runs the command line."""

from envspec.entry import run

raise SystemExit(run())
