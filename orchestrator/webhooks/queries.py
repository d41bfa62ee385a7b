"""SQL of the webhook administration: the owner's deliveries, and redelivery as a new pending row."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Job, WebhookDelivery
from orchestrator.db.paging import newest_first, page
from orchestrator.errors import NotFound

# The copy keeps the message id, so receivers that deduplicate by webhook-id see one message.
_REDELIVER = text(
    """
INSERT INTO webhook_deliveries (job_id, url, job_status, message_id, redelivery_of)
SELECT d.job_id, d.url, d.job_status, d.message_id, d.id
FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
WHERE d.id = :id AND j.owner_id = :owner
RETURNING id
"""
)


async def list_deliveries(
    engine: AsyncEngine,
    owner_id: uuid.UUID,
    *,
    status: str | None,
    job_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], str | None]:
    """A page of the owner's deliveries, newest first."""
    stmt = select(WebhookDelivery).join(Job, Job.id == WebhookDelivery.job_id).where(Job.owner_id == owner_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if job_id is not None:
        stmt = stmt.where(WebhookDelivery.job_id == job_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(newest_first(stmt, WebhookDelivery, cursor=cursor, limit=limit))).all()
    return page([WebhookDelivery(**row._mapping) for row in rows], limit)


async def get_delivery(engine: AsyncEngine, owner_id: uuid.UUID, delivery_id: uuid.UUID) -> WebhookDelivery:
    """One of the owner's deliveries; 404 otherwise."""
    stmt = (
        select(WebhookDelivery)
        .join(Job, Job.id == WebhookDelivery.job_id)
        .where(WebhookDelivery.id == delivery_id, Job.owner_id == owner_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(f"no webhook delivery with id {delivery_id}")
    return WebhookDelivery(**row._mapping)


async def redeliver(engine: AsyncEngine, owner_id: uuid.UUID, delivery_id: uuid.UUID) -> uuid.UUID:
    """Queue the delivery's message again (NOTIFY wakes a dispatcher); the new delivery's id. 404 if not ours."""
    async with engine.begin() as conn:
        new_id = await conn.scalar(_REDELIVER, {"id": delivery_id, "owner": owner_id})
        if new_id is None:
            raise NotFound(f"no webhook delivery with id {delivery_id}")
        await conn.execute(text("SELECT pg_notify('atelier_webhooks', :id)"), {"id": str(new_id)})
    return uuid.UUID(str(new_id))
