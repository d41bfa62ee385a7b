# SPDX-License-Identifier: Apache-2.0
"""Parsing ComfyUI's websocket frames; binary layouts as recorded (both preview encodings)."""

from __future__ import annotations

import json
import struct

import pytest

from orchestrator.comfy.protocol import (
    WsMessage,
    decode_binary_frame,
    parse_text_frame,
    queue_remaining_of,
    sniff_image_mime,
)
from tests.standin.comfyui.recordings import run_fixture

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def _recorded_binary(case: str) -> dict:
    return next(f for f in run_fixture(case)["frames"] if f["kind"] == "binary")


def test_legacy_preview_as_recorded() -> None:
    frame = _recorded_binary("preview_legacy")
    data = bytes.fromhex(frame["first8_hex"]) + bytes.fromhex(frame["image_magic"]) + b"\x00" * 8
    preview = decode_binary_frame(data)
    assert preview is not None
    assert (preview.mime, preview.prompt_id, preview.node) == ("image/jpeg", None, None)
    assert preview.image.startswith(bytes.fromhex(frame["image_magic"]))


def test_preview_with_metadata_as_recorded() -> None:
    frame = _recorded_binary("preview_metadata")
    meta = json.dumps(frame["metadata"]).encode()
    data = struct.pack(">II", frame["event_type_u32be"], len(meta)) + meta + JPEG
    preview = decode_binary_frame(data)
    assert preview is not None
    assert preview.prompt_id == frame["metadata"]["prompt_id"]
    assert (preview.node, preview.mime, preview.image) == ("5", "image/jpeg", JPEG)


def test_png_legacy_preview() -> None:
    preview = decode_binary_frame(struct.pack(">II", 1, 2) + b"\x89PNG rest")
    assert preview is not None
    assert preview.mime == "image/png"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00\x00\x01",  # too short
        struct.pack(">II", 1, 9) + JPEG,  # unknown image format
        struct.pack(">II", 3, 4) + b"node" + b"text",  # progress text: not a preview
        struct.pack(">II", 4, 500) + b"{}",  # metadata longer than the frame
        struct.pack(">II", 4, 3) + b"{x}" + JPEG,  # metadata not JSON
        struct.pack(">II", 77, 0),
    ],
)
def test_frames_that_are_not_previews(frame: bytes) -> None:
    assert decode_binary_frame(frame) is None


def test_metadata_without_image_type_sniffs_it() -> None:
    meta = json.dumps({"prompt_id": "p", "node_id": "3"}).encode()
    preview = decode_binary_frame(struct.pack(">II", 4, len(meta)) + meta + b"\x89PNG....")
    assert preview is not None
    assert (preview.mime, preview.node) == ("image/png", "3")


def test_text_frames() -> None:
    status = parse_text_frame('{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}}}')
    assert status is not None
    assert queue_remaining_of(status) == 2
    done = parse_text_frame('{"type": "executing", "data": {"node": null, "prompt_id": "p"}}')
    assert done is not None
    assert done.is_prompt_done
    assert done.prompt_id == "p"
    replay = parse_text_frame('{"type": "executing", "data": {"node": "5"}}')
    assert replay is not None
    assert not replay.is_prompt_done
    assert replay.prompt_id is None
    assert parse_text_frame("not json") is None
    assert parse_text_frame('{"data": {}}') is None
    assert queue_remaining_of(WsMessage("status", {"status": "connected"})) is None


def test_sniff() -> None:
    assert sniff_image_mime(b"RIFF\x00\x00\x00\x00WEBPVP8") == "image/webp"
    assert sniff_image_mime(b"??") == "application/octet-stream"
