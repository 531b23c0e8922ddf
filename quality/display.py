"""Showing held records to people: personal data masked on the way out.

Quarantine keeps what the platform sent, personal data included, so a fix can be
replayed. Anything shown from it (CLI, report) passes through here first.
"""

from __future__ import annotations

import re
from typing import Any

# Digits that look like a citizen ID (15/18 with optional X) or a phone number.
_ID = re.compile(r"(?<!\d)(\d{6})[\d ]{5,8}(\d{3}[\dXx]|\d{4})(?!\d)")
_PHONE = re.compile(r"(?<!\d)(\+?86[ -]?)?(1[3-9]\d)[ -]?\d{4}[ -]?(\d{4})(?!\d)")


def mask_text(text: str) -> str:
    text = _ID.sub(lambda m: f"{m.group(1)}********{m.group(2)[-4:]}", text)
    return _PHONE.sub(lambda m: f"{m.group(2)}****{m.group(3)}", text)


def mask_payload(payload: Any) -> Any:
    """The payload with every string's ID- or phone-like digits masked."""
    if isinstance(payload, dict):
        return {k: mask_payload(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [mask_payload(v) for v in payload]
    if isinstance(payload, str):
        return mask_text(payload)
    return payload
