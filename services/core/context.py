"""What a console session works with: the database, the settings and the signed-in operator."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.access.tables import Operator
from services.core.settings import Settings


@dataclass
class ConsoleContext:
    engine: Engine
    settings: Settings
    operator: Operator
