"""The viewer's HTTP routes: the page, the filter menus, one page of samples, one case.

Starlette (installed with the `mcp` dependency). Everything is read once at start-up into the
index; a request filters it in memory and reads at most one case's samples from disk.
"""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from .detail import case_detail
from .index import Index


def page() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


def make_app(index: Index) -> Starlette:
    html = page()

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    async def facets(request: Request) -> JSONResponse:
        return JSONResponse(index.facets())

    async def samples(request: Request) -> JSONResponse:
        return JSONResponse(index.query(dict(request.query_params)))

    async def case(request: Request) -> JSONResponse:
        detail = case_detail(index, request.query_params.get("suite", ""), request.query_params.get("case", ""))
        if detail is None:
            return JSONResponse({"error": "no such case in the runs served"}, status_code=404)
        return JSONResponse(detail)

    # Only requests addressed to the loopback names: a web page elsewhere that re-points its own
    # host name at 127.0.0.1 (DNS rebinding) must not read the prompts and replies served here.
    hosts = Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    return Starlette(routes=[Route("/", home), Route("/api/facets", facets), Route("/api/samples", samples),
                             Route("/api/case", case)], middleware=[hosts])
