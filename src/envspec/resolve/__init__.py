"""Resolution: a spec and a target become a lock."""
