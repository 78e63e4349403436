"""Small helpers the tool modules share when they map a record to standard events."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sessions.events import Attachment

__all__ = ["attachment", "data_url_attachment", "meta", "text_of"]


def meta(**values: Any) -> dict[str, Any] | None:
    """The values that are set, as an event's ``meta`` (None if none is)."""
    kept = {key: value for key, value in values.items() if value is not None}
    return kept or None


def text_of(content: Any, *, kinds: tuple[str, ...] = ("text", "input_text", "output_text")) -> str:
    """The text of a message's content: a string, or the text blocks of a list joined by blank lines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [block.get("text") for block in content if isinstance(block, dict) and block.get("type") in kinds]
    return "\n\n".join(part for part in parts if isinstance(part, str))


def attachment(name: str, media_type: object, data: object, **extra: Any) -> Attachment:
    """An image (or file) given inline as base64; kept as a URI-less reference if the base64 is bad."""
    kind = media_type if isinstance(media_type, str) else "application/octet-stream"
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except (binascii.Error, ValueError):
        raw = None
    return Attachment(name, kind, data=raw, meta=meta(**extra))


def data_url_attachment(name: str, url: object) -> Attachment:
    """An image given as a URL: a ``data:`` URL is decoded to bytes, anything else kept as ``uri``."""
    if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return attachment(name, head.removeprefix("data:") or None, data)
    return Attachment(name, "application/octet-stream", uri=url if isinstance(url, str) else None)
