"""Plain settings handed to services by ``console.config``; services never read files or env."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    operator: str | None = None
    store_dir: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def report_store(self) -> Path:
        """Where SSR PDFs live, content-addressed (``services.intake.report_store``), imported or demo."""
        return self.store_dir or self.data_dir / "reports"
