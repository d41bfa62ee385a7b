"""Webhook delivery: POST a finished job to its ``webhook_url``, at least once, with retries.

A database trigger queues a ``webhook_deliveries`` row whenever a job with a webhook ends, on
every path (worker, reaper, API cancel), and NOTIFYs ``atelier_webhooks``. Dispatchers (one per
worker process) claim due rows with ``FOR UPDATE SKIP LOCKED``; the claim pushes
``next_attempt_at`` a lease ahead, so a dispatcher that dies mid-POST leaves the row to be
retried by another once the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from orchestrator.db.models import Job
from orchestrator.jobs.views import JobOut, WebhookPayload
from orchestrator.jobs.webhook_secrets import SigningSecret, ensure_secrets
from orchestrator.jobs.webhook_targets import WebhookTargetRefused, targets_for

log = logging.getLogger(__name__)

WEBHOOKS_CHANNEL = "atelier_webhooks"
LEASE_S = 60

_CLAIM = text(
    """
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => :lease_s)
FROM due WHERE d.id = due.id
RETURNING d.id, d.job_id, d.url, d.job_status, d.attempts, d.message_id,
          (SELECT owner_id FROM jobs WHERE jobs.id = d.job_id) AS owner_id
"""
)
_DELIVERED = text("UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now() WHERE id = :id")
_RETRY = text(
    """
UPDATE webhook_deliveries
SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
    next_attempt_at = now() + make_interval(secs => :delay_s), last_error = :error
WHERE id = :id
RETURNING status
"""
)
OutcomeRecorder = Callable[[str], None]


@dataclass(frozen=True)
class WebhookConfig:
    """Delivery knobs (from Settings)."""

    max_attempts: int = 8
    base_delay_s: float = 2.0
    timeout_s: float = 10.0
    secret: SecretStr | None = None
    idle_poll_s: float = 30.0
    allow_hosts: tuple[str, ...] = ()


def signature(secret: str, body: bytes) -> str:
    """The legacy ``X-Atelier-Signature`` header value: ``sha256=<hex HMAC of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_headers(message_id: str, body: bytes, secrets: list[SigningSecret], now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: one ``v1,`` signature per valid secret, over ``id.timestamp.body``."""
    signatures = " ".join(Webhook(s.secret).sign(message_id, now, body) for s in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


class WebhookDispatcher:
    """Sends queued deliveries; woken by NOTIFY, with a slow poll for retries that come due."""

    def __init__(
        self,
        engine: AsyncEngine,
        session: aiohttp.ClientSession,
        config: WebhookConfig,
        record_outcome: OutcomeRecorder | None = None,
    ) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._session = session
        self._config = config
        self._record_outcome = record_outcome or (lambda _outcome: None)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self, _payload: str = "") -> None:
        """A delivery was queued."""
        self._wake.set()

    async def start(self) -> None:
        """Start delivering."""
        self._task = asyncio.create_task(self._loop(), name="webhooks")

    async def stop(self) -> None:
        """Stop (claimed deliveries in flight are retried after their lease)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                delivered = await self.deliver_due()
            except Exception:
                log.exception("webhook round failed")
                delivered = 0
            if delivered:
                continue
            with contextlib.suppress(TimeoutError):
                # a period: retries come due without a notification
                async with asyncio.timeout(min(self._config.idle_poll_s, self._config.base_delay_s)):
                    await self._wake.wait()

    async def deliver_due(self, batch: int = 10) -> int:
        """Claim and send up to ``batch`` due deliveries; returns how many were attempted."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_CLAIM, {"batch": batch, "lease_s": LEASE_S})).mappings().all()
        await asyncio.gather(*(self._attempt(dict(row)) for row in rows))
        return len(rows)

    async def _attempt(self, delivery: dict[str, Any]) -> None:
        error = await self._post(delivery)
        async with self._engine.connect() as conn:
            if error is None:
                await conn.execute(_DELIVERED, {"id": delivery["id"]})
                self._record_outcome("delivered")
                return
            delay = self._config.base_delay_s * 2 ** (delivery["attempts"] - 1) * (0.5 + random.random())
            params = {"id": delivery["id"], "max_attempts": self._config.max_attempts, "delay_s": delay}
            status = await conn.scalar(_RETRY, {**params, "error": error[:500]})
        self._record_outcome("failed" if status == "failed" else "retrying")
        log.warning(
            "webhook to %s failed (attempt %d): %s",
            delivery["url"],
            delivery["attempts"],
            error,
            extra={
                "job_id": str(delivery["job_id"]),
                "owner": str(delivery["owner_id"]),
                "attempt": delivery["attempts"],
            },
        )

    async def _post(self, delivery: dict[str, Any]) -> str | None:
        """POST the job; None on a 2xx answer, else what went wrong."""
        body, secrets = await self._body(delivery)
        headers = {"Content-Type": "application/json", "User-Agent": "lora-atelier-webhooks"}
        headers.update(standard_headers(str(delivery["message_id"]), body, secrets, datetime.now(UTC)))
        if self._config.secret:
            headers["X-Atelier-Signature"] = signature(self._config.secret.get_secret_value(), body)
        try:
            targets_for(self._config.allow_hosts).check_url(delivery["url"])  # IP literals skip the resolver
            timeout = aiohttp.ClientTimeout(total=self._config.timeout_s)
            post = self._session.post(
                delivery["url"], data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
            async with post as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, WebhookTargetRefused) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _body(self, delivery: dict[str, Any]) -> tuple[bytes, list[SigningSecret]]:
        """The payload and the owner's signing secrets (one is created if the owner has none yet)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": delivery["job_id"]})).one()
            secrets = await ensure_secrets(conn, delivery["owner_id"])
        job = JobOut.of(Job(**row._mapping))
        payload = WebhookPayload(
            type=f"job.{delivery['job_status']}", timestamp=job.finished_at or job.created_at, data=job
        )
        return payload.model_dump_json().encode(), secrets
