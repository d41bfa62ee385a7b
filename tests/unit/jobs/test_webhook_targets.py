"""The webhook target policy: public http(s) addresses only, checked on the URL and after DNS resolution."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from orchestrator.jobs.webhook_targets import GuardedResolver, WebhookTargetRefused, WebhookTargets


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8000/",
        "http://127.1/",
        "http://0x7f.0.0.1/",
        "http://017700000001/",
        "http://2130706433/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1%25eth0]/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://224.0.0.1/",
        "http://0/",
        "http://0.0.0.0/",
        "http://localhost/",
        "http://api.localhost./",
        "ftp://example.org/",
        "file:///etc/passwd",
        "//example.org/hook",
        "http:///hook",
    ],
)
def test_internal_and_non_http_targets_are_refused(url: str) -> None:
    with pytest.raises(WebhookTargetRefused):
        WebhookTargets().check_url(url)


@pytest.mark.parametrize("url", ["https://hooks.example.org/x", "http://93.184.216.34:8080/", "http://[2606:4700::1]/"])
def test_public_targets_pass(url: str) -> None:
    WebhookTargets().check_url(url)


def test_operators_can_allow_internal_hosts_by_name_address_or_network() -> None:
    targets = WebhookTargets(["hooks.corp", "10.1.0.0/16", "127.0.0.1"])
    for url in ("http://hooks.corp/x", "http://10.1.200.3/", "http://127.0.0.1:9/"):
        targets.check_url(url)
    for url in ("http://10.2.0.1/", "http://127.0.0.2/", "http://other.corp.localhost/"):
        with pytest.raises(WebhookTargetRefused):
            targets.check_url(url)


class _Rebinding(AbstractResolver):
    """A name that resolves to a public address first and to the metadata endpoint afterwards."""

    def __init__(self) -> None:
        self._answers: Iterator[str] = iter(["93.184.216.34", "169.254.169.254"])

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = next(self._answers)
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=socket.AI_NUMERICHOST)
        ]

    async def close(self) -> None:
        pass


async def test_a_name_is_checked_each_time_it_is_resolved() -> None:
    targets = WebhookTargets()
    targets.check_url("http://rebind.example.org/hook")  # a name: nothing to refuse at submit
    resolver = GuardedResolver(targets, _Rebinding())
    assert [r["host"] for r in await resolver.resolve("rebind.example.org", 80)] == ["93.184.216.34"]
    with pytest.raises(OSError, match="link-local"):
        await resolver.resolve("rebind.example.org", 80)
