"""The long fuzz run, for local use: ``python -m tests.fuzz.run --duration 600 [--examples 20]``.

Starts the service on a scratch database with the ComfyUI stand-in, fuzzes it for the given number of
seconds (tests/fuzz/openapi_fuzz.py) and prints the counts and every failure found.
"""

from __future__ import annotations

import argparse
import asyncio

from tests.fuzz.openapi_fuzz import FuzzReport, fuzz
from tests.fuzz.service import fuzz_target


async def _run(duration: float, examples: int) -> FuzzReport:
    async with fuzz_target() as target:
        return await asyncio.to_thread(fuzz, target.url, target.headers, seconds=duration, examples=examples)


def main() -> None:
    """Parse the flags, run, report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds to fuzz")
    parser.add_argument("--examples", type=int, default=20, help="examples per operation and mode per round")
    args = parser.parse_args()
    report = asyncio.run(_run(args.duration, args.examples))
    print(report.summary())  # noqa: T201
    print("statuses:", dict(sorted(report.statuses.items())))  # noqa: T201
    for failure in report.failures:
        print("\n--- FAILURE ---\n" + failure)  # noqa: T201
    raise SystemExit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
