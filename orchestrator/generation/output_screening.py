# SPDX-License-Identifier: Apache-2.0
"""Generated images past the content policy, after ComfyUI returns them and before they are stored or
announced.

Screened: always under ``strict``; under ``permissive`` unless the job's API key carried the adult-content flag.
An explicit image (classifier score at or above ``ATELIER_CONTENT_IMAGE_THRESHOLD``), by
``ATELIER_CONTENT_IMAGE_ACTION``:

- ``fail``: nothing of the job is stored (its live preview is removed too) and it fails with class
  ``content_blocked`` (not retried); each explicit image gets an audit row (action ``blocked``);
- ``blur``: a heavily blurred copy is stored in its place, its artifact and the job result carry
  ``flagged``; each gets an audit row (action ``blurred``).

Live previews of a screened job are screened too: an explicit one is neither stored nor announced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from orchestrator.generation.outputs import StoredImage, describe_output
from orchestrator.generation.payload import GenerationPayload
from orchestrator.jobs.kinds import JobFailed
from orchestrator.jobs.records import ClaimedJob
from orchestrator.policy import ContentPolicy, Context, ImageDecision, blurred_copy

Fetched = list[tuple[StoredImage, bytes]]


async def screen_outputs(
    policy: ContentPolicy, job: ClaimedJob, payload: GenerationPayload, fetched: Sequence[tuple[StoredImage, bytes]]
) -> tuple[Fetched, list[int]]:
    """The images to store (explicit ones blurred) and the indexes flagged; raises ``content_blocked``."""
    images = list(fetched)
    if not images or not policy.screens_generated(payload.adult_content):
        return images, []
    verdicts = await policy.screen([data for _, data in images])
    decisions = [
        ImageDecision(image.index, verdict, image.sha256)
        for (image, _), verdict in zip(images, verdicts, strict=True)
        if verdict.explicit
    ]
    if not decisions:
        return images, []
    flagged = [d.index for d in decisions]
    owner = job.owner_id
    if policy.image_action == "fail":
        await policy.record_images(
            decisions, action="blocked", context=Context.GENERATED_IMAGE, owner_id=owner, job_id=job.id
        )
        raise JobFailed(
            "content_blocked",
            f"{len(flagged)} of {len(images)} images were explicit; this service's content policy stored none",
            images=flagged,
        )
    for position, (image, data) in enumerate(images):
        if image.index in flagged:
            blurred = await asyncio.to_thread(blurred_copy, data)
            images[position] = (await describe_output(job.id, image.index, blurred), blurred)
    await policy.record_images(
        decisions, action="blurred", context=Context.GENERATED_IMAGE, owner_id=owner, job_id=job.id
    )
    return images, flagged


def preview_check(policy: ContentPolicy, payload: GenerationPayload) -> Callable[[bytes], Awaitable[bool]] | None:
    """For a screened job, whether a live preview may be stored and announced (not when it looks explicit)."""
    if not policy.screens_generated(payload.adult_content):
        return None

    async def allowed(image: bytes) -> bool:
        try:
            [verdict] = await policy.screen([image])
        except (OSError, ValueError):  # an image the classifier cannot read is not shown either
            return False
        return not verdict.explicit

    return allowed
