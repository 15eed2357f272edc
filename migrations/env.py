from alembic import context
from sqlalchemy import create_engine, pool

from memsvc.core.db import sqlalchemy_url
from memsvc.core.migrate import include_in_autogenerate
from memsvc.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, include_object=include_in_autogenerate
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
