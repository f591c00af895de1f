"""The result channel between the harness and the parent: one bounded, checked message.

The harness writes `R` when its clients are made and it is about to call the learner's
code, then one frame: the payload's length in ASCII digits, a newline, and a JSON object
`{"ok": bool, "value": any, "error": str, "traceback": str}`. The parent accepts exactly
that; anything else (two frames, a wrong length, extra keys) is refused.
"""

from __future__ import annotations

import json
from typing import Any

READY = b"R"
MAX_RESULT = 4 * 1024 * 1024
"""Largest result frame accepted (bytes)."""
MAX_TEXT = 20_000
"""Longest error or traceback kept (characters)."""

_KEYS = {"ok", "value", "error", "traceback"}


def encode_result(ok: bool, value: Any = None, error: str = "", traceback: str = "") -> bytes:
    """One result frame; `value` must already be plain JSON."""
    payload = json.dumps(
        {"ok": ok, "value": value, "error": error[:MAX_TEXT], "traceback": traceback[-MAX_TEXT:]},
        ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")
    return b"%d\n" % len(payload) + payload


def decode_result(raw: bytes) -> tuple[bool, dict[str, Any] | None, str]:
    """(ready seen, the result or None, why it was refused) from the channel's bytes."""
    ready = raw.startswith(READY)
    body = raw[1:] if ready else raw
    if not body:
        return ready, None, ""
    head, newline, rest = body.partition(b"\n")
    if not newline or not head.isdigit() or len(head) > 9:
        return ready, None, "the result channel held something other than one result"
    size = int(head)
    if size > MAX_RESULT or len(rest) != size:
        return ready, None, "the result channel held something other than one result"
    try:
        message = json.loads(rest)
    except ValueError:
        return ready, None, "the result was not valid JSON"
    if (
        not isinstance(message, dict)
        or set(message) != _KEYS
        or not isinstance(message["ok"], bool)
        or not isinstance(message["error"], str)
        or not isinstance(message["traceback"], str)
    ):
        return ready, None, "the result did not have the expected shape"
    return ready, message, ""
