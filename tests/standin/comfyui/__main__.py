# SPDX-License-Identifier: Apache-2.0
"""Run the stand-in as a process, accepting ComfyUI's own command line (so it can stand in for
``ComfyUI/main.py`` under the local supervisor):

    python -m tests.standin.comfyui --listen 127.0.0.1 --port 8188 \\
        --extra-model-paths-config extra_model_paths.yaml --output-directory out ...
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from tests.standin.comfyui.server import StandinComfyUI, StandinOptions

log = logging.getLogger("tests.standin.comfyui")


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """ComfyUI's flags that matter here, plus ``--time-scale``, ``--warm-timings``, ``--no-previews`` and
    ``--textured-images``."""
    parser = argparse.ArgumentParser(prog="tests.standin.comfyui")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--extra-model-paths-config", type=Path)
    parser.add_argument("--input-directory", type=Path)
    parser.add_argument("--output-directory", type=Path)
    parser.add_argument("--temp-directory", type=Path)
    parser.add_argument("--user-directory", type=Path)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--warm-timings", action="store_true")
    parser.add_argument("--no-previews", action="store_true")
    parser.add_argument("--textured-images", action="store_true")
    return parser.parse_known_args(argv)


async def serve(argv: list[str]) -> None:
    """Serve until SIGTERM/SIGINT."""
    args, _ignored = parse(argv)
    root = args.user_directory or args.output_directory
    options = StandinOptions(
        time_scale=args.time_scale,
        warm_timings=args.warm_timings,
        previews=not args.no_previews,
        textured_images=args.textured_images,
        model_paths=args.extra_model_paths_config,
        root=root,
        input_dir=args.input_directory,
        output_dir=args.output_directory,
        temp_dir=args.temp_directory,
        host=args.listen,
        port=args.port,
        argv=["main.py", *argv],
    )
    server = StandinComfyUI(options)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("To see the GUI go to: %s", server.url)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(sys.argv[1:]))
