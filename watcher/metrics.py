"""Prometheus metrics and the /healthz endpoint (``watcher run --metrics-port``).

Owns the metric definitions and a small HTTP server on its own thread. The daemon
feeds it poll and delivery outcomes; it decides nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from watcher.pipeline import DeliveryOutcome, PollOutcome


class Metrics:
    """The counters and histograms of one daemon, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "watcher_polls", "Polls by feed and outcome", ["feed", "status"], registry=r
        )
        self.fetch_errors = Counter(
            "watcher_fetch_errors",
            "Failed polls by feed and kind of error",
            ["feed", "kind"],
            registry=r,
        )
        self.items_seen = Counter(
            "watcher_items_seen", "New items seen, by feed", ["feed"], registry=r
        )
        self.matches = Counter(
            "watcher_matches", "Matches of new items, by rule", ["rule"], registry=r
        )
        self.alerts_sent = Counter(
            "watcher_alerts_sent", "Alerts delivered", ["notifier"], registry=r
        )
        self.alerts_failed = Counter(
            "watcher_alerts_failed", "Failed delivery attempts (retried)", ["notifier"], registry=r
        )
        self.alerts_given_up = Counter(
            "watcher_alerts_given_up",
            "Alerts marked failed after max_age",
            ["notifier"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "watcher_delivery_latency_seconds",
            "From alert queued to delivered",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=r,
        )
        self.poll_duration = Histogram(
            "watcher_poll_duration_seconds",
            "Duration of one poll (fetch, parse, match, commit)",
            ["status"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )

        # Cluster mode (a PostgreSQL state): the shared job queue, as this node sees it.
        self.dispatch_lag = Histogram(
            "watcher_dispatch_lag_seconds",
            "From a feed's due time to the start of its poll on this node",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
            registry=r,
        )
        self.queue_jobs = Gauge(
            "watcher_queue_jobs",
            "Jobs of the cluster's queue by state (waiting, running, stalled, failed)",
            ["state"],
            registry=r,
        )
        self.most_overdue = Gauge(
            "watcher_most_overdue_seconds",
            "How far the most overdue feed of the cluster is past its due time",
            registry=r,
        )

    def record_poll(self, outcome: PollOutcome, seconds: float) -> None:
        self.polls.labels(outcome.feed, outcome.status).inc()
        self.poll_duration.labels(outcome.status).observe(seconds)
        if outcome.status == "error":
            self.fetch_errors.labels(outcome.feed, outcome.error_kind or "other").inc()
        if outcome.new:
            self.items_seen.labels(outcome.feed).inc(outcome.new)
        for rule in outcome.matched:
            self.matches.labels(rule).inc()

    def record_delivery(self, notifier: str, outcome: DeliveryOutcome) -> None:
        if outcome.sent:
            self.alerts_sent.labels(notifier).inc(outcome.sent)
        if outcome.failed:
            self.alerts_failed.labels(notifier).inc(outcome.failed)
        if outcome.given_up:
            self.alerts_given_up.labels(notifier).inc(outcome.given_up)
        for latency in outcome.latencies:
            self.delivery_latency.observe(latency)

    def serve(
        self, port: int, *, health: Callable[[], str | None], host: str = "127.0.0.1"
    ) -> ThreadingHTTPServer:
        """/metrics for Prometheus; /healthz answers 503 with the reason when polling stalled."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    problem = health()
                    body = (f"stalled: {problem}" if problem else "ok").encode() + b"\n"
                    self._answer(503 if problem else 200, body, "text/plain; charset=utf-8")
                else:
                    self._answer(404, b"try /metrics or /healthz\n", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="watcher-metrics", daemon=True).start()
        return server
