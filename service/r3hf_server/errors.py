"""Errors raised below the HTTP layer; the api maps each ``error_type`` to its status code in one place."""

from __future__ import annotations

from r3hf_client.errors import ErrorType


class ServiceError(Exception):
    error_type: ErrorType = ErrorType.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(ServiceError):
    error_type = ErrorType.INVALID_REQUEST


class TooLargeError(ServiceError):
    error_type = ErrorType.TOO_LARGE


class NotReadyError(ServiceError):
    error_type = ErrorType.NOT_READY


class NonFiniteOutputError(ServiceError):
    error_type = ErrorType.NON_FINITE_OUTPUT


class OverloadedError(ServiceError):
    """Admission refused: the server holds as many items as it may; the client should come back later."""

    error_type = ErrorType.OVERLOADED

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeoutError(ServiceError):
    error_type = ErrorType.TIMEOUT


class OutOfMemoryError(ServiceError):
    """A single item did not fit in device memory even alone (a batch that does not fit is split first)."""

    error_type = ErrorType.INTERNAL


class ModelRefusedError(Exception):
    """The model cannot serve exact per-token rewards; raised at start-up with the reason."""


class WarmUpError(Exception):
    """The largest batch the settings allow cannot run; raised at start-up naming the setting to change."""
