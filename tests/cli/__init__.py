"""Tests of the ``sessions`` command line, the chat, the README examples and the benchmark scripts."""
