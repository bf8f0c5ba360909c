# Alembic environment of the marketplace tables (mlkit.marketplace.tables); run through `upgrade_db(url)` or
# `alembic -c alembic.ini upgrade head` (the URL defaults to mlkit's settings.database_url).
from alembic import context

from mlkit.core import settings
from mlkit.db import Base, get_engine

if "mp_users" not in Base.metadata.tables:   # registers the tables on Base (a notebook may have defined them already)
    import mlkit.marketplace.tables  # noqa: F401

VERSION_TABLE = "mp_alembic_version"


def _include_name(name, type_, parent_names) -> bool:
    "Only the marketplace's tables: every domain shares `Base.metadata` and the database."
    return type_ != "table" or (name or "").startswith("mp_") and name != VERSION_TABLE


def _include_object(obj, name, type_, reflected, compare_to) -> bool:
    "Other domains' tables in the shared metadata (paper trading, ...) are not the marketplace's business."
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name.startswith("mp_")


config = context.config
url = config.get_main_option("sqlalchemy.url") or settings.database_url
opts = dict(target_metadata=Base.metadata, version_table=VERSION_TABLE, include_name=_include_name, include_object=_include_object, compare_type=True,
            render_as_batch=url.startswith("sqlite"))

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, **opts)
    with context.begin_transaction():
        context.run_migrations()
else:
    with get_engine(url).connect() as connection:
        context.configure(connection=connection, **opts)
        with context.begin_transaction():
            context.run_migrations()
