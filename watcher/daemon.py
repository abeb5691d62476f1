"""The long-running process: scheduling with APScheduler 3.x, signals, and shutdown.

Owns time and process life. The only module that imports APScheduler. Each feed
is one interval job (coalesced, never two at once, with a real misfire grace);
delivery of the outbox is a job of its own, so a slow notifier never delays polling.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from watcher.config import Config, FeedConfig
from watcher.fetch import make_fetcher
from watcher.notify import build_notifiers
from watcher.pipeline import deliver_pending, poll_feed
from watcher.rules import RuleSet
from watcher.store import Store

log = logging.getLogger(__name__)

DELIVERY_INTERVAL = 30.0
MAX_START_SPREAD = 30.0


class Daemon:
    """Polls every feed on its interval and delivers queued alerts until stopped."""

    def __init__(self, config: Config, *, delivery_interval: float = DELIVERY_INTERVAL) -> None:
        self.config = config
        self.delivery_interval = delivery_interval
        self.store = Store.open(config.state_path)
        self.ruleset = RuleSet.from_config(config)
        self.notifiers = build_notifiers(config.notifiers)
        self.fetcher = make_fetcher(config)
        self._stop = threading.Event()
        self._deliver_lock = threading.Lock()
        # Enough threads that the fetch limits, not the pool, bound concurrency.
        workers = max(2, min(config.fetch.max_connections, len(config.feeds)) + 1)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    # -- jobs -------------------------------------------------------------------

    def _poll(self, feed: FeedConfig) -> None:
        outcome = poll_feed(
            feed, config=self.config, fetcher=self.fetcher, store=self.store, ruleset=self.ruleset
        )
        if outcome.next_poll_at is not None and not self._stop.is_set():
            # Backing off (or told to wait by Retry-After): the next run waits until then.
            job = self.scheduler.get_job(f"feed:{feed.name}")
            if job is not None:
                job.modify(next_run_time=outcome.next_poll_at)
        if outcome.alerts and not self._stop.is_set():
            self._deliver()

    def _maintain(self) -> None:
        try:
            removed = self.store.prune_items(datetime.now(UTC))
            log.info("maintenance pruned_items=%d", removed)
        except Exception:
            log.exception("maintenance failed; it is retried tomorrow")

    def _deliver(self) -> None:
        # Polls and the periodic job may both ask for delivery; one pass at a time.
        if not self._deliver_lock.acquire(blocking=False):
            return
        try:
            deliver_pending(self.store, self.notifiers, max_age=self.config.delivery.max_age)
        except Exception:
            log.exception("delivery pass crashed; pending alerts stay queued")
        finally:
            self._deliver_lock.release()

    def _schedule(self) -> None:
        now = datetime.now(UTC)
        for feed in self.config.feeds:
            # Spread first polls so a large config does not fire everything at once.
            spread = random.uniform(0, min(feed.interval, MAX_START_SPREAD) * 0.1)
            self.scheduler.add_job(
                self._poll,
                "interval",
                args=(feed,),
                id=f"feed:{feed.name}",
                name=f"poll {feed.name}",
                seconds=feed.interval,
                jitter=min(feed.interval * 0.1, 60.0),
                next_run_time=now + timedelta(seconds=spread),
                misfire_grace_time=max(30, int(feed.interval)),
            )
        self.scheduler.add_job(
            self._deliver,
            "interval",
            id="deliver",
            name="deliver alerts",
            seconds=self.delivery_interval,
            next_run_time=now,
            misfire_grace_time=max(30, int(self.delivery_interval)),
        )
        self.scheduler.add_job(
            self._maintain,
            "interval",
            id="maintain",
            name="prune old items",
            hours=24,
            next_run_time=now + timedelta(minutes=5),
            misfire_grace_time=3600,
        )

    # -- process life -----------------------------------------------------------

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("signal received signal=%s; stopping", signal.Signals(signum).name)
        self._stop.set()

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the process exit status."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self._schedule()
        self.scheduler.start()
        log.info(
            "watcher started feeds=%d rules=%d notifiers=%d state=%s",
            len(self.config.feeds),
            len(self.config.rules),
            len(self.notifiers),
            self.config.state_path,
        )
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.scheduler.shutdown(wait=True)
            self.fetcher.close()
            self.store.close()
            log.info("watcher stopped")
        return 0
