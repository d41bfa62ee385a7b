# SPDX-License-Identifier: Apache-2.0
"""The stand-in charges a model switch -- another checkpoint, another LoRA set -- and nothing for a rerun."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp

from tests.contract import cases
from tests.contract.capture import WsCapture, is_msg
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.standin.comfyui.loading import Load, LoadCosts, ModelKey, load_needed, model_key
from tests.standin.comfyui.recordings import recorded, run_fixture, switch_extras

A, B = "base_a.safetensors", "base_b.safetensors"
L1, L2 = "style_1.safetensors", "style_2.safetensors"
SCALE = 0.05


def _graph(checkpoint: str, lora: str, *, seed: int, strength: float = 1.0) -> Any:
    return cases.with_lora(cases.txt2img(checkpoint, seed=seed), lora, strength)


def test_model_key_reads_checkpoints_and_lora_inputs_through_markers() -> None:
    graph = _graph(A, L1, seed=1)
    graph["9"] = {"class_type": "AtelierCheckpointInput", "inputs": {"name": "base", "ckpt_name": B}}
    graph["1"]["inputs"]["ckpt_name"] = ["9", 0]

    key = model_key(graph)

    assert key == ModelKey((B,), ((("lora_name", L1), ("strength_clip", "1.0"), ("strength_model", "1.0")),))
    assert model_key({"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}) is None


def test_a_switch_is_charged_by_what_changed() -> None:
    costs = LoadCosts(checkpoint_s=2.0, lora_s=0.5)
    a1 = model_key(_graph(A, L1, seed=1))
    a1_again = model_key(_graph(A, L1, seed=2))
    a2 = model_key(_graph(A, L2, seed=1))
    a1_weaker = model_key(_graph(A, L1, seed=1, strength=0.5))
    b1 = model_key(_graph(B, L1, seed=1))

    assert load_needed(None, a1, costs) == Load("checkpoint", 2.0)
    assert load_needed(a1, a1_again, costs) is None
    assert load_needed(a1, a2, costs) == Load("lora", 0.5)
    assert load_needed(a1, a1_weaker, costs) == Load("lora", 0.5)
    assert load_needed(a2, b1, costs) == Load("checkpoint", 2.0)
    assert load_needed(a1, None, costs) is None


def _frame(t: float, kind: str, prompt_id: str, **data: Any) -> dict[str, Any]:
    return {"t": t, "kind": "text", "msg": {"type": kind, "data": {"prompt_id": prompt_id, **data}}}


def _prompt(prompt_id: str, start: float, nodes: list[tuple[str, float]], end: float) -> list[dict[str, Any]]:
    frames = [_frame(start, "execution_start", prompt_id)]
    frames += [_frame(t, "executing", prompt_id, node=node) for node, t in nodes]
    return [*frames, _frame(end, "execution_success", prompt_id)]


def test_switch_extras_take_the_rerun_median_and_the_nodes_only_a_switch_runs_at_their_rerun_time() -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple"},
        "2": {"class_type": "CLIPTextEncode"},
        "3": {"class_type": "CLIPTextEncode"},
        "5": {"class_type": "KSampler"},
    }
    # reruns: text encoder 2 (0.2 s) and the sampler; 1.0, 1.2 and (another client before it) 9.0 s in all
    frames = _prompt("r1", 0.0, [("2", 0.0), ("5", 0.2)], 1.0)
    frames += _prompt("r2", 10.0, [("2", 10.0), ("5", 10.2)], 11.2)
    frames += _prompt("r3", 20.0, [("2", 20.0), ("5", 20.2)], 29.0)
    # a checkpoint switch: the loader (0.5 s), encoder 3 only here (0.7 s: it moved the clip), then 2 and 5
    frames += _prompt("c1", 30.0, [("1", 30.0), ("3", 30.5), ("2", 31.2), ("5", 31.4)], 32.4)
    fixture = {
        "frames": frames,
        "runs": [
            {"label": "rerun", "prompt_id": "r1", "graph": graph},
            {"label": "rerun", "prompt_id": "r2", "graph": graph},
            {"label": "rerun", "prompt_id": "r3", "graph": graph, "disturbed": True},
            {"label": "checkpoint_switch", "prompt_id": "c1", "graph": graph},
        ],
    }

    extras = switch_extras(fixture)

    # 2.4 s executed, minus encoder 3 at the reruns' encoder time (0.2 s), minus the reruns' median (1.1 s)
    assert [round(x, 6) for x in extras["checkpoint_switch"]] == [1.1]
    assert extras["lora_switch"] == []


def test_the_recorded_switches_cost_something() -> None:
    costs = recorded().load_costs
    extras = switch_extras(run_fixture("model_loads"))

    assert costs.checkpoint_s > costs.lora_s > 0
    assert len(extras["checkpoint_switch"]) >= 3
    assert len(extras["lora_switch"]) >= 3


async def _run(session: aiohttp.ClientSession, url: str, ws: WsCapture, graph: Any) -> tuple[str, int]:
    prompt_id, answer = await cases.submit(session, url, graph, ws.client_id)
    assert answer["http_status"] == 200, answer
    await ws.wait_for(is_msg("executing", prompt_id, node=None))
    entry = (await cases.get_json(session, url, f"/history/{prompt_id}"))[prompt_id]
    stamps = {kind: data["timestamp"] for kind, data in entry["status"]["messages"]}
    return prompt_id, stamps["execution_success"] - stamps["execution_start"]


async def test_the_standin_charges_switches_only() -> None:
    models = {"checkpoints": [A, B], "loras": [L1, L2]}
    costs = recorded().load_costs
    async with (
        StandinComfyUI(StandinOptions(time_scale=SCALE, previews=False, models=models)) as comfy,
        aiohttp.ClientSession() as session,
        WsCapture(session, comfy.url, "unit-loads") as ws,
    ):
        first, _ = await _run(session, comfy.url, ws, _graph(A, L1, seed=1))
        await _run(session, comfy.url, ws, _graph(A, L1, seed=2))  # a rerun: nothing to load
        lora, _ = await _run(session, comfy.url, ws, _graph(A, L2, seed=3))
        weaker, _ = await _run(session, comfy.url, ws, _graph(A, L2, seed=4, strength=0.5))
        switch, switch_ms = await _run(session, comfy.url, ws, _graph(B, L2, seed=5, strength=0.5))
        async with session.post(comfy.url + "/free", json={"unload_models": True}) as response:
            assert response.status == 200
        again = _graph(B, L2, seed=6, strength=0.5)
        unloaded, _ = await _run(session, comfy.url, ws, again)
        await _run(session, comfy.url, ws, copy.deepcopy(again))  # all cached: no sampler runs, nothing loads

        assert comfy.executor.loads == [
            (first, "checkpoint"),
            (lora, "lora"),
            (weaker, "lora"),
            (switch, "checkpoint"),
            (unloaded, "checkpoint"),
        ]
        assert switch_ms >= costs.checkpoint_s * SCALE * 1000 - 1
