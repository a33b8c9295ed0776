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


class ModelRefusedError(Exception):
    """The model cannot serve exact per-token rewards; raised at start-up with the reason."""
