"""Benchmarks of jsonl-sessions against the stores a user would pick instead (see ``run.py``)."""
