# SPDX-License-Identifier: Apache-2.0
"""How the shared websocket routes frames to prompt runs (no network: frames are fed in)."""

from __future__ import annotations

import aiohttp

from orchestrator.comfy.connection import ComfyConnection
from orchestrator.comfy.protocol import WsMessage


async def test_frames_reach_the_subscriber_of_their_prompt_and_replays_the_running_one() -> None:
    async with aiohttp.ClientSession() as session:
        seen: list[int | None] = []
        conn = ComfyConnection(
            "http://127.0.0.1:1", session, "me", on_state_change=lambda c: seen.append(c.queue_remaining)
        )
        mine, other = conn.subscribe("p1"), conn.subscribe("p2")
        conn.route(WsMessage("status", {"status": {"exec_info": {"queue_remaining": 3}}}))
        conn.route(WsMessage("execution_start", {"prompt_id": "p1"}))
        conn.route(WsMessage("executing", {"node": "5"}))  # replay after a reconnect: no prompt id
        conn.route(WsMessage("executing", {"node": None, "prompt_id": "p1"}))
        conn.route(WsMessage("executing", {"node": "9"}))  # nothing runs for us now: dropped

        got = [await mine.get(0) for _ in range(3)]
        assert [m.type for m in got if isinstance(m, WsMessage)] == ["execution_start", "executing", "executing"]
        assert await mine.get(0) is None
        assert await other.get(0) is None
        assert (conn.queue_remaining, seen, conn.current_prompt) == (3, [3], None)
        assert conn.ws_url == "ws://127.0.0.1:1/ws?clientId=me"
        conn.unsubscribe(mine)
        conn.route(WsMessage("execution_start", {"prompt_id": "p1"}))
        assert await mine.get(0) is None
