"""buttress's own alembic environment: its revisions create and change the tables buttress owns.

It is run by :func:`buttress.db.upgrade` and ``buttress db upgrade``, never by an application's alembic:
its version table is ``buttress_alembic_version``, so an app keeps its own ``alembic_version`` and history.
"""
