"""What the CLI prints: one place that makes names and file names harmless on a terminal."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from services.core.display import safe_text


def say(
    text: object, *, file: TextIO | None = None, end: str = "\n", overwrite: bool = False
) -> None:
    """Every line the CLI prints: names and file names in it are shown with their control
    characters made visible, never sent to the terminal; ``overwrite`` redraws a progress line."""
    line = ("\r" if overwrite else "") + safe_text(text, multiline=True)
    print(line, end=end, file=file or sys.stdout, flush=True)


def say_json(value: object) -> None:
    """A listing as JSON for scripts: ASCII only, so no control character reaches the terminal
    (``json`` writes them as ``\\u`` escapes); dates and decimals as text."""
    say(json.dumps(value, indent=2, default=_as_text, ensure_ascii=True))


def _as_text(value: object) -> str:
    """Times as ISO 8601 (``2026-12-03T16:30:00+00:00``), anything else as its text."""
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)
