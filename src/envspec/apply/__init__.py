"""Applying a lock to an environment: plan, install with uv, snapshot, roll back, check
(DESIGN.md §7). `uv` is the only module here that starts processes."""
