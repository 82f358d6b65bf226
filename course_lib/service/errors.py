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
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

#: OpenAPI description of the error body, for ``responses={status: ERROR_RESPONSE}``.
ERROR_RESPONSE: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}, "detail": {}}}
        }
    }
}

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


class ApiError(Exception):
    """An error answered as JSON with a status code."""

    def __init__(self, status: int, code: str, detail: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def error_response(status: int, code: str, detail: Any) -> JSONResponse:
    """Return the JSON error response used everywhere."""
    return JSONResponse({"error": code, "detail": jsonable_encoder(detail)}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error a JSON body ``{"error": code, "detail": ...}``."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        """Answer our own errors."""
        return error_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """Answer invalid parameters or bodies with 422 and the list of problems."""
        problems = [
            {k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()
        ]
        return error_response(422, "validation_error", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Answer routing errors (404, 405, ...) as JSON."""
        response = error_response(
            exc.status_code, HTTP_CODES.get(exc.status_code, "http_error"), exc.detail
        )
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        """Answer anything unforeseen with a 500 (logged with its traceback)."""
        log.error("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "unexpected server error")
