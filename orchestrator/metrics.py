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
        self.jobs = Gauge(
            "atelier_jobs",
            "Jobs by kind and status, counted at scrape time",
            ["kind", "status"],
            registry=self.registry,
        )
        self.queue_depth = Gauge("atelier_queue_depth", "Queued jobs by kind", ["kind"], registry=self.registry)
        self.job_duration = Histogram(
            "atelier_job_duration_seconds",
            "How long a job ran on a worker, by kind and outcome (succeeded, failed, retrying, cancelled, ...)",
            ["kind", "outcome"],
            registry=self.registry,
            buckets=(0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
        )
        self.backend_up = Gauge(
            "atelier_backend_up",
            "1 when the ComfyUI backend is healthy and ready, else 0",
            ["backend"],
            registry=self.registry,
        )
        self.scrape_hooks: list[Callable[[], None]] = []
        self.policy_refusals = Counter(
            "atelier_policy_refusals",
            "Requests refused and images blocked by the content policy",
            ["rule", "context"],
            registry=self.registry,
        )
        self.screening_seconds = Histogram(
            "atelier_image_screening_seconds",
            "Time to score one image with the explicit-content classifier",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.sse_dropped = Counter(
            "atelier_sse_dropped_subscribers", "SSE subscribers dropped for falling behind", registry=self.registry
        )

    def set_job_counts(self, counts: list[tuple[str, str, int]]) -> None:
        """``atelier_jobs{kind,status}`` and ``atelier_queue_depth{kind}`` from ``(kind, status, count)`` rows."""
        self.jobs.clear()
        self.queue_depth.clear()
        for kind, status, count in counts:
            self.jobs.labels(kind, status).set(count)
            if status == "queued":
                self.queue_depth.labels(kind).set(count)

    def refresh(self) -> None:
        """Run the scrape hooks (values read when /metrics is asked for)."""
        for hook in self.scrape_hooks:
            hook()

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose a value read at scrape time."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
