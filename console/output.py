"""What the CLI prints: one place that makes names and file names harmless on a terminal."""

from __future__ import annotations

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
