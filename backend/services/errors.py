"""Errors of the service layer, each with the HTTP status the API answers with; messages say what to fix."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class; `status_code` and `headers` are used by the API's exception handler."""

    status_code = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class NotFoundError(ServiceError):
    status_code = 404


class ForbiddenError(ServiceError):
    status_code = 403


class ConflictError(ServiceError):
    status_code = 409


class InvalidInputError(ServiceError):
    status_code = 422


class PayloadTooLargeError(ServiceError):
    status_code = 413


class UnavailableError(ServiceError):
    """Temporarily unable to serve (e.g. stimuli still being generated); `retry_after_s` becomes Retry-After."""

    status_code = 503

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)} if retry_after_s else None)
