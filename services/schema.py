"""Imports every module that declares tables, so the metadata Alembic compares is complete."""

from services import models  # noqa: F401
