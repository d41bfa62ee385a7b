# SPDX-License-Identifier: Apache-2.0
"""One-off provenance script: builds tests/fixtures/comfyui/ from the reference recordings.

The reference folder (recorded from ComfyUI v0.33.0) holds websocket transcripts and HTTP
answers in several files; this gathers them into the fixture layout the stand-in and the
contract test read (``runs/<case>.json``, ``server/*.json``, ``prompt_errors.json``,
``upload_image.json``). ``python -m tests.contract.record`` writes the same layout from a
live server and supersedes what this produced.

    python -m tests.contract.seed <folder of the reference recordings>/comfyui
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path
from typing import Any

from tests.standin.comfyui.recordings import FIXTURES, write_json

log = logging.getLogger(__name__)
SOURCE = "reference recording, ComfyUI v0.33.0 (upstream de6b062f), --cpu, slim random SD1.5"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _only(history: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((prompt_id, entry),) = history.items()
    return prompt_id, entry


def _pids(frames: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for frame in frames:
        pid = frame.get("msg", {}).get("data", {}).get("prompt_id") if frame.get("kind") == "text" else None
        if pid and pid not in seen:
            seen.append(pid)
    return seen


def _variant(graph: dict[str, Any], prefix: str, **ksampler: Any) -> dict[str, Any]:
    out = copy.deepcopy(graph)
    out["7"]["inputs"]["filename_prefix"] = prefix
    out["5"]["inputs"].update(ksampler)
    return out


def _run(
    label: str, prompt_id: str, graph: dict[str, Any] | None, history: Any = None, *, known: bool = True
) -> dict[str, Any]:
    return {"label": label, "prompt_id": prompt_id, "graph": graph, "graph_known": known, "history": history}


def _case(name: str, frames: list[dict[str, Any]], runs: list[dict[str, Any]], **extra: Any) -> None:
    write_json(
        FIXTURES / "runs" / f"{name}.json",
        {"case": name, "source": SOURCE, "frames": frames, "runs": runs, **extra},
    )


def _seed_failures(ref: Path, proto: Path) -> None:
    err_pid, err_entry = _only(_load(proto / "history_exec_error.json"))
    _case(
        "exec_error",
        _jsonl(ref / "ws_transcript_exec_error.jsonl"),
        [_run("corrupt_lora", err_pid, err_entry["prompt"][2], err_entry)],
    )
    hist = _load(proto / "history_interrupt.json")
    a_pid, a_entry = _only(hist["A_long"])
    c_pid, c_entry = _only(hist["C_after"])
    b_item = _load(proto / "queue_before_delete.json")["queue_pending"][0]
    _case(
        "interrupt",
        _jsonl(ref / "ws_transcript_interrupt.jsonl"),
        [
            _run("A_long", a_pid, a_entry["prompt"][2], a_entry),
            _run("B_to_delete", b_item[1], b_item[2], {}),
            _run("C_after", c_pid, c_entry["prompt"][2], c_entry),
        ],
        queue_before_delete=_load(proto / "queue_before_delete.json"),
        queue_after_delete=_load(proto / "queue_after_delete.json"),
    )


def _seed_reruns(ref: Path, proto: Path, base: dict[str, Any]) -> None:
    cache_frames = _jsonl(ref / "ws_transcript_cached_rerun.jsonl")
    outputs = _load(proto / "cached_rerun_outputs.json")
    labels = ["first", "identical_rerun", "seed_changed", "neg_text_changed"]
    first = _variant(base, "lab_cache")
    graphs = [first, first, _variant(first, "lab_cache", seed=2), copy.deepcopy(_variant(first, "lab_cache", seed=2))]
    graphs[3]["3"]["inputs"]["text"] = "blurry, changed"
    runs = [
        dict(_run(lbl, pid, g, None, known=False), outputs=outputs[pid])
        for lbl, pid, g in zip(labels, _pids(cache_frames), graphs, strict=True)
    ]
    _case("cached_rerun", cache_frames, runs)
    for name in ("preview_legacy", "preview_metadata"):
        frames = _jsonl(ref / f"ws_transcript_{name}.jsonl")
        _case(name, frames, [_run(name, _pids(frames)[0], _variant(base, "lab_t64"), None, known=False)])


def _seed_lora(ref: Path, proto: Path, base: dict[str, Any]) -> None:
    lora_frames = _jsonl(ref / "ws_transcript_lora.jsonl")
    lora_graph = _only(_load(proto / "history_exec_error.json"))[1]["prompt"][2]
    lora_runs = []
    for lbl, pid, lora, strength in zip(
        ["base", "lora_on", "lora_zero", "lora_bogus"],
        _pids(lora_frames),
        [None, "lab_tiny_lora.safetensors", "lab_tiny_lora.safetensors", "lab_tiny_lora_bogus.safetensors"],
        [None, 1.0, 0.0, 1.0],
        strict=True,
    ):
        graph = copy.deepcopy(base if lora is None else lora_graph)
        if lora is not None:
            graph["8"]["inputs"].update(lora_name=lora, strength_model=strength, strength_clip=strength)
        lora_runs.append(_run(lbl, pid, graph, None, known=False))
    _case("lora", lora_frames, lora_runs)


def _seed_routing(proto: Path, base: dict[str, Any]) -> None:
    g_pid, g_entry = _only(_load(proto / "GET_history_max_items=1.json")["body"])
    sub_frames = _jsonl(proto / "ws_g_submitter.jsonl")
    midrun = _jsonl(proto / "ws_g_same_clientid_midrun.jsonl")
    runs = [
        _run("with_client_id", _pids(midrun)[0], _variant(base, "lab_g", steps=8), None, known=False),
        _run("without_client_id", g_pid, g_entry["prompt"][2], g_entry),
    ]
    sockets = {
        "submitter": sub_frames,
        "other_client": _jsonl(proto / "ws_g_other_clientid.jsonl"),
        "same_client_midrun": midrun,
        "no_client": _jsonl(proto / "ws_g_no_clientid.jsonl"),
    }
    _case("routing", sub_frames, runs, sockets=sockets)


def _seed_http(proto: Path) -> None:
    write_json(FIXTURES / "prompt_errors.json", {"source": SOURCE, "cases": _load(proto / "prompt_errors.json")})
    write_json(
        FIXTURES / "upload_image.json",
        {"source": SOURCE, "stem": "lab_upload", "cases": _load(proto / "upload_image.json")},
    )
    server = FIXTURES / "server"
    write_json(server / "system_stats.json", _load(proto / "GET_system_stats.json")["body"])
    write_json(server / "features.json", _load(proto / "GET_features.json")["body"])
    models = {
        "folders": _load(proto / "GET_models.json")["body"],
        "checkpoints": _load(proto / "GET_models_checkpoints.json")["body"],
        "loras": _load(proto / "GET_models_loras.json")["body"],
    }
    write_json(server / "models.json", models)


def seed(ref: Path) -> None:
    """Write every fixture derived from the reference folder ``ref``."""
    proto = ref / "protocol"
    txt_pid, txt_entry = _only(_load(ref / "history_txt2img.json"))
    base = txt_entry["prompt"][2]
    _case("txt2img", _jsonl(ref / "ws_transcript_txt2img.jsonl"), [_run("txt2img", txt_pid, base, txt_entry)])
    _seed_failures(ref, proto)
    _seed_reruns(ref, proto, base)
    _seed_lora(ref, proto, base)
    _seed_routing(proto, base)
    _seed_http(proto)
    log.info("fixtures written under %s", FIXTURES)


def main() -> None:
    """Command line entry: the reference folder as the only argument."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    logging.basicConfig(level=logging.INFO)
    seed(parser.parse_args().reference)


if __name__ == "__main__":
    main()
