"""Showing warehouse content to people: personal data masked on the way out.

Quarantine keeps what the platform sent, personal data included, so a fix can be
replayed; findings and errors may quote values. Anything shown from them (the CLI,
the weekly report) passes through here first.
"""

from __future__ import annotations

import re
from typing import Any

# 18-character (or legacy 15-digit) ID numbers, also keyed in with spaces or dashes
# (211103 19900101 104x), and mainland mobile / landline numbers, not glued to other
# digits (order numbers and codes are longer digit runs).
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})[ -]?(\d{8})[ -]?(\d{3}[\dXx])(?![0-9A-Za-z])"
                        r"|(?<![0-9A-Za-z])(\d{6})[ -]?(\d{5})[ -]?(\d{4})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})[- ]?(\d{3,4})(\d{4})(?!\d)")


def mask_text(text: object) -> str:
    """`text` with every ID number and phone number in it masked (211103********123X, 138****8000)."""
    s = "" if text is None else str(text)

    def ident(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1) + "*" * 8 + m.group(3)
        return m.group(4) + "*" * 5 + m.group(6)

    s = _ID_NUMBER.sub(ident, s)
    s = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", s)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", s)


def mask_payload(payload: Any) -> Any:
    """The payload, structure kept, with every string's ID numbers and phones masked."""
    if isinstance(payload, dict):
        return {k: mask_payload(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [mask_payload(v) for v in payload]
    if isinstance(payload, str):
        return mask_text(payload)
    return payload
