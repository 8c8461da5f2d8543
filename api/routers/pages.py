"""The web pages: the agent console, the supervisor dashboard and the models page (every asset bundled)."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGES = {"/": "agent.html", "/supervisor": "supervisor.html", "/models": "models.html"}


def _read(name: str) -> str:
    return resources.files("api").joinpath("static", name).read_text("utf-8")


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
#: What every page may load: its own assets and the inline scripts it ships (by hash), nothing from elsewhere;
#: the report's frame is sandboxed (no scripts, no same origin) and no page may be framed by another site.
_POLICY = ("default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
           "frame-ancestors 'none'")
#: The report as a page of its own: static HTML with inline styles and SVG, no scripts at all.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def content_policy(html: str) -> str:
    """The Content-Security-Policy for one of our pages: its inline scripts allowed by their SHA-256, nothing else."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return _POLICY.format(hashes=hashes)


router = APIRouter(include_in_schema=False)


def _page(name: str) -> HTMLResponse:
    html = _read(name)
    return HTMLResponse(html, headers={"Content-Security-Policy": content_policy(html), **SECURITY_HEADERS})


for _path, _name in PAGES.items():
    router.add_api_route(_path, lambda name=_name: _page(name), methods=["GET"], response_class=HTMLResponse)


@router.get("/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response(status_code=404)
    return Response(_read(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=300", **SECURITY_HEADERS})
