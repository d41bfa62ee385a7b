# SPDX-License-Identifier: Apache-2.0
"""Typed failures at the ComfyUI boundary.

Every exception carries ``retryable``: whether running the same prompt again, on this
backend or another one, could succeed. The service maps these onto its own error tree.
"""

from __future__ import annotations

from typing import Any


class ComfyError(Exception):
    """Base of every failure raised by :mod:`orchestrator.comfy`."""

    retryable: bool = False

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend


class BackendUnavailable(ComfyError):
    """The backend could not be reached (refused, reset, timed out) or answered 502/503/504."""

    retryable = True


class BackendLost(BackendUnavailable):
    """The backend stopped answering, or forgot the prompt, while it was queued or running."""

    retryable = True


class NoBackendAvailable(ComfyError):
    """No backend in the pool is healthy and ready (or all were excluded)."""

    retryable = True


class BackendHTTPError(ComfyError):
    """ComfyUI answered with an unexpected HTTP status."""

    def __init__(self, status: int, body: str, *, backend: str | None = None, what: str = "") -> None:
        super().__init__(f"{what or 'request'} answered HTTP {status}: {body[:300]}", backend=backend)
        self.status = status
        self.body = body
        self.retryable = status in (408, 429, 502, 503, 504)


class PromptRejected(BackendHTTPError):
    """POST /prompt was refused (validation): ComfyUI's ``error`` object and ``node_errors``."""

    def __init__(
        self,
        status: int,
        error: dict[str, Any],
        node_errors: dict[str, Any],
        *,
        body: str = "",
        backend: str | None = None,
    ) -> None:
        super().__init__(status, body, backend=backend, what="POST /prompt")
        self.error = error
        self.node_errors = node_errors
        self.error_type = str(error.get("type", "unknown"))
        self.message = str(error.get("message", "prompt rejected"))
        self.retryable = False

    def __str__(self) -> str:
        details = [
            f"node {node_id} ({info.get('class_type', '?')}): "
            + "; ".join(f"{e.get('message')} [{e.get('details')}]" for e in info.get("errors", []))
            for node_id, info in self.node_errors.items()
        ]
        return f"{self.error_type}: {self.message}" + (" — " + " | ".join(details) if details else "")


class LocalComfyError(ComfyError):
    """The supervised local ComfyUI could not be started or kept alive."""

    retryable = True
