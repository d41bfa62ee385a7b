"""Operations on the service itself, jobs, and webhooks."""

from __future__ import annotations

from typing import Any

from atelier_client._calls import Call, Id, json_object, model, operation, path, query, text
from atelier_client.models import (
    Accepted,
    AuditList,
    DeliveryList,
    DeliveryOut,
    Health,
    JobList,
    JobOut,
    Readiness,
    WebhookSecrets,
)


@operation("healthz")
def health() -> Call[Health]:
    """Is the service alive (``GET /healthz``)."""
    return Call("healthz", "GET", "/healthz", model(Health))


@operation("readyz")
def readiness() -> Call[Readiness]:
    """Can it take work: database, backends, queue (``GET /readyz``; a 503 raises ServiceUnavailable)."""
    return Call("readyz", "GET", "/readyz", model(Readiness))


@operation("metrics")
def metrics() -> Call[str]:
    """The Prometheus metrics text."""
    return Call("metrics", "GET", "/metrics", text)


@operation("openapi_json")
def openapi() -> Call[dict[str, Any]]:
    """The service's OpenAPI document."""
    return Call("openapi_json", "GET", "/openapi.json", json_object)


@operation("create_job")
def create_noop_job(
    steps: int = 3, step_ms: float = 0.0, *, priority: int | None = None, webhook_url: str | None = None
) -> Call[Accepted]:
    """Queue a diagnostic job that only reports progress (handy to try events and webhooks)."""
    payload = {"kind": "noop", "payload": {"steps": steps, "step_ms": step_ms}}
    extra = {"priority": priority, "webhook_url": webhook_url}
    return Call("create_job", "POST", "/v1/jobs", model(Accepted), json=payload | _present(extra))


def _present(values: dict[str, Any]) -> dict[str, Any]:
    """The set values of a body fragment."""
    return {k: v for k, v in values.items() if v is not None}


@operation("list_all_jobs")
def list_jobs(
    *, kind: str | None = None, status: str | None = None, limit: int | None = None, cursor: str | None = None
) -> Call[JobList]:
    """A page of the caller's jobs, newest first (``next_cursor`` continues)."""
    params = query(kind=kind, status=status, limit=limit, cursor=cursor)
    return Call("list_all_jobs", "GET", "/v1/jobs", model(JobList), params=params)


@operation("get_one_job")
def get_job(job_id: Id) -> Call[JobOut]:
    """One job: status, progress, result or error."""
    return Call("get_one_job", "GET", path("/v1/jobs/{id}", id=job_id), model(JobOut))


@operation("cancel_job")
def cancel_job(job_id: Id) -> Call[JobOut]:
    """Cancel any job (queued: at once; running: its worker stops it and job.cancelled follows)."""
    return Call("cancel_job", "POST", path("/v1/jobs/{id}/cancel", id=job_id), model(JobOut))


@operation("get_webhook_secret")
def get_webhook_secret() -> Call[WebhookSecrets]:
    """The caller's webhook signing secrets (current first)."""
    return Call("get_webhook_secret", "GET", "/v1/webhooks/secret", model(WebhookSecrets))


@operation("create_webhook_secret")
def create_webhook_secret() -> Call[WebhookSecrets]:
    """Create the caller's ``whsec_`` webhook signing secret (Conflict when one exists)."""
    return Call("create_webhook_secret", "POST", "/v1/webhooks/secret", model(WebhookSecrets))


@operation("rotate_webhook_secret")
def rotate_webhook_secret(grace_s: int = 86_400) -> Call[WebhookSecrets]:
    """A new current secret; the old one keeps signing for ``grace_s`` seconds."""
    return Call(
        "rotate_webhook_secret",
        "POST",
        "/v1/webhooks/secret/rotate",
        model(WebhookSecrets),
        json={"grace_s": grace_s},
    )


@operation("list_webhook_deliveries")
def list_webhook_deliveries(
    *, status: str | None = None, job_id: Id | None = None, limit: int | None = None, cursor: str | None = None
) -> Call[DeliveryList]:
    """A page of the caller's webhook deliveries, newest first."""
    params = query(status=status, job_id=job_id, limit=limit, cursor=cursor)
    return Call("list_webhook_deliveries", "GET", "/v1/webhooks/deliveries", model(DeliveryList), params=params)


@operation("get_webhook_delivery")
def get_webhook_delivery(delivery_id: Id) -> Call[DeliveryOut]:
    """One delivery: status, attempts, last error."""
    url = path("/v1/webhooks/deliveries/{id}", id=delivery_id)
    return Call("get_webhook_delivery", "GET", url, model(DeliveryOut))


@operation("redeliver_webhook")
def redeliver_webhook(delivery_id: Id) -> Call[DeliveryOut]:
    """Send a delivery's message again (same webhook-id, fresh signature); the new delivery."""
    url = path("/v1/webhooks/deliveries/{id}/redeliver", id=delivery_id)
    return Call("redeliver_webhook", "POST", url, model(DeliveryOut))


@operation("list_audit_events")
def list_audit_events(
    *,
    rule: str | None = None,
    context: str | None = None,
    owner_id: Id | None = None,
    job_id: Id | None = None,
    since: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[AuditList]:
    """The content policy's audit log, newest first (needs a key created with ``--admin``)."""
    params = query(
        rule=rule, context=context, owner_id=owner_id, job_id=job_id, since=since, limit=limit, cursor=cursor
    )
    return Call("list_audit_events", "GET", "/v1/audit", model(AuditList), params=params)
