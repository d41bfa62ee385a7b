"""The README's code blocks, and the one script that runs them in order.

Every fenced block whose language is a shell (``sh``, ``bash``, ``shell``) or ``python`` is an example that
must run as written. A block that cannot run in a test says so right above it, visibly, with a reason::

    <!-- readme-test: not run — needs the upstream repositories -->

A marker without a reason, a marker above anything but a runnable block, and a runnable block without a
language are errors (see :func:`problems`). Blocks of other languages (``yaml``, ``json``, ``text``, none)
are data and never run.

The script runs the blocks in README order in one bash process (``set -euo pipefail``; a ``python`` block
runs through a heredoc), so variables set by one block are there for the next. What it changes, and only
this: ``localhost:8000`` becomes the address of the service under test, and ``curl`` fails on any HTTP error
(``--fail-with-body``) and gives up after ``max_time_s`` -- stricter than the README, never looser.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[A-Za-z0-9_+-]*)[ \t]*$")
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<body>.*?)\s*-->")
NOT_RUN = re.compile(r"^not run\s*[—:-]+\s*(?P<reason>\S.*)$")
SHELLS = {"sh", "bash", "shell"}
RUNNABLE = SHELLS | {"python"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int
    lang: str
    code: str
    marker: str | None

    @property
    def runnable(self) -> bool:
        """A shell or Python example."""
        return self.lang in RUNNABLE

    @property
    def skip_reason(self) -> str | None:
        """The reason given by a ``not run`` marker (None without one, or when it gives none)."""
        if self.marker is None:
            return None
        match = NOT_RUN.match(self.marker)
        return match.group("reason") if match else None


def blocks(text: str) -> list[Block]:
    """Every fenced block with its language, start line and the marker right above it (if any)."""
    lines = text.splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent, start = fence.group("indent"), index
        body = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else lines[index])
            index += 1
        found.append(Block(start + 1, fence.group("lang"), "\n".join(body) + "\n", _marker_above(lines, start)))
        index += 1
    return found


def _marker_above(lines: list[str], start: int) -> str | None:
    above = start - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0:
        return None
    match = MARKER.match(lines[above].strip())
    return match.group("body") if match else None


def problems(text: str) -> list[str]:
    """What makes the README's examples ambiguous: markers without reasons or on data, stray markers."""
    found = blocks(text)
    issues = []
    for block in found:
        if block.marker is not None and block.skip_reason is None:
            issues.append(f"line {block.line}: a readme-test marker must read 'not run — <reason>'")
        if block.marker is not None and not block.runnable:
            issues.append(f"line {block.line}: a readme-test marker above a {block.lang or 'plain'} block")
    marked = {b.line for b in found if b.marker is not None}
    for number, line in enumerate(text.splitlines(), start=1):
        if MARKER.match(line.strip()) and not any(0 < block_line - number <= 2 for block_line in marked):
            issues.append(f"line {number}: a readme-test marker that is not right above a code block")
    return issues


def script(found: list[Block], base_url: str, *, max_time_s: int = 900) -> str:
    """One bash script running every runnable, unmarked block in order, announcing each on stderr."""
    parts = [
        "set -euo pipefail",
        f'curl() {{ command curl --fail-with-body --show-error --max-time {max_time_s} "$@"; }}',
    ]
    for block in found:
        if not block.runnable or block.skip_reason is not None:
            continue
        code = block.code.replace("http://localhost:8000", base_url).replace("localhost:8000", base_url)
        parts.append(f"echo '::: README line {block.line}' >&2")
        if block.lang == "python":
            parts.append(f"{sys.executable} - <<'ATELIER_README_PY'\n{code}ATELIER_README_PY")
        else:
            parts.append(code)
    return "\n".join(parts) + "\n"


def readme(root: Path) -> str:
    """The README's text."""
    return (root / "README.md").read_text()
