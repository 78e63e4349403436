"""Adapters that let agent frameworks keep their state in a session store (each behind an optional extra)."""
