"""Reliability suites: kills, I/O faults, concurrency, hostile files, security, crash state machine.

Quick versions run with ``make test``; long versions are marked ``stress`` (``make stress``).
See ``docs/RELIABILITY.md`` for what each suite promises and the figures measured.
"""
