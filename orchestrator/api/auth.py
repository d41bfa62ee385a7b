"""API keys (stored hashed, one owner each) and the middleware that resolves the caller."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import Unauthorized
from orchestrator.identity import Identity
from orchestrator.logs import bind

OWNER = web.RequestKey("owner_id", uuid.UUID)
# The API key that authenticated the request; absent in single-user mode.
API_KEY_ID = web.RequestKey("api_key_id", uuid.UUID)
IDENTITY = web.RequestKey("identity", Identity)
KEY_PREFIX = "atl"
LOCAL_OWNER_NAME = "local"


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: ``secret`` is shown once and never stored."""

    owner_id: uuid.UUID
    key_id: uuid.UUID
    secret: str


def hash_key(secret: str) -> str:
    """The stored form of a key. Keys are 192-bit random, so a plain SHA-256 is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(secret: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


async def ensure_owner(engine: AsyncEngine, name: str) -> uuid.UUID:
    """The id of the owner called ``name``, created when missing."""
    async with engine.begin() as conn:
        row = await conn.execute(
            text(
                "INSERT INTO owners (id, name) VALUES (:id, :name) "
                "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"
            ),
            {"id": uuid.uuid4(), "name": name},
        )
        return row.scalar_one()


async def issue_key(
    engine: AsyncEngine, owner_name: str, *, admin: bool = False, adult_content: bool = False
) -> IssuedKey:
    """Create an API key for ``owner_name`` (and the owner when new); ``admin`` may read the audit log,
    ``adult_content`` may get sexual content under a permissive content policy."""
    owner_id = await ensure_owner(engine, owner_name)
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
    key_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO api_keys (id, owner_id, prefix, key_hash, admin, adult_content) "
                "VALUES (:id, :owner, :prefix, :hash, :admin, :adult)"
            ),
            {
                "id": key_id,
                "owner": owner_id,
                "prefix": prefix,
                "hash": hash_key(secret),
                "admin": admin,
                "adult": adult_content,
            },
        )
    return IssuedKey(owner_id=owner_id, key_id=key_id, secret=secret)


class KeyResolver:
    """Finds who a bearer key acts for; remembers answers briefly so hot paths skip the database."""

    def __init__(self, engine: AsyncEngine, *, ttl_s: float = 30.0, capacity: int = 10_000) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._cache: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    async def resolve(self, secret: str) -> Identity | None:
        """The owner, key and flags of a valid, unrevoked key; None otherwise."""
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[1] > now:
            self._cache.move_to_end(digest)
            return cached[0]
        prefix = split_key(secret)
        if prefix is None:
            return None
        identity = await self._lookup(prefix, digest)
        if identity is not None:
            self._cache[digest] = (identity, now + self._ttl_s)
            if len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return identity

    async def _lookup(self, prefix: str, digest: str) -> Identity | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, owner_id, key_hash, admin, adult_content FROM api_keys "
                        "WHERE prefix = :p AND revoked_at IS NULL"
                    ),
                    {"p": prefix},
                )
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return Identity(row.owner_id, row.id, admin=row.admin, adult_content=row.adult_content)


def bearer_token(request: web.Request) -> str:
    """The token of an ``Authorization: Bearer`` header; 401 when missing or malformed."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an API key as 'Authorization: Bearer <key>' (create one with `atelier keys create`)")
    return token.strip()


KEY_RESOLVER = web.AppKey("key_resolver", KeyResolver)
LOCAL_OWNER = web.AppKey("local_owner", uuid.UUID)
PUBLIC_PATHS = web.AppKey("public_paths", frozenset)
# Routes that also take the key as ``?access_token=``: event streams, because a browser's EventSource
# cannot send headers. Only there, so keys stay out of ordinary URLs (the access log redacts it).
QUERY_TOKEN_PATHS = web.AppKey("query_token_paths", frozenset)


def presented_key(request: web.Request, query_allowed: bool) -> str:
    """The caller's key: the Bearer header, else (where allowed) ``?access_token=``; 401 when neither."""
    if "Authorization" not in request.headers and query_allowed and request.query.get("access_token"):
        return request.query["access_token"]
    return bearer_token(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Resolve the caller into ``request[IDENTITY]`` (its owner id into ``request[OWNER]``, its key's id into
    ``request[API_KEY_ID]``).

    With a key resolver configured every non-public path needs a Bearer key; in single-user mode
    (``LOCAL_OWNER`` set instead) every request acts as the local owner. Unmatched routes fall through
    to their 404/405 so a typo is not reported as an auth problem.
    """
    app = request.app
    if request.match_info.http_exception is not None or request.method == "OPTIONS":  # 404/405, CORS preflight
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    if route in app[PUBLIC_PATHS]:
        return await handler(request)
    resolver = app.get(KEY_RESOLVER)
    if resolver is None:
        identity = Identity(app[LOCAL_OWNER], admin=True, adult_content=True)
    else:
        found = await resolver.resolve(presented_key(request, route in app[QUERY_TOKEN_PATHS]))
        if found is None:
            raise Unauthorized("the API key is unknown or revoked")
        identity = found
        if found.key_id is not None:
            request[API_KEY_ID] = found.key_id
    request[OWNER] = identity.owner_id
    request[IDENTITY] = identity
    bind(owner=str(request[OWNER]))  # until the request's log context ends
    return await handler(request)
