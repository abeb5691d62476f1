"""How long to wait after a failure: one function for feeds and for delivery.

Exponential (the base, doubling per attempt), capped, with jitter so that many feeds or
alerts that failed together do not come back together; a server's Retry-After is honoured
when it asks for longer. ``set_testing`` turns the jitter off, so that tests can state
the exact times (after hynek/stamina's testing mode); production code never calls it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta

FEED_CAP = 86400.0  # a failing feed is still tried once a day
FEED_JITTER = 0.1
DELIVERY_CAP = 3600.0  # a failing notifier is still tried once an hour
DELIVERY_JITTER = 0.2

_testing = False


def delay(
    *,
    attempt: int,
    base: float,
    cap: float,
    jitter: float,
    retry_after: float | None = None,
) -> timedelta:
    """The wait after ``attempt`` consecutive failures: ``base`` doubling per attempt,
    times a random factor within ``1 ± jitter``, and never over ``cap``.

    ``retry_after`` (what the server asked for) wins when it is longer, up to ``cap``:
    a server that asks for a week is still tried within the cap.
    """
    wait = min(cap, base * 2 ** max(0, attempt - 1))
    if not _testing:
        wait *= random.uniform(1 - jitter, 1 + jitter)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return timedelta(seconds=min(wait, cap))


def set_testing(testing: bool) -> AbstractContextManager[None]:
    """Turn the jitter off (``True``) or on again: for tests only. The result, used as
    a context manager, restores the previous mode on exit."""
    global _testing
    previous, _testing = _testing, testing
    return _restore(previous)


@contextmanager
def _restore(previous: bool) -> Iterator[None]:
    global _testing
    try:
        yield
    finally:
        _testing = previous


def is_testing() -> bool:
    return _testing
