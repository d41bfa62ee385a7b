# SPDX-License-Identifier: Apache-2.0
"""Re-record the stand-in's fixtures from a real ComfyUI, so the stand-in follows the engine.

    python -m tests.contract.record --url http://127.0.0.1:8188 [--cases txt2img,routing] [--out DIR]

Runs the contract cases (``tests/contract/cases.py``) against the server and writes what it
saw into the fixture layout (``runs/<case>.json``, ``prompt_errors.json``,
``upload_image.json``, ``server/*.json``; ``object_info.json`` only with ``--object-info``).
Before the txt2img case it asks the server to drop its caches (``POST /free``) so that the
recording shows every node executing. ``model_loads`` (what a checkpoint or LoRA-set switch
costs; the stand-in charges it) needs two LoRAs that load; ``--rounds`` sets how many switches of
each kind it times. Afterwards run the contract test: the stand-in half fails where the stand-in
no longer matches the recording. The server is used lightly (a few 64-pixel prompts), but it
should be otherwise idle while recording: another client's prompt between two of ours spoils a
switch measurement (such runs are marked ``disturbed`` and left out).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.contract import cases
from tests.standin.comfyui.files import png_bytes
from tests.standin.comfyui.recordings import FIXTURES, switch_extras, write_json

log = logging.getLogger("tests.contract.record")
ALL_CASES = (
    "server",
    "txt2img",
    "cached_rerun",
    "interrupt",
    "routing",
    "bad_image",
    "exec_error",
    "prompt_errors",
    "upload",
    "model_loads",
)


async def _checkpoint(session: aiohttp.ClientSession, url: str, wanted: str | None) -> str:
    names = await cases.get_json(session, url, "/models/checkpoints")
    if wanted:
        if wanted not in names:
            raise SystemExit(f"{url} does not offer checkpoint {wanted!r}: {names}")
        return wanted
    if not names:
        raise SystemExit(f"{url} offers no checkpoint to record with")
    slim = [n for n in names if "slim" in n]
    return str((slim or names)[0])


def _server_paths(system_stats: dict[str, Any]) -> dict[str, str]:
    """Folders of the recording machine named in the server's argv, to be replaced by placeholders."""
    argv = list(system_stats.get("system", {}).get("argv", []))
    flags = {
        "--input-directory": "<input>",
        "--output-directory": "<output>",
        "--temp-directory": "<temp>",
        "--user-directory": "<user>",
        "--extra-model-paths-config": "<extra_model_paths>",
    }
    return {argv[i + 1]: flags[a] for i, a in enumerate(argv[:-1]) if a in flags}


def scrub(value: Any, paths: dict[str, str]) -> Any:
    """Replace the recording machine's paths (and ComfyUI's install folder) in every string."""
    if isinstance(value, dict):
        return {k: scrub(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, paths) for v in value]
    if isinstance(value, str):
        for path, placeholder in paths.items():
            value = value.replace(path, placeholder)
        return re.sub(r"(?<![\w<])/[^\s'\"]*?/ComfyUI/", "<comfy>/ComfyUI/", value)
    return value


async def _drop_caches(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url + "/free", json={"unload_models": True, "free_memory": True}) as response:
        response.raise_for_status()


async def _model_loads(
    session: aiohttp.ClientSession,
    url: str,
    checkpoint: str,
    loras: list[str],
    rounds: int,
    save: Callable[[str, dict[str, Any]], None],
) -> None:
    usable = cases.usable_loras(loras)
    if len(usable) < 2:
        log.warning("%s offers fewer than two LoRAs that load: runs/model_loads.json left as it is", url)
        return
    recording = await cases.record_model_loads(session, url, [checkpoint], (usable[0], usable[1]), rounds)
    save("runs/model_loads.json", recording)
    extras = switch_extras(recording)
    log.info("switch extras (s): %s", {k: [round(v, 3) for v in vs] for k, vs in extras.items()})


async def record(
    url: str, out: Path, wanted: list[str], checkpoint: str | None, object_info: bool, rounds: int = 3
) -> None:
    """Record ``wanted`` cases from ``url`` into ``out``."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session:
        server = await cases.record_server(session, url)
        version = server["system_stats"].get("system", {}).get("comfyui_version", "?")
        source = f"recorded by tests.contract.record from ComfyUI {version} at {url} on {time.strftime('%Y-%m-%d')}"
        ckpt = await _checkpoint(session, url, checkpoint)
        corrupt = [n for n in server["models"]["loras"] if "corrupt" in n]

        paths = _server_paths(server["system_stats"])

        def save(name: str, data: dict[str, Any]) -> None:
            path = out / name
            write_json(path, scrub({"source": source, **data}, paths))
            log.info("wrote %s", path)

        async def server_case() -> None:
            for key in ("system_stats", "features", "models"):
                write_json(out / "server" / f"{key}.json", scrub(server[key], paths))
            if object_info:
                write_json(out / "object_info.json", await cases.get_json(session, url, "/object_info"))

        async def txt2img() -> None:
            await _drop_caches(session, url)
            save("runs/txt2img.json", await cases.record_txt2img(session, url, ckpt))

        async def exec_error() -> None:
            if not corrupt:
                log.warning("%s offers no LoRA named *corrupt*: runs/exec_error.json left as it is", url)
                return
            save("runs/exec_error.json", await cases.record_exec_error(session, url, ckpt, corrupt[0]))

        async def upload() -> None:
            save(
                "upload_image.json",
                await cases.record_upload(session, url, png_bytes(4, 4, (1, 2, 3)), png_bytes(4, 4, (9, 9, 9))),
            )

        async def simple(name: str, path: str, fn: Callable[..., Awaitable[dict[str, Any]]], *args: Any) -> None:
            save(path, await fn(session, url, *args))

        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "server": server_case,
            "txt2img": txt2img,
            "exec_error": exec_error,
            "upload": upload,
            "model_loads": lambda: _model_loads(session, url, ckpt, server["models"]["loras"], rounds, save),
            "cached_rerun": lambda: simple("cached_rerun", "runs/cached_rerun.json", cases.record_cached_rerun, ckpt),
            "interrupt": lambda: simple("interrupt", "runs/interrupt.json", cases.record_interrupt, ckpt),
            "routing": lambda: simple("routing", "runs/routing.json", cases.record_routing, ckpt),
            "bad_image": lambda: simple("bad_image", "runs/bad_image.json", cases.record_bad_image),
            "prompt_errors": lambda: simple("prompt_errors", "prompt_errors.json", cases.record_prompt_errors, ckpt),
        }
        for name in wanted:
            log.info("recording %s", name)
            await steps[name]()


def main() -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the real ComfyUI, e.g. http://127.0.0.1:8188")
    parser.add_argument("--out", type=Path, default=FIXTURES, help=f"fixture folder (default {FIXTURES})")
    parser.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma-separated subset of {ALL_CASES}")
    parser.add_argument("--checkpoint", help="checkpoint to use (default: a *slim* one the server offers)")
    parser.add_argument("--object-info", action="store_true", help="also rewrite object_info.json")
    parser.add_argument("--rounds", type=int, default=3, help="switches of each kind in model_loads")
    args = parser.parse_args()
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(ALL_CASES))
    if unknown:
        parser.error(f"unknown cases: {unknown}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(record(args.url.rstrip("/"), args.out, wanted, args.checkpoint, args.object_info, args.rounds))


if __name__ == "__main__":
    main()
