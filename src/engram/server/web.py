"""The web UI (``/ui``) and offline API docs (``/docs``), served from files in the package.

Pages are Jinja2 templates rendered without any data: each page's script signs in with the API
key kept in the browser's ``sessionStorage`` and calls the JSON API with an ``Authorization``
header, so a page URL never carries a key. Every page is served with a Content-Security-Policy
that lets it load and call only this server. ``/docs`` is Swagger UI from the
``swagger-ui-bundle-v2`` package, served from ``/docs/assets``: no CDN. See docs/ui.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import engram

UI_DIR = Path(__file__).resolve().parent / "ui"
PAGES = {
    "namespaces": "Namespaces",
    "documents": "Documents",
    "search": "Search",
    "ask": "Ask",
    "agents": "Agents",
}
UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI's page has one inline script (its settings) and inline styles and SVG images.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def swagger_dir() -> Path | None:
    """Swagger UI's files from the ``swagger-ui-bundle-v2`` package, if installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def _page(templates: Jinja2Templates, request: Request, page: str) -> Response:
    response = templates.TemplateResponse(
        request,
        f"{page}.html",
        {"page": page, "pages": PAGES, "version": engram.__version__},
    )
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Security-Policy"] = UI_CSP
    return response


def ui_router() -> APIRouter:
    templates = Jinja2Templates(directory=str(UI_DIR / "templates"))
    r = APIRouter(include_in_schema=False)

    @r.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)

    @r.get("/ui")
    def home(request: Request) -> Response:
        return _page(templates, request, "namespaces")

    @r.get("/ui/signin")
    def signin(request: Request) -> Response:
        return _page(templates, request, "signin")

    def add(page: str) -> None:
        def view(request: Request) -> Response:
            return _page(templates, request, page)

        r.add_api_route(f"/ui/{page}", view, methods=["GET"], name=f"ui_{page}")

    for page in PAGES:
        add(page)
    return r


def docs_router(openapi_url: str) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/docs")
    def docs() -> HTMLResponse:
        if swagger_dir() is None:
            return HTMLResponse(
                "<!doctype html><title>Engram API</title><p>Swagger UI is not installed "
                "(pip install engram[server]); the API's OpenAPI document is at "
                f'<a href="{openapi_url}">{openapi_url}</a>.</p>',
                status_code=200,
            )
        response = get_swagger_ui_html(
            openapi_url=openapi_url,
            title="Engram API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    return r


def install_web(app: FastAPI) -> None:
    """Add the UI pages, their static files, the offline ``/docs`` and the UI's JSON routes."""
    from engram.server.webapi import router as api_router

    app.include_router(api_router())
    app.include_router(ui_router())
    app.include_router(docs_router(app.openapi_url or "/openapi.json"))
    app.mount("/ui/static", StaticFiles(directory=str(UI_DIR / "static")), name="ui_static")
    assets = swagger_dir()
    if assets is not None:
        app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="docs_assets")
