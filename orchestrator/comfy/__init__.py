# SPDX-License-Identifier: Apache-2.0
"""The ComfyUI engine boundary: HTTP client, shared websocket, prompt runs, backend pool, local server.

Imports nothing else from ``orchestrator``; configuration comes in as constructor arguments.
"""

from orchestrator.comfy.backend import Backend
from orchestrator.comfy.client import ComfyClient, QueueSnapshot, canonical_prompt_id
from orchestrator.comfy.connection import ComfyConnection
from orchestrator.comfy.errors import (
    BackendHTTPError,
    BackendLost,
    BackendUnavailable,
    ComfyError,
    LocalComfyError,
    NoBackendAvailable,
    PromptRejected,
)
from orchestrator.comfy.events import (
    Cached,
    Event,
    EventCallback,
    Executed,
    Executing,
    OutputImage,
    Preview,
    Progress,
    RunFailed,
    RunInterrupted,
    RunResult,
    RunSucceeded,
)
from orchestrator.comfy.local import LocalComfyConfig, LocalComfyUI
from orchestrator.comfy.pool import BackendPool, default_client_id
from orchestrator.comfy.run import PromptRun, RunOptions, run_prompt
from orchestrator.comfy.selection import Candidate, choose_backend

__all__ = [
    "Backend",
    "BackendHTTPError",
    "BackendLost",
    "BackendPool",
    "BackendUnavailable",
    "Cached",
    "Candidate",
    "ComfyClient",
    "ComfyConnection",
    "ComfyError",
    "Event",
    "EventCallback",
    "Executed",
    "Executing",
    "LocalComfyConfig",
    "LocalComfyError",
    "LocalComfyUI",
    "NoBackendAvailable",
    "OutputImage",
    "Preview",
    "Progress",
    "PromptRejected",
    "PromptRun",
    "QueueSnapshot",
    "RunFailed",
    "RunInterrupted",
    "RunOptions",
    "RunResult",
    "RunSucceeded",
    "canonical_prompt_id",
    "choose_backend",
    "default_client_id",
    "run_prompt",
]
