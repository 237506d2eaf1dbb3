"""Applying a lock to an environment: plan, install with uv, snapshot, roll back, check
(DESIGN.md §7). `uv` builds the uv and interpreter calls; `envspec.proc` runs them."""
