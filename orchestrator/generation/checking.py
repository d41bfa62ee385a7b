# SPDX-License-Identifier: Apache-2.0
"""Checking graphs against the ready backends' cached ``/object_info`` before a job is queued.

A graph passes when one ready backend would take it. When every backend rejects a value from a list (a model
file added since the list was fetched, such as a LoRA trained a minute ago), each backend's ``/object_info``
is fetched again, at most once per ``refresh_after_s``, and the graph checked once more.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass

from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.validation import IssueKind, ValidationIssue
from orchestrator.comfy import Backend, BackendPool, ComfyError
from orchestrator.errors import ServiceUnavailable

log = logging.getLogger(__name__)

Validate = Callable[[ObjectInfo], list[ValidationIssue]]


@dataclass(frozen=True)
class CheckOutcome:
    """Where the graph passed (``backend``), or why it fails everywhere (``issues``, from the first backend)."""

    backend: str | None
    issues: list[ValidationIssue]


class GraphChecker:
    """Validates graphs against the pool's ready backends; keeps one parsed ObjectInfo per backend."""

    def __init__(self, pool: BackendPool, *, refresh_after_s: float = 10.0) -> None:
        self._pool = pool
        self._refresh_after_s = refresh_after_s
        self._parsed: dict[str, tuple[int, ObjectInfo]] = {}
        self._refreshed_at: dict[str, float] = {}
        #: Per parsed ObjectInfo (gone with it): (class, input) -> the names its combo offers, as a set.
        self._offered: weakref.WeakKeyDictionary[ObjectInfo, dict[tuple[str, str], frozenset[str]]] = (
            weakref.WeakKeyDictionary()
        )

    def ready_backends(self) -> list[Backend]:
        """Backends that take prompts now; 503 when there is none."""
        ready = [b for b in self._pool.backends if b.ready and b.healthy]
        if not ready:
            raise ServiceUnavailable(
                "no ComfyUI backend is ready; try again shortly (GET /v1/backends shows their state)",
                extra={"retry_after_s": 5},
            )
        return ready

    async def info(self, backend: Backend, *, refresh: bool = False) -> ObjectInfo:
        """The backend's parsed ``/object_info`` (fetched once, then cached)."""
        try:
            raw = await backend.object_info(refresh=refresh)
        except ComfyError as exc:
            raise ServiceUnavailable(f"ComfyUI backend {backend.url} did not describe its nodes: {exc}") from exc
        if refresh:
            self._refreshed_at[backend.url] = time.monotonic()
        cached = self._parsed.get(backend.url)
        if cached is None or cached[0] != id(raw):
            cached = self._parsed[backend.url] = (id(raw), ObjectInfo(raw))
        return cached[1]

    async def offered(self, class_type: str, input_name: str) -> Collection[str]:
        """Values a combo offers on the first ready backend (checkpoint and LoRA names, for name completion).

        Made into a set once per ``/object_info`` read, not per request: with 500 LoRA files that took 17 us,
        twice a request, and it grows with every LoRA trained (micro-benchmark)."""
        info = await self.info(self.ready_backends()[0])
        sets = self._offered.setdefault(info, {})
        key = (class_type, input_name)
        if key not in sets:
            sets[key] = frozenset(str(v) for v in info.offered(class_type, input_name))
        return sets[key]

    async def check(self, validate: Validate) -> CheckOutcome:
        """Run ``validate`` against each ready backend until one has no issues."""
        backends = self.ready_backends()  # never empty: a 503 otherwise
        first = validate(await self.info(backends[0]))
        if not first:
            return CheckOutcome(backends[0].url, [])
        for backend in backends[1:]:
            if not validate(await self.info(backend)):
                return CheckOutcome(backend.url, [])
        if not any(issue.kind is IssueKind.VALUE_NOT_IN_LIST for issue in first):
            return CheckOutcome(None, first)
        for backend in backends:
            if time.monotonic() - self._refreshed_at.get(backend.url, -1e9) < self._refresh_after_s:
                continue
            log.info("re-reading /object_info of %s (a value was not offered)", backend.url)
            if not validate(await self.info(backend, refresh=True)):
                return CheckOutcome(backend.url, [])
        return CheckOutcome(None, first)
