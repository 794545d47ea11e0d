"""Plain text (``.txt``): decoded as it is; the corpus loader removes web boilerplate lines."""

from __future__ import annotations

import re

from .base import ConversionError, Extracted

SUFFIXES = (".txt",)
# Share of control bytes (other than tab/newline/CR/FF/VT/ESC) above which a file is binary.
MAX_CONTROL_RATIO = 0.05
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def convert(data: bytes) -> Extracted:
    text, reason = decode_text(data)
    if text is None:
        raise ConversionError(reason)
    return Extracted(text)


def decode_text(data: bytes) -> tuple[str | None, str]:
    """Decode file bytes; return ``(text, "")`` or ``(None, reason)``.

    UTF-8 (BOM stripped) or UTF-16 with a BOM; otherwise cp1251, accepted
    only when the result looks like Russian text, because any byte string
    decodes "successfully" as a single-byte code page.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), ""
        except UnicodeDecodeError:
            return None, "invalid UTF-16"
    sample = data[: 1 << 16]
    if b"\x00" in data:
        return None, "binary (NUL bytes)"
    control = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\x0b\x0c\x1b")
    if sample and control / len(sample) > MAX_CONTROL_RATIO:
        return None, "binary (control characters)"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1251")
    except UnicodeDecodeError:
        return None, "not UTF-8 and not cp1251"
    if _plausible_cyrillic(text):
        return text, ""
    return None, "not UTF-8 and not plausibly Cyrillic cp1251"


def _plausible_cyrillic(text: str) -> bool:
    """True when cp1251-decoded text reads like Russian.

    Latin-1 text decodes to mostly ASCII letters with a few stray Cyrillic
    ones; KOI8-R decodes to mostly *uppercase* Cyrillic.  Real Russian is
    mostly lowercase Cyrillic.
    """
    letters = [c for c in text if c.isalpha()]
    cyr = [c for c in letters if _CYRILLIC.match(c)]
    if not cyr or len(cyr) / len(letters) < 0.3:
        return False
    return sum(c.islower() for c in cyr) / len(cyr) >= 0.6
