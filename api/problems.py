"""Errors at the edge: the one error hierarchy mapped to HTTP, as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline.errors import (
    Conflict,
    Forbidden,
    HotlineError,
    Implausible,
    InvalidInput,
    NotFound,
    ReadOnly,
    TooLarge,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("hotline.api")
PROBLEM = "application/problem+json"

#: The one table from the error hierarchy to HTTP (the most specific kind first).
STATUS: list[tuple[type[HotlineError], int]] = [
    (Unauthorized, 401), (Forbidden, 403), (TooLarge, 413), (Implausible, 422), (InvalidInput, 400), (NotFound, 404),
    (Conflict, 409), (ReadOnly, 503), (Unavailable, 503),
]


def problem(status: int, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def respond(request: Request, status: int, title: str, detail: str = "", **extra: Any) -> Response:
    """problem+json, or on Open311 paths the specification's own error form (what its clients parse)."""
    if request.url.path.startswith("/open311/"):
        from api.routers.open311 import error_response

        return error_response(request, status, detail or title)
    return problem(status, title, detail, **extra)


def status_of(exc: HotlineError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def install(app: FastAPI) -> None:
    @app.exception_handler(HotlineError)
    async def _hotline(request: Request, exc: HotlineError) -> Response:
        status = status_of(exc)
        # One line each, never a traceback: a hundred bad posts must not grow the log by a megabyte.
        log.log(logging.WARNING if status >= 500 else logging.INFO, "%s %s: %d %s",
                request.method, request.url.path, status, " ".join(str(exc).split())[:300])
        return respond(request, status, type(exc).__name__, str(exc))

    @app.exception_handler(UnicodeError)
    async def _unicode(request: Request, exc: UnicodeError) -> Response:
        log.info("%s %s: 400 text that is not valid Unicode", request.method, request.url.path)
        return respond(request, 400, "InvalidInput", "the request holds text that is not valid Unicode")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        if request.url.path.startswith("/open311/"):
            where = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in errors)
            return respond(request, 400, "Invalid request", f"invalid parameters: {where}")
        return problem(422, "Invalid request", "the request does not match the API schema", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return respond(request, exc.status_code, str(exc.detail) if exc.detail else "HTTP error")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(request, 500, "Internal error", "an unexpected error was logged")


def _edge(path: str, status: int, title: str, detail: str) -> Response:
    """problem+json, or Open311's own error form on its paths (a 10 MB post to Open311 got problem+json)."""
    if path.startswith("/open311/"):
        from api.routers.open311 import error_for_path

        return error_for_path(path, status, detail)
    return problem(status, title, detail)


class BodyLimit:
    """Read each request body before the app does: over ``limit`` bytes is 413, a client that stalls is 408.

    Checking inside the app's own reads made a streamed (chunked) body over the
    limit a 400, and a client that sent its body a byte a minute held a worker
    for ever. The body is at most ``limit`` bytes, so holding it is cheap.
    Slow *headers* are the reverse proxy's to time out (nginx
    ``client_header_timeout``): uvicorn reads them before any ASGI code runs.
    """

    def __init__(self, app: ASGIApp, limit: int, idle: float = 10.0, total: float = 60.0) -> None:
        self.app = app
        self.limit = limit
        self.idle = idle
        self.total = total

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            await _edge(scope["path"], 413, "TooLarge", f"request body over {self.limit} bytes")(scope, receive, send)
            return
        messages: list[Message] = []
        seen = 0
        deadline = asyncio.get_running_loop().time() + self.total
        while True:
            left = min(self.idle, deadline - asyncio.get_running_loop().time())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except TimeoutError:
                log.info("%s %s: 408 the body did not arrive in time", scope["method"], scope["path"])
                await _edge(scope["path"], 408, "RequestTimeout", "the request body did not arrive in time")(
                    scope, receive, send)
                return
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await _edge(scope["path"], 413, "TooLarge", f"request body over {self.limit} bytes")(
                    scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            message = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, replayed, send)
