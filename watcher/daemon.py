"""The long-running process: scheduling with APScheduler 3.x, signals, reload, systemd.

Owns time and process life. The only module that imports APScheduler. Each feed is
one interval job (coalesced, never two at once, jittered, with a real misfire grace);
delivery of the outbox is a job of its own, so a slow notifier never delays polling.
The main thread only waits: for signals (SIGTERM/SIGINT stop, SIGHUP reloads), and to
tell systemd it is alive, which it stops doing when polling has stalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor as APSchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler

from watcher import delivery
from watcher._version import __version__
from watcher.config import POSTGRES_INSTALL, Config, FeedConfig, load_config
from watcher.exceptions import ConfigError, StoreError
from watcher.fetch import Fetcher, abort_all, allow_fetches, make_fetcher
from watcher.models import FeedState
from watcher.notify import Notifier, build_notifiers
from watcher.pipeline import configure_parsing, deliver_pending, evaluate_spikes, poll_feed
from watcher.rules import RuleSet
from watcher.store import DaemonRecord, open_store
from watcher.store.lock import StateLock
from watcher.systemd import Notifier as Systemd
from watcher.workers import PARSERS

if TYPE_CHECKING:
    from watcher.cluster import Cluster, DispatchPlan
    from watcher.metrics import Metrics
    from watcher.web import Background

log = logging.getLogger(__name__)

DELIVERY_INTERVAL = 30.0
TICK = 1.0  # seconds between looks at what is due
MIN_PACE = 5.0  # seconds before a poll that could not be recorded is tried again
MAX_START_SPREAD = 30.0
STATUS_INTERVAL = 30.0
LIVENESS = 5.0  # seconds between looks at which daemons sharing a PostgreSQL state live
AGREEMENT = 60.0  # seconds between checks that a cluster's nodes run the same config
# Seconds between looks at the spikes (and sooner: right after a poll that counted a
# mention of a rule or an entity with a spike: setting). The looks also end episodes.
SPIKE_INTERVAL = 60.0
COUNTS_KEPT = timedelta(days=8)  # mention counts are kept at least this long: the baseline
DAEMONS_KEPT = timedelta(days=1)  # a daemon not heard from for longer is forgotten


@dataclass
class _Running:
    """What the jobs use; replaced as a whole on reload, so a poll sees one consistent set."""

    config: Config
    ruleset: RuleSet
    notifiers: dict[str, Notifier]
    fetcher: Fetcher
    # The feeds to poll, named once: the ticker asks every second, and listing 10,000
    # names afresh each time was most of what an idle daemon did.
    feed_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.feed_names = frozenset(f.name for f in self.config.active_feeds)


class Daemon:
    """Polls every feed on its interval and delivers queued alerts until stopped."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        delivery_interval: float = DELIVERY_INTERVAL,
        stop_timeout: float = 10.0,
        systemd: Systemd | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.config_path = config_path
        self.delivery_interval = delivery_interval
        self.stop_timeout = stop_timeout
        self.systemd = systemd or Systemd()
        self.metrics_port = metrics_port
        self.metrics: Metrics | None = None
        if metrics_port is not None:  # prometheus-client (12 MiB) only when asked for
            from watcher.metrics import Metrics

            self.metrics = Metrics()
        # One daemon per SQLite state: the lock first, so a second daemon leaves at once
        # (StateLocked says who holds it) without opening, let alone migrating, anything.
        # A PostgreSQL state has no file to lock: several daemons share it by leases.
        self.lock = StateLock(config.state_path) if config.backend == "sqlite" else None
        if self.lock is not None:
            self.lock.acquire()
        self.node = f"{socket.gethostname()}:{os.getpid()}"
        self.store = open_store(config)
        # web: in the config: the console, checked now (a public address without auth
        # refuses to start), served from its own read-only connection once running.
        self.web: Background | None = None
        if config.web is not None:
            from watcher import web

            self._web_plan = web.plan(config)
        # PostgreSQL: a lock that says, for as long as this process lives, that it does;
        # the other daemons free its claims at once when it is gone (see _release_dead).
        self.store.hold_node(self.node)
        self._next_liveness = 0.0  # monotonic time of the next look at who lives
        if self.store.migration is not None and self.store.migration.changed:
            log.info("%s", self.store.migration.describe(config.state_name))
        self.record: DaemonRecord | None = None  # written when the daemon starts running
        for warning in config.warnings:
            log.warning("config %s", warning)
        configure_parsing(config)
        self.current = _Running(
            config,
            RuleSet.from_config(config),
            build_notifiers(config.active_notifiers),
            make_fetcher(config),
        )
        self._retired: list[Fetcher] = []
        self._stop = threading.Event()
        self._reload = threading.Event()
        # Signals noted by _on_signal for the main loop, and the pipe that wakes it (run()).
        self._signals: deque[int] = deque()
        self._pipe: tuple[int, int] | None = None
        self._deliver_lock = threading.Lock()
        # Cluster: the notifiers this node runs a delivery pass for, each with whether a
        # job asked for another round meanwhile (see deliver_job).
        self._passes: dict[str, bool] = {}
        self._passes_lock = threading.Lock()
        self._delivery_wanted = threading.Event()  # a poll queued alerts since the last pass
        self._busy_lock = threading.Lock()
        self._busy: dict[str, float] = {}  # feed -> monotonic start of its running poll
        self._last_poll_done = time.monotonic()
        self._wall: Callable[[], float] = time.time
        self._clock_mark = (self._wall(), time.monotonic())
        # feed -> monotonic time before which not to poll; read and written under _busy_lock
        self._paced: dict[str, float] = {}
        self._backlog = False  # the last tick left due feeds unclaimed for want of slots
        # Held while due feeds are claimed: by the ticker, or by a poll that freed a slot.
        self._claiming = threading.Lock()
        # After a reload that could not be written: feed -> when it is due (see _sync).
        self._unsynced: dict[str, datetime] | None = None
        self._polls = ThreadPoolExecutor(
            max_workers=config.fetch.max_connections, thread_name_prefix="watcher-poll"
        )
        # PostgreSQL: a node of a cluster, whose work comes from the shared job queue.
        self.cluster: Cluster | None = None
        self._next_agreement = 0.0
        self._nodes_checked: frozenset[tuple[str, str | None]] = frozenset()  # (node, digest)
        if config.backend == "postgresql":
            self.cluster = self._join(config)
        # APScheduler runs the ticker, delivery and maintenance; polls run in _polls.
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": APSchedulerPool(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )

    @property
    def config(self) -> Config:
        return self.current.config

    def _join(self, config: Config) -> Cluster:
        """The queue's schema beside the state's (created or migrated under the same
        lock), and this node's worker, started by run()."""
        try:
            from watcher.cluster import Cluster, migrate_queue
        except ImportError as exc:
            raise StoreError(
                f"state database {config.state_name}: several nodes share a PostgreSQL state "
                f"through procrastinate, which is missing ({exc.name}): {POSTGRES_INSTALL}"
            ) from None

        done = migrate_queue(self.store.engine)
        if done is not None:
            log.info("%s on %s", done, config.state_name)
        url = config.state_url
        assert url is not None
        return Cluster(
            self,
            url=url,
            name=config.state_name,
            concurrency=config.fetch.max_connections,
            per_host=min(config.fetch.max_per_host, config.fetch.max_connections),
            stall_timeout=config.cluster.stall_timeout,
            dispatch_interval=config.cluster.dispatch_interval,
            stop_timeout=self.stop_timeout,
        )

    # -- jobs -------------------------------------------------------------------

    def _poll(self, name: str) -> None:
        running = self.current
        try:
            feed = running.config.feed(name)
        except KeyError:  # removed by a reload while this run was queued
            return
        with self._busy_lock:
            self._busy[name] = started = time.monotonic()
        try:
            outcome = poll_feed(
                feed,
                config=running.config,
                fetcher=running.fetcher,
                store=self.store,
                ruleset=running.ruleset,
                node=self.node,
            )
        finally:
            with self._busy_lock:
                self._busy.pop(name, None)
                self._last_poll_done = time.monotonic()
        if self.metrics is not None:
            self.metrics.record_poll(outcome, time.monotonic() - started)
        if self._stop.is_set():
            return
        if self._backlog:  # feeds were left due for want of a free slot: one is free now
            self._tick()  # here, not by waking the ticker (see _tick)
        if not outcome.mentioned.isdisjoint(running.config.spike_keys):
            self._wake("spikes")
        if outcome.error_kind == "store":
            # Nothing was recorded (a full disk...): the feed is still due in the store;
            # pace its retries at its interval instead of every tick.
            with self._busy_lock:
                self._paced[name] = time.monotonic() + max(MIN_PACE, feed.interval)
        if outcome.alerts and self.cluster is not None:
            self.cluster.wake_delivery(running.notifiers)
        elif outcome.alerts:
            # Wake the delivery job rather than deliver here: a slow notifier must never
            # hold up this feed's next poll.
            self._delivery_wanted.set()
            if not self._deliver_lock.locked():
                self._wake_delivery()
            # else the pass in progress wakes it when it ends (see _deliver)

    def _wake(self, job_id: str) -> None:
        job = self.scheduler.get_job(job_id)
        if job is not None and not self._stop.is_set():
            job.modify(next_run_time=datetime.now(UTC))

    def _spikes(self) -> None:
        """One look at the spikes; a raised one's alerts are delivered at once. Every node
        of a cluster looks: the store lets one raise each episode (see evaluate_spikes)."""
        try:
            outcome = evaluate_spikes(self.store, self.config, now=self.store.now())
        except StoreError as exc:
            log.error("spikes not looked at, trying again: %s", exc)
            return
        except Exception:
            log.exception("looking at the spikes crashed; trying again")
            return
        log.debug(
            "spikes looked watches=%d opened=%d closed=%d",
            len(self.config.spike_watches),
            len(outcome.opened),
            len(outcome.closed),
        )
        if outcome.alerts:
            self._wake_delivery()

    def _wake_delivery(self) -> None:
        if self.cluster is not None:
            self.cluster.wake_delivery(self.current.notifiers)
            return
        self._wake("deliver")

    def _deliver(self) -> None:
        if not self._deliver_lock.acquire(blocking=False):
            return
        self._delivery_wanted.clear()
        try:
            self._deliver_pass()
        finally:
            self._deliver_lock.release()
        # Alerts queued while this pass ran: after the release, so a poll that queues
        # one now either sees the lock free and wakes delivery itself, or is seen here.
        if self._delivery_wanted.is_set():
            self._wake_delivery()

    def _deliver_pass(self) -> None:
        try:
            running = self.current
            muted = set(running.config.notifiers) - set(running.notifiers)
            deliver_pending(
                self.store,
                running.notifiers,
                node=self.node,
                muted=muted,
                max_age=running.config.delivery.max_age,
                retry=running.config.delivery.retry,
                observe=self.metrics.record_delivery if self.metrics is not None else None,
                now=self.store.now,  # leases by the database's clock (PostgreSQL)
                watched=running.config.spike_keys,
            )
            self._wake_delivery_at(delivery.next_wake(self.store.pending_times(), muted=muted))
        except Exception:
            log.exception("delivery pass crashed; pending alerts stay queued")

    def _wake_delivery_at(self, due: datetime | None) -> None:
        """Run delivery again when the next retry is due, if that is before the next tick:
        a retry policy of seconds must not wait for a 30-second delivery interval."""
        job = self.scheduler.get_job("deliver")
        if due is None or job is None or job.next_run_time is None or self._stop.is_set():
            return
        # Already due but not delivered by this pass (the database cannot be written):
        # that waits for the regular tick, or a full disk would spin the delivery loop.
        if datetime.now(UTC) < due < job.next_run_time:
            job.modify(next_run_time=due)

    # -- cluster jobs (watcher/cluster.py) -----------------------------------------

    def poll_job(self, name: str, lag: Callable[[float], None]) -> bool:
        """A poll job from the queue: poll the feed if this node can claim it (it is due
        and nobody polls it); False when there was nothing to do."""
        assert self.cluster is not None
        running = self.current
        try:
            feed = running.config.feed(name)
        except KeyError:  # a feed this node's config does not have (yet): left to others
            return False
        if not feed.enabled or self._stop.is_set():
            return False
        with self._busy_lock:
            if name in self._busy:
                return False
            self._busy[name] = time.monotonic()
        claimed = False
        try:
            lease = timedelta(seconds=2 * running.config.fetch.deadline + 60)
            now = self.store.now()
            due = self.store.feed_state(name).next_poll_at
            claimed = self.store.claim_poll(name, node=self.node, now=now, until=now + lease)
        except StoreError as exc:
            log.error("poll feed=%s not started, the state cannot be written: %s", name, exc)
        finally:
            if not claimed:
                with self._busy_lock:
                    self._busy.pop(name, None)
        if not claimed:
            return False
        lag(max(0.0, (now - due).total_seconds()) if due is not None else 0.0)
        if self.metrics is not None and due is not None:
            self.metrics.dispatch_lag.observe(max(0.0, (now - due).total_seconds()))
        from watcher.cluster import host_of

        try:
            with self.cluster.slots.hold(host_of(feed.url)):
                self._poll(name)
        except StoreError as exc:  # no slot: the claim is freed as idle (_keep_claims)
            log.error("poll feed=%s not started, no host slot: %s", name, exc)
            with self._busy_lock:
                self._busy.pop(name, None)
        return True

    def deliver_job(self, notifier: str) -> None:
        """A delivery job from the queue: one notifier's due alerts, in order. A notifier
        this node does not know is left to a node that does (the configs disagree),
        unless every node runs this config: then it is gone and its alerts give up."""
        running = self.current
        if notifier not in running.notifiers and (
            notifier in running.config.notifiers or not self._agreed_by_all()
        ):
            return
        # One pass per notifier at a time on this node: an alert this node has claimed
        # is free to this node again (Store.claim), so a second pass running beside the
        # first would send it a second time. A job that finds a pass running asks it for
        # one more round instead (for the alerts queued since it read what was due).
        with self._passes_lock:
            if notifier in self._passes:
                self._passes[notifier] = True
                return
            self._passes[notifier] = False
        again = True
        while again:
            try:
                running = self.current
                deliver_pending(
                    self.store,
                    running.notifiers,
                    node=self.node,
                    max_age=running.config.delivery.max_age,
                    retry=running.config.delivery.retry,
                    observe=self.metrics.record_delivery if self.metrics is not None else None,
                    now=self.store.now,
                    only=notifier,
                    watched=running.config.spike_keys,
                )
            except Exception:
                log.exception("delivery to notifier=%s crashed; its alerts stay queued", notifier)
            with self._passes_lock:
                again = self._passes[notifier] and not self._stop.is_set()
                if again:
                    self._passes[notifier] = False
                else:
                    del self._passes[notifier]

    def dispatch_plan(self) -> DispatchPlan:
        """What is due now: the feeds every live node knows, and notifiers with alerts."""
        from watcher.cluster import DispatchPlan

        running = self.current
        names = self._known_by_all(running.feed_names)
        now = self.store.now()
        feeds = self.store.due_feeds(names, now, node="", limit=len(names))
        muted = set(running.config.notifiers) - set(running.notifiers)
        notifiers = [n for n in self.store.due_notifiers(now) if n not in muted]
        return DispatchPlan(tuple(feeds), tuple(notifiers))

    def _live_records(self) -> list[DaemonRecord]:
        records = [r for r in self.store.daemon_records() if r.stopped_at is None]
        alive = self.store.alive([r.node for r in records])
        return [r for r in records if r.node in alive]

    def _known_by_all(self, names: frozenset[str]) -> frozenset[str]:
        """Of this node's feeds, those every live node knows: a job for a feed that a
        node's config lacks would come back undone from that node."""
        known = names
        for record in self._live_records():
            if record.node != self.node and record.feeds is not None:
                known &= record.feeds
        return known

    def _agreed_by_all(self) -> bool:
        digest = self.config.digest
        return all(r.config_digest == digest for r in self._live_records())

    def _check_agreement(self) -> None:
        """Log, every minute, the nodes whose config differs from this one's."""
        try:
            records = self._live_records()
        except StoreError as exc:
            log.error("cannot read the cluster's nodes: %s", exc)
            return
        self._nodes_checked = frozenset((r.node, r.config_digest) for r in records)
        digest = self.config.digest
        mine = {f.name for f in self.config.active_feeds}
        for record in records:
            if record.node == self.node or record.config_digest in (None, digest):
                continue
            theirs = record.feeds or frozenset()
            log.error(
                "config differs between nodes: %s runs %s, this node (%s) runs %s; feeds "
                "only this node has=%s, only that node has=%s (only feeds every node knows "
                "are polled); reload every node with the same config",
                record.node,
                record.config_digest,
                self.node,
                digest,
                _names(sorted(mine - theirs)),
                _names(sorted(theirs - mine)),
            )

    def _nodes_changed(self) -> bool:
        try:
            records = self._live_records()
        except StoreError:
            return False  # said by the agreement check itself
        return frozenset((r.node, r.config_digest) for r in records) != self._nodes_checked

    def _keep_claims(self) -> None:
        """Cluster: free the dead nodes' claims, and this node's own on feeds it does not
        poll (a poll whose outcome the database could not take left its claim): at once,
        so that a feed is polled again as soon as the database is back. The claims are
        read before the polls running are looked at, and freed only if unchanged: a
        poll that starts meanwhile claims its feed anew and keeps that claim."""
        self._release_dead()
        try:
            held = self.store.held_claims(self.node)
            with self._busy_lock:
                idle = {name: until for name, until in held.items() if name not in self._busy}
            freed = self.store.release_idle_claims(self.node, idle)
        except StoreError as exc:
            log.error("cannot free this node's idle claims, trying again: %s", exc)
            return
        if freed:
            log.info("idle claims freed feeds=%s", _names(freed))

    def _observe_queue(self) -> None:
        if self.metrics is None or self.cluster is None:
            return
        try:
            stats = self.cluster.stats()
            names = [f.name for f in self.config.active_feeds]
            overdue = self.store.most_overdue(names, self.store.now())
        except Exception as exc:
            log.debug("queue metrics not read: %s", exc)
            return
        for state in ("waiting", "running", "stalled", "failed"):
            self.metrics.queue_jobs.labels(state).set(getattr(stats, state))
        self.metrics.most_overdue.set(overdue[1] if overdue is not None else 0.0)

    def _maintain(self) -> None:
        try:
            now = datetime.now(UTC)
            config = self.config
            removed = self.store.prune_items(now)
            forgotten = self.store.forget_text(now - timedelta(seconds=config.retention))
            stories = self.store.forget_stories(
                now - timedelta(seconds=config.story_window),
                now - timedelta(seconds=config.retention),
            )
            counts = self.store.forget_mentions(
                now - max(timedelta(seconds=config.retention), COUNTS_KEPT)
            )
            # `watcher status` shows a daemon that is gone for a day, then it goes.
            daemons = self.store.forget_daemons(now - DAEMONS_KEPT, keep=self.node)
            jobs = 0
            if self.cluster is not None:
                from watcher.cluster import prune_jobs

                jobs = prune_jobs(self.store)
            log.info(
                "maintenance pruned_items=%d texts_dropped=%d story_rows_dropped=%d "
                "count_rows_dropped=%d daemon_rows_dropped=%d finished_jobs_dropped=%d",
                removed,
                forgotten,
                stories,
                counts,
                daemons,
                jobs,
            )
        except Exception:
            log.exception("maintenance failed; it is retried tomorrow")

    # -- scheduling -------------------------------------------------------------

    def _tick(self) -> None:
        """Claim what is due and poll it, in this thread: APScheduler's ticker, or a poll's that
        freed a slot while feeds were left due. (Waking the ticker instead, while it still
        claimed, made APScheduler skip the run with a warning, for nearly every poll of a
        big first round.) One thread claims at a time, counting the free slots afresh;
        while one does, another has nothing to add: the next poll to end, or the next
        tick, claims for the slots freed meanwhile."""
        if self._stop.is_set() or not self._claiming.acquire(blocking=False):
            return
        try:
            self._claim_due()
        finally:
            self._claiming.release()

    def _claim_due(self) -> None:
        """Claim what is due and poll it: the schedule lives in the store (next_poll_at),
        so a restart resumes each feed where it was, and only the holder of a feed's
        claim records its poll."""
        if self._unsynced is not None:
            self._sync()
        running = self.current
        mono = time.monotonic()
        if self.lock is None and mono >= self._next_liveness:
            self._next_liveness = mono + LIVENESS
            self._release_dead()
        with self._busy_lock:
            skip = set(self._busy)
            free = running.config.fetch.max_connections - len(skip)
            for name, until in list(self._paced.items()):
                if until > mono:
                    skip.add(name)
                else:
                    del self._paced[name]
        names = running.feed_names
        lease = timedelta(seconds=2 * running.config.fetch.deadline + 60)
        try:
            now = self.store.now()  # leases by the database's clock (PostgreSQL)
            due = self.store.due_feeds(names, now, node=self.node, limit=free, skip=skip)
            # Maybe more due than slots: the next poll to end claims. Also when no slot
            # was free at all (the polls that ended meanwhile had theirs taken by another
            # tick): asking APScheduler for a tick at once found the same, in a loop.
            self._backlog = len(due) >= free
            for name in due:
                if not self.store.claim_poll(name, node=self.node, now=now, until=now + lease):
                    continue  # another process claimed it first
                with self._busy_lock:
                    self._busy[name] = time.monotonic()
                self._polls.submit(self._poll, name)
            if not self._backlog:  # (the feeds claimed now are due again only after)
                self._tick_at(self.store.next_due(names, skip=skip.union(due)))
        except StoreError as exc:
            log.error("cannot read or claim due feeds, trying again shortly: %s", exc)
            with self._busy_lock:
                for name in names - skip:
                    self._paced[name] = mono + MIN_PACE

    def _release_dead(self) -> None:
        """PostgreSQL: free the claims of daemons that are gone (their node lock is free),
        so that a feed one was polling, or an alert it was sending, is free at once and
        not when its lease runs out; and make sure this daemon still holds its own lock."""
        try:
            dead, released = self.store.release_dead_claims(keep=self.node, now=self.store.now())
        except StoreError as exc:
            log.error("cannot tell which daemons on the state live, trying again: %s", exc)
            return
        if released:
            log.info(
                "claims of a stopped daemon released count=%d nodes=%s", released, _names(dead)
            )
            self._wake_delivery()  # an alert it was sending is due now

    def _tick_at(self, when: datetime | None) -> None:
        """Look at what is due at ``when`` rather than at the next regular tick, when that
        is sooner: a feed polled every second is polled every second, not every two."""
        job = self.scheduler.get_job("tick")
        if when is None or job is None or job.next_run_time is None or self._stop.is_set():
            return
        when = max(when, datetime.now(UTC))
        if when < job.next_run_time:
            job.modify(next_run_time=when)

    def _spread(self, feed: FeedConfig) -> float:
        """Spread rescheduled polls so that many feeds do not fire in the same second."""
        return random.uniform(0, min(feed.interval, MAX_START_SPREAD) * 0.1)

    def _schedule(self) -> dict[str, FeedState]:
        """The ticker and the other jobs; every configured feed's state, once it has a row."""
        now = datetime.now(UTC)
        states = self.store.sync_feeds([(f.name, f.url) for f in self.config.active_feeds], now)
        if self.cluster is None:
            self._schedule_embedded(now)
        self.scheduler.add_job(
            self._spikes,
            "interval",
            id="spikes",
            name="look at the spikes",
            seconds=SPIKE_INTERVAL,
            next_run_time=now,
            misfire_grace_time=max(30, int(SPIKE_INTERVAL)),
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
        return states

    def _schedule_embedded(self, now: datetime) -> None:
        """One process on a SQLite state: APScheduler's ticker claims and polls."""
        self.scheduler.add_job(
            self._tick,
            "interval",
            id="tick",
            name="poll what is due",
            seconds=TICK,
            next_run_time=now,
            misfire_grace_time=max(30, int(TICK)),
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

    # -- reload -----------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config. Invalid: log every error and keep running the old one."""
        if self.config_path is None:
            log.warning("reload requested, but the config did not come from a file")
            return False
        self.systemd.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload refused: %s", issue)
            log.error("keeping the running config (%s)", self.config.summary())
            self.systemd.send(READY=1, STATUS="reload refused: the config has errors")
            return False
        for warning in new.warnings:
            log.warning("config %s", warning)
        if new.state_target != self.config.state_target:
            log.warning(
                "the state path changed; that takes a restart, keeping %s", self.config.state_name
            )
        self._apply(new)
        self.systemd.send(READY=1)
        return True

    def _apply(self, new: Config) -> None:
        old = self.current
        fetcher = old.fetcher
        if new.fetch != old.config.fetch:
            self._retired.append(old.fetcher)  # polls in flight may still use it
            fetcher = make_fetcher(new)
        notifiers = build_notifiers(new.active_notifiers)
        configure_parsing(new)
        self.current = _Running(new, RuleSet.from_config(new), notifiers, fetcher)
        before = {f.name: f for f in old.config.active_feeds}
        after = {f.name: f for f in new.active_feeds}
        changed = [f for n, f in after.items() if n in before and before[n] != f]
        added = [f for n, f in after.items() if n not in before]
        # A new feed is due at once (its silent baseline); a changed one is polled soon.
        now = datetime.now(UTC)
        self._unsynced = {
            **(self._unsynced or {}),
            **{f.name: now + timedelta(seconds=self._spread(f)) for f in [*changed, *added]},
        }
        self._sync()
        if self.record is not None:
            try:
                self.store.daemon_config(self.node, new.digest, [f.name for f in new.active_feeds])
            except StoreError as exc:
                log.error("cannot record the reloaded config in the state: %s", exc)
            self._next_agreement = 0.0  # say at once whether the nodes agree now
        log.info(
            "config reloaded feeds=%d added=%s removed=%s changed=%s rules=%d notifiers=%d",
            len(new.active_feeds),
            _names(f.name for f in added),
            _names(sorted(before.keys() - after.keys())),
            _names(f.name for f in changed),
            len(new.rules),
            len(notifiers),
        )

    def _sync(self) -> None:
        """Give the config's feeds their rows and the reloaded ones their next poll; if the
        state cannot be written now (a full disk), the ticker tries again."""
        assert self._unsynced is not None
        try:
            active = self.current.config.active_feeds
            self.store.sync_feeds([(f.name, f.url) for f in active], datetime.now(UTC))
            self.store.reschedule(self._unsynced)
        except StoreError as exc:
            log.error("the reloaded feeds are not scheduled yet, trying again: %s", exc)
            return
        self._unsynced = None

    def check_clock(self, *, tolerance: float = 60.0) -> float:
        """Reschedule every feed if the wall clock jumped; returns the jump in seconds.

        Feeds are due at absolute times: after the clock goes back a day they would wait
        a day, and after it leaps forward every one is due at once. Comparing wall time
        with the monotonic clock tells the two apart from real time passing.
        """
        wall, mono = self._wall(), time.monotonic()
        last_wall, last_mono = self._clock_mark
        self._clock_mark = (wall, mono)
        jump = (wall - last_wall) - (mono - last_mono)
        if abs(jump) < tolerance:
            return 0.0
        log.warning("wall clock jumped by %+.0f s; rescheduling every feed", jump)
        now = datetime.fromtimestamp(wall, UTC)
        self.store.reschedule(
            {f.name: now + timedelta(seconds=self._spread(f)) for f in self.config.active_feeds}
        )
        for name in ("tick", "deliver"):
            job = self.scheduler.get_job(name)
            if job is not None:
                job.modify(next_run_time=now)
        job = self.scheduler.get_job("deliver")
        if job is not None:
            job.modify(next_run_time=now)
        return jump

    # -- health -----------------------------------------------------------------

    def stalled(self) -> str | None:
        """Why polling looks stuck, or None when it is healthy."""
        if not self.scheduler.running:
            return "the scheduler is not running"
        config = self.config
        limit = 2 * config.fetch.deadline + 60
        now = time.monotonic()
        with self._busy_lock:
            stuck = [name for name, since in self._busy.items() if now - since > limit]
            idle = now - self._last_poll_done
        if stuck:
            return f"polls running for over {limit:g} s: {', '.join(sorted(stuck))}"
        if self.cluster is not None:
            # Other nodes may take every job for a while: the question is whether this
            # node's worker runs, not whether it polled lately.
            return self.cluster.problem()
        if config.active_feeds:
            shortest = min(f.interval for f in config.active_feeds)
            if idle > 3 * max(shortest, 60) + limit:
                return f"no poll has finished for {idle:.0f} s"
        return None

    def status_line(self) -> str:
        counts = self.store.alert_counts()
        # Of the feeds polled: the state also keeps feeds since removed or muted, and one
        # that failed before it went would have been counted for ever.
        names = self.current.feed_names
        failing = sum(1 for name in self.store.failing_feeds() if name in names)
        return (
            f"feeds={len(names)} failing={failing} "
            f"pending_alerts={counts.get('pending', 0)} failed_alerts={counts.get('failed', 0)}"
        )

    # -- process life -----------------------------------------------------------

    def stop(self) -> None:
        """Stop running, from any thread (a signal goes through :meth:`_on_signal`)."""
        self._stop.set()
        self._wake_main()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Note the signal and wake the main loop, which logs it and acts on it.

        A handler runs between any two bytecodes of the main thread, even inside a write
        to stderr: logging from here failed there ("reentrant call inside
        BufferedWriter") and the SIGTERM was lost, the daemon running on. So no I/O but
        a pipe write, and no lock the main thread may hold: it never waits on ``_stop``
        nor sets it (it sleeps on the pipe), so setting it here is safe, and the other
        threads stop taking work at once.
        """
        if signum != signal.SIGHUP:
            self._stop.set()
        self._signals.append(signum)
        self._wake_main()

    def _wake_main(self) -> None:
        if self._pipe is not None:
            # Full: the loop wakes anyway.
            with contextlib.suppress(OSError):
                os.write(self._pipe[1], b"\0")

    def _sleep(self, seconds: float) -> None:
        """Wait for the main loop's next turn, a signal or :meth:`stop`, then act on signals."""
        assert self._pipe is not None  # run() made it
        waiting = select.poll()  # not select(): it refuses a descriptor over 1023
        waiting.register(self._pipe[0], select.POLLIN)
        if waiting.poll(seconds * 1000):
            with contextlib.suppress(BlockingIOError):
                os.read(self._pipe[0], 4096)
        self._take_signals()

    def _take_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum == signal.SIGHUP:
                log.info("signal received signal=SIGHUP; reloading")
                self._reload.set()
            else:  # _stop is set already
                log.info("signal received signal=%s; stopping", signal.Signals(signum).name)

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; returns the process exit status."""
        self._pipe = os.pipe()  # not inherited by child processes (PEP 446)
        for end in self._pipe:
            os.set_blocking(end, False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        allow_fetches()
        # This process holds the state's lock: any claim of another process is a dead
        # one's, free at once (an alert it was sending is due now, not at its retry).
        # On PostgreSQL, where other daemons live, only the claims of those that are gone.
        if self.lock is not None:
            released = self.store.release_claims(keep=self.node, now=self.store.now())
            if released:
                log.info("claims of a stopped daemon released count=%d", released)
        else:
            self._release_dead()
            self._next_liveness = time.monotonic() + LIVENESS
        if self.config.web is not None:  # first: a port in use stops the start here
            self._start_web()
        states = self._schedule()
        self._log_destinations(states)  # before the start, while first polls are still ahead
        self._record_start()  # (a cluster's dispatcher reads which feeds this node knows)
        self.scheduler.start()
        if self.cluster is not None:
            self.cluster.start()
        server = None
        if self.metrics is not None and self.metrics_port is not None:
            server = self.metrics.serve(self.metrics_port, health=self.stalled)
            log.info(
                "metrics on http://127.0.0.1:%d/metrics and /healthz", server.server_address[1]
            )
        log.info(
            "watcher started feeds=%d rules=%d notifiers=%d state=%s",
            len(self.config.active_feeds),
            len(self.config.active_rules),
            len(self.current.notifiers),
            self.config.state_name,
        )
        self.systemd.send(READY=1, STATUS=self._safe_status())
        ping_every = self.systemd.watchdog_interval
        next_ping = next_status = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                self.check_clock()
                now = time.monotonic()
                if ping_every is not None and now >= next_ping:
                    problem = self.stalled()
                    if problem is None:
                        self.systemd.send(WATCHDOG=1)
                    else:
                        log.error("not pinging the watchdog: %s", problem)
                    next_ping = now + ping_every
                if now >= next_status:
                    self.systemd.send(STATUS=self._safe_status())
                    self._heartbeat()
                    next_status = now + STATUS_INTERVAL
                if self.cluster is not None:
                    self._cluster_chores(now)
                self._sleep(min(1.0, ping_every or 1.0))
        finally:
            if server is not None:
                server.shutdown()
            if self.web is not None:
                self.web.stop()
            self._take_signals()  # one that came after the loop's last look
            self._shutdown()
            pipe, self._pipe = self._pipe, None
            for end in pipe:
                os.close(end)
        return 0

    def _start_web(self) -> None:
        """Serve the console (``web:``) from a thread, on a read-only store of its own, so
        that it can never write the state whatever a page does."""
        from watcher.web import Background

        reader = open_store(self.config, readonly=True)
        try:
            self.web = Background(reader, lambda: self.config, self._web_plan)
            self.web.start()
        except BaseException:
            self.web = None
            reader.close()
            raise

    def _cluster_chores(self, now: float) -> None:
        """A node's share of keeping the cluster sound, from the main thread."""
        if self._unsynced is not None:  # a reload the state could not take yet
            self._sync()
        if now >= self._next_liveness:
            self._next_liveness = now + LIVENESS
            self._keep_claims()
            self._observe_queue()
            if self._nodes_changed():  # a node came, went or reloaded: check now, not in a minute
                self._next_agreement = now
        if now >= self._next_agreement:
            self._next_agreement = now + AGREEMENT
            self._check_agreement()

    def _record_start(self) -> None:
        """Say in the state that this daemon runs, for `watcher status` (and other hosts)."""
        now = datetime.now(UTC)
        self.record = DaemonRecord(
            self.node,
            socket.gethostname(),
            os.getpid(),
            __version__,
            now,
            now,
            config_digest=self.config.digest,
            feeds=frozenset(f.name for f in self.config.active_feeds),
        )
        try:
            self.store.daemon_started(self.record)
        except StoreError as exc:
            log.error("cannot record this daemon in the state: %s", exc)

    def _heartbeat(self) -> None:
        if self.record is None:
            return
        try:
            self.store.daemon_heartbeat(self.record.node, datetime.now(UTC))
        except StoreError as exc:  # a full disk must not stop the daemon; status will say
            log.error("heartbeat not recorded: %s", exc)

    def _log_destinations(self, statuses: Mapping[str, FeedState]) -> None:
        """Say where alerts go, which cannot arrive, and when polling starts sending."""
        for name, notifier in self.current.notifiers.items():
            log.info(
                "notifier name=%s url=%s format=%s",
                name,
                notifier.redacted_url,
                notifier.style.format,
            )
            problem = notifier.problem()
            if problem is not None:
                log.warning("notifier %s: %s; its alerts cannot be delivered here", name, problem)
        feeds = self.config.active_feeds
        if not feeds:
            return
        new = [f.name for f in feeds if f.name not in statuses or not statuses[f.name].baselined]
        runs = [
            s.next_poll_at
            for f in feeds
            if (s := statuses.get(f.name)) is not None and s.next_poll_at is not None
        ]
        last = max(runs, default=datetime.now(UTC))
        log.info(
            "next polls first=%s last=%s feeds=%d: each feed is polled when it is due "
            "(the schedule is kept in the state, so a restart resumes it)",
            min(runs, default=last).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            last.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            len(feeds),
        )
        baselines_by = max(
            (s.next_poll_at for n in new if (s := statuses.get(n)) and s.next_poll_at),
            default=datetime.now(UTC),
        )
        log.info(
            "first polls by=%s feeds=%d new=%d: the first poll of a new feed is a silent "
            "baseline; what is already in it is recorded as seen and nothing is sent for it",
            baselines_by.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            len(feeds),
            len(new),
        )

    def _safe_status(self) -> str:
        try:
            return self.status_line()
        except Exception as exc:  # the status line must never take the daemon down
            return f"status unavailable: {exc}"

    def _shutdown(self) -> None:
        """Stop taking polls, give running ones ``stop_timeout`` to finish, then leave."""
        self.systemd.send(STOPPING=1)
        self.scheduler.shutdown(wait=False)
        if self.cluster is not None:
            self.cluster.stop_taking()
        self._polls.shutdown(wait=False, cancel_futures=True)
        abort_all()
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            with self._busy_lock:
                if not self._busy:
                    break
            time.sleep(0.05)
        with self._busy_lock:
            left = sorted(self._busy)
        if self.cluster is not None and not left:
            self.cluster.stop()  # its jobs ended: the worker leaves at once
        for fetcher in [self.current.fetcher, *self._retired]:
            fetcher.close()
        PARSERS.shutdown(wait=not left)  # a wedged parse must not hold the exit
        try:
            if self.record is not None:
                self.store.daemon_stopped(self.record.node, datetime.now(UTC))
        except StoreError as exc:
            log.error("cannot record this daemon's stop in the state: %s", exc)
        if left:
            log.error("stopping with polls still running: %s", ", ".join(left))
        log.info("watcher stopped")
        if left:
            logging.shutdown()
            os._exit(0)  # a wedged worker thread must not keep the process alive
        self.store.close()


def _names(names: Iterable[str]) -> str:
    return ",".join(names) or "-"
