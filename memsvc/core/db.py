"""Engine, sessions and the tenant context that Postgres row-level security reads."""

import re
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Result,
    any_,
    bindparam,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from memsvc.core.errors import ServiceUnavailable

MIN_PGVECTOR = (0, 7)
TENANT_SETTING = "memsvc.tenant_id"
SESSION_SETTINGS = "memsvc.session_settings"  # key of a pooled connection's info: the settings it started with
# libpq's default waits 130 s for a host that does not answer: a request should get its 503 before clients give up.
CONNECT_TIMEOUT_S = 5


class PgvectorMissing(RuntimeError):
    """The server lacks pgvector, or has one older than memsvc needs."""


def sqlalchemy_url(url: str) -> str:
    """Accept plain libpq URLs (`postgresql://`, `postgres://`) and use the psycopg 3 driver for them."""
    return re.sub(r"^(postgres|postgresql)(\+\w+)?://", "postgresql+psycopg://", url)


def make_engine(
    url: str,
    app_role: str | None = None,
    statement_timeout_ms: int = 0,
    pool_timeout_s: float = 30.0,
    session_settings: Mapping[str, str] | None = None,
) -> Engine:
    """An engine whose connections act as `app_role` (a non-owner role, so row-level security applies).
    `statement_timeout_ms`: Postgres cancels any statement running longer (0 = never); `pool_timeout_s`: how long
    a checkout waits for a free connection (then sqlalchemy.exc.TimeoutError); `session_settings`: Postgres
    settings every connection starts with."""
    # pool_pre_ping: after a database restart, pooled connections are found dead and replaced before use.
    engine = create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=pool_timeout_s,
        connect_args={} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT_S},
    )
    setup: list[tuple[str, tuple[str, ...]]] = []
    if app_role:
        setup.append(('SET ROLE "{}"'.format(app_role.replace('"', '""')), ()))
    settings = dict(session_settings or {})
    if statement_timeout_ms:
        settings["statement_timeout"] = str(int(statement_timeout_ms))
    # Per connection, not as libpq startup options: connection poolers (PgBouncer) refuse those.
    setup += [("SELECT set_config(%s, %s, false)", (name, value)) for name, value in settings.items()]
    if setup:

        @event.listens_for(engine, "connect")
        def _configure_connection(dbapi_conn: Any, record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                for statement, params in setup:
                    cur.execute(statement, params)
            dbapi_conn.commit()
            record.info[SESSION_SETTINGS] = settings  # what statements may rely on (Connection.info)

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)

    @event.listens_for(factory, "after_begin")
    def _apply_tenant(session: Session, _: SessionTransaction, connection: Connection) -> None:
        tenant_id = session.info.get("tenant_id")
        if tenant_id is not None:
            _set_tenant_setting(connection, tenant_id)

    return factory


def _set_tenant_setting(connection: Connection, tenant_id: uuid.UUID) -> None:
    # Transaction-local, so a pooled connection never carries one tenant's context into another request.
    connection.execute(
        text("SELECT set_config(:name, :value, true)"), {"name": TENANT_SETTING, "value": str(tenant_id)}
    )


def bind_tenant(session: Session, tenant_id: uuid.UUID, *, applied: bool = False) -> None:
    """Scope `session` to one tenant: this and every later transaction of it sees only that tenant's rows.
    `applied`: the current transaction already set the tenant (in the statement that authenticated it)."""
    session.info["tenant_id"] = tenant_id
    if session.in_transaction() and not applied:
        _set_tenant_setting(session.connection(), tenant_id)


@contextmanager
def tenant_session(factory: sessionmaker[Session], tenant_id: uuid.UUID) -> Iterator[Session]:
    with factory() as session:
        session.info["tenant_id"] = tenant_id
        yield session


def id_in(column: Any, ids: Iterable[uuid.UUID], name: str | None = None) -> ColumnElement[bool]:
    """`column = ANY(:ids)`: one array parameter, so the statement is the same (and compiled once) for any number
    of ids, where `IN` renders a parameter per id, built anew for every list. `name`: the parameter's, for a
    statement reused with other ids (Statements)."""
    return column == any_(bindparam(name, list(ids), type_=ARRAY(UUID(as_uuid=True))))


class Statements:
    """Read statements built once per shape and reused. SQLAlchemy memoizes a statement's cache key on the object
    and finds its compiled form by that key: a reused statement skips building, keying and compiling, which for
    a search's CTEs cost 1-2 ms each, several times their time in Postgres (bench/results/compare-steps/). Every
    value such a statement needs is a named parameter given at each execution; when a shape is first built,
    `execute` checks that the parameters given are exactly the statement's, so no value of the call that built
    it can stay in it."""

    def __init__(self, size: int = 1024) -> None:
        self._built: dict[Hashable, Executable] = {}
        self._size = size

    def execute(
        self,
        db: Session | Connection,
        key: Hashable,
        build: Callable[[], Executable],
        parameters: Mapping[str, Any],
    ) -> Result[*tuple[Any, ...]]:
        """The statement of shape `key` (built by `build` the first time) run with `parameters`."""
        statement = self._built.get(key)
        if statement is None:
            statement = build()
            named = set(cast(ClauseElement, statement).compile(dialect=_DIALECT).params)
            if named != set(parameters):
                raise ValueError(f"statement {key!r}: parameters {sorted(named)} given as {sorted(parameters)}")
            if len(self._built) >= self._size:
                self._built.clear()  # shapes are few (filters set, options); this only bounds a runaway
            self._built[key] = statement
        return db.execute(statement, dict(parameters))


_DIALECT = postgresql_psycopg.dialect()


def pgvector_version(conn: Connection) -> tuple[int, ...] | None:
    row = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).first()
    return _parse_version(row[0]) if row else None


def available_pgvector_version(conn: Connection) -> tuple[int, ...] | None:
    row = conn.execute(text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")).first()
    return _parse_version(row[0]) if row and row[0] else None


def require_pgvector(version: tuple[int, ...] | None, where: str) -> None:
    wanted = ".".join(map(str, MIN_PGVECTOR))
    if version is None:
        raise PgvectorMissing(
            f"pgvector is not {where} on this Postgres server; memsvc needs the `vector` extension >= {wanted} "
            "(install pgvector, or unset MEMSVC_DATABASE_URL to use the embedded Postgres)."
        )
    if version < MIN_PGVECTOR:
        found = ".".join(map(str, version))
        raise PgvectorMissing(f"pgvector {found} is {where}, but memsvc needs >= {wanted} (halfvec, HNSW).")


def _parse_version(value: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", value)[:3])


def ping(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not reachable" to a readiness probe
        raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
