"""The booking page of the waiting room: ``GET /`` answers ``static/index.html`` and
``/static/...`` its assets; the operators' console, ``GET /console`` (``static/console.html``),
only when ADMIN_TOKEN is set (api/app.py; 404 otherwise, like the admin API it drives). Plain
files, no build step and nothing fetched from elsewhere, so the pages work offline; they talk
only to this API (same origin)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

# Only our own files and our own API: the page needs nothing else, so nothing else may load.
# Images from blob: too: the ticket's QR code, an SVG from the API shown as an <img> (where an
# SVG runs nothing and loads nothing).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",  # revalidate: a deploy's page shows at once
}


async def index(_: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                        headers=PAGE_HEADERS)


async def console(_: Request) -> Response:
    return FileResponse(STATIC / "console.html", media_type="text/html; charset=utf-8",
                        headers=PAGE_HEADERS)


# StaticFiles raises HTTPException for an unknown file (404) or another method (405), which
# api.asgi.Guard answers as problem+json like every other refusal.
ROUTES: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]

# Served with the admin API only (api/app.py): the console is nothing without it.
CONSOLE_ROUTES: list[BaseRoute] = [Route("/console", console, methods=["GET"])]
