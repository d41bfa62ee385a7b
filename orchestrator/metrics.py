"""Prometheus metrics, one registry per application (no module-level state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The service's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "atelier_http_requests", "HTTP requests served", ["method", "route", "status"], registry=self.registry
        )
        self.http_seconds = Histogram(
            "atelier_http_request_seconds",
            "HTTP request latency (until the handler returns; streams excluded)",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.jobs_accepted = Counter("atelier_jobs_accepted", "Jobs accepted", ["kind"], registry=self.registry)
        self.fanout_seconds = Histogram(
            "atelier_sse_fanout_seconds",
            "Time to hand one released batch of events to every SSE subscriber",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
        )
        self.release_lag = Histogram(
            "atelier_event_release_lag_seconds",
            "From an event's database timestamp to its release by the feed",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.webhook_deliveries = Counter(
            "atelier_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retrying, failed = given up)",
            ["outcome"],
            registry=self.registry,
        )
        self.sse_dropped = Counter(
            "atelier_sse_dropped_subscribers", "SSE subscribers dropped for falling behind", registry=self.registry
        )

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose a value read at scrape time."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
