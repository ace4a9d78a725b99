"""The assessment programs whose SSRs the console delivers."""

from __future__ import annotations

import enum


class Program(enum.StrEnum):
    CAASPP = "CAASPP"
    ELPAC = "ELPAC"
