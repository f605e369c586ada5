"""The baseline: a bare Starlette "hello" endpoint on the same uvicorn settings as the API.
Every endpoint figure of the benchmark is a ratio to a run of this app taken next to it."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(_request):
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", hello)])
