"""Fixtures: real loopback servers, started per test and shut down after it; a real
PostgreSQL server, started once per test process, with a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgserver import PostgresServer
from support import FeedServer, Receiver

from watcher.fetch import Fetcher
from watcher.store import Store


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files that start the daemon as a process (marked e2e) go first: they take
    two thirds of the suite's time. xdist hands out whole files (--dist loadfile), and
    with its default order (most tests first) they came last, leaving a worker alone
    with the soak or the cluster's chaos for a minute or more at the end."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The test process's PostgreSQL server (tests/pgserver.py says why one per process).

    If it cannot start, every test that needs it fails with the server's log (pytest
    keeps the failure for the session: it is not retried per test).
    """
    try:
        server = PostgresServer()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (the superuser's URL), dropped after it."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A state to open (``Store.open``, or a config's ``state:``) on each backend: a
    SQLite file that does not exist yet, or an empty PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "w.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(state_db: str | Path) -> Iterator[Store]:
    """A new state on each backend (``state_db``), closed after the test."""
    opened = Store.open(state_db)
    yield opened
    opened.close()


@pytest.fixture
def client() -> Iterator[Fetcher]:
    """watcher's fetcher, as the daemon makes it (tests/test_fetch.py has an httpx one)."""
    with Fetcher() as fetcher:
        yield fetcher
