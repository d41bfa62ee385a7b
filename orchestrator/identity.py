"""Who a request acts for: the owner, the API key and what that key may do (no web types: use cases take it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """The caller of one request.

    ``admin`` keys may read the audit log (``GET /v1/audit``); ``adult_content`` keys may get sexual or nudity
    content where the operator's content policy is ``permissive``. Single-user mode acts as the local owner
    with both (the operator is the only user).
    """

    owner_id: uuid.UUID
    key_id: uuid.UUID | None = None
    admin: bool = False
    adult_content: bool = False
