"""Old home of :mod:`sessions.cli.render`, kept only because ``sessions/maintenance.py`` imports it from here.

Delete this file once ``maintenance.export_session`` imports ``markdown_transcript`` from its new place.
"""

from sessions.cli.render import markdown_transcript

__all__ = ["markdown_transcript"]
