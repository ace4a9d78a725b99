"""Untrusted text made safe to show on a terminal, shared by every screen and the CLI.

Names, emails, file names inside zips and API fields come from outside: an escape sequence in
a guardian's name could set the operator's clipboard (OSC 52), clear the screen or retitle the
window, and a right-to-left override could make a name read backwards. ``safe_text`` turns
every control character (C0, DEL, C1), bidirectional control, line/paragraph separator and lone
surrogate into a visible escape such as ``\\x1b`` or ``\\u202e``; the text is then shown as
plain text (``Content``/``Text``), never parsed as markup.
"""

from __future__ import annotations

import re

UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 controls (ESC, BEL, NUL, newline...), DEL and C1 (CSI \x9b...)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff]"  # lone surrogates: cannot even be encoded for the terminal
)
"""Characters that may not reach a terminal as they are."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, *, multiline: bool = False) -> str:
    """``value`` as text with every unsafe character shown as an escape; ``multiline`` keeps
    newlines (for text the console composed itself around the data)."""
    text = "" if value is None else str(value)
    if multiline:
        return "\n".join(UNSAFE.sub(_escape, line) for line in text.split("\n"))
    return UNSAFE.sub(_escape, text)


def masked(email: str | None) -> str:
    """An address as the audit log and the help desk see it: enough to recognise, not to harvest."""
    if not email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"
