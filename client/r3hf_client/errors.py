"""One error taxonomy for the server and the client.

The server answers every failure with ``{"error": <sentence>, "error_type": <kind>}`` and the HTTP status below;
the client raises the exception class registered for that kind.

Exception tree::

    R3HFError
    ├── APIError                      the server answered with an error body
    │   ├── MalformedRequestError     400  malformed_request
    │   ├── UnauthorizedError         401  unauthorized
    │   ├── NotFoundError             404  not_found
    │   │   └── MethodNotAllowedError 405  method_not_allowed
    │   ├── TooLargeError             413  too_large
    │   ├── InvalidRequestError       422  invalid_request
    │   ├── OverloadedError           429  overloaded
    │   ├── InternalServerError       500  internal
    │   │   └── NonFiniteOutputError  500  non_finite_output
    │   ├── NotReadyError             503  not_ready
    │   └── TimeoutError_             504  timeout
    ├── ConnectionFailedError         no replica could be reached (connection refused, reset, timed out)
    ├── DeadlineExceededError         the call's total deadline ran out while retrying
    │   └── AllReplicasDownError      ... while every replica was marked down (names each one's last failure)
    └── FingerprintMismatchError      a replica serves a different model than the one pinned

The client retries ConnectionFailedError and the statuses in ``RETRYABLE_STATUSES`` (429 and 503 from this server,
502 and 504 from a proxy in front of it), on another replica when there is one (``r3hf_client.routing``); every
other error is raised at once.
"""

from __future__ import annotations

from enum import Enum


class ErrorType(str, Enum):
    MALFORMED_REQUEST = "malformed_request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    INVALID_REQUEST = "invalid_request"
    OVERLOADED = "overloaded"
    INTERNAL = "internal"
    NON_FINITE_OUTPUT = "non_finite_output"
    NOT_READY = "not_ready"
    TIMEOUT = "timeout"


HTTP_STATUS: dict[ErrorType, int] = {
    ErrorType.MALFORMED_REQUEST: 400,
    ErrorType.UNAUTHORIZED: 401,
    ErrorType.NOT_FOUND: 404,
    ErrorType.METHOD_NOT_ALLOWED: 405,
    ErrorType.TOO_LARGE: 413,
    ErrorType.INVALID_REQUEST: 422,
    ErrorType.OVERLOADED: 429,
    ErrorType.INTERNAL: 500,
    ErrorType.NON_FINITE_OUTPUT: 500,
    ErrorType.NOT_READY: 503,
    ErrorType.TIMEOUT: 504,
}


class R3HFError(Exception):
    """Base of every error this package raises."""


class APIError(R3HFError):
    """The server answered with an error body."""

    def __init__(self, message: str, *, status_code: int, error_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_type = error_type

    def __str__(self) -> str:
        return f"{self.status_code} {self.error_type}: {self.message}"


class MalformedRequestError(APIError):
    pass


class UnauthorizedError(APIError):
    pass


class NotFoundError(APIError):
    pass


class MethodNotAllowedError(NotFoundError):
    """The path exists but not with this method (a NotFoundError too: no such operation)."""


class TooLargeError(APIError):
    pass


class InvalidRequestError(APIError):
    pass


class OverloadedError(APIError):
    pass


class InternalServerError(APIError):
    pass


class NonFiniteOutputError(InternalServerError):
    """The model produced NaN or inf for an item (an InternalServerError too: the server's fault, not the input's)."""


class NotReadyError(APIError):
    pass


class TimeoutError_(APIError):
    pass


class FingerprintMismatchError(R3HFError):
    """A replica serves another model than the fingerprint the client pinned."""


class ConnectionFailedError(R3HFError):
    """The request never got an HTTP answer (refused, reset, DNS failure, or the per-attempt timeout)."""


class DeadlineExceededError(R3HFError):
    """The call's total deadline ran out; the last failure is the ``__cause__``."""


class AllReplicasDownError(DeadlineExceededError):
    """Every replica stayed down (refusing connections, resetting them, or answering 503) until the deadline; the
    message names each replica's last failure."""


RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


def is_retryable(error: Exception) -> bool:
    """Transient failures worth another try: overload, not ready yet, a proxy's gateway errors, no connection."""
    if isinstance(error, ConnectionFailedError):
        return True
    return isinstance(error, APIError) and error.status_code in RETRYABLE_STATUSES


_EXCEPTION_BY_TYPE: dict[str, type[APIError]] = {
    ErrorType.MALFORMED_REQUEST.value: MalformedRequestError,
    ErrorType.UNAUTHORIZED.value: UnauthorizedError,
    ErrorType.NOT_FOUND.value: NotFoundError,
    ErrorType.METHOD_NOT_ALLOWED.value: MethodNotAllowedError,
    ErrorType.TOO_LARGE.value: TooLargeError,
    ErrorType.INVALID_REQUEST.value: InvalidRequestError,
    ErrorType.OVERLOADED.value: OverloadedError,
    ErrorType.INTERNAL.value: InternalServerError,
    ErrorType.NON_FINITE_OUTPUT.value: NonFiniteOutputError,
    ErrorType.NOT_READY.value: NotReadyError,
    ErrorType.TIMEOUT.value: TimeoutError_,
}

# A body without a known error_type (a proxy's page, say) falls back to its status code's class; where two kinds
# share a status (500), the general class answers.
_EXCEPTION_BY_STATUS: dict[int, type[APIError]] = {
    HTTP_STATUS[ErrorType(kind)]: cls for kind, cls in reversed(_EXCEPTION_BY_TYPE.items())
}


def error_from_response(status_code: int, body: object) -> APIError:
    """Build the exception matching an error answer (its error_type first, its status code as a fallback)."""
    message, error_type = f"HTTP {status_code}", ""
    if isinstance(body, dict):
        message = str(body.get("error", message))
        error_type = str(body.get("error_type", ""))
    cls = _EXCEPTION_BY_TYPE.get(error_type) or _EXCEPTION_BY_STATUS.get(status_code, APIError)
    return cls(message, status_code=status_code, error_type=error_type or "unknown")
