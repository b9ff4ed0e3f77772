"""Run buttress's revisions on the connection :mod:`buttress.db._migrate` hands over (or as SQL text)."""

from __future__ import annotations

from alembic import context

from buttress.db._migration_status import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # --sql: render the statements for a DBA instead of running them
    context.configure(
        dialect_name=config.attributes["dialect"],
        literal_binds=True,
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )
else:
    context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
