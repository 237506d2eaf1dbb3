"""`python -m envspec` runs the command line."""

from envspec.cli import main

raise SystemExit(main())
