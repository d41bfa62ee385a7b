# SPDX-License-Identifier: Apache-2.0
"""Reducing transcripts and answers to what must match between ComfyUI and the stand-in.

Messages of one prompt become tokens (``executing 5``, ``progress 5 2/4``, ...), without
``progress_state`` (newer servers only) and ``status`` (broadcast, shared servers add noise).
Which nodes come from cache depends on what ran before, so nodes cached in either transcript
are left out of both; what remains must be equal, in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Frame = dict[str, Any]
_SKIPPED = {"progress_state", "status", "feature_flags"}


def prompt_messages(frames: Iterable[Frame], prompt_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the text frames that name ``prompt_id``."""
    out = []
    for frame in frames:
        msg = frame.get("msg") if frame.get("kind") == "text" else None
        if msg and (msg.get("data") or {}).get("prompt_id") == prompt_id and msg["type"] not in _SKIPPED:
            out.append((str(msg["type"]), dict(msg["data"])))
    return out


def cached_nodes(frames: Iterable[Frame], prompt_id: str) -> set[str]:
    """Nodes ``execution_cached`` listed for the prompt."""
    return {
        str(n)
        for kind, data in prompt_messages(frames, prompt_id)
        if kind == "execution_cached"
        for n in data.get("nodes") or ()
    }


def tokens(
    frames: Iterable[Frame], prompt_id: str, *, drop_nodes: Iterable[str] = (), collapse_progress: bool = False
) -> list[str]:
    """The prompt's messages as comparable tokens.

    ComfyUI throttles ``progress`` (the first and last step always, others at most every 100 ms),
    so a run of progress frames becomes one token with its first and last value
    (``progress 5 1..4/4``), or just the node with ``collapse_progress`` (interrupted runs).
    """
    drop = set(drop_nodes)
    out: list[str] = []
    run: list[Any] = []  # [node, first, last, max] of the progress frames being merged
    for kind, data in prompt_messages(frames, prompt_id):
        node = data.get("node")
        if kind == "progress":
            if node in drop:
                continue
            if run and run[0] == node and data.get("max") == run[3]:
                run[2] = data.get("value")
            else:
                run = [node, data.get("value"), data.get("value"), data.get("max")]
                out.append("")
            out[-1] = f"progress {node}" if collapse_progress else f"progress {node} {run[1]}..{run[2]}/{run[3]}"
            continue
        run = []
        if kind == "executing":
            if node is None:
                out.append("executing null")
            elif node not in drop:
                out.append(f"executing {node}")
        elif kind == "executed":
            out.append(f"executed {node}")
        elif kind in ("execution_error", "execution_interrupted"):
            out.append(f"{kind} {data.get('node_id')} {data.get('node_type')}")
        else:
            out.append(kind)
    return out


def progress_values(frames: Iterable[Frame], prompt_id: str) -> list[int]:
    """The ``value`` of every progress frame of the prompt, in order."""
    return [int(data["value"]) for kind, data in prompt_messages(frames, prompt_id) if kind == "progress"]


def comparable(
    observed: tuple[list[Frame], str], recorded: tuple[list[Frame], str], *, collapse_progress: bool = False
) -> tuple[list[str], list[str]]:
    """Token lists of an observed and a recorded run, with every node cached in either left out."""
    drop = cached_nodes(*observed) | cached_nodes(*recorded)
    return (
        tokens(*observed, drop_nodes=drop, collapse_progress=collapse_progress),
        tokens(*recorded, drop_nodes=drop, collapse_progress=collapse_progress),
    )


def message_keys(frames: Iterable[Frame], prompt_id: str) -> dict[str, set[str]]:
    """Data keys seen per message type for the prompt."""
    keys: dict[str, set[str]] = {}
    for kind, data in prompt_messages(frames, prompt_id):
        keys.setdefault(kind, set()).update(data)
    return keys


def shape(value: Any) -> Any:
    """The structure of a JSON value: dict keys, list element shapes (distinct, in order), scalar types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        distinct: list[Any] = []
        for item in value:
            s = shape(item)
            if s not in distinct:
                distinct.append(s)
        return distinct
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, int | float) else type(value).__name__


def normalise_error(body: Any, checkpoints: list[str]) -> Any:
    """A /prompt error body without what differs between servers: tracebacks and checkpoint lists."""
    listed = str(checkpoints)
    if isinstance(body, dict):
        return {k: "<traceback>" if k == "traceback" else normalise_error(v, checkpoints) for k, v in body.items()}
    if isinstance(body, list):
        return "<checkpoints>" if body == checkpoints else [normalise_error(v, checkpoints) for v in body]
    if isinstance(body, str):
        return body.replace(listed, "<checkpoints>")
    return body


def routing_facts(record: dict[str, Any]) -> dict[str, Any]:
    """Who got what in the routing case."""
    sockets = record["sockets"]
    first, second = (r["prompt_id"] for r in record["runs"])

    def types(name: str, prompt_id: str) -> list[str]:
        return sorted({kind for kind, _ in prompt_messages(sockets[name], prompt_id)})

    submitter = sockets["submitter"]
    takeover = next(i for i, f in enumerate(submitter) if "same clientId" in str(f.get("note", "")))
    texts = [f["msg"] for f in sockets["same_client_midrun"] if f.get("kind") == "text"]
    executing = [m for m in texts if m["type"] == "executing"]
    return {
        "other_client_sees_first": types("other_client", first),
        "no_client_sees_first": types("no_client", first),
        "submitter_text_after_takeover": sum(1 for f in submitter[takeover:] if f.get("kind") == "text"),
        "takeover_opens_with": (texts[0]["type"], sorted(texts[0]["data"])) if texts else None,
        "takeover_replay": sorted(executing[0]["data"]) if executing else None,
        "takeover_sees_done": ["executing", {"node": None, "prompt_id": first}]
        in [[m["type"], m["data"]] for m in texts],
        "other_client_sees_second": types("other_client", second),
        "no_client_sees_second": types("no_client", second),
        "submitter_sees_second": types("submitter", second),
    }
