"""The baseline: a bare Starlette "hello" endpoint on the same server and flags as the API
(api/serve.py). Every endpoint figure of the benchmark is a ratio to a run of this app under
the same server taken next to it."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(_request):
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", hello)])
