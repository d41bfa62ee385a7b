# SPDX-License-Identifier: Apache-2.0
"""The contract cases: each drives a ComfyUI server (real or stand-in) over HTTP and websockets and
returns what happened, in the fixture format, so the recorder can store it and the contract
test can compare it with the stored recording."""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp

from tests.contract.capture import WsCapture, is_msg
from tests.standin.comfyui.recordings import run_fixture
from tests.support.comfy_history import history_entry

Record = dict[str, Any]
TIMEOUT_S = 180.0


def base_graph() -> dict[str, Any]:
    """The recorded txt2img graph (7 nodes: checkpoint, two prompts, latent, KSampler, decode, save)."""
    graph: dict[str, Any] = copy.deepcopy(run_fixture("txt2img")["runs"][0]["graph"])
    return graph


def txt2img(checkpoint: str, *, seed: int | None = None, steps: int = 4, prefix: str = "atelier_contract") -> Any:
    """The recorded graph with our checkpoint, a seed (random by default) and a file prefix."""
    graph = base_graph()
    graph["1"]["inputs"]["ckpt_name"] = checkpoint
    graph["5"]["inputs"].update(seed=random.randrange(1 << 40) if seed is None else seed, steps=steps)
    graph["7"]["inputs"]["filename_prefix"] = prefix
    return graph


def lora_graph(checkpoint: str, lora: str) -> Any:
    """txt2img with a LoraLoader as node 8 (as recorded), feeding the sampler and both prompts."""
    graph = txt2img(checkpoint, prefix="atelier_contract_lora")
    graph["8"] = {
        "class_type": "LoraLoader",
        "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora, "strength_model": 1.0, "strength_clip": 1.0},
    }
    graph["2"]["inputs"]["clip"] = graph["3"]["inputs"]["clip"] = ["8", 1]
    graph["5"]["inputs"]["model"] = ["8", 0]
    return graph


async def submit(
    session: aiohttp.ClientSession, url: str, graph: Any, client_id: str | None, prompt_id: str | None = None
) -> tuple[str, Record]:
    """POST /prompt with our own prompt id; returns it with the answer."""
    prompt_id = prompt_id or str(uuid.uuid4())
    body: Record = {"prompt": graph, "prompt_id": prompt_id}
    if client_id is not None:
        body["client_id"] = client_id
    async with session.post(url + "/prompt", json=body) as response:
        return prompt_id, {"http_status": response.status, "body": await response.json()}


async def get_json(session: aiohttp.ClientSession, url: str, path: str) -> Any:
    """GET a JSON answer."""
    async with session.get(url + path) as response:
        response.raise_for_status()
        return await response.json()


async def wait_history(session: aiohttp.ClientSession, url: str, prompt_id: str) -> Record:
    """Poll /history until the (external) server has written the prompt's entry."""
    return await history_entry(session, url, prompt_id, timeout_s=TIMEOUT_S)


def _client_id(tag: str) -> str:
    return f"atelier-contract-{tag}-{uuid.uuid4().hex[:8]}"


async def _run(session: aiohttp.ClientSession, url: str, ws: WsCapture, label: str, graph: Any) -> Record:
    ws.note(f"submit {label}")
    ws.note("POST /prompt")
    prompt_id, answer = await submit(session, url, graph, ws.client_id)
    if answer["http_status"] == 200:
        await ws.wait_for(is_msg("executing", prompt_id, node=None), TIMEOUT_S)
    history = (await get_json(session, url, f"/history/{prompt_id}")).get(prompt_id)
    return {
        "label": label,
        "prompt_id": prompt_id,
        "graph": graph,
        "graph_known": True,
        "submit": answer,
        "history": history,
    }


async def record_txt2img(session: aiohttp.ClientSession, url: str, checkpoint: str) -> Record:
    """One txt2img run; the first image is fetched back through /view."""
    async with WsCapture(session, url, _client_id("t2i")) as ws:
        run = await _run(session, url, ws, "txt2img", txt2img(checkpoint))
    image = next(iter(run["history"]["outputs"].values()))["images"][0]
    async with session.get(url + "/view", params=image) as response:
        run["view"] = {"http_status": response.status, "png": (await response.read()).startswith(b"\x89PNG")}
    return {"case": "txt2img", "frames": ws.frames, "runs": [run]}


async def record_cached_rerun(session: aiohttp.ClientSession, url: str, checkpoint: str) -> Record:
    """A run, the identical graph again (all cached), then a new seed (sampler onwards runs)."""
    first = txt2img(checkpoint, prefix="atelier_contract_cache")
    changed = copy.deepcopy(first)
    changed["5"]["inputs"]["seed"] += 1
    async with WsCapture(session, url, _client_id("cache")) as ws:
        runs = [
            await _run(session, url, ws, label, graph)
            for label, graph in (("first", first), ("identical_rerun", first), ("seed_changed", changed))
        ]
    return {"case": "cached_rerun", "frames": ws.frames, "runs": runs}


async def record_exec_error(session: aiohttp.ClientSession, url: str, checkpoint: str, lora: str) -> Record:
    """A LoRA whose file is corrupt: ``execution_error`` from the LoraLoader."""
    async with WsCapture(session, url, _client_id("err")) as ws:
        run = await _run(session, url, ws, "corrupt_lora", lora_graph(checkpoint, lora))
    return {"case": "exec_error", "frames": ws.frames, "runs": [run]}


async def record_interrupt(session: aiohttp.ClientSession, url: str, checkpoint: str) -> Record:
    """A long prompt A interrupted after its first step; B queued behind it and deleted."""
    extra: Record = {}
    async with WsCapture(session, url, _client_id("int")) as ws:
        ws.note("POST /prompt")
        a_graph = txt2img(checkpoint, steps=100, prefix="atelier_contract_int_A")
        a_id, a_answer = await submit(session, url, a_graph, ws.client_id)
        await ws.wait_for(is_msg("progress", a_id))
        ws.note("POST /prompt")
        b_graph = txt2img(checkpoint, prefix="atelier_contract_int_B")
        b_id, _ = await submit(session, url, b_graph, ws.client_id)
        extra["queue_before_delete"] = await get_json(session, url, "/queue")
        ws.note("POST /queue delete B")
        await session.post(url + "/queue", json={"delete": [b_id]})
        extra["queue_after_delete"] = await get_json(session, url, "/queue")
        ws.note("POST /interrupt {prompt_id: A}")
        await session.post(url + "/interrupt", json={"prompt_id": a_id})
        await ws.wait_for(is_msg("executing", a_id, node=None), TIMEOUT_S)
    runs = [
        {
            "label": "A_long",
            "prompt_id": a_id,
            "graph": a_graph,
            "graph_known": True,
            "submit": a_answer,
            "history": await wait_history(session, url, a_id),
        },
        {
            "label": "B_to_delete",
            "prompt_id": b_id,
            "graph": b_graph,
            "graph_known": True,
            "history": await get_json(session, url, f"/history/{b_id}"),
        },
    ]
    return {"case": "interrupt", "frames": ws.frames, "runs": runs, **extra}


async def record_routing(session: aiohttp.ClientSession, url: str, checkpoint: str) -> Record:
    """Who receives what: the submitter, another client id, no client id, a second socket with the
    submitter's id mid-run; then a prompt submitted without a client id."""
    me, other = _client_id("g"), _client_id("g-other")
    async with (
        WsCapture(session, url, me) as x,
        WsCapture(session, url, other) as y,
        WsCapture(session, url, None) as n,
    ):
        x.note("POST /prompt")
        first_graph = txt2img(checkpoint, steps=8, prefix="atelier_contract_g")
        first, _ = await submit(session, url, first_graph, me)
        await x.wait_for(is_msg("progress", first))
        x.note("second socket with same clientId connects")
        async with WsCapture(session, url, me) as x2:
            await x2.wait_for(is_msg("executing", first, node=None), TIMEOUT_S)
            x.note("submit without client_id")
            x.note("POST /prompt")
            second_graph = txt2img(checkpoint, steps=3, prefix="atelier_contract_g_noclient")
            second, _ = await submit(session, url, second_graph, None)
            await y.wait_for(is_msg("progress", second, value=3), TIMEOUT_S)
            await n.wait_for(is_msg("progress", second, value=3), TIMEOUT_S)
            history = await wait_history(session, url, second)
            sockets = {
                "submitter": list(x.frames),
                "other_client": list(y.frames),
                "same_client_midrun": list(x2.frames),
                "no_client": list(n.frames),
            }
    runs = [
        {
            "label": "with_client_id",
            "prompt_id": first,
            "graph": first_graph,
            "graph_known": True,
            "history": await wait_history(session, url, first),
        },
        {
            "label": "without_client_id",
            "prompt_id": second,
            "graph": second_graph,
            "graph_known": True,
            "history": history,
        },
    ]
    return {"case": "routing", "frames": sockets["submitter"], "runs": runs, "sockets": sockets}


NOT_AN_IMAGE = b"this is not an image"


def bad_image_graph(image: str) -> Any:
    """LoadImage of a file that is not an image, saved: fails in LoadImage."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "atelier_contract_bad"}},
    }


async def record_bad_image(session: aiohttp.ClientSession, url: str) -> Record:
    """An uploaded file that is not an image: ``execution_error`` from LoadImage."""
    form = aiohttp.FormData()
    form.add_field(
        "image",
        NOT_AN_IMAGE,
        filename=f"atelier_contract_notimage_{uuid.uuid4().hex[:8]}.png",
        content_type="image/png",
    )
    async with session.post(url + "/upload/image", data=form) as response:
        response.raise_for_status()
        name = (await response.json())["name"]
    async with WsCapture(session, url, _client_id("badimg")) as ws:
        run = await _run(session, url, ws, "bad_image", bad_image_graph(name))
    return {"case": "bad_image", "frames": ws.frames, "runs": [run]}


def error_requests(checkpoint: str) -> dict[str, Any]:
    """The /prompt requests of the validation-error cases (``str`` = a raw, malformed body)."""

    def variant(change: Any) -> Record:
        graph = txt2img(checkpoint, seed=1)
        change(graph)
        return {"prompt": graph}

    return {
        "missing_input_steps": variant(lambda g: g["5"]["inputs"].pop("steps")),
        "unknown_node_class": variant(lambda g: g.update({"9": {"class_type": "NoSuchNode", "inputs": {}}})),
        "bad_checkpoint_name": variant(lambda g: g["1"]["inputs"].update(ckpt_name="nonexistent.safetensors")),
        "value_below_min_steps0": variant(lambda g: g["5"]["inputs"].update(steps=0)),
        "bad_combo_sampler": variant(lambda g: g["5"]["inputs"].update(sampler_name="no_such_sampler")),
        "type_mismatch_link": variant(lambda g: g["5"]["inputs"].update(positive=["4", 0])),
        "link_to_missing_node": variant(lambda g: g["5"]["inputs"].update(latent_image=["42", 0])),
        "no_output_node": variant(lambda g: g.pop("7")),
        "string_for_int": variant(lambda g: g["5"]["inputs"].update(steps="four")),
        "no_prompt_key": {"client_id": "atelier-contract"},
        "bad_client_prompt_id": {**variant(lambda g: None), "prompt_id": "NOT-A-UUID"},
        "malformed_json_body": '{"prompt": {not json',
    }


async def record_prompt_errors(session: aiohttp.ClientSession, url: str, checkpoint: str) -> Record:
    """Status and body of every validation-error case (nothing is queued)."""
    cases: Record = {}
    for name, request in error_requests(checkpoint).items():
        data = request if isinstance(request, str) else json.dumps(request)
        async with session.post(url + "/prompt", data=data, headers={"Content-Type": "application/json"}) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            cases[name] = {"http_status": response.status, "body": body}
    return {"cases": cases}


async def record_upload(session: aiohttp.ClientSession, url: str, png: bytes, other_png: bytes) -> Record:
    """The /upload/image answers, in the recorded order, under a name unique to this run."""
    stem = f"atelier_contract_{uuid.uuid4().hex[:8]}"
    steps: list[tuple[str, bytes, dict[str, str], str]] = [
        ("first", png, {}, "image"),
        ("same_bytes_again", png, {}, "image"),
        ("overwrite_true", png, {"overwrite": "true"}, "image"),
        ("subfolder", png, {"subfolder": "labsub"}, "image"),
        ("type_temp", png, {"type": "temp"}, "image"),
        ("different_bytes_same_name", other_png, {}, "image"),
        ("wrong_field_name_file", png, {}, "file"),
    ]
    cases: Record = {}
    for name, data, fields, field in steps:
        form = aiohttp.FormData()
        form.add_field(field, data, filename=f"{stem}.png", content_type="image/png")
        for key, value in fields.items():
            form.add_field(key, value)
        async with session.post(url + "/upload/image", data=form) as response:
            text = await response.text()
            cases[name] = {
                "fields": fields,
                "status": response.status,
                "body": json.loads(text) if text.startswith("{") else text,
            }
    return {"stem": stem, "cases": cases}


async def record_server(session: aiohttp.ClientSession, url: str) -> Record:
    """The server's other answers."""
    folders = await get_json(session, url, "/models")
    return {
        "system_stats": await get_json(session, url, "/system_stats"),
        "features": await get_json(session, url, "/features"),
        "models": {
            "folders": folders,
            **{f: await get_json(session, url, f"/models/{f}") for f in ("checkpoints", "loras")},
        },
    }


def with_lora(graph: Any, lora: str, strength: float = 1.0) -> Any:
    """``graph`` (the recorded txt2img) with a LoraLoader as node 8 feeding the sampler and both prompts."""
    graph = copy.deepcopy(graph)
    graph["8"] = {
        "class_type": "LoraLoader",
        "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora, "strength_model": strength,
                   "strength_clip": strength},
    }  # fmt: skip
    graph["2"]["inputs"]["clip"] = graph["3"]["inputs"]["clip"] = ["8", 1]
    graph["5"]["inputs"]["model"] = ["8", 0]
    return graph


def usable_loras(names: list[str]) -> list[str]:
    """LoRA files that load (not the corrupt one of the error case), those that patch weights first (a *bogus*
    file's keys match no layer)."""
    return sorted((n for n in names if "corrupt" not in n), key=lambda n: ("bogus" in n, n))


async def _free(session: aiohttp.ClientSession, url: str) -> None:
    """``POST /free``: drop cached outputs and unload models; ComfyUI does it once the prompt running now ends."""
    async with session.post(url + "/free", json={"unload_models": True, "free_memory": True}) as response:
        response.raise_for_status()


async def _mark_disturbed(session: aiohttp.ClientSession, url: str, runs: list[Record]) -> None:
    """Mark the runs before which another client's prompt started (since our previous one): it may have loaded
    another model, or the very one, so the run says nothing about a switch."""
    history = await get_json(session, url, "/history?max_items=1000")
    starts = {
        prompt_id: data["timestamp"]
        for prompt_id, entry in history.items()
        for kind, data in entry.get("status", {}).get("messages", [])
        if kind == "execution_start"
    }
    ours = {run["prompt_id"] for run in runs}
    previous = float("-inf")
    for run in runs:
        start = starts.get(run["prompt_id"], previous)
        run["disturbed"] = any(previous < t < start for p, t in starts.items() if p not in ours)
        previous = start


async def record_model_loads(
    session: aiohttp.ClientSession, url: str, checkpoints: Sequence[str], loras: tuple[str, str], rounds: int = 3
) -> Record:
    """What a model switch costs. Each round: a checkpoint switch (to the round's checkpoint, taking turns when
    two are given, after ``/free`` unloaded the last prompt's model and dropped the cached outputs: a switch to a
    model that is not in memory, also on a server that keeps earlier models in RAM), a rerun of that model, a
    LoRA-set switch on the same checkpoint, and a rerun of that. Every prompt has a new seed and a new positive
    text (as jobs do), so the text encoders and the sampler run every time and a switch differs from its rerun
    only by what it loads. A warm-up prompt comes first. The ``progress_state`` frames are left out: the timings
    do not need them, and they are most of the bytes."""
    takes = iter(range(1 << 30))

    def graph(checkpoint: str, lora: str) -> Any:
        base = txt2img(checkpoint, prefix="atelier_contract_loads")
        base["2"]["inputs"]["text"] = f"a photo of a cat, take {next(takes)}"
        return with_lora(base, lora)

    async def run(label: str, graph: Any, round_: int, *, free_after: bool = False) -> Record:
        ws.note(f"submit {label}")
        prompt_id, answer = await submit(session, url, graph, ws.client_id)
        if free_after:  # taken once this prompt has run, before the next one starts
            ws.note("POST /free")
            await _free(session, url)
        await ws.wait_for(is_msg("executing", prompt_id, node=None), TIMEOUT_S)
        history = (await get_json(session, url, f"/history/{prompt_id}")).get(prompt_id)
        return {"label": label, "round": round_, "prompt_id": prompt_id, "graph": graph, "graph_known": True,
                "submit": answer, "history": history}  # fmt: skip

    async with WsCapture(session, url, _client_id("loads")) as ws:
        runs = [await run("warmup", graph(checkpoints[-1], loras[1]), -1, free_after=True)]
        for round_ in range(rounds):
            checkpoint = checkpoints[round_ % len(checkpoints)]
            first, second = loras[round_ % 2], loras[(round_ + 1) % 2]
            runs.append(await run("checkpoint_switch", graph(checkpoint, first), round_))
            runs.append(await run("rerun", graph(checkpoint, first), round_))
            runs.append(await run("lora_switch", graph(checkpoint, second), round_))
            runs.append(await run("rerun", graph(checkpoint, second), round_, free_after=True))
    await _mark_disturbed(session, url, runs)
    frames = [f for f in ws.frames if (f.get("msg") or {}).get("type") != "progress_state"]  # most of the bytes
    return {"case": "model_loads", "frames": frames, "runs": runs, "checkpoints": list(checkpoints),
            "loras": list(loras)}  # fmt: skip
