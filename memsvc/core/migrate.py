"""Apply Alembic migrations and tell whether a database is at the current head."""

from functools import cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, pool
from sqlalchemy.exc import DBAPIError

import migrations
from memsvc.core.db import available_pgvector_version, require_pgvector, sqlalchemy_url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    cfg.attributes["database_url"] = database_url
    return cfg


SPACE_INDEX_PREFIX = "ix_memory_embeddings_hnsw_"


def include_in_autogenerate(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic autogenerate filter: each embedding space's HNSW index is created at run time with its space (by
    `memsvc_embedding_space()`), so the models do not declare it."""
    return not (type_ == "index" and reflected and (name or "").startswith(SPACE_INDEX_PREFIX))


def upgrade_to_head(database_url: str) -> None:
    """Create or update the schema; fails with a clear message when pgvector cannot be had."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        require_pgvector(available_pgvector_version(conn), "available")
    engine.dispose()
    command.upgrade(alembic_config(database_url), "head")


@cache
def _scripts() -> ScriptDirectory:
    """The migration scripts, read once: readiness probes ask for them every few seconds."""
    return ScriptDirectory.from_config(alembic_config(""))


def head_revision() -> str | None:
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_behind(current: str | None) -> bool:
    """Whether the database still needs this code's migrations: it has none yet, or is at one of this code's
    earlier revisions. A revision this code does not know was applied by a newer release. Migrations only add
    (tables, nullable or defaulted columns, indexes), so this code keeps working on that schema, as the previous
    release's pods must during a rolling upgrade, after the upgrade's migration Job has run."""
    if current == head_revision():
        return False
    if current is None:
        return True
    try:
        _scripts().get_revision(current)
    except CommandError:  # not one of ours: newer
        return False
    return True


def schema_lag(database_url: str) -> str | None:
    """None when the database answers and its schema is at this code's head or newer (`schema_behind`); otherwise
    why not, in a sentence (unreachable, not migrated yet, or at an earlier revision)."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        current = current_revision(engine)
    except DBAPIError as exc:
        reason = " ".join(str(exc.orig).split())
        return f"cannot read the schema revision ({type(exc.orig).__name__}: {reason})"
    finally:
        engine.dispose()
    return f"database schema at {current}, code expects {head_revision()}" if schema_behind(current) else None
