# SPDX-License-Identifier: Apache-2.0
"""ComfyUI's websocket frames, parsed into small typed records.

Text frames are JSON ``{"type": ..., "data": {...}}``. Binary frames start with a
big-endian u32 event type:

* ``1`` PREVIEW_IMAGE: u32 image format (1 = JPEG, 2 = PNG), then the image bytes;
  sent to clients that did not announce ``supports_preview_metadata``.
* ``4`` PREVIEW_IMAGE_WITH_METADATA: u32 length of a JSON metadata object (``node_id``,
  ``prompt_id``, ``image_type`` …), the JSON, then the image bytes.
* ``3`` TEXT (progress text of a node) is recognised and ignored.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4
_LEGACY_FORMATS = {1: "image/jpeg", 2: "image/png"}

#: Sent first on every connection so that previews name their prompt (event 4).
FEATURE_FLAGS_MESSAGE = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})

#: Messages that end a prompt's execution (before the final ``executing`` with node null).
TERMINAL_TYPES = frozenset({"execution_success", "execution_error", "execution_interrupted"})


@dataclass(frozen=True, slots=True)
class WsMessage:
    """One JSON frame."""

    type: str
    data: dict[str, Any]

    @property
    def prompt_id(self) -> str | None:
        """The prompt the frame is about, when it says so."""
        value = self.data.get("prompt_id")
        return value if isinstance(value, str) else None

    @property
    def is_prompt_done(self) -> bool:
        """``executing`` with node null: ComfyUI has finished the prompt (history is written)."""
        return self.type == "executing" and "node" in self.data and self.data["node"] is None


@dataclass(frozen=True, slots=True)
class PreviewFrame:
    """A decoded preview image; ``prompt_id``/``node`` only with the metadata encoding."""

    image: bytes
    mime: str
    prompt_id: str | None = None
    node: str | None = None


def parse_text_frame(text: str) -> WsMessage | None:
    """Parse a text frame; None (logged) when it is not a ComfyUI message."""
    try:
        raw = json.loads(text)
    except ValueError:
        log.warning("comfy ws: ignoring a text frame that is not JSON: %.80r", text)
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        log.warning("comfy ws: ignoring a frame without a type: %.80r", text)
        return None
    data = raw.get("data")
    return WsMessage(raw["type"], data if isinstance(data, dict) else {})


def queue_remaining_of(message: WsMessage) -> int | None:
    """``status`` frames carry ComfyUI's queue length (pending + running)."""
    if message.type != "status":
        return None
    status = message.data.get("status")
    if not isinstance(status, dict):
        return None
    exec_info = status.get("exec_info")
    if not isinstance(exec_info, dict):
        return None
    value = exec_info.get("queue_remaining")
    return value if isinstance(value, int) else None


def decode_binary_frame(frame: bytes) -> PreviewFrame | None:
    """Decode a binary frame into a preview; None for other or malformed frames."""
    if len(frame) < 8:
        log.debug("comfy ws: short binary frame (%d bytes)", len(frame))
        return None
    event, word = struct.unpack_from(">II", frame, 0)
    if event == PREVIEW_IMAGE:
        mime = _LEGACY_FORMATS.get(word)
        if mime is None:
            log.debug("comfy ws: preview with unknown image format %d", word)
            return None
        return PreviewFrame(bytes(frame[8:]), mime)
    if event == PREVIEW_IMAGE_WITH_METADATA:
        return _decode_with_metadata(frame, word)
    if event != TEXT:
        log.debug("comfy ws: ignoring binary event %d", event)
    return None


def _decode_with_metadata(frame: bytes, meta_len: int) -> PreviewFrame | None:
    end = 8 + meta_len
    if end > len(frame):
        log.debug("comfy ws: preview metadata longer than the frame")
        return None
    try:
        meta = json.loads(frame[8:end])
    except ValueError:
        log.debug("comfy ws: preview metadata is not JSON")
        return None
    if not isinstance(meta, dict):
        return None
    image = bytes(frame[end:])
    mime = meta.get("image_type")
    if not isinstance(mime, str):
        mime = sniff_image_mime(image)
    node = meta.get("display_node_id") or meta.get("node_id")
    prompt_id = meta.get("prompt_id")
    return PreviewFrame(
        image,
        mime,
        prompt_id if isinstance(prompt_id, str) else None,
        str(node) if node is not None else None,
    )


def sniff_image_mime(image: bytes) -> str:
    """Best guess of an image's MIME type from its magic bytes."""
    if image.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if image.startswith(b"\x89PNG"):
        return "image/png"
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
