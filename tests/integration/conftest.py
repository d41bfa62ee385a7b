"""Fixtures for tests that talk to the running service over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.api.auth import issue_key
from orchestrator.settings import Settings
from tests.support.service import free_port, running_app

WEBHOOK_SECRET = "test-webhook-secret"
S3_CREDENTIALS: dict[str, Any] = {"s3_access_key_id": "test", "s3_secret_access_key": "test", "s3_region": "us-east-1"}
S3_BUCKETS = ("atelier", "generations")


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client on the test S3 server (to look at what the service stored)."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with the buckets the tests use."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for bucket in S3_BUCKETS:
        s3_client(endpoint).create_bucket(Bucket=bucket)
    yield endpoint
    server.stop()


@dataclass(frozen=True)
class Service:
    """The in-process service under test."""

    app: web.Application
    url: str
    settings: Settings


@pytest.fixture(scope="session")
def service_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the in-process service: the run's database, quick heartbeats, temp dirs."""
    var = tmp_path_factory.mktemp("var")
    return Settings(
        database_url=database_url,
        var_dir=var,
        storage_url=f"file://{var / 'storage'}",
        models_dir=Path(tmp_path_factory.mktemp("models")),
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2.0,
        idle_poll_s=0.5,
        worker_concurrency=8,
        max_json_body_bytes=64 * 1024,
        webhook_secret=WEBHOOK_SECRET,
        webhook_retry_base_s=0.1,
        webhook_allow_hosts=["127.0.0.1"],  # the tests' receivers listen there
        auth="apikey",
        comfyui_urls=[],
        comfyui_dir=None,
        sd_scripts_dir=None,
    )


@pytest.fixture(scope="session")
async def service(service_settings: Settings) -> AsyncIterator[Service]:
    """The service, started once per test run."""
    async with running_app(service_settings) as (app, url):
        yield Service(app=app, url=url, settings=service_settings)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass(frozen=True)
class Caller:
    """An owner with an API key."""

    owner_id: object
    headers: dict[str, str]


async def new_caller(engine: AsyncEngine, name: str) -> Caller:
    """A new owner and key."""
    key = await issue_key(engine, name)
    return Caller(owner_id=key.owner_id, headers={"Authorization": f"Bearer {key.secret}"})


@pytest.fixture
async def caller(engine: AsyncEngine, request: pytest.FixtureRequest) -> Caller:
    """An owner (unique to the test) with an API key."""
    import uuid

    return await new_caller(engine, f"{request.node.name}-{uuid.uuid4().hex[:6]}")


@pytest.fixture
async def other_caller(engine: AsyncEngine, request: pytest.FixtureRequest) -> Caller:
    """A second owner, for isolation checks."""
    import uuid

    return await new_caller(engine, f"other-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}")
