"""Where webhooks may go: http(s) to public addresses only, unless an operator allows a host.

A webhook makes this service send a request to an address its client chose, so without a policy a
client can reach what only the service can reach: the cloud metadata endpoint (169.254.169.254),
loopback admin ports, the private network. Refused are loopback, link-local, private (RFC 1918, ULA,
CGNAT), multicast, reserved and unspecified addresses, IPv4-mapped IPv6 forms of them included.

The check runs twice:

- at submit (:meth:`WebhookTargets.check_url`), on the URL: scheme, and the host when it is an IP
  literal in any spelling (``127.1``, ``0x7f.0.0.1``, ``2130706433``, ``[::ffff:127.0.0.1]``: parsed
  with :func:`socket.inet_aton` / :mod:`ipaddress`, never with patterns), or a ``localhost`` name;
- at delivery, after DNS resolution (:class:`GuardedResolver`, the resolver of the dispatcher's
  HTTP session): every address a name resolves to is checked, and the connection is made to exactly
  the addresses checked, so a name that resolves to a public address at submit and to an internal one
  later (DNS rebinding) is refused when it matters. Redirects are not followed.

``ATELIER_WEBHOOK_ALLOW_HOSTS`` names hosts (names, addresses or CIDR networks) that are allowed anyway,
for operators whose receivers live on their own network.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from orchestrator.errors import ValidationFailed

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = frozenset({"http", "https"})


class WebhookTargetRefused(ValueError):
    """The webhook URL (or what its host resolves to) is not a target this service calls."""


def ip_literal(host: str) -> IpAddress | None:
    """The address an IP-literal host names, in any spelling a resolver accepts; None for a name."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # the legacy IPv4 forms getaddrinfo accepts: 127.1, 0x7f.0.0.1, 017700000001, 2130706433
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def why_internal(address: IpAddress) -> str | None:
    """Why an address is not a public one (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_internal(address.ipv4_mapped)
    for reason, flag in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("an unspecified address", address.is_unspecified),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("not a globally routable address", not address.is_global),
    ):
        if flag:
            return reason
    return None


def _allowed(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IpNetwork, ...]]:
    names: set[str] = set()
    networks: list[IpNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


class WebhookTargets:
    """The policy, with the operator's allowed hosts."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self._names, self._networks = _allowed(allow_hosts)

    def _host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._names

    def _address_allowed(self, address: IpAddress) -> bool:
        return any(address in network for network in self._networks)

    def check_address(self, host: str, address: IpAddress) -> None:
        """Refuse an address ``host`` resolved to (or is) unless it is public or allowed."""
        if self._host_allowed(host) or self._address_allowed(address):
            return
        reason = why_internal(address)
        if reason is not None:
            shown = host if str(address) == host.strip("[]") else f"{host} ({address})"
            raise WebhookTargetRefused(
                f"{shown} is {reason}; webhooks go to public addresses only "
                "(an operator can allow a host with ATELIER_WEBHOOK_ALLOW_HOSTS)"
            )

    def check_url(self, url: str) -> None:
        """Refuse a URL that is not http(s), has no host, or names an internal address or ``localhost``."""
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in SCHEMES:
            raise WebhookTargetRefused("a webhook URL must be http:// or https://")
        host = parts.hostname
        if not host:
            raise WebhookTargetRefused("a webhook URL needs a host")
        if self._host_allowed(host):
            return
        address = ip_literal(host)
        if address is not None:
            self.check_address(host, address)
        elif host == "localhost" or host.endswith((".localhost", ".localhost.")):
            raise WebhookTargetRefused(f"{host} is this machine; webhooks go to public addresses only")


@cache
def targets_for(allow_hosts: tuple[str, ...]) -> WebhookTargets:
    """One policy per allow list (Settings are immutable, so handlers can ask for it per request)."""
    return WebhookTargets(allow_hosts)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, then :meth:`WebhookTargets.check_address` on every address it returned."""

    def __init__(self, targets: WebhookTargets, inner: AbstractResolver | None = None) -> None:
        self._targets = targets
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve, then refuse the whole host when any address it resolves to is refused."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                self._targets.check_address(host, ipaddress.ip_address(result["host"]))
            except WebhookTargetRefused as refused:
                # aiohttp reports a resolver's OSError by its strerror: carry the reason there
                raise OSError(errno.EACCES, str(refused)) from refused
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        await self._inner.close()


def accepted_webhook_url(url: object | None, allow_hosts: Iterable[str]) -> str | None:
    """The ``webhook_url`` of a request as it is stored, or a 422 naming the field when the policy refuses it."""
    if url is None:
        return None
    try:
        targets_for(tuple(allow_hosts)).check_url(str(url))
    except WebhookTargetRefused as refused:
        raise ValidationFailed(
            [{"field": "webhook_url", "reason": str(refused), "type": "webhook_target"}]
        ) from refused
    return str(url)


def webhook_session(targets: WebhookTargets, **session_options: Any) -> aiohttp.ClientSession:
    """The HTTP session webhooks are sent with: its connections go only to addresses the policy allows."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(targets))
    return aiohttp.ClientSession(connector=connector, **session_options)
