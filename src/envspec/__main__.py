"""`python -m envspec` runs the command line."""

from envspec.cli import run

raise SystemExit(run())
