"""Alembic migrations: the only way memsvc's schema is created or changed."""

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).parent
