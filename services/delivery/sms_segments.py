"""How many SMS segments a text takes, so the password SMS stays within two in every language.

An SMS carries 140 octets. Text that fits the GSM 7-bit default alphabet (3GPP TS 23.038, 6.2.1,
with the extension table's characters counting two septets as ESC + character) takes 160 characters
in one segment; anything else is sent as UCS-2 (UTF-16 code units), 70 to a segment. A longer text
is split into concatenated segments, each losing 6 octets to the user data header (3GPP TS 23.040,
9.2.3.24.1): 153 septets or 67 UCS-2 units per segment.
"""

from __future__ import annotations

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 7-bit default alphabet (one septet each); ESC (0x1B) is left out, it is not text."""
GSM_EXTENSION = "\f^{}\\[~]|€"
"""Characters of the default alphabet's extension table: two septets each."""
MAX_SEGMENTS = 2
"""The password SMS may take at most this many segments (issue 23)."""


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM default alphabet or its extension table."""
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def units(text: str) -> int:
    """The text's length in the encoding it will be sent in: septets, or UTF-16 code units."""
    if is_gsm7(text):
        return sum(2 if char in GSM_EXTENSION else 1 for char in text)
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    """Segments the text takes: 1 up to 160 septets or 70 UCS-2 units, else 153 or 67 each."""
    length = units(text)
    single, each = (160, 153) if is_gsm7(text) else (70, 67)
    if length <= single:
        return 1
    return -(-length // each)
