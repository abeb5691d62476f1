"""Alembic's scripts for the state database: ``env.py`` and one module per revision in
``versions/``. Run by :mod:`watcher.store.upgrade`, never by an ``alembic.ini``."""
