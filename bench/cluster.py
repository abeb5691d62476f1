"""watcher's cluster mode: the dispatch lag with one, two and three nodes (issue 17).

A fleet that one node cannot keep up with: every request is answered after ``--delay``
(300 ms), and each node polls ``max_connections`` (10) feeds at once, so one node does
at most 10 / 0.3 = 33 polls/s; 600 feeds every 10 s need about 55. The same config runs
as 1, 2 and 3 real `watcher run` processes on one PostgreSQL (tests/pgserver.py's
server with ``durable=True``), a fresh database for each run; after ``--warmup`` the
bench measures for ``--duration``:

- polls/s: requests the server received in the window;
- dispatch lag: for each poll, how late it started after its feed was due. The server
  notes when each request arrived; a sampler reads every feed's ``next_poll_at`` from
  the state once a second (each value lives a whole interval, so none is missed); a
  poll's due time is the last one sampled before its request. The lag so includes the
  wait for a dispatch tick, for a free worker, for a host slot and the connect. (Not
  "gap between two requests minus the interval": watcher schedules the next poll from
  the end of the fetch, plus up to a tenth of the interval of jitter, so that would
  count the 300 ms and the jitter as lag.) Beside it, the nodes' own
  ``watcher_dispatch_lag_seconds`` (``--metrics-port``: due time to claim, bucketed);
- CPU of the nodes, of PostgreSQL and of this process (server and sampler), as cores;
- the queue, from the same sampler: job rows inserted per poll (dispatch jobs too; a
  defer that a queueing lock refused counts: its row was inserted, then rolled back),
  and the dispatch jobs running and poll jobs waiting at once.

The feeds are spread over ``--hosts`` loopback addresses (127.0.1.1, 127.0.1.2, ...:
all of 127.0.0.0/8 reaches loopback on Linux), the server listening on each of them
alone, so that ``max_per_host`` keeps its default (2 at once per host, across the
cluster) without capping throughput: 200 hosts x 2 / 0.3 s is far above the need. After
its first poll (200, a small RSS body, ETag) a feed answers 304, the common case.

Needs PostgreSQL's server binaries (apt-get install postgresql) and watcher[postgres].
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # pgserver: the tests' PostgreSQL server

BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
    b"<title>Slow</title><link>http://slow.example/</link><description>bench</description>"
    b'<item><guid isPermaLink="false">urn:slow:1</guid><title>One story</title>'
    b"<link>http://slow.example/1</link></item></channel></rss>"
)
ETAG = '"1"'


def _host(index: int) -> str:
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the slow server ---------------------------------------------------------------


class SlowServer:
    """HTTP/1.1 on one port of many loopback addresses, in a thread with its own event
    loop (an asyncio sleep per request: 30 requests waiting cost no threads). Notes when
    each request for /feed/N arrived."""

    def __init__(self, hosts: int, delay: float) -> None:
        self.hosts = [_host(i) for i in range(hosts)]
        self.delay = delay
        self.port = 0
        self.requests: list[tuple[float, int]] = []  # (arrival, feed index)
        self.not_found = 0
        self._loop = asyncio.new_event_loop()
        self._stopped = asyncio.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="slow-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"the slow server did not start: {self._error}")

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def take(self) -> list[tuple[float, int]]:
        """The requests noted so far, which are forgotten (list.append is atomic)."""
        taken, self.requests = self.requests, []
        return taken

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = None
        for _attempt in range(5):  # another process may take the free port first
            self.port = _free_port()
            try:
                server = await asyncio.start_server(self._client, self.hosts, self.port)
                break
            except OSError as exc:
                self._error = exc
        if server is None:
            self._ready.set()
            return
        self._error = None
        self._ready.set()
        async with server:
            await self._stopped.wait()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                try:
                    index = int(path.rsplit("/", 1)[-1])
                except ValueError:
                    self.not_found += 1
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                self.requests.append((arrived, index))
                await asyncio.sleep(self.delay)
                if headers.get("if-none-match") == ETAG:
                    writer.write(
                        f"HTTP/1.1 304 Not Modified\r\nETag: {ETAG}\r\n"
                        "Content-Length: 0\r\n\r\n".encode()
                    )
                else:
                    writer.write(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                        f"ETag: {ETAG}\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
                        + BODY
                    )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


# -- the state's schedule, sampled -------------------------------------------------


class DueSampler:
    """Every feed's ``next_poll_at``, read once a second: feed -> the distinct due times
    seen, in order (wall-clock seconds). Also the queue's jobs by task and state, and how
    many job rows were inserted so far (a defer that the queueing lock refused too)."""

    def __init__(self, conninfo: str, every: float = 1.0) -> None:
        self.conninfo = conninfo
        self.every = every
        self.due: dict[str, list[float]] = {}
        self.jobs: list[tuple[float, dict[str, int]]] = []  # (when, {"task:state": count})
        self.inserts: list[tuple[float, int]] = []  # (when, procrastinate_jobs n_tup_ins)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="due-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import psycopg

        conn: Any = None
        while not self._stop.wait(self.every if conn is not None else 0.2):
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                rows = conn.execute("SELECT name, next_poll_at FROM feeds").fetchall()
                jobs = conn.execute(
                    "SELECT task_name || ':' || status, count(*) FROM procrastinate_jobs GROUP BY 1"
                ).fetchall()
                inserted = conn.execute(
                    "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'procrastinate_jobs'"
                ).fetchone()
            except psycopg.Error:  # the schema is not there yet (no node has started)
                if conn is not None:
                    conn.close()
                conn = None
                continue
            now = time.time()
            self.jobs.append((now, {key: int(count) for key, count in jobs}))
            self.inserts.append((now, int(inserted[0]) if inserted else 0))
            for name, due in rows:
                if due is None:
                    continue
                value = due.replace(tzinfo=UTC).timestamp()  # stored as naive UTC
                seen = self.due.setdefault(name, [])
                if not seen or seen[-1] != value:
                    seen.append(value)
        if conn is not None:
            conn.close()

    def due_before(self, feed: str, moment: float) -> float | None:
        """When the poll that started at ``moment`` was due: the last due time at or
        before it (the next one is set only when that poll ends)."""
        seen = self.due.get(feed, [])
        at = bisect.bisect_right(seen, moment)
        return seen[at - 1] if at else None


# -- the nodes ---------------------------------------------------------------------


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds of these processes and their reaped children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += sum(int(f) for f in fields[11:15])
    return total / tick


class Node:
    """`watcher run -c CONFIG --metrics-port PORT`, a real process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "watcher",
                    "run",
                    "-c",
                    str(self.config),
                    "--metrics-port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def started(self) -> bool:
        return "watcher started" in self.log_text()

    def cpu(self) -> float:
        from compare import _tree

        return _cpu_of(_tree(self.proc.pid)) if self.proc is not None else 0.0

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text: str = answer.read().decode()
            return text

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Scrape:
    """What the nodes' metrics say, summed over the nodes."""

    lag_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    lag_count: float = 0.0
    lag_sum: float = 0.0
    polls: dict[str, float] = field(default_factory=dict)  # status -> count

    def add(self, text: str) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "watcher_dispatch_lag_seconds_bucket":
                    le = float(sample.labels["le"])
                    self.lag_buckets[le] = self.lag_buckets.get(le, 0.0) + sample.value
                elif sample.name == "watcher_dispatch_lag_seconds_count":
                    self.lag_count += sample.value
                elif sample.name == "watcher_dispatch_lag_seconds_sum":
                    self.lag_sum += sample.value
                elif sample.name == "watcher_polls_total":
                    status = sample.labels["status"]
                    self.polls[status] = self.polls.get(status, 0.0) + sample.value

    def minus(self, before: Scrape) -> Scrape:
        return Scrape(
            {k: v - before.lag_buckets.get(k, 0.0) for k, v in self.lag_buckets.items()},
            self.lag_count - before.lag_count,
            self.lag_sum - before.lag_sum,
            {k: v - before.polls.get(k, 0.0) for k, v in self.polls.items()},
        )


def _scrape(nodes: list[Node]) -> Scrape:
    scrape = Scrape()
    for node in nodes:
        scrape.add(node.metrics())
    return scrape


def _write_config(path: Path, state: str, port: int, args: argparse.Namespace) -> None:
    lines = "".join(
        f"  - {{name: f{i:04d}, url: 'http://{_host(i % args.hosts)}:{port}/feed/{i}', "
        f"interval: {args.interval:g}s}}\n"
        for i in range(args.feeds)
    )
    path.write_text(
        f"state: {state}\n"
        "allow_private_networks: true\n"
        "parse_processes: 0\n"  # 304s after the first poll: nothing to parse
        f"fetch: {{max_connections: {args.connections}}}\n"
        f"feeds:\n{lines}"
        "rules:\n  - {name: any, keywords: [Kharkiv]}\n"
    )


# -- one run -----------------------------------------------------------------------


@dataclass
class Result:
    nodes: int
    window: float
    polls: int
    lags: list[float]
    unmatched: int  # requests with no due time sampled before them
    scrape: Scrape
    cpu_nodes: float
    cpu_server: float  # PostgreSQL
    cpu_bench: float
    load: tuple[float, float]  # load average at the window's start and end
    halves: tuple[float, float]  # lag p50 of the window's first and second half
    errors: int  # poll failures in the nodes' logs (whole run)
    inserts: float  # job rows inserted per poll (refused defers included)
    dispatching: float  # dispatch jobs running at once (mean of the samples)
    waiting: float  # poll jobs waiting (mean of the samples)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one_run(pg: Any, server: SlowServer, count: int, tmp: Path, args: argparse.Namespace) -> Result:
    from state_backends import _server_cpu

    from watcher.cluster import conninfo

    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    database = pg.create_database()
    url = pg.url(database)
    config = tmp / f"cluster-{count}.yaml"
    _write_config(config, url, server.port, args)
    sampler = DueSampler(conninfo(url))
    nodes = [Node(config, tmp / f"node-{count}-{i}.log") for i in range(count)]
    try:
        sampler.start()
        server.take()
        for node in nodes:
            node.start()
        deadline = time.monotonic() + 60
        while not all(n.started() for n in nodes):
            if time.monotonic() > deadline or any(
                n.proc is not None and n.proc.poll() is not None for n in nodes
            ):
                logs = "\n".join(f"--- {n.log}\n{n.log_text()[-3000:]}" for n in nodes)
                raise RuntimeError(f"a node did not start:\n{logs}")
            time.sleep(0.1)
        time.sleep(args.warmup)
        before = _scrape(nodes)
        cpu = (sum(n.cpu() for n in nodes), _server_cpu(postmaster), time.process_time())
        load_start = os.getloadavg()[0]
        start = time.time()
        time.sleep(args.duration)
        end = time.time()
        requests = server.take()
        after = _scrape(nodes)
        cpu_nodes = sum(n.cpu() for n in nodes) - cpu[0]
        cpu_server = _server_cpu(postmaster) - cpu[1]
        cpu_bench = time.process_time() - cpu[2]
        load_end = os.getloadavg()[0]
    finally:
        for node in nodes:
            node.stop()
        sampler.stop()
        with contextlib.suppress(Exception):
            pg.drop_database(database)
    window = end - start
    lags: list[tuple[float, float]] = []
    unmatched = 0
    for arrived, index in requests:
        if not start <= arrived < end:
            continue
        due = sampler.due_before(f"f{index:04d}", arrived)
        if due is None:
            unmatched += 1
        else:
            lags.append((arrived, arrived - due))
    middle = start + window / 2
    polls = sum(1 for arrived, _ in requests if start <= arrived < end)
    inserted = [count for at, count in sampler.inserts if start <= at < end]
    samples = [jobs for at, jobs in sampler.jobs if start <= at < end] or [{}]
    errors = sum(n.log_text().count("poll failed") for n in nodes)
    return Result(
        nodes=count,
        window=window,
        polls=polls,
        lags=[lag for _, lag in lags],
        unmatched=unmatched,
        scrape=after.minus(before),
        cpu_nodes=cpu_nodes,
        cpu_server=cpu_server,
        cpu_bench=cpu_bench,
        load=(load_start, load_end),
        halves=(
            _quantile([lag for t, lag in lags if t < middle], 0.5),
            _quantile([lag for t, lag in lags if t >= middle], 0.5),
        ),
        errors=errors,
        inserts=(inserted[-1] - inserted[0]) / polls if polls and inserted else float("nan"),
        dispatching=sum(j.get("watcher.dispatch:doing", 0) for j in samples) / len(samples),
        waiting=sum(j.get("watcher.poll:todo", 0) for j in samples) / len(samples),
    )


# -- the report --------------------------------------------------------------------


def report(results: list[Result], args: argparse.Namespace) -> None:
    jitter = min(0.1 * args.interval, 60.0) / 2
    need = args.feeds / (args.interval + args.delay + jitter)
    print(
        f"# needed with no lag: {args.feeds} feeds / ({args.interval:g} s interval + "
        f"{args.delay:g} s fetch + {jitter:g} s mean jitter) = {need:.1f} polls/s; one node "
        f"at best: {args.connections} / {args.delay:g} s = "
        f"{args.connections / args.delay:.1f} polls/s (less each poll's claim, slot, commit)"
    )
    heads = ["nodes", "feeds", "interval", "polls/s", "lag p50", "lag p95", "lag max"]
    heads += ["metric mean", "metric <=1s", "cpu nodes", "cpu pg", "cpu bench", "load"]
    rows = [heads]
    for r in results:
        s = r.scrape
        under = s.lag_buckets.get(1.0, 0.0) / s.lag_count if s.lag_count else float("nan")
        rows.append(
            [
                str(r.nodes),
                str(args.feeds),
                f"{args.interval:g}s",
                f"{r.polls / r.window:.1f}",
                f"{_quantile(r.lags, 0.5):.2f}s",
                f"{_quantile(r.lags, 0.95):.2f}s",
                f"{max(r.lags, default=float('nan')):.2f}s",
                f"{s.lag_sum / s.lag_count if s.lag_count else float('nan'):.2f}s",
                f"{under:.0%}",
                f"{r.cpu_nodes / r.window:.2f}",
                f"{r.cpu_server / r.window:.2f}",
                f"{r.cpu_bench / r.window:.2f}",
                f"{r.load[0]:.1f}-{r.load[1]:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(heads))]
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    for r in results:
        statuses = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.scrape.polls.items()) if v)
        print(
            f"# {r.nodes} node(s): {r.polls} polls in {r.window:.1f} s ({statuses}); lag p50 "
            f"first half {r.halves[0]:.2f}s, second half {r.halves[1]:.2f}s; "
            f"{r.unmatched} polls with no due time sampled; {r.errors} failed polls logged; "
            f"queue: {r.inserts:.1f} job inserts per poll, {r.dispatching:.1f} dispatches "
            f"running and {r.waiting:.0f} poll jobs waiting (means)"
        )


def main() -> None:
    from pgserver import PostgresServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,3", help="node counts, one run each")
    parser.add_argument("--feeds", type=int, default=600)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--delay", type=float, default=0.3, help="server's answer time, s")
    parser.add_argument("--connections", type=int, default=10, help="fetch.max_connections")
    parser.add_argument("--hosts", type=int, default=200, help="loopback addresses")
    # One node's first round (every feed new and due at once) takes 20-25 s and sets the
    # next round's lag: from the third round on (about 45 s) the lag is steady.
    parser.add_argument("--warmup", type=float, default=45.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    print(
        f"# machine: {platform.platform()}, {os.cpu_count()} cores ({model}), "
        f"python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# {args.feeds} feeds every {args.interval:g} s on {args.hosts} hosts, answered "
        f"after {args.delay:g} s; max_connections {args.connections} per node, max_per_host 2; "
        f"{args.warmup:g} s warm-up, {args.duration:g} s measured per run"
    )
    pg = PostgresServer(durable=True)
    pg.start()
    server = SlowServer(args.hosts, args.delay)
    server.start()
    try:
        with pg.admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(f"# PostgreSQL {version[0] if version else '?'}, fsync on, synchronous_commit on")
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for count in counts:
                results.append(one_run(pg, server, count, Path(tmp), args))
        report(results, args)
    finally:
        server.stop()
        pg.stop()


if __name__ == "__main__":
    main()
