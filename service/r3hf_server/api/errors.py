"""The one place that maps errors to status codes and the ``{"error", "error_type"}`` body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from r3hf_client.errors import HTTP_STATUS, ErrorType
from r3hf_client.options import ItemForm, choices

from ..errors import OverloadedError, ServiceError

log = logging.getLogger(__name__)

_TYPE_BY_HTTP_STATUS = {404: ErrorType.NOT_FOUND, 405: ErrorType.METHOD_NOT_ALLOWED, 413: ErrorType.TOO_LARGE}
def _is_malformed(error: dict) -> bool:
    """Not JSON at all, or JSON that is not an object."""
    loc = tuple(error.get("loc", ()))
    return error.get("type") == "json_invalid" or (error.get("type") == "model_attributes_type" and loc == ("body",))


def error_response(
    error_type: ErrorType, message: str, status_code: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    # x-error-type lets the request counters label errors without parsing the body.
    return JSONResponse(
        {"error": message, "error_type": error_type.value},
        status_code=status_code or HTTP_STATUS[error_type],
        headers={"x-error-type": error_type.value, **(headers or {})},
    )


def describe_validation_error(exc: RequestValidationError) -> tuple[ErrorType, str]:
    errors = exc.errors()
    if any(_is_malformed(e) for e in errors):
        return ErrorType.MALFORMED_REQUEST, "the request body must be a JSON object"
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body" and not _is_union_tag(x))
        parts.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return ErrorType.INVALID_REQUEST, "; ".join(parts) + more


def _is_union_tag(part: object) -> bool:
    return part in choices(ItemForm)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.error_type in (ErrorType.INTERNAL, ErrorType.NON_FINITE_OUTPUT):
            log.error("request failed: %s", exc.message, exc_info=exc.__cause__)
        headers = {"retry-after": str(exc.retry_after_s)} if isinstance(exc, OverloadedError) else None
        return error_response(exc.error_type, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*describe_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = _TYPE_BY_HTTP_STATUS.get(exc.status_code, ErrorType.MALFORMED_REQUEST)
        # keep the exception's own headers: a 405 must say which methods are allowed (Allow, RFC 9110)
        return error_response(error_type, str(exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(ErrorType.INTERNAL, "internal server error; details are in the server log")
