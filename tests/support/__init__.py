"""Shared helpers, not test modules: the contract suite, the in-memory model, strategies and worker scripts."""
