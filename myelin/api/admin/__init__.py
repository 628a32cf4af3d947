"""Admin APIs (Synapse-compatible where tooling expects them)."""
