"""The API's own documentation: the OpenAPI document, Swagger UI and ReDoc.

Served by routes of the app (not FastAPI's built-in ones, which are plain Starlette
routes), so the HTTP metrics label them with their own path instead of ``<unmatched>``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

OPENAPI_URL = "/openapi.json"
#: The documentation's own paths: not in the OpenAPI document, each its own route label.
DOC_PATHS = (OPENAPI_URL, "/docs", "/redoc")

router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    """Return the OpenAPI document of this app."""
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Return the Swagger UI page for the OpenAPI document."""
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - Swagger UI")


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """Return the ReDoc page for the OpenAPI document."""
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")
