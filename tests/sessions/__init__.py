"""Tests of the session store, manager, index and sync."""
