"""The service's one error shape: JSON ``{"error": code, "detail": ...}`` with a status.

>>> ApiError(404, "not_found", "no video with id 'x'").status
404
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

log = logging.getLogger(__name__)

#: OpenAPI description of the error body, for ``responses={status: ERROR_RESPONSE}``.
ERROR_RESPONSE: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}, "detail": {}}}
        }
    }
}

#: What each error status means in this API (the OpenAPI description of each response).
ERROR_MEANINGS = {
    400: "Malformed body: bytes that aren't UTF-8 JSON, a multipart body cut short or "
    "without a 'file' field, an empty file",
    404: "No video or job with this id",
    408: "The client stopped sending its request body for longer than the client timeout",
    413: "The request body is over its size limit",
    415: "Not multipart/form-data, or the uploaded file is not a video",
    422: "Invalid parameters or body, or a rule the schema can't state: a time past the end of "
    "the video, start not before end, a video too big to decode, cut short or corrupt",
    429: "Too many trim jobs are waiting; retry after Retry-After seconds",
    500: "An injected fault (/admin/faults) or an ffmpeg failure",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` entries of the given error statuses.

    >>> sorted(error_responses(404, 429))
    [404, 429]
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": ERROR_MEANINGS[status], **ERROR_RESPONSE}
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = entry
    return responses


HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(
        self, status: int, code: str, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def error_response(status: int, code: str, detail: Any) -> JSONResponse:
    """Return the JSON error response used everywhere."""
    return JSONResponse({"error": code, "detail": jsonable_encoder(detail)}, status_code=status)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Return the methods ``path`` takes: its documented ones, HEAD with GET, OPTIONS.

    Read from the OpenAPI document (every HTTP route but the documentation's own, which
    take GET), so the answer can't drift from what the routes declare.
    """
    from .routes.docs import DOC_PATHS  # routes import this module: import when called

    table = getattr(app.state, "allowed_methods", None)
    if table is None:
        paths = {p: {m.upper() for m in ops} for p, ops in app.openapi()["paths"].items()}
        for doc_path in DOC_PATHS:
            paths[doc_path] = {"GET"}
        table = [(compile_path(p)[0], methods) for p, methods in paths.items()]
        app.state.allowed_methods = table
    methods: set[str] = set()
    for regex, declared in table:
        if regex.match(path):
            methods |= declared
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods | {"OPTIONS"})


def install_error_handlers(app: FastAPI) -> None:
    """Make every error a JSON body ``{"error": code, "detail": ...}``."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        """Answer our own errors."""
        response = error_response(exc.status, exc.code, exc.detail)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """Answer invalid parameters or bodies with 422 and the list of problems."""
        problems = [
            {k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()
        ]
        return error_response(422, "validation_error", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Answer routing errors (404, 405, ...) as JSON; answer OPTIONS with ``Allow``."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # the path exists: list every method it really takes
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        response = error_response(
            exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), exc.detail
        )
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        """Answer anything unforeseen with a 500 (logged with its traceback)."""
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "unexpected server error")
