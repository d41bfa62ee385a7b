# SPDX-License-Identifier: Apache-2.0
"""The content policy applied: what use cases call before anything is queued or stored.

Text: :meth:`ContentPolicy.check_texts` judges every text of a request (:func:`rules.judge_fields`); a refusal
is written to the audit log and counted in ``atelier_policy_refusals_total{rule,context}`` before the
:class:`~orchestrator.errors.ContentRefused` (422) is raised, so it is on record even if the client never
reads the answer. Images: :meth:`ContentPolicy.screen` scores them in a worker thread; the caller decides
what a verdict means for its job and records it with :meth:`ContentPolicy.record_images`.

For the minors rule the audit row keeps only the SHA-256 of the texts; for the NSFW rule an excerpt too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import ContentRefused
from orchestrator.identity import Identity
from orchestrator.metrics import Metrics
from orchestrator.policy.audit_queries import AuditRecord, record_audit
from orchestrator.policy.rules import Context, PolicyMode, Refusal, Rule, TextField, judge_fields
from orchestrator.policy.screening import ImageScreener, ImageVerdict
from orchestrator.settings import Settings

log = logging.getLogger(__name__)
EXCERPT_CHARS = 300


@dataclass(frozen=True)
class ImageDecision:
    """One image that the policy stopped: its index in the job, the verdict and what became of it."""

    index: int
    verdict: ImageVerdict
    sha256: str


class ContentPolicy:
    """The operator's policy (mode, image threshold and action) with its audit log and counters."""

    def gate(self, identity: Identity) -> ContentGate:
        """The policy bound to one request's caller (what use cases receive)."""
        return ContentGate(self, identity)

    def __init__(self, settings: Settings, engine: AsyncEngine, metrics: Metrics) -> None:
        self.mode = PolicyMode(settings.content_policy)
        self.image_action = settings.content_image_action
        self.screener = ImageScreener(settings.content_image_threshold)
        self._engine = engine
        self._metrics = metrics

    async def check_texts(self, identity: Identity, fields: Sequence[TextField]) -> None:
        """Raise :class:`ContentRefused` (after recording it) when the texts may not go ahead."""
        texts = [f for f in fields if f.text]
        if not texts:
            return
        refusal = judge_fields(texts, mode=self.mode, adult=identity.adult_content)
        if refusal is None:
            return
        request_id = uuid.uuid4()
        await record_audit(self._engine, [self._refusal_record(identity, request_id, refusal)])
        self._metrics.policy_refusals.labels(refusal.rule.value, refusal.context.value).inc()
        log.info(
            "content policy refused a request",
            extra={"owner": str(identity.owner_id), "rule": refusal.rule.value, "request_id": str(request_id)},
        )
        errors = [
            {"field": f.field, "reason": reason, "type": refusal.rule.value, "rule": refusal.rule.value}
            for f, reason in zip(refusal.fields, refusal.reasons, strict=True)
        ]
        first = errors[0]
        raise ContentRefused(refusal.rule.value, errors, f"{first['field']}: {first['reason']}", str(request_id))

    def _refusal_record(self, identity: Identity, request_id: uuid.UUID, refusal: Refusal) -> AuditRecord:
        joined = "\n".join(f.text for f in refusal.fields)
        minors = refusal.rule is Rule.MINORS_SEXUAL
        return AuditRecord(
            action="refused",
            rule=refusal.rule.value,
            context=refusal.context.value,
            owner_id=identity.owner_id,
            key_id=identity.key_id,
            request_id=request_id,
            fields=[f.field for f in refusal.fields],
            content_sha256=hashlib.sha256(joined.encode()).hexdigest(),
            excerpt=None if minors else joined[:EXCERPT_CHARS],
            detail={"terms": list(refusal.findings.labels), "mode": self.mode.value},
        )

    def screens_generated(self, adult_content: bool) -> bool:
        """Whether generated images are screened: always under strict; under permissive unless the job's key
        carried the adult-content flag."""
        return self.mode is PolicyMode.STRICT or not adult_content

    async def screen(self, images: Sequence[bytes]) -> list[ImageVerdict]:
        """Verdicts on encoded images, computed in a worker thread, one after another."""
        return await asyncio.to_thread(self.screen_now, images)

    def screen_now(self, images: Sequence[bytes]) -> list[ImageVerdict]:
        """Verdicts on encoded images, here and now (for code already in a worker thread)."""
        verdicts = []
        for data in images:
            started = time.perf_counter()
            verdicts.append(self.screener.screen(data))
            self._metrics.screening_seconds.observe(time.perf_counter() - started)
        return verdicts

    async def record_images(
        self,
        decisions: Sequence[ImageDecision],
        *,
        action: str,
        context: Context,
        owner_id: uuid.UUID | None,
        job_id: uuid.UUID | None = None,
        request_id: uuid.UUID | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record stopped images (``action``: blocked, blurred or rejected) and count them."""
        records = [
            AuditRecord(
                action=action,
                rule=Rule.NSFW_IMAGE.value,
                context=context.value,
                owner_id=owner_id,
                job_id=job_id,
                request_id=request_id,
                content_sha256=d.sha256,
                detail={
                    "index": d.index,
                    "score": round(d.verdict.score, 4),
                    "threshold": self.screener.threshold,
                    **(detail or {}),
                },
            )
            for d in decisions
        ]
        await record_audit(self._engine, records)
        for _ in records:
            self._metrics.policy_refusals.labels(Rule.NSFW_IMAGE.value, context.value).inc()


@dataclass(frozen=True)
class ContentGate:
    """The content policy for one caller: use cases check texts through it before they queue anything."""

    policy: ContentPolicy
    identity: Identity

    async def check(self, fields: Sequence[TextField]) -> None:
        """Raise :class:`ContentRefused` (recorded) when the texts may not go ahead."""
        await self.policy.check_texts(self.identity, fields)

    @property
    def adult_content(self) -> bool:
        """Whether the caller's key carries the adult-content flag."""
        return self.identity.adult_content
