"""The client installs alone, into a fresh virtual environment, and importing it pulls in nothing of the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[3] / "client"
SERVER_ONLY = ["sqlalchemy", "asyncpg", "cv2", "aiohttp", "alembic", "orchestrator", "numpy", "PIL", "boto3"]
PROBE = f"""
import json, sys
import atelier_client, atelier_client.cli
from atelier_client import AsyncClient, Client, verify_webhook
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({SERVER_ONLY!r}))))
"""


@pytest.mark.slow
def test_the_client_installs_alone_and_imports_no_server_dependency(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    # the fresh environment alone: a PYTHONPATH of the caller's (e.g. the checkout) would show the server's packages
    alone = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CLIENT)],
        capture_output=True,
        text=True,
        timeout=600,
        env=alone,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=alone
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == []
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True, env=alone
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert names.isdisjoint({"sqlalchemy", "asyncpg", "opencv-python-headless", "aiohttp", "lora-atelier"})
    assert {"atelier-client", "httpx", "httpx-sse", "rich", "standardwebhooks", "pydantic"} <= names
    assert sys.prefix != str(env)
    helped = subprocess.run(
        [str(env / "bin" / "atelier"), "--help"], capture_output=True, text=True, timeout=60, env=alone
    )
    assert helped.returncode == 0, helped.stderr
    assert "generate" in helped.stdout
    assert "serve" not in helped.stdout  # the server's commands come only with the server
