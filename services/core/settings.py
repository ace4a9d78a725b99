"""Plain settings handed to services by ``console.config``; services never read files or env."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.core.working_days import WorkingCalendar


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    operator: str | None = None
    store_dir: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    """The school calendar of ``[calendar]`` that the SSR deadlines count on."""

    @property
    def report_store(self) -> Path:
        """Where SSR PDFs live, content-addressed (``services.intake.report_store``), imported or demo."""
        return self.store_dir or self.data_dir / "reports"
