"""Response and request models shared by several resources."""

from __future__ import annotations

import uuid
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.jobs.states import Status


class ProblemItem(BaseModel):
    """One field a validation problem (422) found wrong."""

    field: str = Field(description="The field's path: ``loras[1].strength_model``, a query or path parameter name.")
    reason: str = Field(description="What is wrong, in plain words.")
    type: str = Field(description="Machine-readable error type (``invalid`` when nothing more precise is known).")


class Problem(BaseModel):
    """An RFC 9457 problem document; validation problems (422) list each field in ``errors``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemItem] | None = Field(None, description="Validation problems: one item per field.")


class PolicyError(ProblemItem):
    """One field a content-policy refusal concerns (``type`` is the rule id too)."""

    rule: str = Field(description="minors_sexual (refused always) or nsfw_text (per ATELIER_CONTENT_POLICY).")


class ContentPolicyProblem(Problem):
    """A 422 whose ``type`` ends in ``/content-policy``: the content policy refused the request's text.
    Nothing was queued or stored; the refusal is in the audit log under ``request_id``."""

    rule: str = Field(description="The rule that refused it: minors_sexual or nsfw_text.")
    request_id: str = Field(description="The refusal's id in the audit log (GET /v1/audit).")
    errors: list[PolicyError] = Field(description="One item per request field involved.")  # type: ignore[assignment]


class Accepted(BaseModel):
    """The answer to a request that queued a job."""

    id: uuid.UUID
    status: Status = Status.QUEUED
    events_url: str


class PageQuery(BaseModel):
    """Paging of a listing (keyset paging: a cursor, not an offset)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200, description="Page size.")
    cursor: str | None = Field(None, description="next_cursor of the previous page.")


class ListQuery(PageQuery):
    """Paging and a status filter for job listings."""

    status: Status | None = Field(None, description="Only jobs in this status.")


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a listing; each listing subclasses it (``class JobList(Page[JobOut])``) to name itself."""

    items: list[ItemT]
    next_cursor: str | None = Field(None, description="Pass it as ``cursor`` for the next page; none on the last.")
