"""The SDK's models are generated from the OpenAPI document the service serves: regenerating gives the same file."""

from __future__ import annotations

from pathlib import Path

from orchestrator.devtools.client_models import MODELS_FILE, generate


def test_the_committed_models_match_the_current_api(tmp_path: Path) -> None:
    fresh = tmp_path / "models.py"
    generate(fresh)
    assert fresh.read_text() == MODELS_FILE.read_text(), (
        "the API's models changed: run `python -m orchestrator.devtools.client_models` and commit the result"
    )
