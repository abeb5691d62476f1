"""Fixtures: real loopback servers, started per test and shut down after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import FeedServer, Receiver


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
