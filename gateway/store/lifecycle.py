"""What the CLI does to the store itself, for either backend: ``migrate`` and the storage line
of ``check-config``. Nothing here prints the url's password."""

from __future__ import annotations

from gateway.config import StorageSettings
from gateway.errors import StorageError
from gateway.store.database import Database
from gateway.store.sqlite import SqliteStore


async def migrate(storage: StorageSettings) -> dict[str, object]:
    """Apply the schema migrations the database lacks; which database and its version now."""
    if storage.url is not None:
        from gateway.store.postgres import PgDatabase, PostgresStore, redacted

        version = await PostgresStore(PgDatabase(storage.url, max_size=1)).migrate()
        return {"backend": "postgresql", "database": redacted(storage.url), "schema": version}
    database = Database(storage.path, storage.synchronous)
    store = SqliteStore(database)
    await store.open()  # SQLite migrates on open
    await store.close()
    return {"backend": "sqlite", "database": str(storage.path), "schema": database.schema_version}


async def describe(storage: StorageSettings) -> str:
    """One line: the backend in use and, for PostgreSQL, that it connects with the schema this
    gateway knows; StorageError (with the reason) when it does not."""
    if storage.url is None:
        return f"storage: SQLite file {storage.path}"
    from gateway.store.postgres import PgDatabase, redacted

    database = PgDatabase(storage.url, min_size=1, max_size=1)
    where = redacted(storage.url)
    try:
        await database.open()
    except StorageError as exc:
        raise StorageError(f"storage: PostgreSQL {where}: {exc}") from exc
    await database.close()
    return f"storage: PostgreSQL {where}: connects, schema {database.schema_version}"
