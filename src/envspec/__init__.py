"""envspec: declarative, locked, reviewable and reversible Python environments."""

__version__ = "0.1.0"
