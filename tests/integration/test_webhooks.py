"""Webhooks: a finished job is POSTed to its webhook_url, signed as Standard Webhooks with the owner's secret,
retried until it gets through, listed, and redelivered on request."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import standardwebhooks.webhooks as standard
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import text
from standardwebhooks import Webhook, WebhookVerificationError

from orchestrator.db.engine import create_engine
from orchestrator.jobs.webhook_targets import GuardedResolver, WebhookTargets
from orchestrator.jobs.webhooks import WebhookConfig, WebhookDispatcher, signature
from tests.integration.conftest import WEBHOOK_SECRET, Caller, Service
from tests.support.db import wait_until
from tests.support.service import running_owner


@dataclass(frozen=True)
class Delivery:
    """What the receiver got: the raw body and the headers."""

    body: bytes
    headers: dict[str, str]

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """A webhook endpoint that fails the first ``failures`` calls, then records deliveries."""

    url: str = ""
    failures: int = 0
    calls: int = 0
    received: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.calls <= self.failures:
            return web.Response(status=500)
        await self.received.put(Delivery(body, dict(request.headers)))
        return web.Response(status=204)

    async def next(self) -> Delivery:
        async with asyncio.timeout(20):
            return await self.received.get()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
    yield hook
    await runner.cleanup()


async def _call(service: Service, caller: Caller, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{service.url}{path}", headers=caller.headers, **kwargs) as response,
    ):
        return response.status, await response.json(content_type=None) if response.status != 204 else None


async def _create(service: Service, caller: Caller, hook: Receiver, **payload: object) -> str:
    body = {"kind": "noop", "payload": payload, "webhook_url": hook.url}
    status, answer = await _call(service, caller, "POST", "/v1/jobs", json=body)
    assert status == 202
    return str(answer["id"])


async def _secret(service: Service, caller: Caller) -> str:
    status, answer = await _call(service, caller, "POST", "/v1/webhooks/secret")
    assert status == 201, answer
    assert answer["current"]["secret"].startswith("whsec_")
    return str(answer["current"]["secret"])


async def test_a_finished_job_is_posted_signed_as_standard_webhooks(
    service: Service, caller: Caller, receiver: Receiver
) -> None:
    secret = await _secret(service, caller)
    job_id = await _create(service, caller, receiver, steps=1)
    delivery = await receiver.next()
    payload = Webhook(secret).verify(delivery.body, delivery.headers)  # the library's own verifier
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["status"] == "succeeded"
    assert datetime.fromisoformat(payload["timestamp"]) <= datetime.now(UTC)
    # the old header stays while ATELIER_WEBHOOK_SECRET is set (deprecated, one release)
    assert delivery.headers["X-Atelier-Signature"] == signature(WEBHOOK_SECRET, delivery.body)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(delivery.body, delivery.headers)


async def test_a_replayed_delivery_fails_verification(
    service: Service, caller: Caller, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = await _secret(service, caller)
    await _create(service, caller, receiver, steps=1)
    delivery = await receiver.next()
    Webhook(secret).verify(delivery.body, delivery.headers)
    # the same request replayed later: the verifier's clock moves six minutes on
    later = datetime.now(UTC) + timedelta(minutes=6)

    class _Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return later

    monkeypatch.setattr(standard, "datetime", _Later)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(delivery.body, delivery.headers)
    # and a replay with a fresh timestamp does not match the signature
    refreshed = {**delivery.headers, "webhook-timestamp": str(int(later.timestamp()))}
    with pytest.raises(WebhookVerificationError, match="signature"):
        Webhook(secret).verify(delivery.body, refreshed)


async def test_failed_deliveries_are_retried_and_listed(service: Service, caller: Caller, receiver: Receiver) -> None:
    receiver.failures = 2
    job_id = await _create(service, caller, receiver, steps=1)
    delivery = await receiver.next()
    assert delivery.payload["data"]["id"] == job_id
    assert receiver.calls == 3
    # the receiver answered; the dispatcher records that once the answer reached it
    await wait_until(
        service.settings.database_url,
        "SELECT status = 'delivered' FROM webhook_deliveries WHERE job_id = $1",
        uuid.UUID(job_id),
        recheck_s=0.05,  # a delivery's status is not notified
    )
    status, listing = await _call(service, caller, "GET", "/v1/webhooks/deliveries", params={"job_id": job_id})
    assert status == 200
    [item] = listing["items"]
    assert item["status"] == "delivered"
    assert item["attempts"] == 3
    assert item["last_error"] == "HTTP 500"
    assert item["message_id"] == delivery.headers["webhook-id"]
    assert item["event"] == "job.succeeded"
    async with aiohttp.ClientSession() as http, http.get(f"{service.url}/metrics") as response:
        metrics = await response.text()
    assert 'atelier_webhook_deliveries_total{outcome="retrying"}' in metrics
    assert 'atelier_webhook_deliveries_total{outcome="delivered"}' in metrics


async def test_redeliver_sends_the_same_message_freshly_signed(
    service: Service, caller: Caller, receiver: Receiver
) -> None:
    secret = await _secret(service, caller)
    job_id = await _create(service, caller, receiver, steps=1)
    first = await receiver.next()
    _, listing = await _call(service, caller, "GET", "/v1/webhooks/deliveries", params={"job_id": job_id})
    original = listing["items"][0]
    status, again = await _call(service, caller, "POST", f"/v1/webhooks/deliveries/{original['id']}/redeliver")
    assert status == 202
    assert again["redelivery_of"] == original["id"]
    assert again["message_id"] == original["message_id"]
    second = await receiver.next()
    assert Webhook(secret).verify(second.body, second.headers)["data"]["id"] == job_id
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    status, shown = await _call(service, caller, "GET", f"/v1/webhooks/deliveries/{again['id']}")
    assert status == 200
    assert shown["status"] in ("pending", "delivered")


async def test_rotation_signs_with_both_secrets_during_the_grace(
    service: Service, caller: Caller, receiver: Receiver
) -> None:
    old = await _secret(service, caller)
    status, rotated = await _call(service, caller, "POST", "/v1/webhooks/secret/rotate", json={"grace_s": 3600})
    assert status == 200
    new = rotated["current"]["secret"]
    assert new != old
    assert [s["secret"] for s in rotated["previous"]] == [old]
    await _create(service, caller, receiver, steps=1)
    delivery = await receiver.next()
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(delivery.body, delivery.headers)
    Webhook(new).verify(delivery.body, delivery.headers)
    status, rotated = await _call(service, caller, "POST", "/v1/webhooks/secret/rotate", json={"grace_s": 0})
    # the secret replaced with no grace stops signing at once; the first one keeps its hour
    assert [s["secret"] for s in rotated["previous"]] == [old]
    assert rotated["current"]["secret"] not in (old, new)
    status, shown = await _call(service, caller, "GET", "/v1/webhooks/secret")
    assert shown["current"]["secret"] == rotated["current"]["secret"]


async def test_secret_and_delivery_errors(service: Service, caller: Caller, other_caller: Caller) -> None:
    status, problem = await _call(service, caller, "GET", "/v1/webhooks/secret")
    assert status == 404
    await _secret(service, caller)
    status, problem = await _call(service, caller, "POST", "/v1/webhooks/secret")
    assert status == 409
    status, problem = await _call(service, caller, "POST", "/v1/webhooks/secret/rotate", json={"grace_s": -1})
    assert status == 422
    assert problem["errors"][0]["field"] == "grace_s"
    status, _ = await _call(service, caller, "GET", "/v1/webhooks/deliveries/not-a-uuid")
    assert status == 404
    status, problem = await _call(service, caller, "GET", "/v1/webhooks/deliveries", params={"status": "lost"})
    assert status == 422


async def test_another_owners_delivery_is_not_found(
    service: Service, caller: Caller, other_caller: Caller, receiver: Receiver
) -> None:
    job_id = await _create(service, caller, receiver, steps=1)
    await receiver.next()
    _, listing = await _call(service, caller, "GET", "/v1/webhooks/deliveries", params={"job_id": job_id})
    delivery_id = listing["items"][0]["id"]
    for method, path in (("GET", ""), ("POST", "/redeliver")):
        status, _ = await _call(service, other_caller, method, f"/v1/webhooks/deliveries/{delivery_id}{path}")
        assert status == 404
    _, theirs = await _call(service, other_caller, "GET", "/v1/webhooks/deliveries", params={"job_id": job_id})
    assert theirs["items"] == []


async def test_a_cancelled_job_is_posted_too(service: Service, caller: Caller, receiver: Receiver) -> None:
    job_id = await _create(service, caller, receiver, steps=500, step_ms=20)
    status, _ = await _call(service, caller, "POST", f"/v1/jobs/{job_id}/cancel")
    assert status in (200, 202)
    delivery = await receiver.next()
    assert delivery.payload["type"] == "job.cancelled"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "http://127.0.0.2:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://192.168.0.1/hook",
        "http://localhost/hook",
        "http://0x7f.0.0.3/hook",
        "http://2130706434/hook",
        "gopher://example.org/",
    ],
)
async def test_internal_webhook_targets_are_refused_at_submit(service: Service, caller: Caller, url: str) -> None:
    """Issue 8, item 4 (the service allows only 127.0.0.1, where the test receivers listen)."""
    body = {"kind": "noop", "payload": {"steps": 1}, "webhook_url": url}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{service.url}/v1/jobs", json=body, headers=caller.headers) as response,
    ):
        problem = await response.json()
        assert response.status == 422, problem
    assert [e["field"] for e in problem["errors"]] == ["webhook_url"]
    async with aiohttp.ClientSession() as http, http.get(f"{service.url}/v1/jobs", headers=caller.headers) as listed:
        assert (await listed.json())["items"] == []


class _NameOfTheReceiver(AbstractResolver):
    """DNS for ``hooks.example.test``: it names the test receiver's loopback address (as after rebinding)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=family, proto=0, flags=0)]

    async def close(self) -> None:
        pass


async def test_a_delivery_is_refused_when_the_name_resolves_to_an_internal_address(
    fresh_database_url: str, receiver: Receiver
) -> None:
    """A name passes at submit; at delivery it resolves to loopback: the connection is never made."""
    engine = create_engine(fresh_database_url, pool_size=2)
    url = receiver.url.replace("127.0.0.1", "hooks.example.test")
    WebhookTargets().check_url(url)  # what the submit check sees
    try:
        owner = await running_owner(engine)
        job_id = uuid.uuid4()
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO jobs (id, owner_id, kind, payload, status) VALUES (:j, :o, 'noop', '{}', 'failed')"),
                {"j": job_id, "o": owner},
            )
            await conn.execute(
                text("INSERT INTO webhook_deliveries (job_id, url, job_status) VALUES (:j, :u, 'failed')"),
                {"j": job_id, "u": url},
            )
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(WebhookTargets(), _NameOfTheReceiver()))
        async with aiohttp.ClientSession(connector=connector) as session:
            dispatcher = WebhookDispatcher(engine, session, WebhookConfig(max_attempts=1))
            assert await dispatcher.deliver_due() == 1
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT status, last_error FROM webhook_deliveries"))).one()
    finally:
        await engine.dispose()
    assert receiver.calls == 0
    assert row.status == "failed"
    assert "127.0.0.1" in row.last_error
    assert "loopback" in row.last_error
