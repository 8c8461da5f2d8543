"""The web pages: the agent console, the supervisor dashboard and the models page (every asset bundled)."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
PAGES = {"/": "agent.html", "/supervisor": "supervisor.html", "/models": "models.html"}


def _read(name: str) -> str:
    return resources.files("api").joinpath("static", name).read_text("utf-8")


def install(app: FastAPI) -> None:
    for path, name in PAGES.items():
        def page(name: str = name) -> HTMLResponse:
            return HTMLResponse(_read(name))

        app.add_api_route(path, page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False)

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            return Response(status_code=404)
        return Response(_read(name), media_type=ASSETS[name], headers={"Cache-Control": "max-age=300"})
