"""Generate the SDK's typed models (``client/atelier_client/models.py``) from our OpenAPI document.

The models are produced by ``datamodel-code-generator`` from the document the service serves, then formatted
with the repository's ruff settings, so ``tests/unit/test_client_models.py`` can regenerate them and demand an
identical file: the SDK's models cannot drift from the API. Run ``python -m orchestrator.devtools.client_models``
after changing a request or response model.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestrator.api.openapi import OPENAPI_DOC
from orchestrator.app import create_app
from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MODELS_FILE = REPO / "client" / "atelier_client" / "models.py"
HEADER = (
    "# Generated from the service's OpenAPI document by `python -m orchestrator.devtools.client_models`.\n"
    "# Do not edit: change the service's models and regenerate (a test checks this file is current)."
)
CODEGEN_FLAGS = [
    "--input-file-type=openapi",
    "--output-model-type=pydantic_v2.BaseModel",
    "--target-python-version=3.11",
    "--use-standard-collections",
    "--use-union-operator",
    "--disable-timestamp",
    "--use-schema-description",
    "--use-field-description",
    "--enum-field-as-literal=all",
    "--use-double-quotes",
    "--collapse-root-models",
    "--strict-nullable",
    "--formatters=ruff-format",
]


def openapi_document() -> dict[str, object]:
    """The document the service serves (built without starting anything)."""
    doc: dict[str, object] = create_app(Settings(), serve_http=False)[OPENAPI_DOC]
    return doc


def generate(out: Path) -> None:
    """Write the models for the current document to ``out``, formatted as the repository formats code."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "openapi.json"
        spec.write_text(json.dumps(openapi_document(), indent=1))
        codegen = [sys.executable, "-m", "datamodel_code_generator", f"--input={spec}", f"--output={out}"]
        subprocess.run([*codegen, *CODEGEN_FLAGS, f"--custom-file-header={HEADER}"], check=True, capture_output=True)
    config = str(REPO / "pyproject.toml")
    subprocess.run([sys.executable, "-m", "ruff", "check", "--config", config, "--fix", "-q", str(out)], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--config", config, "-q", str(out)], check=True)


if __name__ == "__main__":
    generate(MODELS_FILE)
    print(f"wrote {MODELS_FILE.relative_to(REPO)}")  # noqa: T201
