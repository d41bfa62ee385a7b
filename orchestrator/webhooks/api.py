"""/v1/webhooks: the caller's signing secrets (create, read, rotate), deliveries (list, get, redeliver).

The outgoing request itself is declared here too, for OpenAPI's ``webhooks`` section.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query, read_json_body
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router, Webhook
from orchestrator.app_keys import ENGINE
from orchestrator.db.models import WebhookDelivery
from orchestrator.errors import Conflict, NotFound
from orchestrator.jobs.views import WebhookPayload
from orchestrator.jobs.webhook_secrets import create_secret, rotate_secret, valid_secrets
from orchestrator.webhooks import queries
from orchestrator.webhooks.schemas import (
    DeliveryList,
    DeliveryOut,
    DeliveryQuery,
    RotateSecret,
    WebhookSecrets,
)

router = Router()
router.webhooks.append(
    Webhook(
        name="job.finished",
        summary="A job with a webhook_url ended",
        description=(
            "POSTed to the job's `webhook_url` once it succeeded, failed or was cancelled; retried with backoff "
            "until a 2xx answer. Verify it with any Standard Webhooks library and your `whsec_` secret, e.g. "
            "`atelier_client.verify_webhook(body, headers, secret)`; the signature covers the id, the "
            "timestamp and the body, and verifiers refuse timestamps more than 5 minutes off (replays). "
            "`webhook-id` is the same for every retry and redelivery of one message: deduplicate on it."
        ),
        payload=WebhookPayload,
        headers={
            "webhook-id": "The message id (a UUID); the same across retries and redeliveries.",
            "webhook-timestamp": "Unix seconds when this attempt was signed.",
            "webhook-signature": "Space-separated `v1,<base64 HMAC-SHA256>`, one per valid secret.",
        },
    )
)


def _delivery_out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        message_id=row.message_id,
        job_id=row.job_id,
        event=f"job.{row.job_status}",
        url=row.url,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        delivered_at=row.delivered_at,
        redelivery_of=row.redelivery_of,
    )


@router.route(
    "GET", "/v1/webhooks/secret", summary="The caller's webhook signing secrets", tag="webhooks",
    response=WebhookSecrets, errors=(404,),
)  # fmt: skip
async def get_webhook_secret(request: web.Request) -> web.Response:
    """The current secret and any rotated-out ones still signing. 404 before the first one exists (one is
    created by ``POST /v1/webhooks/secret`` or by the first delivery)."""
    async with request.app[ENGINE].connect() as conn:
        secrets = await valid_secrets(conn, request[OWNER])
    if not secrets:
        raise NotFound("no webhook secret yet: POST /v1/webhooks/secret creates one")
    return json_response(WebhookSecrets.of(secrets))


@router.route(
    "POST", "/v1/webhooks/secret", summary="Create the caller's webhook signing secret", tag="webhooks",
    response=WebhookSecrets, status=201, errors=(409,),
)  # fmt: skip
async def create_webhook_secret(request: web.Request) -> web.Response:
    """A new `whsec_` secret that signs every delivery of the caller's jobs; 409 when one exists (rotate it)."""
    async with request.app[ENGINE].begin() as conn:
        created = await create_secret(conn, request[OWNER])
        if created is None:
            raise Conflict("a webhook secret exists already: POST /v1/webhooks/secret/rotate replaces it")
        secrets = await valid_secrets(conn, request[OWNER])
    return json_response(WebhookSecrets.of(secrets), 201)


@router.route(
    "POST", "/v1/webhooks/secret/rotate", summary="Rotate the caller's webhook signing secret", tag="webhooks",
    body=RotateSecret, response=WebhookSecrets, errors=(400, 413, 415, 422),
)  # fmt: skip
async def rotate_webhook_secret(request: web.Request) -> web.Response:
    """A new current secret; the old one keeps signing for ``grace_s`` seconds (default a day), so deliveries
    carry both signatures until receivers have switched. The body may be left out."""
    body = await read_json_body(request, RotateSecret) if request.can_read_body else RotateSecret()
    async with request.app[ENGINE].begin() as conn:
        secrets = await rotate_secret(conn, request[OWNER], body.grace_s)
    return json_response(WebhookSecrets.of(secrets))


@router.route(
    "GET", "/v1/webhooks/deliveries", summary="List the caller's webhook deliveries", tag="webhooks",
    query=DeliveryQuery, response=DeliveryList, errors=(422,),
)  # fmt: skip
async def list_webhook_deliveries(request: web.Request) -> web.Response:
    """Newest first: status (pending, delivered, failed), attempts and the last error of each."""
    query = parse_query(request, DeliveryQuery)
    rows, next_cursor = await queries.list_deliveries(
        request.app[ENGINE],
        request[OWNER],
        status=query.status,
        job_id=query.job_id,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(DeliveryList(items=[_delivery_out(r) for r in rows], next_cursor=next_cursor))


@router.route(
    "GET", "/v1/webhooks/deliveries/{id}", summary="Get one webhook delivery", tag="webhooks",
    response=DeliveryOut, errors=(404,),
)  # fmt: skip
async def get_webhook_delivery(request: web.Request) -> web.Response:
    """One delivery: its status, attempts and last error."""
    row = await queries.get_delivery(request.app[ENGINE], request[OWNER], path_uuid(request, "webhook delivery"))
    return json_response(_delivery_out(row))


@router.route(
    "POST", "/v1/webhooks/deliveries/{id}/redeliver", summary="Send a webhook message again", tag="webhooks",
    response=DeliveryOut, status=202, errors=(404,),
)  # fmt: skip
async def redeliver_webhook(request: web.Request) -> web.Response:
    """Queue the same message (same ``webhook-id``, fresh timestamp and signature) as a new delivery, whatever
    became of the first one; the answer is the new delivery."""
    engine, owner = request.app[ENGINE], request[OWNER]
    new_id = await queries.redeliver(engine, owner, path_uuid(request, "webhook delivery"))
    return json_response(_delivery_out(await queries.get_delivery(engine, owner, new_id)), 202)
