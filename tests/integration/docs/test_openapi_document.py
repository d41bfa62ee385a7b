"""The OpenAPI document is valid and complete: SSE, multipart, UUID ids, auth errors, Markdown, webhooks."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from tests.integration.conftest import Service


@pytest.fixture
async def document(service: Service, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(f"{service.url}/openapi.json") as response:
        assert response.status == 200
        doc: dict[str, Any] = await response.json()
        return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, methods in doc["paths"].items() for method, op in methods.items()]


def _descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "description" and isinstance(v, str)]
        return found + [d for v in node.values() for d in _descriptions(v)]
    if isinstance(node, list):
        return [d for v in node for d in _descriptions(v)]
    return []


async def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


async def test_event_streams_document_resumption_and_their_event_schema(document: dict[str, Any]) -> None:
    streams = [(m, p, op) for m, p, op in _operations(document) if p.endswith("/events")]
    assert {p for _, p, _ in streams} == {"/v1/jobs/{id}/events", "/v1/events"}
    for _, path, op in streams:
        params = {(p["in"], p["name"]) for p in op["parameters"]}
        assert {("header", "Last-Event-ID"), ("query", "after")} <= params, path
        content = op["responses"]["200"]["content"]
        assert content == {"text/event-stream": {"schema": {"$ref": "#/components/schemas/JobEvent"}}}
    assert "204" in document["paths"]["/v1/jobs/{id}/events"]["get"]["responses"]
    event = document["components"]["schemas"]["JobEvent"]
    assert set(event["properties"]) == {"id", "event", "data"}
    assert "job.progress" in event["properties"]["event"]["enum"]
    progress = document["components"]["schemas"]["ProgressData"]["properties"]
    assert {"step", "total", "percent", "eta_s", "it_per_s", "loss"} <= set(progress)


async def test_photo_upload_has_a_multipart_body(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/subjects/{id}/photos"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["photo"]["items"]["format"] == "binary"


async def test_ids_are_uuids_and_every_authenticated_operation_documents_401(document: dict[str, Any]) -> None:
    for method, path, op in _operations(document):
        for param in op["parameters"]:
            if param["in"] == "path" and param["name"] in ("id", "photo_id"):
                assert param["schema"] == {"type": "string", "format": "uuid"}, (method, path)
        if op.get("security") != []:
            assert "401" in op["responses"], (method, path)
            assert op["responses"]["401"]["content"]["application/problem+json"]
    job = document["components"]["schemas"]["JobOut"]["properties"]
    assert job["id"]["format"] == "uuid"


async def test_descriptions_are_markdown_without_rest_literals(document: dict[str, Any]) -> None:
    descriptions = _descriptions(document)
    assert len(descriptions) > 100
    offending = [d for d in descriptions if re.search(r"``\w", d)]
    assert offending == []
    assert "`Last-Event-ID`" in document["info"]["description"]


async def test_webhooks_section_describes_the_signed_payload(document: dict[str, Any]) -> None:
    hook = document["webhooks"]["job.finished"]["post"]
    headers = {p["name"] for p in hook["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    ref = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    payload = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"type", "timestamp", "data"} <= set(payload["properties"])
