"""`memsvc` command line: serve, migrate, and admin operations for operators (no HTTP needed)."""

import argparse
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from typing import TYPE_CHECKING

from memsvc.core.embedded import resolve_database_url
from memsvc.core.logging import configure_logging
from memsvc.core.settings import Settings, get_settings
from memsvc.eval import command as eval_command

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("memsvc")


def ensure_admin_key(settings: Settings) -> Settings:
    """With no MEMSVC_ADMIN_KEY on the embedded default, generate one once and keep it (mode 0600)."""
    if settings.admin_key or not settings.embedded:
        return settings
    path = settings.data_dir / "admin_key"
    if path.exists():
        return settings.model_copy(update={"admin_key": path.read_text().strip()})
    key = "msa_" + secrets.token_urlsafe(32)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    print(f"Generated admin key (shown once; stored in {path}):\n  {key}", flush=True)
    return settings.model_copy(update={"admin_key": key})


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from memsvc.app import create_app
    from memsvc.core.migrate import upgrade_to_head

    settings = get_settings()
    host, port = args.host or settings.host, args.port or settings.port
    url = resolve_database_url(settings)
    if settings.embedded or args.migrate:
        upgrade_to_head(url)
    settings = ensure_admin_key(settings)
    if not settings.admin_key:
        log.warning("MEMSVC_ADMIN_KEY is not set: admin routes (tenants, keys) will refuse every request")
    where = f"embedded Postgres in {settings.data_dir}" if settings.embedded else "external Postgres"
    print(f"memsvc serving on http://{host}:{port} ({where})", flush=True)
    # uvicorn re-raises SIGTERM once it has shut down; with the default handler that would kill the process
    # before its exit handlers run, leaving the embedded Postgres behind. Exit normally instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workers = args.workers or settings.serve_workers
    if workers > 1:
        # Each worker process builds its app from the environment (served_app): hand it the database this
        # process resolved (the embedded server stays this process's, stopped when it exits) and the admin key.
        os.environ.update(MEMSVC_DATABASE_URL=url, MEMSVC_ADMIN_KEY=settings.admin_key or "")
        os.environ["MEMSVC_LOG_LEVEL"] = args.log_level or settings.log_level
    # On SIGTERM uvicorn stops accepting, lets in-flight requests finish (their writes commit) for up to the grace
    # period, then cancels what is left and shuts the app down.
    uvicorn.run(
        "memsvc.cli:served_app" if workers > 1 else create_app(settings, url),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=host,
        port=port,
        log_level=(args.log_level or settings.log_level).lower(),
        # Logging is memsvc's own (configure_logging), with an access line per request from its middleware.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return 0


def served_app() -> "FastAPI":
    """The app of one `memsvc serve --workers N` process, configured by the environment its parent prepared."""
    from memsvc.app import create_app

    settings = get_settings()
    configure_logging(settings)
    assert settings.database_url is not None, "memsvc serve sets MEMSVC_DATABASE_URL for its worker processes"
    return create_app(settings, settings.database_url)


def _worker(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.broker_url:
        print(
            "memsvc: set MEMSVC_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run Celery workers; "
            "without it, `memsvc serve` runs the work in-process.",
            file=sys.stderr,
        )
        return 2
    metrics_dir = _share_worker_metrics(settings) if settings.worker_metrics_port else None
    from workers.app import celery_app

    argv = [
        "worker",
        "--queues",
        args.queues,
        "--concurrency",
        str(args.concurrency),
        "--prefetch-multiplier",
        "1",
        "--loglevel",
        (args.log_level or settings.log_level).upper(),
        "--hostname",
        args.hostname,
    ]
    try:
        if settings.worker_metrics_port:
            from memsvc.core.metrics import serve_worker_metrics

            serve_worker_metrics(settings.worker_metrics_port, settings.worker_metrics_addr)
        celery_app.worker_main(argv)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _share_worker_metrics(settings: Settings) -> str | None:
    """Jobs run in Celery's pool processes: point prometheus_client at a directory they all write their counters
    to, so the main process can serve the sum. Must happen before prometheus_client is first imported. Returns the
    directory made here, to remove at exit (None: the operator's own PROMETHEUS_MULTIPROC_DIR)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    made = tempfile.mkdtemp(prefix="memsvc-worker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


def _migrate(args: argparse.Namespace) -> int:
    from memsvc.core.migrate import upgrade_to_head

    if args.check or args.wait:
        return _await_migrations(args)
    upgrade_to_head(resolve_database_url(get_settings()))
    print("database schema is at head")
    return 0


MIGRATION_POLL_S = 2.0


def _await_migrations(args: argparse.Namespace) -> int:
    """`migrate --check` / `--wait`: apply nothing, tell (or wait until) the schema has this code's migrations (its
    head, or a newer release's revision); for processes that must not start before another one has migrated
    (Kubernetes init containers)."""
    from memsvc.core.migrate import schema_lag

    settings = get_settings()
    if settings.database_url is None:
        print(
            "memsvc: --check and --wait need MEMSVC_DATABASE_URL (the embedded default migrates at `memsvc serve`)",
            file=sys.stderr,
        )
        return 2
    deadline = time.monotonic() + args.timeout
    reported = None
    while (lag := schema_lag(settings.database_url)) is not None:
        if args.check or time.monotonic() >= deadline:
            print(f"memsvc: {lag}", file=sys.stderr)
            return 1
        if lag != reported:  # one line per change of state, not one per poll
            print(f"waiting for migrations: {lag}", flush=True)
            reported = lag
        time.sleep(MIGRATION_POLL_S)
    print("database schema is at head (or newer)")
    return 0


def _session_factory() -> "sessionmaker[Session]":
    from memsvc.core.db import make_engine, make_session_factory
    from memsvc.core.migrate import upgrade_to_head

    settings = get_settings()
    url = resolve_database_url(settings)
    if settings.embedded:
        upgrade_to_head(url)
    return make_session_factory(make_engine(url, app_role=settings.app_role))


def _admin_session() -> "Session":
    return _session_factory()()


def _tenant_id(db: "Session", tenant: str) -> uuid.UUID:
    """A tenant named by id or by name."""
    from memsvc.core.errors import NotFound
    from memsvc.tenants import repository

    try:
        return uuid.UUID(tenant)
    except ValueError:
        found = repository.get_tenant_by_name(db, tenant)
        if found is None:
            raise NotFound(f"No tenant named {tenant!r}.") from None
        return found.id


def _tenants_create(args: argparse.Namespace) -> int:
    from memsvc.tenants import service
    from memsvc.tenants.schemas import TenantPublic

    with _admin_session() as db:
        tenant = service.create_tenant(db, args.name)
        db.commit()
        print(TenantPublic.model_validate(tenant).model_dump_json())
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from memsvc.tenants import service

    with _admin_session() as db:
        created = service.create_key(db, _tenant_id(db, args.tenant), args.name)
        db.commit()
        print(created.model_dump_json())
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from memsvc.tenants import service

    with _admin_session() as db:
        service.revoke_key(db, uuid.UUID(args.key_id))
        db.commit()
        print(json.dumps({"revoked": args.key_id}))
    return 0


def _train_recall(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from memsvc.consolidation.service import Scope
    from memsvc.consolidation.training import train_scope_recall

    if not (args.user or args.agent or args.session):
        print("memsvc: name the scope to train on: --user, --agent and/or --session", file=sys.stderr)
        return 2
    factory = _session_factory()
    with factory() as db:
        tenant_id = _tenant_id(db, args.tenant)
    scope = Scope(user_id=args.user, agent_id=args.agent, session_id=args.session)
    trained = train_scope_recall(factory, tenant_id, scope, steps=args.steps, dim=args.dim)
    print(json.dumps(asdict(trained)))
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from memsvc import openapi

    if args.check:
        if openapi.stale_text() is None:
            return 0
        print(f"{openapi.COMMITTED} is out of date: run `memsvc openapi --write`", file=sys.stderr)
        return 1
    if args.write:
        changed = openapi.write()
        print(f"{openapi.COMMITTED}: {'updated' if changed else 'already up to date'}")
        return 0
    sys.stdout.write(openapi.render(openapi.served_document()))
    return 0


def _mcp(args: argparse.Namespace) -> int:
    try:
        from memsvc_client.mcp import main as mcp_main
    except ImportError:
        print(
            "memsvc: the MCP server needs the Python client with its MCP extra: pip install 'memsvc-client[mcp]'",
            file=sys.stderr,
        )
        return 2
    return mcp_main(args.args, prog="memsvc mcp")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memsvc", description="Long-term memory service for AI agents.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the REST API (embedded Postgres unless MEMSVC_DATABASE_URL)")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--migrate", action="store_true", help="apply migrations first (always done on the embedded default)"
    )
    serve.add_argument("--log-level", default=None, help="default: MEMSVC_LOG_LEVEL (info)")
    serve.add_argument("--workers", type=int, default=None, help="API processes (default: MEMSVC_SERVE_WORKERS, 1)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser("worker", help="run a Celery worker (needs MEMSVC_BROKER_URL)")
    worker.add_argument("--queues", default="embed,consolidate", help="comma-separated queues")
    worker.add_argument("--concurrency", type=int, default=1, help="worker processes (one model each)")
    worker.add_argument("--hostname", default="memsvc@%h", help="Celery node name")
    worker.add_argument("--log-level", default=None, help="default: MEMSVC_LOG_LEVEL (info)")
    worker.set_defaults(run=_worker)

    migrate = commands.add_parser("migrate", help="apply database migrations (or check or wait for them)")
    migrate_mode = migrate.add_mutually_exclusive_group()
    migrate_mode.add_argument(
        "--check", action="store_true", help="apply nothing: exit 0 if the schema is at head (or newer), 1 if not"
    )
    migrate_mode.add_argument(
        "--wait",
        action="store_true",
        help="apply nothing: wait until another process has brought the schema to head (exit 1 after --timeout)",
    )
    migrate.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")
    migrate.set_defaults(run=_migrate)
    eval_command.add_parser(commands)

    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(dest="action", required=True)
    create_tenant = tenants.add_parser("create", help="create a tenant")
    create_tenant.add_argument("name")
    create_tenant.set_defaults(run=_tenants_create)

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create_key = keys.add_parser("create", help="create an API key for a tenant (id or name)")
    create_key.add_argument("tenant")
    create_key.add_argument("--name", default=None, help="label for the key")
    create_key.set_defaults(run=_keys_create)
    revoke_key = keys.add_parser("revoke", help="revoke an API key by id")
    revoke_key.add_argument("key_id")
    revoke_key.set_defaults(run=_keys_revoke)

    consolidation = commands.add_parser("consolidation", help="consolidation maintenance").add_subparsers(
        dest="action", required=True
    )
    train = consolidation.add_parser(
        "train-recall",
        help="learn a scope's memory-recall projection from its consolidated history (GPU when there is one)",
        description="Fit Wq, Wk so that each consolidated segment recalls the segment it continues; keep them for "
        "the scope's later consolidations only if they beat identity recall on the latest quarter of its segments.",
    )
    train.add_argument("tenant", help="tenant id or name")
    train.add_argument("--user", default=None)
    train.add_argument("--agent", default=None)
    train.add_argument("--session", default=None)
    train.add_argument("--steps", type=int, default=200, help="optimizer steps")
    train.add_argument("--dim", type=int, default=None, help="projected dimension (default: the embedding's)")
    train.set_defaults(run=_train_recall)

    schema = commands.add_parser("openapi", help="print the REST API's OpenAPI document (what the app serves)")
    action = schema.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="update the repository's committed openapi.json")
    action.add_argument("--check", action="store_true", help="exit 1 if the committed openapi.json is out of date")
    schema.set_defaults(run=_openapi)

    # Everything after `mcp` is memsvc-mcp's own arguments (its --help included): a prefix character no argument
    # can contain keeps this parser from reading any of them as its options.
    mcp = commands.add_parser(
        "mcp",
        help="serve memory to MCP hosts as tools, over stdio or HTTP (memsvc-mcp; `memsvc mcp --help`)",
        add_help=False,
        prefix_chars="\0",
    )
    mcp.add_argument("args", nargs=argparse.REMAINDER)
    mcp.set_defaults(run=_mcp)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(get_settings(), level=getattr(args, "log_level", None))
    from memsvc.core.db import PgvectorMissing
    from memsvc.core.errors import ServiceError

    try:
        result: int = args.run(args)
        return result
    except (PgvectorMissing, ServiceError) as exc:
        print(f"memsvc: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
