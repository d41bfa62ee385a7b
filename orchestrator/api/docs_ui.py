"""/docs: Swagger UI on our OpenAPI document, served from the ``swagger-ui-bundle-v2`` wheel's assets.

Nothing is fetched from the internet: the page loads the bundle's script and stylesheet from
``/docs/assets/`` and turns Swagger UI's online validator badge off (it would call out to swagger.io).
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from orchestrator.api.routing import Router
from orchestrator.errors import NotFound

ASSETS = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png", "index.css"}
)
_OPTIONS = {
    "url": "/openapi.json",
    "dom_id": "#swagger-ui",
    "deepLinking": True,
    "validatorUrl": None,
    "persistAuthorization": True,
    "displayRequestDuration": True,
    "tryItOutEnabled": False,
}
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>LoRA Atelier API</title>
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>window.ui = SwaggerUIBundle(__OPTIONS__);</script>
</body>
</html>
"""

router = Router()


@router.route(
    "GET", "/docs", summary="Interactive API reference (Swagger UI)", tag="service", auth=False, produces="text/html"
)
async def docs(_request: web.Request) -> web.Response:
    """Swagger UI rendering `/openapi.json`; "Authorize" takes an API key, "Try it out" sends real requests."""
    return web.Response(text=_PAGE.replace("__OPTIONS__", json.dumps(_OPTIONS)), content_type="text/html")


@router.route(
    "GET",
    "/docs/assets/{name}",
    summary="Swagger UI's static files",
    tag="service",
    auth=False,
    produces="application/octet-stream",
    errors=(404,),
)
async def docs_asset(request: web.Request) -> web.StreamResponse:
    """One of Swagger UI's scripts, stylesheets or icons, from the installed wheel."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound(f"no documentation asset {name!r}")
    path = Path(str(swagger_ui_path)) / name
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "public, max-age=86400"})
