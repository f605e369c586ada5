"""``GET /openapi.json`` (the document api/openapi.py builds at start-up, served as bytes) and
``GET /docs``: a readable reference of it in Swagger UI, whose script and style come from the
swagger-ui-py package, served from here (no CDN: the service may run offline)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send


def _swagger_dir() -> Path:
    # Located without importing the package (its import pulls in jinja2 for views we do not use).
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER = _swagger_dir()
ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
          "favicon-32x32.png": "image/png"}

# Swagger UI sets inline styles and draws data: images; everything else is our own origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Concert ticketing API reference</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
# No validator badge: it would send the document to an outside service.
INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#reference", deepLinking: true, validatorUrl: null,
  defaultModelsExpandDepth: 0, displayRequestDuration: true, tryItOutEnabled: false
});
"""


class Document:
    """The document's bytes, built once per app."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(self.body)),
            (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": self.body})


async def page(_: Request) -> Response:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)


async def init(_: Request) -> Response:
    return Response(INIT, media_type="text/javascript", headers=HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        raise HTTPException(404)  # api.asgi.Guard answers it as problem+json
    return FileResponse(SWAGGER / name, media_type=ASSETS[name],
                        headers=HEADERS | {"Cache-Control": "public, max-age=86400"})


def routes(document: bytes) -> list[BaseRoute]:
    return [Route("/openapi.json", Document(document), methods=["GET"]),
            Route("/docs", page, methods=["GET"]),
            Route("/docs/init.js", init, methods=["GET"]),
            Route("/docs/assets/{name}", asset, methods=["GET"])]
