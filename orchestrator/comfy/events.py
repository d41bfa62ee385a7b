# SPDX-License-Identifier: Apache-2.0
"""Normalised events and results of one ComfyUI prompt, as the service sees them.

Events (passed to the caller's async callback while a prompt runs): :class:`Progress`,
:class:`Executing`, :class:`Cached`, :class:`Preview`, :class:`Executed`. Results (returned when it ends):
:class:`RunSucceeded`, :class:`RunFailed`, :class:`RunInterrupted`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Progress:
    """A node reported ``step`` of ``total`` (a sampler's steps, usually)."""

    step: int
    total: int
    percent: float
    it_per_s: float | None
    eta_s: float | None
    node: str | None


@dataclass(frozen=True, slots=True)
class Executing:
    """ComfyUI started executing ``node`` (``class_type`` from the submitted graph)."""

    node: str
    class_type: str | None


@dataclass(frozen=True, slots=True)
class Cached:
    """Nodes ComfyUI will not run because their outputs are cached (may be empty)."""

    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    """A live preview image of a running sampler."""

    image: bytes = field(repr=False)
    mime: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One image an output node produced; fetch it with ``ComfyClient.view``."""

    node: str
    filename: str
    subfolder: str
    type: str


@dataclass(frozen=True, slots=True)
class Executed:
    """An output node ran (or was cached) and wrote these images (ComfyUI's ``executed`` message): they can be
    fetched before the prompt's end."""

    node: str
    images: tuple[OutputImage, ...]


Event = Progress | Executing | Cached | Preview | Executed
EventCallback = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunSucceeded:
    """The prompt finished; outputs come from /history (the source of truth)."""

    prompt_id: str
    images: tuple[OutputImage, ...]
    outputs: dict[str, Any]
    execution_ms: int | None
    cached_nodes: tuple[str, ...] = ()
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class RunFailed:
    """A node raised while executing (ComfyUI's ``execution_error``)."""

    prompt_id: str
    node_id: str | None
    node_type: str | None
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...] = ()
    execution_ms: int | None = None
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class RunInterrupted:
    """The prompt was interrupted while running, or deleted while still queued."""

    prompt_id: str
    node_id: str | None = None
    node_type: str | None = None
    before_start: bool = False
    execution_ms: int | None = None
    backend: str | None = None


RunResult = RunSucceeded | RunFailed | RunInterrupted
