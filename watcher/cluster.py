"""Cluster mode: the nodes on one PostgreSQL state share the work through procrastinate.

Owns the procrastinate app of a node: the queue's schema (created and migrated beside
watcher's own, under the same database lock), the dispatch task (periodic: once per tick
for the whole cluster however many nodes run), poll and delivery jobs, the recovery of
jobs a dead node left in "doing", and host slots (politeness across nodes). Imported only
with a PostgreSQL state.

The queue schedules; it never decides "once". A job whose feed is claimed, or no longer
due, does nothing: the store's claims and leases (compare-and-set writes) say who polls a
feed and who sends an alert, so a job run twice, or a job of a dead node retried while it
was in fact still running, never means a poll or a send twice. The traps of procrastinate
this design keeps away from (each has a test in tests/test_cluster.py):

- a stalled job holding a job lock blocks every later job of that lock (#1408: the
  recipe's stalled-job retry task can itself stall): no job takes a job ``lock``; polls
  and deliveries take a *queueing* lock, which only one waiting ("todo") job can hold, so
  a job stuck in "doing" never blocks the next one; recovery runs inside every dispatch,
  a new job each tick, and fails the dispatch jobs a dead node left too;
- a worker row pruned by another worker leaves its jobs with no worker (#1518): recovery
  counts a "doing" job without a worker as stalled;
- a job scheduled in the future holds its queueing lock until then (#1599): no job is
  ever deferred into the future (a feed's backoff is its ``next_poll_at`` in the store),
  and the dispatcher brings a waiting job it finds scheduled later forward to now.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import procrastinate
import psycopg
from procrastinate import exceptions as pexc
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from watcher.exceptions import StoreError
from watcher.store import Store
from watcher.store.engine import (
    CLIENT_KEEPALIVE,
    SERVER_KEEPALIVE,
    postgres_error,
    postgres_url,
)
from watcher.store.upgrade import MIGRATION_LOCK

log = logging.getLogger(__name__)
# procrastinate says at INFO what it does every second (each periodic defer, each job):
# a node's journal would be that and little else. Its warnings and errors still show.
logging.getLogger("procrastinate").setLevel(logging.WARNING)

POLL_QUEUE = "watcher-poll"
DISPATCH_QUEUE = "watcher-dispatch"
DELIVER_QUEUE = "watcher-deliver"
# Each kind of work has a worker of its own, so that slow notifiers never hold up the
# dispatch, nor a fleet of slow feeds the deliveries.
DISPATCH_CONCURRENCY = 2
DELIVER_CONCURRENCY = 4
RECOVERY_EVERY = 5.0  # seconds between looks for stalled jobs (inside a dispatch)
STALE_DISPATCH = 10.0  # a dispatch job deferred longer ago than this is skipped
QUEUE_RETRY = 5.0  # seconds at most between tries to reach the queue's database again
QUEUE_WAIT = 10.0  # seconds a worker waits for a connection before it gives up
QUEUE_SCHEMA_TABLE = "watcher_queue_schema"
DISPATCH_LOCK = "watcher:dispatch"
# pg_advisory_xact_lock's key for the dispatch ("dispatch" in ASCII): one at a time.
DISPATCH_KEY = int.from_bytes(b"dispatch", "big")


# -- the queue's schema ----------------------------------------------------------------


def _migrations() -> list[Path]:
    """procrastinate's migration scripts, in the order they apply."""
    folder = Path(SchemaManager.get_migrations_path())
    return sorted(p for p in folder.glob("*.sql"))


def queue_schema_version() -> str:
    """The queue schema this procrastinate writes: the name of its last migration."""
    return _migrations()[-1].stem


def migrate_queue(engine: Engine) -> str | None:
    """Create procrastinate's tables beside watcher's, or bring them to this version;
    under the migration lock, so that nodes starting together do not race. Returns what
    was done (None: nothing to do)."""
    target = queue_schema_version()
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        conn.execute(
            text(f"CREATE TABLE IF NOT EXISTS {QUEUE_SCHEMA_TABLE} (migration TEXT NOT NULL)")
        )
        applied = conn.execute(text(f"SELECT migration FROM {QUEUE_SCHEMA_TABLE}")).scalar()
        exists = conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar()
        done: str | None
        if exists is None:
            _run_script(conn, SchemaManager.get_schema())
            done = f"queue schema created ({target})"
        elif applied is None or applied == target:
            # Created by procrastinate's own command, or already ours and current.
            done = None if applied == target else f"queue schema adopted ({target})"
        elif applied > target:
            raise StoreError(
                f"the queue schema is at {applied}, newer than this watcher's procrastinate "
                f"({target}): upgrade watcher on this node"
            )
        else:
            steps = [p for p in _migrations() if p.stem > applied]
            for step in steps:
                _run_script(conn, step.read_text(encoding="utf-8"))
            done = f"queue schema migrated from {applied} to {target} ({len(steps)} steps)"
        if applied != target:
            conn.execute(text(f"DELETE FROM {QUEUE_SCHEMA_TABLE}"))
            conn.execute(
                text(f"INSERT INTO {QUEUE_SCHEMA_TABLE} (migration) VALUES (:m)"), {"m": target}
            )
    return done


def _run_script(conn: Connection, script: str) -> None:
    """Several statements in one go: without parameters psycopg sends the script as it is
    (the simple query protocol), inside the caller's transaction."""
    raw: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    try:
        raw.execute(script.encode())
    except psycopg.Error as exc:  # (not through SQLAlchemy, which would say it as ours)
        name = conn.engine.url.render_as_string(hide_password=True)
        raise postgres_error(name, exc) from exc


def conninfo(url: str) -> str:
    """The state's URL as libpq reads it (SQLAlchemy's ``+psycopg`` left out)."""
    return postgres_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# -- politeness across the nodes ---------------------------------------------------


def host_key(host: str) -> int:
    """A host's advisory lock class: 32 bits of a hash, the same in every node."""
    digest = hashlib.blake2b(f"watcher host {host}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def host_of(url: str) -> str:
    try:
        return httpx.URL(url).host.lower()
    except httpx.InvalidURL:
        return ""


class HostSlots:
    """At most ``per_host`` fetches to one host across the whole cluster: a fetch holds one
    of the host's slots, a session advisory lock (host key, slot number). One session per
    node holds all of the node's slots (one connection, not one per fetch), and the server
    frees them all the moment that session ends: a node that dies or is cut off (see the
    keepalives) gives its slots back by itself. A fetch that finds every slot taken looks
    again after a short, growing pause."""

    def __init__(self, info: str, *, per_host: int, name: str) -> None:
        self.per_host = per_host
        self._info = info
        self._name = name
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._session = 0  # which session the slots in _held were taken in
        # Advisory locks stack within a session: what this node holds, to try only others.
        self._held: dict[int, set[int]] = {}

    @contextmanager
    def hold(self, host: str) -> Iterator[int]:
        """A slot of ``host`` for as long as the block runs; its number is yielded."""
        key = host_key(host)
        slot, session = self._take(key)
        try:
            yield slot
        finally:
            self._give(key, slot, session)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._info,
                    autocommit=True,
                    application_name="watcher host slots",
                    options=SERVER_KEEPALIVE,
                    connect_timeout=10,
                    **CLIENT_KEEPALIVE,
                )
            except psycopg.Error as exc:
                raise postgres_error(self._name, exc) from exc
            self._session += 1
            self._held = {}  # the old session's locks ended with it
        return self._conn

    def _take(self, key: int) -> tuple[int, int]:
        pause, errors = 0.05, 0
        while True:
            with self._mutex:
                conn = self._connection()
                held = self._held.setdefault(key, set())
                free = [slot for slot in range(self.per_host) if slot not in held]
                random.shuffle(free)
                try:
                    for slot in free:
                        row = conn.execute(
                            "SELECT pg_try_advisory_lock(%s, %s)", (key, slot)
                        ).fetchone()
                        if row is not None and row[0]:
                            held.add(slot)
                            return slot, self._session
                except psycopg.Error as exc:
                    conn.close()  # a new session, at the next look
                    errors += 1
                    if errors == 3:
                        raise postgres_error(self._name, exc) from exc
                    continue
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 1.0)

    def _give(self, key: int, slot: int, session: int) -> None:
        with self._mutex:
            if session != self._session or self._conn is None or self._conn.closed:
                return  # that session is gone, and the lock with it
            self._held.get(key, set()).discard(slot)
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (key, slot))
            except psycopg.Error:
                self._conn.close()  # the session goes, and every lock it held

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()


# -- the node's side ---------------------------------------------------------------


class Node(Protocol):
    """What the jobs need of the daemon that runs them (watcher.daemon.Daemon)."""

    node: str
    store: Store

    def poll_job(self, feed: str, lag: Callable[[float], None]) -> bool: ...

    def deliver_job(self, notifier: str) -> None: ...

    def dispatch_plan(self) -> DispatchPlan: ...


@dataclass(frozen=True)
class DispatchPlan:
    """What one dispatch hands out: due feeds (most overdue first) and notifiers with
    alerts due."""

    feeds: tuple[str, ...]
    notifiers: tuple[str, ...]


@dataclass(frozen=True)
class QueueStats:
    """The queue as `watcher status` and the metrics show it."""

    waiting: int  # jobs ready to run and not started
    running: int
    stalled: int  # running on a node that is gone, not yet recovered
    failed: int  # kept a day (daily maintenance deletes older ones)


class Cluster:
    """One node's procrastinate worker, in a thread of its own with its own event loop."""

    def __init__(
        self,
        node: Node,
        *,
        url: str,
        name: str,
        concurrency: int,
        per_host: int,
        stall_timeout: float,
        dispatch_interval: float,
        stop_timeout: float = 10.0,
    ) -> None:
        self.node = node
        self.concurrency = concurrency
        self.stall_timeout = stall_timeout
        self.stop_timeout = stop_timeout
        self._name = name
        self._info = conninfo(url)
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=self._info,
                min_size=1,
                max_size=10,
                # A worker that cannot get a connection (the database is away) fails
                # after this, instead of the pool's 30 s, and is started again by _serve.
                timeout=QUEUE_WAIT,
                kwargs={
                    "application_name": "watcher queue",
                    "options": SERVER_KEEPALIVE,
                    **CLIENT_KEEPALIVE,
                },
            )
        )
        self.slots = HostSlots(self._info, per_host=per_host, name=name)
        self._polls = ThreadPoolExecutor(concurrency, thread_name_prefix="watcher-poll")
        self._control = ThreadPoolExecutor(
            DISPATCH_CONCURRENCY + DELIVER_CONCURRENCY, thread_name_prefix="watcher-ctl"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_recovery = 0.0
        self._dispatching = False
        self.lags: list[float] = []  # (read by metrics) dispatch lag of each poll started
        self._register(dispatch_interval)

    # -- tasks --------------------------------------------------------------------

    def _register(self, interval: float) -> None:
        step = max(1, round(interval))
        cron = "* * * * * *" if step == 1 else f"* * * * * */{step}"

        # A queueing lock: however late the workers are, one dispatch waits, not a pile.
        @self.app.periodic(cron=cron, periodic_id="dispatch", queueing_lock=DISPATCH_LOCK)
        @self.app.task(name="watcher.dispatch", queue=DISPATCH_QUEUE)
        async def dispatch(timestamp: int) -> None:
            await self.dispatch(timestamp)

        @self.app.task(name="watcher.poll", queue=POLL_QUEUE)
        async def poll(feed: str) -> None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._polls, self._poll, feed)

        @self.app.task(name="watcher.deliver", queue=DELIVER_QUEUE)
        async def deliver(notifier: str) -> None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._control, self.node.deliver_job, notifier)

        self._dispatch, self._poll_task, self._deliver_task = dispatch, poll, deliver

    def _poll(self, feed: str) -> None:
        self.node.poll_job(feed, self.lags.append)

    async def dispatch(self, timestamp: int | None = None) -> None:
        """Hand out what is due, and recover what dead nodes left (see dispatch_now)."""
        if timestamp is not None and time.time() - timestamp > STALE_DISPATCH:
            return  # deferred before an outage: a newer dispatch does this one's work
        if self._dispatching:
            return  # this node's previous dispatch still runs: this one's work is its
        self._dispatching = True
        try:
            if time.monotonic() >= self._next_recovery:
                self._next_recovery = time.monotonic() + RECOVERY_EVERY
                await self.recover()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._control, self.dispatch_now)
        finally:
            self._dispatching = False

    def dispatch_now(self) -> int:
        """A poll job per due feed and a delivery job per notifier with alerts due, all in
        one transaction that holds the cluster's dispatch lock: two dispatches (a slow
        tick and the next one, on two nodes) never run at once, and a tick's jobs are
        written by one statement each, not one round trip per feed. Each job takes its
        queueing lock, and a feed that already has a job waiting keeps that one. Returns
        how many poll jobs were added."""
        with self.node.store.engine.begin() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": DISPATCH_KEY})
            if not got.scalar():
                return 0  # another node dispatches right now
            plan = self.node.dispatch_plan()
            feeds = list(plan.feeds)
            # A waiting job scheduled in the future holds its feed's queueing lock until
            # then (procrastinate #1599): none of ours is, but one left by anything else
            # must not keep a due feed from its poll.
            conn.execute(
                text(
                    "UPDATE procrastinate_jobs SET scheduled_at = NULL WHERE status = 'todo' "
                    "AND queueing_lock = ANY(:locks) AND scheduled_at > now()"
                ),
                {"locks": [_poll_lock(f) for f in feeds]},
            )
            added = _enqueue(conn, POLL_QUEUE, "watcher.poll", "feed", feeds, _poll_lock)
            _enqueue(
                conn, DELIVER_QUEUE, "watcher.deliver", "notifier", plan.notifiers, _deliver_lock
            )
        return added

    async def recover(self) -> list[int]:
        """Fail the jobs that nodes which are gone left in "doing" (no heartbeat for
        ``stall_timeout``, or no worker at all), so they stop counting as running; their
        work is not lost: the feeds and alerts those nodes claimed are freed (see
        Store.release_dead_claims) and handed out again by the next dispatch."""
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(seconds_since_heartbeat=self.stall_timeout))
        failed = []
        for job in stalled:
            assert job.id is not None
            try:
                await manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
            except pexc.ProcrastinateException:
                continue  # finished meanwhile
            failed.append(job.id)
            log.warning(
                "stalled job recovered job=%s task=%s args=%s: its node sent no heartbeat for "
                "%g s; its work is handed out again",
                job.id,
                job.task_name,
                job.task_kwargs,
                self.stall_timeout,
            )
        return failed

    def wake_delivery(self, notifiers: Collection[str]) -> None:
        """A poll queued alerts: a delivery job for each notifier, now (from a poll's
        thread: one statement, without a trip through the worker's event loop)."""
        if self._stopping or not notifiers:
            return
        try:
            with self.node.store.engine.begin() as conn:
                _enqueue(
                    conn, DELIVER_QUEUE, "watcher.deliver", "notifier", notifiers, _deliver_lock
                )
        except Exception as exc:  # the next dispatch hands them out anyway
            log.warning("delivery not woken, the next dispatch will: %s", exc)

    # -- reading the queue ----------------------------------------------------------

    def stats(self) -> QueueStats:
        """Waiting, running and stalled jobs (for status and metrics), read synchronously."""
        return queue_stats(self.node.store, stall_timeout=self.stall_timeout)

    # -- life -----------------------------------------------------------------------

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="watcher-cluster", daemon=True
        )
        self._thread.start()
        ready.wait(30)

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        """Run this node's workers, and run them again whenever they end while the node
        runs: procrastinate stops a worker whose listener or heartbeat fails (the
        database went away), and its pool retries on a schedule of its own."""
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        ready.set()
        pause = 1.0
        while not self._stopping:
            try:
                await self._reachable()
                async with self.app.open_async():
                    pause = 1.0
                    async with asyncio.TaskGroup() as group:
                        common: dict[str, Any] = {
                            "install_signal_handlers": False,
                            "update_heartbeat_interval": max(1.0, self.stall_timeout / 6),
                            "stalled_worker_timeout": self.stall_timeout,
                            "delete_jobs": "successful",
                            "shutdown_graceful_timeout": self.stop_timeout,
                            "fetch_job_polling_interval": 1.0,
                        }
                        for role, queue, concurrency in (
                            ("polls", POLL_QUEUE, self.concurrency),
                            ("dispatch", DISPATCH_QUEUE, DISPATCH_CONCURRENCY),
                            ("deliveries", DELIVER_QUEUE, DELIVER_CONCURRENCY),
                        ):
                            group.create_task(
                                self._work(
                                    name=f"{self.node.node} {role}",
                                    queues=[queue],
                                    concurrency=concurrency,
                                    **common,
                                )
                            )
            except asyncio.CancelledError:
                return
            except Exception as exc:  # the database went away: keep trying
                if self._stopping:
                    return
                log.error(
                    "the job queue on %s is unreachable, trying again in %.0f s: %s",
                    self._name,
                    pause,
                    _reason(exc),
                )
                with contextlib.suppress(Exception):  # a pool that never opened is reset
                    await self.app.connector.close_async()
                await asyncio.sleep(pause)
                pause = min(pause * 2, QUEUE_RETRY)

    async def _work(self, *, name: str, **options: Any) -> None:
        """One worker; its end while the node runs ends the others too (the group), so
        that all start again, instead of a node left without polls, dispatch or
        deliveries."""
        await self.app.run_worker_async(name=name, **options)
        if not self._stopping:
            raise WorkerStopped(f"the worker {name!r} stopped")

    async def _reachable(self) -> None:
        """One connection, at once: while the database is away this fails in a moment,
        so the workers start again within QUEUE_RETRY seconds of its return."""
        conn = await psycopg.AsyncConnection.connect(self._info, connect_timeout=10)
        await conn.close()

    def problem(self) -> str | None:
        """Why this node takes no jobs, or None while its worker runs."""
        if self._thread is None or not self._thread.is_alive():
            return "the cluster worker is not running"
        return None

    def stop_taking(self) -> None:
        """Take no more jobs (returns at once); the running ones go on, see stop()."""
        self._stopping = True
        loop, main = self._loop, self._main
        if loop is not None and main is not None and not loop.is_closed():
            loop.call_soon_threadsafe(main.cancel)

    def stop(self) -> None:
        """Stop taking jobs; the running ones get ``stop_timeout`` to end."""
        self.stop_taking()
        if self._thread is not None:
            self._thread.join(self.stop_timeout + 5)
        self._polls.shutdown(wait=False, cancel_futures=True)
        self._control.shutdown(wait=False, cancel_futures=True)
        self.slots.close()


def prune_jobs(store: Store, *, older_than_hours: float = 24.0) -> int:
    """Forget the finished jobs (failed, cancelled, aborted; succeeded ones are deleted
    as they end) older than a day: the queue's table stays the size of its work."""
    query = text(
        """
        DELETE FROM procrastinate_jobs
        WHERE task_name LIKE 'watcher.%'
          AND status IN ('succeeded', 'failed', 'cancelled', 'aborted')
          AND id IN (SELECT job_id FROM procrastinate_events GROUP BY job_id
                     HAVING max(at) < now() - make_interval(secs => :secs))
        """
    )
    with store.engine.begin() as conn:
        return conn.execute(query, {"secs": older_than_hours * 3600}).rowcount or 0


def _enqueue(
    conn: Connection,
    queue: str,
    task: str,
    argument: str,
    values: Collection[str],
    lock: Callable[[str], str],
) -> int:
    """Jobs of ``task``, one per value, each with its queueing lock, in one statement; a
    value that already has a job waiting is left with it. (procrastinate's own defer
    raises at the first such value, and takes a round trip per job.) procrastinate's
    triggers wake the workers and write the jobs' events as for its own defers."""
    if not values:
        return 0
    result = conn.execute(
        text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, queueing_lock, args) "
            "SELECT CAST(:queue AS varchar), CAST(:task AS varchar), l, "
            "jsonb_build_object(CAST(:arg AS text), v) "
            "FROM unnest(CAST(:values AS text[]), CAST(:locks AS text[])) AS t(v, l) "
            "ON CONFLICT (queueing_lock) WHERE status = 'todo' DO NOTHING"
        ),
        {
            "queue": queue,
            "task": task,
            "arg": argument,
            "values": list(values),
            "locks": [lock(v) for v in values],
        },
    )
    return result.rowcount or 0


class WorkerStopped(Exception):
    """A worker ended while its node runs."""


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: the first of a group's errors, with the database's
    own words that procrastinate keeps as the cause of its vague "Database error"."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    words = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__
    if isinstance(exc, pexc.ProcrastinateException) and cause is not None:
        words = f"{words} {' '.join(str(cause).split()) or type(cause).__name__}"
    return words


def _poll_lock(feed: str) -> str:
    return f"watcher:poll:{feed}"


def _deliver_lock(notifier: str) -> str:
    return f"watcher:deliver:{notifier}"


def queue_stats(store: Store, *, stall_timeout: float) -> QueueStats:
    """The queue's jobs by state, from the database (works from any process)."""
    query = text(
        """
        SELECT
          count(*) FILTER (WHERE j.status = 'todo'
                           AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())),
          count(*) FILTER (WHERE j.status = 'doing'),
          count(*) FILTER (WHERE j.status = 'doing' AND (j.worker_id IS NULL OR
                           w.last_heartbeat < now() - make_interval(secs => :stall))),
          count(*) FILTER (WHERE j.status = 'failed')
        FROM procrastinate_jobs j
        LEFT JOIN procrastinate_workers w ON w.id = j.worker_id
        WHERE j.task_name LIKE 'watcher.%'
        """
    )
    with store.engine.connect() as conn:
        row = conn.execute(query, {"stall": stall_timeout}).one()
    return QueueStats(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def queue_created(store: Store) -> bool:
    """Whether the queue's tables are there: not until a node started, or `watcher
    migrate` ran, with this watcher (`watcher status` says so rather than fail)."""
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None
